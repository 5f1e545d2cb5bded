"""Faults around the pipeline: a killed run, MLflow going away, two runs at once, a full or
read-only store, a tampered model, and reproducibility."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import numpy as np
import pytest

from ml_assets.selections import ALL_ASSETS
from ml_assets_tests.conftest import DATASETS, breast_cancer, make_project, run_selection
from ml_assets_tests.e2e.conftest import free_port, stop_process_group, wait_for
from ml_assets_tests.test_cli import cli

SLOW_MODEL = "model:\n  params: {max_iter: 3000, early_stopping: false, learning_rate: 0.01}\n"
PIPELINE_FILE = ("name: bc\ntarget: diagnosis\ntask: classification\nid_columns: [patient_id]\n"
                 "positive_label: malignant\n")


def instance_at(path):
    from dagster._core.instance.ref import InstanceRef

    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(path)))


def model_started(instance):
    for run in instance.get_runs():
        for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START):
            if entry.step_key == "model":
                return run
    return None


def test_killed_run_is_resumed_from_where_it_stopped_with_the_same_result(tmp_path):
    (tmp_path / "ml_assets.yaml").write_text(PIPELINE_FILE + SLOW_MODEL)
    landing = tmp_path / ".ml_assets" / "landing"
    landing.mkdir(parents=True)
    breast_cancer().to_csv(landing / "bc.csv", index=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_ASSETS_", "MLFLOW_", "DAGSTER_"))}
    env.update({"DAGSTER_HOME": str(tmp_path / "dagster_home"), "ML_ASSETS_SETTLE_SECONDS": "0"})
    (tmp_path / "dagster_home").mkdir()
    process = subprocess.Popen([sys.executable, "-m", "ml_assets.cli", "run"], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        instance = instance_at(tmp_path / "dagster_home")
        run = wait_for(lambda: model_started(instance), 180, "the model step to start", interval=0.3)
        os.killpg(process.pid, signal.SIGKILL)  # killed in the middle of training
        process.wait(timeout=30)
    finally:
        stop_process_group(process, grace=1)
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED  # orphaned

    resumed = cli(tmp_path, "run", env={"ML_ASSETS_SETTLE_SECONDS": "0"})
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming run {run.run_id}" in resumed.stdout
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    lines = {line.split()[0]: line.split()[1] for line in resumed.stdout.splitlines()
             if line.startswith("  ") and len(line.split()) > 1 and not line.startswith("  =>")}
    assert lines["raw_data"] == "skipped" and lines["model"] == "ok"  # not redone: resumed
    resumed_status = json.loads(cli(tmp_path, "status", "--json").stdout)

    # the same file, never interrupted, in a fresh home: the same metrics to the last bit
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "ml_assets.yaml").write_text(PIPELINE_FILE + SLOW_MODEL)
    (clean / ".ml_assets" / "landing").mkdir(parents=True)
    (clean / ".ml_assets" / "landing" / "bc.csv").write_bytes((landing / "bc.csv").read_bytes())
    assert cli(clean, "run", env={"ML_ASSETS_SETTLE_SECONDS": "0"}).returncode == 0
    clean_status = json.loads(cli(clean, "status", "--json").stdout)
    assert resumed_status["versions"][0]["metrics"] == clean_status["versions"][0]["metrics"]
    assert resumed_status["champion"]["version"] == 1


class MlflowProxy:
    """An HTTP proxy in front of a real `mlflow server`, which can lose the model registry
    (503 on /registered-models and /model-versions) or everything."""

    def __init__(self, upstream: str):
        self.mode = "up"
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                registry_call = "/registered-models" in self.path or "/model-versions" in self.path
                if proxy.mode == "down" or (proxy.mode == "registry_down" and registry_call):
                    self.send_response(503)
                    self.end_headers()
                    return
                request = urllib.request.Request(
                    upstream + self.path, data=body or None, method=self.command,
                    headers={k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")},
                )
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        status, headers, data = response.status, response.headers, response.read()
                except urllib.error.HTTPError as exc:
                    status, headers, data = exc.code, exc.headers, exc.read()
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _forward

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server_artifacts")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: urllib.request.urlopen(url + "/health", timeout=2).status == 200, 120,
                 "mlflow server", interval=0.5)
        yield url
    finally:
        stop_process_group(process, grace=10)


def test_mlflow_registry_lost_during_registration(tmp_path, instance, mlflow_server):
    proxy = MlflowProxy(mlflow_server)
    try:
        project = make_project(tmp_path, "bc", **DATASETS["breast_cancer"][1])
        project.env = type(project.env)(**{**project.env.__dict__, "tracking_uri": proxy.url})
        project.drop("v1.csv", breast_cancer())
        [first] = project.register_new(instance)
        assert run_selection(project, instance, first, ALL_ASSETS).success
        champion = project.registry().champion()

        project.drop("v2.csv", breast_cancer().sample(frac=0.9, random_state=1))
        [second] = project.register_new(instance)
        from ml_assets.registry import registration

        original = registration.register

        def registry_lost_then_register(**kwargs):
            proxy.mode = "registry_down"  # the registry goes away as registration starts
            return original(**kwargs)

        registration.register = registry_lost_then_register
        try:
            result = run_selection(project, instance, second, ALL_ASSETS)
        finally:
            registration.register = original
        assert not result.success
        retries = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
        assert [e.step_key for e in retries] == ["registered_model_version"] * 3
        failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
        assert failure.step_key == "registered_model_version"
        assert "503" in failure.step_failure_data.error.to_string()

        proxy.mode = "up"
        client = project.registry().client()
        assert project.registry().champion() == champion  # alias untouched
        runs = client.search_runs([client.get_experiment_by_name("bc").experiment_id])
        assert all(r.info.status in ("FINISHED", "FAILED") for r in runs)  # nothing left RUNNING
    finally:
        proxy.close()
