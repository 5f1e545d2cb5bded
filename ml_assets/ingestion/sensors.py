"""new_data_sensor: landing files become data versions, and each version gets its run, once;
a version asked for again (a widened data contract accepted it) gets one more run."""


import dagster as dg

from ml_assets.graph import ALL_ASSETS, INGEST_ASSETS
from ml_assets.migration import legacy_versions, waiting_message
from ml_assets.pipelines import Pipeline
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


def build_new_data_sensor(pipeline: Pipeline, job) -> dg.SensorDefinition:
    settings, env, names = pipeline.settings, pipeline.env, pipeline.names
    # Every version is ingested, validated and checked for drift; whether its run also
    # trains depends on the retrain policy (otherwise drift_sensor decides).
    selection = names.keys(ALL_ASSETS if settings.retrain.policy == "every_version" else INGEST_ASSETS)

    @dg.sensor(
        name=names.new_data_sensor,
        job=job,
        minimum_interval_seconds=env.sensor_interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Registers new files matching {settings.landing_glob!r} in "
        f"{env.landing_dir} as data versions and requests one run per version, ever "
        f"(retrain.policy: {settings.retrain.policy}).",
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
        if not keys and not reruns:
            return dg.SkipReason(f"no new files in {env.landing_dir}")
        store.mark_claimed(keys)
        return dg.SensorResult(
            dynamic_partitions_requests=(
                [pipeline.partitions.build_add_request(keys)] if keys else []
            ),
            # run_key deduplicates forever: one run per data version, unless asked by hand.
            run_requests=[
                dg.RunRequest(
                    run_key=key,
                    partition_key=key,
                    asset_selection=selection,
                    tags={"ml_assets/trigger": "new_data"},
                )
                for key in keys
            ]
            + [_rerun_request(request, selection) for request in reruns],
        )

    return new_data_sensor


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
    tags = {"ml_assets/trigger": request.get("trigger") or "contract_accepted"}
    if request.get("contract_revision") is not None:
        tags["ml_assets/contract_revision"] = str(request["contract_revision"])
    return dg.RunRequest(
        run_key=request["run_key"],  # unique per version and contract revision
        partition_key=request["data_version"],
        asset_selection=selection,
        tags=tags,
    )
