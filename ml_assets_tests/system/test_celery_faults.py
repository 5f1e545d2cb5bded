"""A Celery worker's process killed (SIGKILL) while it executes a step: the run ends with a
clear failure in bounded time, the store and the registry keep what they had, and the version
runs again to the end once launched anew."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess

import dagster as dg
import pytest

from ml_assets.graph import MODEL, DagsterNames
from ml_assets_tests.conftest import REPO, breast_cancer
from ml_assets_tests.e2e.conftest import wait_for
from ml_assets_tests.e2e.services import BIN, Service, clean_env, ml_assets
from ml_assets_tests.system.conftest import RedisServer
from ml_assets_tests.system.test_distributed import MODULE, _logs, _wait_for_log, descendants

pytestmark = pytest.mark.system

# A model that trains for seconds, long enough to be killed in the middle of its step.
PIPELINE_FILE = ("name: bc\ntarget: diagnosis\ntask: classification\nid_columns: [patient_id]\n"
                 "positive_label: malignant\n"
                 "model:\n  params: {max_iter: 3000, early_stopping: false, learning_rate: 0.01}\n")
NAMES = DagsterNames.of("bc")
MODEL_STEP = f"{NAMES.slug}__{MODEL}"
# How long the launching process may take to report the failure once the step's process died.
FAILURE_REPORTED_WITHIN = 180


def launch(key: str, cwd, env) -> subprocess.Popen:
    """`dagster job execute` of one data version on the Celery code location."""
    return subprocess.Popen(
        [str(BIN / "dagster"), "job", "execute", "-m", MODULE, "-j", NAMES.job,
         "--tags", json.dumps({"dagster/partition": key})],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def model_step_start(instance, key: str):
    """The STEP_START of `model` in a run of data version `key`, once there is one."""
    for run in instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": key})):
        for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START):
            if entry.step_key == MODEL_STEP:
                return run, entry.dagster_event.pid
    return None


def test_a_celery_worker_killed_mid_step_fails_the_run_keeps_the_store_and_a_relaunch_registers(
        tmp_path, monkeypatch):
    redis = RedisServer(tmp_path)
    worker = None
    try:
        dagster_home = tmp_path / "dagster_home"
        dagster_home.mkdir()
        (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        (tmp_path / "ml_assets.yaml").write_text(PIPELINE_FILE)
        home = tmp_path / "home"
        env = clean_env(
            DAGSTER_HOME=str(dagster_home), ML_ASSETS_HOME=str(home),
            ML_ASSETS_CONFIG=str(tmp_path / "ml_assets.yaml"), ML_ASSETS_SETTLE_SECONDS="0",
            MLFLOW_TRACKING_URI=f"sqlite:///{home / 'mlflow.db'}", ML_ASSETS_CELERY_BROKER=redis.url(),
        )
        landing = home / "landing"
        landing.mkdir(parents=True)
        breast_cancer().head(400).to_csv(landing / "first.csv", index=False)
        first = ml_assets(["run"], tmp_path, env)  # the champion the fault must not touch
        assert first.returncode == 0, first.stdout + first.stderr
        [key1] = re.findall(r"^(\S+)  \(first\.csv\)", first.stdout, re.MULTILINE)

        # the next version, registered as new_data_sensor registers it
        breast_cancer().tail(400).to_csv(landing / "second.csv", index=False)
        for name in ("DAGSTER_HOME", "ML_ASSETS_HOME", "ML_ASSETS_CONFIG", "MLFLOW_TRACKING_URI"):
            monkeypatch.setenv(name, env[name])
        from ml_assets.environment import load_environment
        from ml_assets.pipelines import load_catalog
        from ml_assets.registry.mlflow_wiring import RegisteredModel
        from ml_assets.storage import VersionedStore

        [pipeline] = load_catalog(load_environment(env, cwd=tmp_path)).pipelines
        store = VersionedStore(pipeline.env.store_root, pipeline.name)
        [key2] = [r.key for r in store.scan_landing(landing, pipeline.settings.landing_glob).new]
        registry = RegisteredModel(env["MLFLOW_TRACKING_URI"], "bc")
        champion = registry.champion()
        assert champion["data_version"] == key1
        kept = {p: p.read_bytes() for p in store.version_dir(key1).rglob("*") if p.is_file()}

        worker = Service("worker", [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
                                    "-y", str(REPO / "deploy" / "celery" / "worker.yaml"), "-n", "worker",
                                    "--", "--concurrency=1"], tmp_path, env)
        _wait_for_log(worker, "ready.")
        with dg.DagsterInstance.get() as instance:
            instance.add_dynamic_partitions(NAMES.partitions, [key2])
            launcher = launch(key2, tmp_path, env)
            run, pid = wait_for(lambda: model_step_start(instance, key2), 300, "the model step to start",
                                interval=0.2)
            assert pid in descendants(worker.process.pid), f"the model step ran in {pid}, not in the worker"
            os.kill(pid, signal.SIGKILL)  # the process executing the step dies mid-training

            try:
                output, _ = launcher.communicate(timeout=FAILURE_REPORTED_WITHIN)
            except subprocess.TimeoutExpired:
                launcher.kill()
                raise AssertionError(f"the run did not end within {FAILURE_REPORTED_WITHIN} s of its "
                                     f"step's process dying{_logs([worker])}") from None
            assert launcher.returncode != 0, output[-3000:]
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
            # what the run's log says: the worker lost the step's process to SIGKILL
            assert "Worker exited prematurely: signal 9 (SIGKILL)" in output, output[-3000:]
            failure = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
            assert failure and "WorkerLostError" in _failure_text(instance, run.run_id), \
                _failure_text(instance, run.run_id)

        # nothing lost, nothing half-made: the first version's files, the champion; no model
        # of the second version
        assert [p for p, data in kept.items() if p.read_bytes() != data] == []
        assert not store.artifact_path(key2, MODEL, "skops").exists()
        assert registry.champion() == champion
        assert [str(v.version) for v in registry.client().search_model_versions("name='bc'")] == ["1"]

        # launched again, on the same worker (Celery replaced the process it lost)
        worker.assert_running()
        again = launch(key2, tmp_path, env)
        output, _ = again.communicate(timeout=600)
        assert again.returncode == 0, output[-4000:] + _logs([worker])
        versions = {str(v.version): v.tags["data_version"]
                    for v in registry.client().search_model_versions("name='bc'")}
        assert versions == {"1": key1, "2": key2}
        assert store.artifact_path(key2, MODEL, "skops").exists()
    finally:
        if worker is not None:
            worker.stop()
        redis.stop()


def _failure_text(instance, run_id: str) -> str:
    """Every error message the run's event log holds, one after the other."""
    texts = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        data = getattr(event, "event_specific_data", None) if event else None
        error = getattr(data, "error", None)
        if error is not None:
            texts.append(error.to_string())
    return "\n".join(texts)
