"""Shared fixtures: a temporary ML_ASSETS_HOME with its own MLflow sqlite store, real datasets
from scikit-learn's wheel written as landing files, and a helper to run one data version."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

REPO = Path(__file__).resolve().parents[1]


def breast_cancer() -> pd.DataFrame:
    return pd.read_csv(REPO / "ml_assets" / "demo" / "breast_cancer.csv")


def wine() -> pd.DataFrame:
    from sklearn.datasets import load_wine

    df = load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
    df["cultivar"] = df["cultivar"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    return df


def diabetes() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    df = load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"})
    df["sex"] = df["sex"].map({1.0: "female", 2.0: "male"})  # a real text category
    df.insert(0, "visit_id", np.arange(len(df)) + 5000)
    return df


DATASETS = {
    "breast_cancer": (breast_cancer, {"target": "diagnosis", "task": "classification",
                                      "id_columns": ["patient_id"], "positive_label": "malignant"}),
    "wine": (wine, {"target": "cultivar", "task": "classification"}),
    "diabetes": (diabetes, {"target": "progression", "task": "regression",
                            "gates": {"min": {"r2": 0.2}}}),
}


@pytest.fixture(autouse=True)
def no_inherited_tracking_uri(monkeypatch):
    """mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI "so that subprocesses inherit
    it", and ml_assets honours that variable: without this, a test that started `dagster` or
    `ml-assets` in a subprocess after another test in the same worker had used MLflow would
    register its models in that other test's store. Each test starts without it, and whatever
    MLflow exports during the test is undone after it."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)


@dataclass
class Project:
    """A temporary home: landing folder, store, MLflow sqlite store, pipeline file."""

    root: Path
    env: object
    settings: object

    @property
    def pipeline(self):
        from ml_assets.pipelines import Pipeline

        return Pipeline(self.settings, self.env)

    @property
    def names(self):
        """The pipeline's Dagster names: `names.key("raw_data")`, `names.partitions`, ..."""
        return self.pipeline.names

    @property
    def landing(self) -> Path:
        return self.env.landing_dir

    def drop(self, name: str, df: pd.DataFrame | bytes | str) -> Path:
        self.landing.mkdir(parents=True, exist_ok=True)
        path = self.landing / name
        if isinstance(df, pd.DataFrame):
            df.to_csv(path, index=False)
        elif isinstance(df, bytes):
            path.write_bytes(df)
        else:
            path.write_text(df)
        return path

    @property
    def store(self):
        from ml_assets.storage import VersionedStore

        return VersionedStore(self.env.store_root, self.settings.name)

    def defs(self):
        from ml_assets.definitions import build_definitions
        from ml_assets.pipelines import Catalog

        return build_definitions(self.env, Catalog(str(self.env.config_path), (self.pipeline,), ()))

    def registry(self):
        from ml_assets.registry.mlflow_wiring import RegisteredModel

        return RegisteredModel(self.env.tracking_uri, self.settings.name)

    def register_new(self, instance) -> list[str]:
        """What the sensor and the CLI do: register landing files, add their partitions."""
        scan = self.store.scan_landing(self.landing, self.settings.landing_glob)
        keys = [r.key for r in scan.new]
        if keys:
            instance.add_dynamic_partitions(self.names.partitions, keys)
        return keys

    def run_version(self, instance, key: str):
        job = self.defs().resolve_job_def(self.names.job)
        return job.execute_in_process(partition_key=key, instance=instance, raise_on_error=False)


def make_project(tmp_path: Path, name: str, **pipeline) -> Project:
    import yaml

    from ml_assets.config import load_settings
    from ml_assets.environment import load_environment

    config = tmp_path / "ml_assets.yaml"
    config.write_text(yaml.safe_dump({"name": name, **pipeline}))
    # Settle time 0: tests drop whole files and tick at once (the settle rule has its own test).
    env = load_environment(
        {"ML_ASSETS_HOME": str(tmp_path / "home"), "ML_ASSETS_SETTLE_SECONDS": "0"}, cwd=tmp_path
    )
    return Project(root=tmp_path, env=env, settings=load_settings(config))


@pytest.fixture
def instance():
    """A real (temporary, sqlite-backed) Dagster instance, as the daemon and CLI use."""
    from dagster import instance_for_test

    with instance_for_test() as inst:
        yield inst


class WebhookServer:
    """A real HTTP server on 127.0.0.1 that records the JSON bodies POSTed to it."""

    def __init__(self):
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/secret-token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def texts(self) -> list[str]:
        return [m["text"] for m in self.received]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    server = WebhookServer()
    yield server
    server.close()


def run_selection(project, instance, key, names):
    """Run part of the graph for one version, as a sensor's RunRequest would."""
    job = project.defs().resolve_job_def(project.names.job)
    return job.execute_in_process(
        partition_key=key, instance=instance, raise_on_error=False,
        asset_selection=project.names.keys(names),
    )


def launch_request(defs, instance, job_name: str, request, sensor_name: str):
    """What the daemon does with a sensor's RunRequest: a run of the job with the request's
    selection and tags, plus the tags Dagster gives a sensor's runs."""
    return defs.resolve_job_def(job_name).execute_in_process(
        partition_key=request.partition_key, instance=instance, raise_on_error=False,
        asset_selection=list(request.asset_selection),
        tags={**request.tags, "dagster/run_key": request.run_key, "dagster/sensor_name": sensor_name},
    )


def run_new_version(defs, instance, names, request) -> None:
    """A new version as the daemon runs it from new_data_sensor's request: its validation run,
    then the run of the rest that the sensor's next tick asks for; both must succeed."""
    import dagster as dg

    sensor = defs.get_sensor_def(names.new_data_sensor)
    for stage in ("validate", "train"):
        assert request.tags["ml_assets/stage"] == stage
        run = launch_request(defs, instance, names.job, request, names.new_data_sensor)
        assert run.success, (names.slug, stage)
        if stage == "validate":
            context = dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(),
                                              definitions=defs)
            (request,) = sensor.evaluate_tick(context).run_requests
