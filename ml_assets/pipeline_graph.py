"""One pipeline's graph: its assets, job, sensors and schedule, all named after its slug so
that no two pipelines of a code location collide (its resources are the shared ones)."""

from __future__ import annotations

import dagster as dg

from ml_assets.ingestion.assets import build_ingestion_assets
from ml_assets.ingestion.sensors import build_new_data_sensor
from ml_assets.live.assets import build_live_job, build_live_performance_asset
from ml_assets.live.sensors import build_decay_sensor, build_labels_sensor
from ml_assets.monitoring.assets import build_monitoring_assets
from ml_assets.monitoring.sensors import build_drift_sensor, build_failure_sensor, build_weekly_retrain
from ml_assets.pipelines import Pipeline
from ml_assets.registry.assets import build_registry_assets
from ml_assets.registry.decide_job import build_decide_job
from ml_assets.scoring.assets import build_predictions_asset, build_score_job
from ml_assets.scoring.sensors import build_scoring_sensor
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
    # partitioned by scoring batch, so in a job of its own
    predictions = build_predictions_asset(pipeline)
    score_job = build_score_job(pipeline, predictions)
    live_performance = build_live_performance_asset(pipeline)
    live_job = build_live_job(pipeline, live_performance)
    return dg.Definitions(
        assets=[*assets, predictions, live_performance],
        jobs=[train_job, build_decide_job(pipeline), score_job, live_job],
        sensors=[
            build_new_data_sensor(pipeline, train_job),
            build_drift_sensor(pipeline, train_job),
            build_failure_sensor(pipeline, [train_job, score_job, live_job]),
            build_scoring_sensor(pipeline, score_job),
            build_labels_sensor(pipeline, live_job),
            build_decay_sensor(pipeline),
        ],
        schedules=[build_weekly_retrain(pipeline, train_job)],
    )
