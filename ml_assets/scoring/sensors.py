"""`<slug>__scoring_sensor`: files dropped under `scoring_glob` become scoring batches (each a
partition of `<slug>__scoring_batch`), and each batch gets one scoring run, ever, once there
is a champion to score it."""

from __future__ import annotations

import dagster as dg

from ml_assets.graph import PREDICTIONS
from ml_assets.pipelines import Pipeline
from ml_assets.storage import VersionedStore, scoring_store

TRIGGER_TAG = "ml_assets/trigger"


def run_key(batch: str) -> str:
    return f"score:{batch}"


def oldest_first(store: VersionedStore, keys) -> list[str]:
    versions = store.versions()
    return sorted(keys, key=lambda key: (versions[key].registered_at, key))


def waiting_message(pipeline: str, count: int) -> str:
    noun = "scoring batch waits" if count == 1 else "scoring batches wait"
    return f"no champion yet for {pipeline}: {count} {noun}"


def build_scoring_sensor(pipeline: Pipeline, job) -> dg.SensorDefinition:
    settings, env, names = pipeline.settings, pipeline.env, pipeline.names
    selection = names.keys([PREDICTIONS])

    @dg.sensor(
        name=names.scoring_sensor,
        job=job,
        minimum_interval_seconds=env.sensor_interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Registers new files matching {settings.scoring_glob!r} in {env.landing_dir} "
        f"as scoring batches and requests one run of {names.score_job} per batch, ever, once "
        "there is a champion to score it.",
    )
    def scoring_sensor(context: dg.SensorEvaluationContext):
        store = scoring_store(env.store_root, settings.name)
        scan = store.scan_landing(env.landing_dir, settings.scoring_glob, env.settle_seconds)
        for unsettled in scan.unsettled:
            context.log.info(f"{unsettled.path}: {unsettled.reason}; next tick")
        for duplicate in scan.duplicates:
            # the store words it for data versions; here the earlier file is a batch
            reason = duplicate.reason.replace("data version", "scoring batch")
            context.log.info(f"{duplicate.path}: not a new scoring batch: {reason}")
        for refused in scan.refused:
            context.log.warning(f"{refused.path}: refused: {refused.reason}")

        known = set(context.instance.get_dynamic_partitions(names.scoring_partitions))
        # Registering a batch and adding its partition are two steps: a crash in between is
        # picked up here on the next tick.
        new_partitions = oldest_first(store, [key for key in store.versions() if key not in known])
        partitions = [pipeline.scoring_partitions.build_add_request(new_partitions)] if new_partitions else []
        waiting = oldest_first(store, store.unclaimed())
        if not waiting:
            return dg.SensorResult(dynamic_partitions_requests=partitions,
                                   skip_reason=f"no new files to score in {env.landing_dir}")
        from ml_assets.registry.mlflow_wiring import RegisteredModel, TrackingServerUnreachable

        try:
            champion = RegisteredModel(env.tracking_uri, settings.name).champion()
        except TrackingServerUnreachable as exc:
            return dg.SensorResult(dynamic_partitions_requests=partitions,
                                   skip_reason=f"{exc}: {len(waiting)} scoring batch(es) wait")
        if champion is None:
            return dg.SensorResult(dynamic_partitions_requests=partitions,
                                   skip_reason=waiting_message(settings.name, len(waiting)))
        store.mark_claimed(waiting)
        context.log.info(
            f"{len(waiting)} scoring batch(es) to score with {settings.name} version "
            f"{champion['version']}: {', '.join(waiting)}"
        )
        return dg.SensorResult(
            dynamic_partitions_requests=partitions,
            # run_key makes it one run per batch, ever
            run_requests=[
                dg.RunRequest(run_key=run_key(batch), partition_key=batch, asset_selection=selection,
                              tags={TRIGGER_TAG: "new_scoring_batch"})
                for batch in waiting
            ],
        )

    return scoring_sensor
