"""One pipeline's graph: its assets, job, sensors and schedule, all named after its slug so
that no two pipelines of a code location collide (its resources are the shared ones)."""

from __future__ import annotations

import dagster as dg

from ml_assets.ingestion.assets import build_ingestion_assets
from ml_assets.ingestion.sensors import build_new_data_sensor
from ml_assets.monitoring.assets import build_monitoring_assets
from ml_assets.monitoring.sensors import build_drift_sensor, build_failure_sensor, build_weekly_retrain
from ml_assets.pipelines import Pipeline
from ml_assets.registry.assets import build_registry_assets
from ml_assets.registry.decide_job import build_decide_job
from ml_assets.training.assets import build_training_assets
from ml_assets.training.evaluation import build_evaluation_asset


def pipeline_definitions(pipeline: Pipeline) -> dg.Definitions:
    assets = [
        *build_ingestion_assets(pipeline),
        *build_training_assets(pipeline),
        build_evaluation_asset(pipeline),
        *build_registry_assets(pipeline),
        *build_monitoring_assets(pipeline),
    ]
    train_job = dg.define_asset_job(
        pipeline.names.job,
        selection=dg.AssetSelection.assets(*assets),
        partitions_def=pipeline.partitions,
        description=f"Validate, train, evaluate, register and check drift for one data version "
        f"of pipeline {pipeline.name!r}.",
        # the run queue allows one run per pipeline at a time (deploy/dev/dagster.yaml)
        tags={"ml_assets/pipeline": pipeline.name},
    )
    return dg.Definitions(
        assets=assets,
        jobs=[train_job, build_decide_job(pipeline)],
        sensors=[
            build_new_data_sensor(pipeline, train_job),
            build_drift_sensor(pipeline, train_job),
            build_failure_sensor(pipeline, train_job),
        ],
        schedules=[build_weekly_retrain(pipeline, train_job)],
    )
