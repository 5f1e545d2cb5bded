"""What the sensors and the CLI read from the instance: the latest verdicts of a pipeline's
checks on one data version (`slug` names the pipeline's keys), and the materialisations of an
asset whose runs are over (the run selections themselves are in ml_assets.graph)."""

import dagster as dg

from ml_assets.graph import Check, check_key


def latest_check_executions(instance, checks, partition: str, slug: str) -> dict:
    """The record of the latest execution of each check on one data version, by check key;
    a check never run there is absent."""
    from ml_assets.private_apis import PartitionKeyFilter

    return instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [check_key(check, slug) for check in checks], partition_filter=PartitionKeyFilter(key=partition)
    )


def execution_data(record):
    """The event data of a check's execution record (an evaluation, or only its plan), or None."""
    if record is None or record.event is None or record.event.dagster_event is None:
        return None
    return record.event.dagster_event.event_specific_data


def _latest_check_data(instance, check: Check, partition: str, slug: str):
    """The event data of the latest execution of a check on one data version, or None."""
    records = latest_check_executions(instance, [check], partition, slug)
    return execution_data(records.get(check_key(check, slug)))


def latest_check_passed(instance, check: Check, partition: str, slug: str) -> bool | None:
    """The verdict of the latest evaluation of a check on one data version (None: never run)."""
    data = _latest_check_data(instance, check, partition, slug)
    return getattr(data, "passed", None) if data is not None else None


def latest_check_metadata(instance, check: Check, partition: str, slug: str) -> dict | None:
    """The metadata of the latest evaluation of a check on one data version, as plain values
    (a JSON entry as its list or dict); None when the check was never evaluated there."""
    data = _latest_check_data(instance, check, partition, slug)
    if not isinstance(data, dg.AssetCheckEvaluation):
        return None  # never run, or planned and not evaluated (its step failed first)
    return {key: getattr(value, "value", value) for key, value in data.metadata.items()}


def materializations_of_finished_runs(instance, asset_key, cursor: str | None, limit: int):
    """(record, its run) for each materialisation of `asset_key` after `cursor` (a storage id),
    oldest first, stopping at the first whose run is still going: a sensor decides on a
    version once its run is over, and its cursor is the storage id of the last pair taken."""
    after = int(cursor) if cursor else None
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, after_storage_id=after), limit=limit, ascending=True
    ).records
    for record in records:
        run = instance.get_run_by_id(record.run_id)
        if run is not None and not run.is_finished:
            return
        yield record, run
