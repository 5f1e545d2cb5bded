"""Production storage: the instance of deploy/production/dagster.yaml on a real PostgreSQL
(Debian's package, on 127.0.0.1), and the MLflow server on the same PostgreSQL; both demo
pipelines run through them."""

from __future__ import annotations

import json
import shutil
import urllib.request

import dagster as dg
import pytest

from ml_assets.graph import ALL_ASSETS, REGISTERED_MODEL_VERSION, DagsterNames
from ml_assets.registry.mlflow_wiring import RegisteredModel
from ml_assets_tests.conftest import REPO, breast_cancer
from ml_assets_tests.e2e.conftest import free_port, wait_for
from ml_assets_tests.e2e.services import BIN, Service, clean_env, ml_assets, start_mlflow_server

pytestmark = pytest.mark.system

ASSETS = list(ALL_ASSETS)
# the bundled demo: a classifier and a regressor, each its own graph `<slug>/...`
PIPELINES = ("breast_cancer", "diabetes")
PIPELINE_FILE = ("name: bc\ntarget: diagnosis\ntask: classification\nid_columns: [patient_id]\n"
                 "positive_label: malignant\n")


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
            # a version's validation run, then the run of the rest
            assert sorted((r.job_name, r.tags["ml_assets/stage"]) for r in runs) == sorted(
                (DagsterNames.of(p).job, stage) for p in PIPELINES for stage in ("validate", "train"))
            keys = {}
            for pipeline in PIPELINES:
                names = DagsterNames.of(pipeline)
                [key] = instance.get_dynamic_partitions(names.partitions)
                assert key.startswith(f"{pipeline}-")
                keys[pipeline] = key
                own = [r for r in runs if r.job_name == names.job]
                assert {r.status for r in own} == {dg.DagsterRunStatus.SUCCESS}
                assert {r.tags["dagster/partition"] for r in own} == {key}
                materialized = [
                    record for r in own for record in instance.get_records_for_run(
                        r.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
                ]
                assert sorted(r.event_log_entry.dagster_event.asset_key.to_user_string() for r in materialized) \
                    == sorted(f"{pipeline}/{asset}" for asset in ASSETS)
                for asset in ASSETS:
                    records = instance.fetch_materializations(
                        dg.AssetRecordsFilter(asset_key=names.key(asset), asset_partitions=[key]), limit=5
                    ).records
                    assert len(records) == 1, f"{pipeline}/{asset}"

        # and it really is PostgreSQL that holds them
        [(run_count,)] = postgres.query("dagster", "SELECT count(*) FROM runs")
        assert run_count == 2 * len(PIPELINES)
        champions = postgres.query(
            "mlflow", "SELECT name, version FROM registered_model_aliases WHERE alias = 'champion'"
        )
        assert sorted(champions) == [(pipeline, 1) for pipeline in PIPELINES]
        # one MLflow run per registration, and under each one child run per model candidate
        parents = postgres.query(
            "mlflow", "SELECT status FROM runs WHERE run_uuid NOT IN "
            "(SELECT run_uuid FROM tags WHERE key = 'mlflow.parentRunId')")
        assert parents == [("FINISHED",)] * len(PIPELINES)
        children = postgres.query(
            "mlflow", "SELECT DISTINCT status FROM runs WHERE run_uuid IN "
            "(SELECT run_uuid FROM tags WHERE key = 'mlflow.parentRunId')")
        assert children == [("FINISHED",)]

        # `ml-assets status` reads the same instance and registry
        status = ml_assets(["status"], tmp_path, env)
        assert status.returncode == 0, status.stderr
        for pipeline in PIPELINES:
            assert f"pipeline {pipeline}: 1 data version(s)" in status.stdout, status.stdout
            assert f"champion: {pipeline} version 1 (data version {keys[pipeline]})" in status.stdout, status.stdout
    finally:
        mlflow_server.stop()


RUNS = "{ runsOrError { ... on Runs { results { runId status } } } }"
LATEST = """query($partition: String!, $keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) {
  assetKey { path }
  latestMaterializationByPartition(partitions: [$partition]) {
    runId partition metadataEntries { label ... on IntMetadataEntry { intValue } } } } }"""
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    """An answer of the webserver's GraphQL endpoint, as the UI's pages ask it."""
    request = urllib.request.Request(
        f"{url}/graphql", data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    answer = json.loads(urllib.request.urlopen(request, timeout=60).read())
    assert "errors" not in answer, answer
    return answer["data"]


def test_webserver_and_daemon_on_postgres_train_a_file_dropped_in_the_landing_folder(postgres, tmp_path):
    postgres.create_database("dagster")
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(REPO / "deploy" / "production" / "dagster.yaml", dagster_home / "dagster.yaml")
    (tmp_path / "ml_assets.yaml").write_text(PIPELINE_FILE)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_env(
        DAGSTER_HOME=str(dagster_home), DAGSTER_PG_HOST="127.0.0.1", DAGSTER_PG_PORT=str(postgres.port),
        DAGSTER_PG_DB="dagster", DAGSTER_PG_USERNAME=postgres.user, DAGSTER_PG_PASSWORD=postgres.password,
        ML_ASSETS_HOME=str(tmp_path / "home"), ML_ASSETS_CONFIG=str(tmp_path / "ml_assets.yaml"),
        ML_ASSETS_SENSOR_INTERVAL="1", ML_ASSETS_SETTLE_SECONDS="0", ML_ASSETS_UI_URL=url,
    )
    services = []
    try:
        services.append(Service("webserver", [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
                                              "-m", "ml_assets.definitions"], tmp_path, env))
        services.append(Service("daemon", [str(BIN / "dagster-daemon"), "run", "-m", "ml_assets.definitions"],
                                tmp_path, env))
        services[0].wait_http(f"{url}/server_info", timeout=180)
        landing = tmp_path / "home" / "landing"
        landing.mkdir(parents=True)
        breast_cancer().head(300).to_csv(landing / "first.csv", index=False)

        registry = RegisteredModel(f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}", "bc")

        def trained():
            for service in services:
                service.assert_running()
            statuses = {run["status"] for run in graphql(url, RUNS)["runsOrError"]["results"]}
            return statuses and statuses <= FINISHED and registry.champion()

        champion = wait_for(trained, 400, "the sensor-driven runs to train and register first.csv", interval=2)
        runs = graphql(url, RUNS)["runsOrError"]["results"]
        assert {run["status"] for run in runs} == {"SUCCESS"}, runs
        assert champion["version"] == 1
        key = champion["data_version"]
        assert key.startswith("first-")

        # the UI shows it: every asset of the version materialised by one of those runs, and
        # the registered model version's materialisation says which MLflow version it made
        names = DagsterNames.of("bc")
        keys = [{"path": [names.slug, asset]} for asset in ASSETS]
        nodes = graphql(url, LATEST, {"partition": key, "keys": keys})["assetNodes"]
        latest = {node["assetKey"]["path"][-1]: node["latestMaterializationByPartition"][0] for node in nodes}
        assert set(latest) == set(ASSETS) and all(m is not None for m in latest.values()), latest
        assert {m["partition"] for m in latest.values()} == {key}
        assert {m["runId"] for m in latest.values()} <= {run["runId"] for run in runs}
        registered = {e["label"]: e.get("intValue") for e in latest[REGISTERED_MODEL_VERSION]["metadataEntries"]}
        assert registered["version"] == 1

        # stored in PostgreSQL, each run queued first and launched by the daemon's coordinator
        [(stored,)] = postgres.query("dagster", "SELECT count(*) FROM runs WHERE status = 'SUCCESS'")
        [(queued,)] = postgres.query("dagster", "SELECT count(DISTINCT run_id) FROM event_logs "
                                                "WHERE dagster_event_type = 'PIPELINE_ENQUEUED'")
        assert stored == queued == len(runs)
    finally:
        for service in reversed(services):
            service.stop()
