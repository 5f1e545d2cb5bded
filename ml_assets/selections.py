"""Which assets a run materialises: ingest-and-validate, or train-evaluate-register."""

import dagster as dg

INGEST_ASSETS = ("raw_data", "validated_data", "features", "drift_report")
TRAIN_ASSETS = ("model", "evaluation_report", "registered_model_version")
ALL_ASSETS = INGEST_ASSETS + TRAIN_ASSETS


def keys(names) -> list[dg.AssetKey]:
    return [dg.AssetKey(name) for name in names]


def _latest_check_data(instance, asset: str, check: str, partition: str):
    """The event data of the latest execution of a check on one data version, or None."""
    from dagster._core.event_api import PartitionKeyFilter

    check_key = dg.AssetCheckKey(dg.AssetKey(asset), check)
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [check_key], partition_filter=PartitionKeyFilter(key=partition)
    ).get(check_key)
    if record is None or record.event is None or record.event.dagster_event is None:
        return None
    return record.event.dagster_event.event_specific_data


def latest_check_passed(instance, asset: str, check: str, partition: str) -> bool | None:
    """The verdict of the latest evaluation of a check on one data version (None: never run)."""
    data = _latest_check_data(instance, asset, check, partition)
    return getattr(data, "passed", None) if data is not None else None


def latest_check_metadata(instance, asset: str, check: str, partition: str) -> dict | None:
    """The metadata of the latest evaluation of a check on one data version, as plain values
    (a JSON entry as its list or dict); None when the check was never evaluated there."""
    data = _latest_check_data(instance, asset, check, partition)
    if not isinstance(data, dg.AssetCheckEvaluation):
        return None  # never run, or planned and not evaluated (its step failed first)
    return {key: getattr(value, "value", value) for key, value in data.metadata.items()}
