"""new_data_sensor: landing files become data versions, and each version gets its runs, once:
a validation run, then, when its data contract passed, the run of the rest. A version asked
for again (a widened data contract accepted it) gets them once more."""


import dagster as dg

from ml_assets.core.retraining import DECAY
from ml_assets.graph import (
    ALL_ASSETS,
    INGEST_ASSETS,
    STAGE_TAG,
    TRAIN_STAGE,
    VALIDATE_ASSETS,
    VALIDATE_STAGE,
    VALIDATED_DATA,
    DagsterNames,
    after_validation,
)
from ml_assets.migration import legacy_versions, waiting_message
from ml_assets.pipelines import Pipeline
from ml_assets.selections import materializations_of_finished_runs
from ml_assets.storage import VersionedStore


def unrequested_versions(store: VersionedStore, known_partitions: set[str]) -> list[str]:
    """Registered versions that are not partitions yet, oldest first.

    Registration (copying the snapshot) and adding the partition are two steps; a crash in
    between leaves a version registered but not run. Deriving "what is new" from both records
    makes the next tick, or the next `ml-assets run`, pick it up.
    """
    versions = store.versions()
    return [
        key
        for key, _ in sorted(versions.items(), key=lambda kv: (kv[1].registered_at, kv[0]))
        if key not in known_partitions
    ]


TRIGGER_TAG = "ml_assets/trigger"
# validated_data records read per tick when looking for validation runs to follow up
BATCH = 200


def build_new_data_sensor(pipeline: Pipeline, job) -> dg.SensorDefinition:
    settings, env, names = pipeline.settings, pipeline.env, pipeline.names
    # Every version is ingested, validated and checked for drift; whether it is also trained
    # depends on the retrain policy (otherwise drift_sensor decides).
    rest = names.keys(after_validation(
        ALL_ASSETS if settings.retrain.policy == "every_version" else INGEST_ASSETS))
    # A version made of a decayed champion's labelled live rows exists to be trained on.
    decay_rest = rest if settings.retrain.policy == "never" else names.keys(after_validation(ALL_ASSETS))
    validate = names.keys(VALIDATE_ASSETS)

    @dg.sensor(
        name=names.new_data_sensor,
        job=job,
        minimum_interval_seconds=env.sensor_interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Registers new files matching {settings.landing_glob!r} in "
        f"{env.landing_dir} as data versions and requests each version's validation run, "
        "then, once its data contract passed, the run of the rest of the graph "
        f"(retrain.policy: {settings.retrain.policy}); one of each per version, ever.",
    )
    def new_data_sensor(context: dg.SensorEvaluationContext):
        store = VersionedStore(env.store_root, settings.name)
        scan = store.scan_landing(env.landing_dir, settings.landing_glob, env.settle_seconds)
        for waiting in scan.unsettled:
            context.log.info(f"{waiting.path}: {waiting.reason}; next tick")
        for skipped in scan.duplicates:
            context.log.info(f"{skipped.path}: not registered again: {skipped.reason}")
        for refused in scan.refused:
            context.log.warning(f"{refused.path}: refused: {refused.reason}")
        waiting = legacy_versions(context.instance, store, names)
        if waiting:
            return dg.SkipReason(waiting_message(settings.name, len(waiting)))
        known = set(context.instance.get_dynamic_partitions(names.partitions))
        keys = unrequested_versions(store, known)
        reruns = _asked_again(context, store, known, keys)
        follow_ups, cursor = validated_versions(context, names, rest, decay_rest)
        if not keys and not reruns and not follow_ups and cursor == context.cursor:
            return dg.SkipReason(f"no new files in {env.landing_dir}")
        store.mark_claimed(keys)
        versions = store.versions()
        return dg.SensorResult(
            dynamic_partitions_requests=(
                [pipeline.partitions.build_add_request(keys)] if keys else []
            ),
            # run_key deduplicates forever: one validation run per data version, unless asked
            # by hand, and one run of the rest per validation run that passed.
            run_requests=[
                dg.RunRequest(
                    run_key=key,
                    partition_key=key,
                    asset_selection=validate,
                    tags={TRIGGER_TAG: versions[key].trigger or "new_data", STAGE_TAG: VALIDATE_STAGE},
                )
                for key in keys
            ]
            + [_rerun_request(request, validate) for request in reruns]
            + follow_ups,
            cursor=cursor,
        )

    return new_data_sensor


def validated_versions(context, names: DagsterNames, selection,
                       decay_selection=None) -> tuple[list[dg.RunRequest], str | None]:
    """Run requests for the rest of each version whose validation run (launched by this
    sensor) succeeded since the cursor, and the new cursor (a storage id of validated_data).
    A version the decay sensor made (trigger tag `decay`) gets `decay_selection` when given.

    A validation run that failed (its data contract or file blocked it) gets nothing: the
    assets downstream keep their last good state. Records are read in order and the walk
    stops at a run not finished yet, so a version is decided once its run is over."""
    requests, cursor = [], context.cursor
    for record, run in materializations_of_finished_runs(
        context.instance, names.key(VALIDATED_DATA), context.cursor, BATCH
    ):
        cursor = str(record.storage_id)
        if run is None or run.tags.get(STAGE_TAG) != VALIDATE_STAGE:
            continue  # a whole-graph run (the UI, `ml-assets run`, an older release)
        if run.tags.get("dagster/sensor_name") != names.new_data_sensor:
            continue  # `ml-assets run` runs the rest itself
        if run.status != dg.DagsterRunStatus.SUCCESS:
            context.log.info(f"{record.partition_key}: its validation run {run.run_id} did not pass; "
                             "nothing downstream is requested")
            continue
        tags = {k: v for k, v in run.tags.items() if k in (TRIGGER_TAG, "ml_assets/contract_revision")}
        decayed = decay_selection is not None and run.tags.get(TRIGGER_TAG) == DECAY
        requests.append(dg.RunRequest(
            run_key=f"{run.tags.get('dagster/run_key', run.run_id)}:{TRAIN_STAGE}",
            partition_key=record.partition_key,
            asset_selection=decay_selection if decayed else selection,
            tags={**tags, STAGE_TAG: TRAIN_STAGE},
        ))
    return requests, cursor


def _asked_again(context, store: VersionedStore, known: set[str], new_keys: list[str]) -> list[dict]:
    """Take the pending requests to run a version again; a version whose first run is being
    requested on this tick needs no second one (it is validated against today's contract)."""
    if not store.pending_run_requests():
        return []
    reruns = []
    for request in store.take_run_requests("new_data_sensor"):
        key = request.get("data_version")
        if key in new_keys:
            context.log.info(f"{key}: asked to run again, and its first run is requested now")
        elif key in known:
            context.log.info(f"{key}: requesting its run again ({request.get('run_key')})")
            reruns.append(request)
        else:
            context.log.warning(f"{key}: asked to run again, but it is not a data version here")
    return reruns


def _rerun_request(request: dict, selection) -> dg.RunRequest:
    tags = {TRIGGER_TAG: request.get("trigger") or "contract_accepted", STAGE_TAG: VALIDATE_STAGE}
    if request.get("contract_revision") is not None:
        tags["ml_assets/contract_revision"] = str(request["contract_revision"])
    return dg.RunRequest(
        run_key=request["run_key"],  # unique per version and contract revision
        partition_key=request["data_version"],
        asset_selection=selection,
        tags=tags,
    )
