"""The resources every pipeline of the code location shares, and its executor: each asset
names its pipeline to them (the IO managers read it from the asset's metadata)."""

from __future__ import annotations

import dagster as dg

from ml_assets.environment import Environment
from ml_assets.executor import in_process_by_default
from ml_assets.monitoring.notifications import Notifier
from ml_assets.registry.mlflow_wiring import ModelRegistry, build_mlflow_resource
from ml_assets.resources import SnapshotIOManager, StoreResource, VersionedStoreIOManager


def shared_resources(env: Environment) -> dict:
    return {
        "io_manager": VersionedStoreIOManager(root=str(env.store_root)),
        "snapshot_io_manager": SnapshotIOManager(root=str(env.store_root)),
        "store": StoreResource(root=str(env.store_root)),
        "registry": ModelRegistry(tracking_uri=env.tracking_uri),
        # An EnvVar, so the URL (a credential) is never shown in the UI or logs.
        "notifier": Notifier(webhook_url=dg.EnvVar("ML_ASSETS_WEBHOOK_URL") if env.webhook_url else None),
        "mlflow": build_mlflow_resource(env.tracking_uri, str(env.mlflow_artifacts_dir)),
    }


def shared_definitions(env: Environment) -> dg.Definitions:
    return dg.Definitions(resources=shared_resources(env), executor=in_process_by_default())
