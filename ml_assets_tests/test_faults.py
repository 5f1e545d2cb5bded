"""Faults around the pipeline: a killed run, MLflow going away, two runs at once, a full or
read-only store, a tampered model, and reproducibility."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import numpy as np
import pytest

from ml_assets.graph import ALL_ASSETS, MODEL, REGISTERED_MODEL_VERSION, DagsterNames
from ml_assets_tests.conftest import DATASETS, breast_cancer, make_project, run_selection
from ml_assets_tests.e2e.conftest import free_port, stop_process_group, wait_for
from ml_assets_tests.test_cli import cli

# A model step of several seconds (a linear model made to run every epoch), long enough to be
# killed in, whose model is still cheap to evaluate afterwards.
SLOW_MODEL = "model:\n  estimator: linear\n  params: {solver: saga, max_iter: 200000, tol: 0.0}\n"
PIPELINE_FILE = ("name: bc\ntarget: diagnosis\ntask: classification\nid_columns: [patient_id]\n"
                 "positive_label: malignant\n")
MODEL_STEP = f"{DagsterNames.of('bc').slug}__{MODEL}"  # the step key of PIPELINE_FILE's model


def instance_at(path):
    from ml_assets.private_apis import InstanceRef

    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(path)))


def model_started(instance):
    for run in instance.get_runs():
        for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START):
            if entry.step_key == MODEL_STEP:
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
    # the killed run was the version's second (validated already); resumed, not redone
    assert "raw_data" not in lines and lines["features"] == "skipped" and lines["model"] == "ok"
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
        registration_step = f"{project.names.slug}__{REGISTERED_MODEL_VERSION}"
        assert [e.step_key for e in retries] == [registration_step] * 3
        failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
        assert failure.step_key == registration_step
        assert "503" in failure.step_failure_data.error.to_string()

        proxy.mode = "up"
        client = project.registry().client()
        assert project.registry().champion() == champion  # alias untouched
        runs = client.search_runs([client.get_experiment_by_name("bc").experiment_id])
        assert all(r.info.status in ("FINISHED", "FAILED") for r in runs)  # nothing left RUNNING
    finally:
        proxy.close()


def test_two_runs_at_the_same_moment_register_and_train_each_version_once(tmp_path):
    # One pipeline file: each `ml-assets run` then reports on that pipeline alone.
    (tmp_path / "ml_assets.yaml").write_text(PIPELINE_FILE)
    landing = tmp_path / ".ml_assets" / "landing"
    landing.mkdir(parents=True)
    base = breast_cancer()
    base.head(300).to_csv(landing / "a.csv", index=False)
    base.tail(300).to_csv(landing / "b.csv", index=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_ASSETS_", "MLFLOW_", "DAGSTER_"))}
    env.update({"DAGSTER_HOME": str(tmp_path / "dagster_home"), "ML_ASSETS_SETTLE_SECONDS": "0"})
    (tmp_path / "dagster_home").mkdir()
    runs = [subprocess.Popen([sys.executable, "-m", "ml_assets.cli", "run"], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in runs]
    assert [p.returncode for p in runs] == [0, 0], outputs
    assert sum("nothing new" in out for out in outputs) == 1  # the second waited, then had nothing

    instance = instance_at(tmp_path / "dagster_home")
    stages = sorted((r.tags["dagster/partition"], r.tags["ml_assets/stage"]) for r in instance.get_runs())
    keys = sorted({key for key, _ in stages})
    # one validation run and one run of the rest per version
    assert len(keys) == 2 and stages == sorted((k, s) for k in keys for s in ("train", "validate"))
    from ml_assets.registry.mlflow_wiring import RegisteredModel

    registry = RegisteredModel(f"sqlite:///{tmp_path / '.ml_assets' / 'mlflow.db'}", "bc")
    versions = registry.client().search_model_versions("name='bc'")
    assert sorted(v.tags["data_version"] for v in versions) == sorted(keys)  # trained once each


def mount_tmpfs(path, size):
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)


def test_full_or_read_only_store_gives_a_clear_error_and_keeps_what_was_there(tmp_path):
    home = tmp_path / "home"
    mount_tmpfs(home, "8m")
    try:
        landing_dir = tmp_path / "landing"
        landing = landing_dir / "breast_cancer"  # the bundled demo classifier's own folder
        landing.mkdir(parents=True)
        env = {"ML_ASSETS_HOME": str(home), "ML_ASSETS_LANDING_DIR": str(landing_dir),
               "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "ML_ASSETS_SETTLE_SECONDS": "0"}
        breast_cancer().to_csv(landing / "good.csv", index=False)
        assert cli(tmp_path, "run", env=env).returncode == 0
        kept = {p: p.read_bytes() for p in (home / "store").rglob("*") if p.is_file()}

        # a file bigger than the space left: the store is full
        big = landing / "big.csv"
        with open(big, "w") as fh:
            fh.write(",".join(breast_cancer().columns) + "\n")
            row = ",".join(["1.0"] * (len(breast_cancer().columns) - 1)) + ",benign\n"
            fh.write(row * 120_000)
        full = cli(tmp_path, "run", env=env)
        assert full.returncode == 1 and "Traceback" not in full.stdout + full.stderr
        assert "No space left on device" in full.stderr and str(home / "store") in full.stderr
        assert all(p.read_bytes() == data for p, data in kept.items())
        big.unlink()

        # a read-only store
        subprocess.run(["mount", "-o", "remount,ro", str(home)], check=True)
        breast_cancer().sample(frac=0.9, random_state=4).to_csv(landing / "next.csv", index=False)
        read_only = cli(tmp_path, "run", env=env)
        assert read_only.returncode == 1 and "Read-only file system" in read_only.stderr
        assert "Traceback" not in read_only.stdout + read_only.stderr
        subprocess.run(["mount", "-o", "remount,rw", str(home)], check=True)
        assert all(p.read_bytes() == data for p, data in kept.items())

        # and the next good input still works
        again = cli(tmp_path, "run", env=env)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "next.csv" in again.stdout
    finally:
        subprocess.run(["umount", "-l", str(home)], check=False)


def test_a_tampered_champion_is_refused(tmp_path, instance):
    project = make_project(tmp_path, "bc", **DATASETS["breast_cancer"][1])
    project.drop("v1.csv", breast_cancer())
    [first] = project.register_new(instance)
    assert run_selection(project, instance, first, ALL_ASSETS).success
    [model_file] = [p for p in (project.env.mlflow_artifacts_dir).rglob("model.skops")]
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))

    project.drop("v2.csv", breast_cancer().sample(frac=0.9, random_state=2))
    [second] = project.register_new(instance)
    result = run_selection(project, instance, second, ALL_ASSETS)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "recorded checksum" in failure.step_failure_data.error.to_string()
    assert project.registry().champion()["data_version"] == first


def test_same_file_in_two_fresh_homes_gives_bit_identical_models(tmp_path):
    predictions, metrics = [], []
    for home in ("one", "two"):
        (tmp_path / home).mkdir()
        project = make_project(tmp_path / home, "bc", **DATASETS["breast_cancer"][1])
        project.drop("bc.csv", breast_cancer())
        with dg.instance_for_test() as fresh_instance:
            [key] = project.register_new(fresh_instance)
            assert run_selection(project, fresh_instance, key, ALL_ASSETS).success
        model = project.registry().load_version(1)
        rows = breast_cancer().drop(columns=["diagnosis"])
        predictions.append(model.predict_proba(rows))
        report = project.store.artifact_path(key, "evaluation_report", "json")
        metrics.append(json.loads(report.read_text())["metrics"])
    assert np.array_equal(predictions[0], predictions[1])  # to the last bit
    assert metrics[0] == metrics[1]


def test_rematerialising_a_version_gives_the_same_model_and_metrics(tmp_path, instance):
    project = make_project(tmp_path, "bc", **DATASETS["breast_cancer"][1])
    project.drop("bc.csv", breast_cancer())
    [key] = project.register_new(instance)
    from ml_assets.storage import load_model

    rows = breast_cancer().drop(columns=["diagnosis"])
    results = []
    for _ in range(2):
        assert run_selection(project, instance, key, ALL_ASSETS).success
        model = load_model(project.store.artifact_path(key, "model", "skops"))
        report = json.loads(project.store.artifact_path(key, "evaluation_report", "json").read_text())
        results.append((model.predict_proba(rows), report["metrics"]))
    assert np.array_equal(results[0][0], results[1][0])  # the same model, to the last bit
    assert results[0][1] == results[1][1]


def test_mlflow_unreachable_for_a_whole_run_fails_its_steps_with_one_message(tmp_path, instance, monkeypatch):
    monkeypatch.setenv("ML_ASSETS_MLFLOW_RETRIES", "2")
    monkeypatch.setenv("ML_ASSETS_MLFLOW_RETRY_DELAY", "0.1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # one request per attempt
    nobody = f"http://127.0.0.1:{free_port()}"  # a port no server listens on
    project = make_project(tmp_path, "bc", **DATASETS["breast_cancer"][1])
    project.env = type(project.env)(**{**project.env.__dict__, "tracking_uri": nobody})
    project.drop("v1.csv", breast_cancer().head(200))
    [key] = project.register_new(instance)

    result = run_selection(project, instance, key, ALL_ASSETS)

    assert not result.success
    slug = project.names.slug
    failures = {e.step_key: e.step_failure_data.user_failure_data.description
                for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE}
    message = rf"MLflow tracking server {re.escape(nobody)} unreachable after 3 attempts over \d+ s: Connection refused"
    assert set(failures) == {f"{slug}__drift_report", f"{slug}__evaluation_report"}
    assert all(re.fullmatch(message, text) for text in failures.values()), failures
    retries = [e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert sorted(retries) == sorted([*failures] * 2)  # ML_ASSETS_MLFLOW_RETRIES each
    succeeded = {e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_SUCCESS}
    assert f"{slug}__{MODEL}" in succeeded and f"{slug}__{REGISTERED_MODEL_VERSION}" not in succeeded
    assert project.store.artifact_path(key, MODEL, "skops").exists()  # what ran is kept


def test_mlflow_retry_settings_refuse_bad_values_naming_the_variable():
    from ml_assets.environment import EnvironmentError_
    from ml_assets.registry.mlflow_wiring import mlflow_retries

    assert mlflow_retries({}).retries == 3 and mlflow_retries({}).wait_before(2) == 8.0
    with pytest.raises(EnvironmentError_, match=r"ML_ASSETS_MLFLOW_RETRIES: expected a whole number .* got 'many'"):
        mlflow_retries({"ML_ASSETS_MLFLOW_RETRIES": "many"})
    with pytest.raises(EnvironmentError_, match=r"ML_ASSETS_MLFLOW_RETRY_DELAY: expected seconds >= 0, got '-1'"):
        mlflow_retries({"ML_ASSETS_MLFLOW_RETRY_DELAY": "-1"})
