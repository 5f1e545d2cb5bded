"""The one Definitions of the code location, assembled from the stage modules.

`build_definitions(settings, env)` stamps out the graph for one pipeline; every piece of state
it touches (store folder, contract file, MLflow names) is keyed by the pipeline's name.
"""

from __future__ import annotations

import re

import dagster as dg

from ml_assets.config import PipelineSettings, load_settings
from ml_assets.environment import Environment, load_environment
from ml_assets.ingestion.assets import build_ingestion_assets
from ml_assets.ingestion.sensors import build_new_data_sensor
from ml_assets.monitoring.assets import build_monitoring_assets
from ml_assets.monitoring.notifications import Notifier
from ml_assets.monitoring.sensors import (
    build_drift_sensor,
    build_failure_sensor,
    build_weekly_retrain,
)
from ml_assets.partitions import data_version_partitions
from ml_assets.registry.assets import build_registry_assets
from ml_assets.registry.mlflow_wiring import ModelRegistry, build_mlflow_resource
from ml_assets.resources import SnapshotIOManager, StoreResource, VersionedStoreIOManager
from ml_assets.training.assets import build_training_assets

TRAIN_JOB = "train_version"


def _in_process_by_default() -> dg.ExecutorDefinition:
    """Dagster's multi_or_in_process_executor with in-process as the default instead of
    multiprocess. One process for the whole run: for a graph of seven steps, step
    subprocesses cost more than they save: each one imports the code location and its
    libraries again (`make bench` measures it side by side). A run
    can still choose multiprocess in its run config:

        execution:
          config:
            multiprocess:
              start_method: {forkserver: {}}
    """
    from ml_assets.private_apis import IN_PROC_CONFIG, MULTI_PROC_CONFIG

    return dg.multi_or_in_process_executor.configured(
        lambda config: config,
        name="in_process_or_multiprocess",
        config_schema=dg.Field(
            dg.Selector({"multiprocess": MULTI_PROC_CONFIG, "in_process": IN_PROC_CONFIG}),
            default_value={"in_process": {}},
        ),
    )


def build_definitions(settings: PipelineSettings, env: Environment) -> dg.Definitions:
    group = re.sub(r"[^A-Za-z0-9_]", "_", settings.name)
    assets = [
        *build_ingestion_assets(settings, env, group),
        *build_training_assets(settings, env, group),
        *build_registry_assets(settings, env, group),
        *build_monitoring_assets(settings, env, group),
    ]
    train_job = dg.define_asset_job(
        TRAIN_JOB,
        selection=dg.AssetSelection.assets(*assets),
        partitions_def=data_version_partitions,
        description="Validate, train, evaluate, register and check drift for one data version.",
        tags={"ml_assets/pipeline": settings.name},
    )
    store_args = {"root": str(env.store_root), "pipeline": settings.name}
    return dg.Definitions(
        assets=assets,
        jobs=[train_job],
        sensors=[
            build_new_data_sensor(settings, env, train_job),
            build_drift_sensor(settings, env, train_job),
            build_failure_sensor(settings, env, train_job),
        ],
        schedules=[build_weekly_retrain(settings, env, train_job)],
        resources={
            "io_manager": VersionedStoreIOManager(**store_args),
            "snapshot_io_manager": SnapshotIOManager(**store_args),
            "store": StoreResource(**store_args),
            "registry": ModelRegistry(tracking_uri=env.tracking_uri, model_name=settings.name),
            "notifier": Notifier(
                # An EnvVar, so the URL (a credential) is never shown in the UI or logs.
                webhook_url=dg.EnvVar("ML_ASSETS_WEBHOOK_URL") if env.webhook_url else None,
                pipeline=settings.name,
            ),
            "mlflow": build_mlflow_resource(
                env.tracking_uri, settings.name, str(env.mlflow_artifacts_dir)
            ),
        },
        executor=_in_process_by_default(),
    )


def load_definitions() -> dg.Definitions:
    env = load_environment()
    return build_definitions(load_settings(env.config_path), env)


defs = load_definitions()


def train_job() -> dg.JobDefinition:
    """This process's `train_version` job, as `dg.reconstructable` needs it for re-execution."""
    return defs.resolve_job_def(TRAIN_JOB)
