"""new_data_sensor: landing files become data versions, and each version gets its run, once."""


import dagster as dg

from ml_assets.config import PipelineSettings
from ml_assets.environment import Environment
from ml_assets.partitions import DATA_VERSION, data_version_partitions
from ml_assets.selections import ALL_ASSETS, INGEST_ASSETS
from ml_assets.selections import keys as asset_keys
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


def build_new_data_sensor(settings: PipelineSettings, env: Environment, job) -> dg.SensorDefinition:
    # Every version is ingested, validated and checked for drift; whether its run also
    # trains depends on the retrain policy (otherwise drift_sensor decides).
    selection = asset_keys(ALL_ASSETS if settings.retrain.policy == "every_version" else INGEST_ASSETS)

    @dg.sensor(
        name="new_data_sensor",
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
        known = set(context.instance.get_dynamic_partitions(DATA_VERSION))
        keys = unrequested_versions(store, known)
        if not keys:
            return dg.SkipReason(f"no new files in {env.landing_dir}")
        store.mark_claimed(keys)
        return dg.SensorResult(
            dynamic_partitions_requests=[data_version_partitions.build_add_request(keys)],
            # run_key deduplicates forever: one run per data version, unless asked by hand.
            run_requests=[
                dg.RunRequest(
                    run_key=key,
                    partition_key=key,
                    asset_selection=selection,
                    tags={"ml_assets/trigger": "new_data"},
                )
                for key in keys
            ],
        )

    return new_data_sensor
