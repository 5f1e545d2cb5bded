"""Scale-out: the steps of several data versions of the two demo pipelines run on two Celery
workers (dagster-celery, Debian's redis-server as broker), each a separate process on
127.0.0.1, launched the way a production deployment launches a run: `dagster job execute`
against a persistent instance."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest

from ml_assets.graph import ALL_ASSETS, DagsterNames
from ml_assets_tests.conftest import REPO
from ml_assets_tests.e2e.services import BIN, Service, clean_env, ml_assets
from ml_assets_tests.system.conftest import RedisServer

pytestmark = pytest.mark.system

MODULE = "ml_assets.deploy.celery_definitions"
ASSETS = set(ALL_ASSETS)
# How many of each demo pipeline's versions run: two of the classifier, so that the second is
# compared with the champion the first made; one of the regressor, so that a second pipeline's
# job runs on the same workers.
VERSIONS_RUN = {"breast_cancer": 2, "diabetes": 1}


def descendants(pid: int) -> set[int]:
    """`pid` and every process below it, read from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        todo.extend(children.get(current, []))
    return found


def test_steps_of_several_versions_run_on_two_celery_workers(tmp_path, monkeypatch):
    redis = RedisServer(tmp_path)
    workers: list[Service] = []
    try:
        dagster_home = tmp_path / "dagster_home"
        dagster_home.mkdir()
        (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = clean_env(
            DAGSTER_HOME=str(dagster_home),
            ML_ASSETS_HOME=str(tmp_path / "home"),
            MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}",
            ML_ASSETS_CELERY_BROKER=redis.url(),
        )
        # two data versions of each demo pipeline; those that run registered as
        # new_data_sensor registers them, each into its pipeline's partitions
        assert ml_assets(["demo", "--versions", "1"], tmp_path, env).returncode == 0
        for name in ("DAGSTER_HOME", "ML_ASSETS_HOME", "MLFLOW_TRACKING_URI"):
            monkeypatch.setenv(name, env[name])
        from ml_assets.environment import load_environment
        from ml_assets.pipelines import load_catalog
        from ml_assets.storage import VersionedStore

        catalog = load_catalog(load_environment(env, cwd=tmp_path))
        assert catalog.names == list(VERSIONS_RUN) and not catalog.invalid
        keys: dict[str, str] = {}  # data version -> its pipeline
        with dg.DagsterInstance.get() as instance:
            for pipeline in catalog.pipelines:
                store = VersionedStore(pipeline.env.store_root, pipeline.name)
                landed = [r.key for r in store.scan_landing(pipeline.env.landing_dir,
                                                            pipeline.settings.landing_glob).new]
                assert len(landed) == 2, (pipeline.name, landed)
                run_here = landed[:VERSIONS_RUN[pipeline.name]]
                instance.add_dynamic_partitions(pipeline.names.partitions, run_here)
                keys.update(dict.fromkeys(run_here, pipeline.name))

        # two workers, one step at a time each, as two hosts would run them (started once the
        # instance exists: two processes creating a fresh sqlite instance race on its schema)
        for name in ("worker1", "worker2"):
            workers.append(Service(
                name,
                [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
                 "-y", str(REPO / "deploy" / "celery" / "worker.yaml"), "-n", name,
                 "--", "--concurrency=1"],
                tmp_path, env,
            ))

        for worker in workers:  # both connected to the broker before anything is queued
            _wait_for_log(worker, "ready.")

        # launched one after the other: promotions compare with the champion of the moment
        launchers = {}
        for key, pipeline in keys.items():
            launch = subprocess.Popen(
                [str(BIN / "dagster"), "job", "execute", "-m", MODULE, "-j", DagsterNames.of(pipeline).job,
                 "--tags", json.dumps({"dagster/partition": key})],
                cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            output, _ = launch.communicate(timeout=600)
            assert launch.returncode == 0, output[-4000:] + _logs(workers)
            launchers[key] = launch.pid

        worker_pids = {w.name: descendants(w.process.pid) for w in workers}
        used_workers = set()
        with dg.DagsterInstance.get() as instance:
            for key, pipeline in keys.items():
                names = DagsterNames.of(pipeline)
                [run] = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": key}))
                assert run.status == dg.DagsterRunStatus.SUCCESS
                assert run.job_name == names.job
                starts = instance.get_records_for_run(
                    run.run_id, of_type=dg.DagsterEventType.STEP_START).records
                steps = {r.event_log_entry.dagster_event.step_key: r.event_log_entry.dagster_event.pid
                         for r in starts}
                assert {f"{names.slug}__{asset}" for asset in ASSETS} <= set(steps), steps
                for step, pid in steps.items():
                    assert pid not in (launchers[key], os.getpid()), f"{step} ran in the launching process"
                    owner = [name for name, pids in worker_pids.items() if pid in pids]
                    assert owner, f"{step} of {key} ran in pid {pid}, not in a Celery worker"
                    used_workers.update(owner)
                materialized = instance.get_records_for_run(
                    run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
                assert {r.event_log_entry.dagster_event.asset_key.to_user_string()
                        for r in materialized} == {f"{names.slug}/{asset}" for asset in ASSETS}
        assert used_workers == {"worker1", "worker2"}, used_workers
        for worker in workers:
            assert "Executing steps" in worker.log_text() or "succeeded in" in worker.log_text()

        # every version registered in its pipeline's MLflow model, tagged with its data version
        # and Dagster run
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
        with dg.DagsterInstance.get() as instance:
            all_runs = instance.get_runs()
        assert len(all_runs) == len(keys)
        for pipeline, count in VERSIONS_RUN.items():
            experiment = client.get_experiment_by_name(pipeline)
            own_keys = sorted(k for k, p in keys.items() if p == pipeline)
            dagster_runs = [r.run_id for r in all_runs if r.job_name == DagsterNames.of(pipeline).job]
            for run_id in dagster_runs:  # one MLflow run per Dagster run, wherever its steps ran
                [mlflow_run] = client.search_runs([experiment.experiment_id], f"tags.dagster_run_id = '{run_id}'")
                assert mlflow_run.info.status == "FINISHED"
            parents = [r for r in client.search_runs([experiment.experiment_id])
                       if "mlflow.parentRunId" not in r.data.tags]  # not the candidates' runs
            assert len(parents) == len(dagster_runs) == count
            versions = client.search_model_versions(f"name = '{pipeline}'")
            assert sorted(v.tags["data_version"] for v in versions) == own_keys
            assert client.get_model_version_by_alias(pipeline, "champion").tags["data_version"] in own_keys
    finally:
        for worker in workers:
            worker.stop()
        redis.stop()


def _wait_for_log(service: Service, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in service.log_text():
        service.assert_running()
        assert time.monotonic() < deadline, f"{service.name} did not log {text!r}:\n{service.log_text()[-3000:]}"
        time.sleep(0.5)


def _logs(services) -> str:
    return "".join(f"\n--- {s.name} ---\n{s.log_text()[-3000:]}" for s in services)
