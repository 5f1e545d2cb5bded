"""The code location: every pipeline's graph, the pipeline files that could not be loaded
(reported, not loaded), and one set of resources shared by all of them.

`pipeline_definitions(pipeline)` stamps out one pipeline's graph, named after its slug, so no
two pipelines collide; every piece of state it touches (store folder, contract file, MLflow
names) is keyed by the pipeline's name.
"""

from __future__ import annotations

import dagster as dg

from ml_assets.environment import Environment, load_environment
from ml_assets.executor import in_process_by_default
from ml_assets.ingestion.assets import build_ingestion_assets
from ml_assets.ingestion.sensors import build_new_data_sensor
from ml_assets.invalid_pipelines import invalid_pipeline_definitions
from ml_assets.monitoring.assets import build_monitoring_assets
from ml_assets.monitoring.notifications import Notifier
from ml_assets.monitoring.sensors import build_drift_sensor, build_failure_sensor, build_weekly_retrain
from ml_assets.pipelines import Catalog, Pipeline, load_catalog
from ml_assets.registry.assets import build_registry_assets
from ml_assets.registry.mlflow_wiring import ModelRegistry, build_mlflow_resource
from ml_assets.resources import SnapshotIOManager, StoreResource, VersionedStoreIOManager
from ml_assets.training.assets import build_training_assets


def pipeline_definitions(pipeline: Pipeline) -> dg.Definitions:
    """One pipeline's assets, job, sensors and schedule (its resources are the shared ones)."""
    assets = [
        *build_ingestion_assets(pipeline),
        *build_training_assets(pipeline),
        *build_registry_assets(pipeline),
        *build_monitoring_assets(pipeline),
    ]
    train_job = dg.define_asset_job(
        pipeline.names.job,
        selection=dg.AssetSelection.assets(*assets),
        partitions_def=pipeline.partitions,
        description=f"Validate, train, evaluate, register and check drift for one data version "
        f"of pipeline {pipeline.name!r}.",
        tags={"ml_assets/pipeline": pipeline.name},
    )
    return dg.Definitions(
        assets=assets,
        jobs=[train_job],
        sensors=[
            build_new_data_sensor(pipeline, train_job),
            build_drift_sensor(pipeline, train_job),
            build_failure_sensor(pipeline, train_job),
        ],
        schedules=[build_weekly_retrain(pipeline, train_job)],
    )


def shared_resources(env: Environment) -> dict:
    """One set of resources for every pipeline: each asset names its pipeline to them."""
    return {
        "io_manager": VersionedStoreIOManager(root=str(env.store_root)),
        "snapshot_io_manager": SnapshotIOManager(root=str(env.store_root)),
        "store": StoreResource(root=str(env.store_root)),
        "registry": ModelRegistry(tracking_uri=env.tracking_uri),
        # An EnvVar, so the URL (a credential) is never shown in the UI or logs.
        "notifier": Notifier(webhook_url=dg.EnvVar("ML_ASSETS_WEBHOOK_URL") if env.webhook_url else None),
        "mlflow": build_mlflow_resource(env.tracking_uri, str(env.mlflow_artifacts_dir)),
    }


def build_definitions(env: Environment, catalog: Catalog | None = None) -> dg.Definitions:
    """The code location of `env`: its pipelines (from `catalog`, else found as
    `load_catalog` finds them) and the pipeline files that could not be loaded."""
    catalog = catalog if catalog is not None else load_catalog(env)
    return dg.Definitions.merge(
        *(pipeline_definitions(p) for p in catalog.pipelines),
        invalid_pipeline_definitions(catalog.invalid),
        dg.Definitions(resources=shared_resources(env), executor=in_process_by_default()),
    )


def load_definitions() -> dg.Definitions:
    return build_definitions(load_environment())


defs = load_definitions()


def job(name: str) -> dg.JobDefinition:
    """A job of this process's code location, as `dg.reconstructable` needs it to run it
    again in another process (re-execution, `ml-assets run`)."""
    return defs.resolve_job_def(name)
