"""Production storage: the instance of deploy/production/dagster.yaml on a real PostgreSQL
(Debian's package, on 127.0.0.1), and the MLflow server on the same PostgreSQL; both demo
pipelines run through them."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest

from ml_assets.graph import ALL_ASSETS, DagsterNames
from ml_assets_tests.conftest import REPO
from ml_assets_tests.e2e.services import clean_env, ml_assets, start_mlflow_server

pytestmark = pytest.mark.system

ASSETS = list(ALL_ASSETS)
# the bundled demo: a classifier and a regressor, each its own graph `<slug>/...`
PIPELINES = ("breast_cancer", "diabetes")


def test_pipeline_runs_on_the_production_instance_and_mlflow_on_postgres(postgres, tmp_path, monkeypatch):
    postgres.create_database("dagster")
    postgres.create_database("mlflow")
    mlflow_server, mlflow_url = start_mlflow_server(tmp_path / "mlflow", postgres.url("mlflow"))
    try:
        dagster_home = tmp_path / "dagster_home"
        dagster_home.mkdir()
        # the production file as shipped: the connection comes from the environment
        shutil.copy(REPO / "deploy" / "production" / "dagster.yaml", dagster_home / "dagster.yaml")
        pg_env = {
            "DAGSTER_HOME": str(dagster_home),
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(postgres.port),
            "DAGSTER_PG_DB": "dagster",
            "DAGSTER_PG_USERNAME": postgres.user,
            "DAGSTER_PG_PASSWORD": postgres.password,
        }
        env = clean_env(**pg_env, ML_ASSETS_HOME=str(tmp_path / "home"), MLFLOW_TRACKING_URI=mlflow_url)
        assert ml_assets(["demo"], tmp_path, env).returncode == 0
        run = ml_assets(["run"], tmp_path, env)
        assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
        for pipeline in PIPELINES:
            assert f"=> registered {pipeline} version 1 and promoted to champion" in run.stdout, run.stdout

        # read back through Dagster, as the webserver and daemon of that instance would
        for name, value in pg_env.items():
            monkeypatch.setenv(name, value)
        with dg.DagsterInstance.get() as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
            assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
            assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"

            runs = instance.get_runs()
            assert sorted(r.job_name for r in runs) == sorted(DagsterNames.of(p).job for p in PIPELINES)
            keys = {}
            for pipeline in PIPELINES:
                names = DagsterNames.of(pipeline)
                [key] = instance.get_dynamic_partitions(names.partitions)
                assert key.startswith(f"{pipeline}-")
                keys[pipeline] = key
                [dagster_run] = [r for r in runs if r.job_name == names.job]
                assert dagster_run.status == dg.DagsterRunStatus.SUCCESS
                assert dagster_run.tags["dagster/partition"] == key
                materialized = instance.get_records_for_run(
                    dagster_run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
                ).records
                assert sorted(r.event_log_entry.dagster_event.asset_key.to_user_string() for r in materialized) \
                    == sorted(f"{pipeline}/{asset}" for asset in ASSETS)
                for asset in ASSETS:
                    records = instance.fetch_materializations(
                        dg.AssetRecordsFilter(asset_key=names.key(asset), asset_partitions=[key]), limit=5
                    ).records
                    assert len(records) == 1, f"{pipeline}/{asset}"

        # and it really is PostgreSQL that holds them
        [(run_count,)] = postgres.query("dagster", "SELECT count(*) FROM runs")
        assert run_count == len(PIPELINES)
        champions = postgres.query(
            "mlflow", "SELECT name, version FROM registered_model_aliases WHERE alias = 'champion'"
        )
        assert sorted(champions) == [(pipeline, 1) for pipeline in PIPELINES]
        statuses = postgres.query("mlflow", "SELECT status FROM runs")
        assert statuses == [("FINISHED",)] * len(PIPELINES)

        # `ml-assets status` reads the same instance and registry
        status = ml_assets(["status"], tmp_path, env)
        assert status.returncode == 0, status.stderr
        for pipeline in PIPELINES:
            assert f"pipeline {pipeline}: 1 data version(s)" in status.stdout, status.stdout
            assert f"champion: {pipeline} version 1 (data version {keys[pipeline]})" in status.stdout, status.stdout
    finally:
        mlflow_server.stop()
