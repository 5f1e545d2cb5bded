"""Which assets a run materialises: ingest-and-validate, or train-evaluate-register."""

import dagster as dg

INGEST_ASSETS = ("raw_data", "validated_data", "features", "drift_report")
TRAIN_ASSETS = ("model", "evaluation_report", "registered_model_version")
ALL_ASSETS = INGEST_ASSETS + TRAIN_ASSETS


def keys(names) -> list[dg.AssetKey]:
    return [dg.AssetKey(name) for name in names]


def latest_check_passed(instance, asset: str, check: str, partition: str) -> bool | None:
    """The verdict of the latest evaluation of a check on one data version (None: never run)."""
    from dagster._core.event_api import PartitionKeyFilter

    check_key = dg.AssetCheckKey(dg.AssetKey(asset), check)
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [check_key], partition_filter=PartitionKeyFilter(key=partition)
    ).get(check_key)
    data = record.event.dagster_event.event_specific_data if record and record.event else None
    return getattr(data, "passed", None) if data is not None else None
