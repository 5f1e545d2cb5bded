"""The pipeline against a real `mlflow server` over HTTP, and the champion served by
`mlflow models serve`: what a user checks in MLflow after `ml-assets run`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request

import dagster as dg
import pandas as pd
import pytest

from ml_assets.graph import REGISTERED_MODEL_VERSION, DagsterNames
from ml_assets.private_apis import InstanceRef
from ml_assets_tests.e2e.conftest import free_port
from ml_assets_tests.e2e.services import BIN, Service, clean_env, ml_assets, start_mlflow_server

pytestmark = pytest.mark.e2e

MODEL = "breast_cancer"


@pytest.fixture(scope="module")
def mlflow_url(tmp_path_factory):
    server, url = start_mlflow_server(tmp_path_factory.mktemp("mlflow_server"))
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mlflow_url):
    """`ml-assets demo` then `ml-assets run` in a fresh folder, tracking to the server."""
    work = tmp_path_factory.mktemp("project")
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_url, DAGSTER_HOME=str(work / "dagster_home"),
                    ML_ASSETS_HOME=str(work / "home"))
    demo = ml_assets(["demo"], work, env)
    assert demo.returncode == 0, demo.stderr
    run = ml_assets(["run"], work, env)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    assert "=> registered breast_cancer version 1 and promoted to champion" in run.stdout
    return {"work": work, "env": env, "landing": work / "home" / "landing" / MODEL / "breast_cancer.csv",
            "stdout": run.stdout}


def client(url):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=url, registry_uri=url)


def test_run_model_version_tags_and_alias_are_on_the_server(mlflow_url, trained):
    mlflow = client(mlflow_url)
    experiment = mlflow.get_experiment_by_name(MODEL)
    assert experiment is not None
    every = mlflow.search_runs([experiment.experiment_id])
    runs = [r for r in every if "mlflow.parentRunId" not in r.data.tags]
    # one MLflow run per Dagster run, and it is the one tagged with the Dagster run; under it,
    # one child run per candidate of the model search
    assert len(runs) == 1, [(r.info.run_name, r.data.tags.get("dagster_run_id")) for r in runs]
    [run] = runs
    children = [r for r in every if r not in runs]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {run.info.run_id}
    assert sum(r.data.tags.get("chosen") == "true" for r in children) == 1 and len(children) >= 3
    assert run.info.status == "FINISHED"
    assert run.data.tags["data_version"].startswith("breast_cancer-")
    dagster_run_id = run.data.tags["dagster_run_id"]
    assert {"accuracy", "roc_auc", "f1", "log_loss"} <= set(run.data.metrics)

    champion = mlflow.get_model_version_by_alias(MODEL, "champion")
    assert champion.version == "1"
    assert champion.run_id == run.info.run_id
    assert champion.tags["data_version"] == run.data.tags["data_version"]
    assert champion.tags["dagster_run_id"] == dagster_run_id
    assert float(champion.tags["metric.roc_auc"]) > 0.95
    assert {"metric.accuracy", "metric.f1", "metric.log_loss"} <= set(champion.tags)
    assert champion.tags["promotion"] == "champion"

    # the logged model and its plots are readable through the server
    artifacts = {a.path for a in mlflow.list_artifacts(run.info.run_id)}
    assert {"plots", "evaluation_report.json"} <= artifacts


def test_champion_loads_in_a_fresh_process(mlflow_url, trained, tmp_path):
    """A serving host with only the tracking URI scores rows the model was not trained on, as
    well as its evaluation recorded on the server."""
    from types import SimpleNamespace

    import pandas as pd
    from sklearn.metrics import accuracy_score

    from ml_assets.storage import VersionedStore
    from ml_assets_tests.test_pipeline import held_out_landing_rows

    store = VersionedStore(trained["work"] / "home" / "store", MODEL)
    [key] = store.versions()
    held_out = held_out_landing_rows(SimpleNamespace(store=store), key, pd.read_csv(trained["landing"]),
                                     "diagnosis")
    rows_file = tmp_path / "held_out.csv"
    held_out.drop(columns=["diagnosis"]).to_csv(rows_file, index=False)
    script = (
        "import json, mlflow.sklearn, mlflow.pyfunc, pandas as pd\n"
        f"model = mlflow.sklearn.load_model('models:/{MODEL}@champion')\n"
        f"rows = pd.read_csv({str(rows_file)!r})\n"
        "proba = model.predict_proba(rows)\n"
        f"labels = mlflow.pyfunc.load_model('models:/{MODEL}@champion').predict(rows)\n"
        "print(json.dumps([*proba.shape, round(float(proba.sum(axis=1).mean()), 6), list(labels)]))\n"
    )
    # another folder, and only the tracking URI: everything comes from the server
    result = subprocess.run([sys.executable, "-c", script], check=False, cwd=tmp_path, capture_output=True, text=True,
                            env=clean_env(MLFLOW_TRACKING_URI=mlflow_url), timeout=300)
    assert result.returncode == 0, result.stderr
    rows, classes, total, labels = json.loads(result.stdout.strip().splitlines()[-1])
    assert (rows, classes, total) == (len(held_out), 2, 1.0)
    accuracy = accuracy_score(held_out["diagnosis"], labels)
    recorded = float(client(mlflow_url).get_model_version_by_alias(MODEL, "champion").tags["metric.accuracy"])
    assert accuracy == pytest.approx(recorded, abs=1e-4) and accuracy > 0.9


def test_model_artifacts_are_stored_by_the_server(mlflow_url, trained):
    """With a tracking server, the model must live in the server's artifact store, not on the
    disk of whoever trained it: a serving host elsewhere has only the tracking URI."""
    mlflow = client(mlflow_url)
    experiment = mlflow.get_experiment_by_name(MODEL)
    assert experiment.artifact_location.startswith("mlflow-artifacts:"), (
        f"experiment {MODEL!r} stores its artifacts at {experiment.artifact_location}, a path on "
        "the training machine, instead of the server's artifact store"
    )
    assert not (trained["work"] / "home" / "mlartifacts").exists()


def test_dagster_links_the_materialization_to_the_mlflow_run_and_version(mlflow_url, trained):
    instance = dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(trained["work"] / "dagster_home")))
    [record] = instance.fetch_materializations(DagsterNames.of(MODEL).key(REGISTERED_MODEL_VERSION), limit=1).records
    metadata = record.event_log_entry.asset_materialization.metadata
    run_url = metadata["mlflow_run"]
    version_url = metadata["mlflow_model_version"]
    assert isinstance(run_url, dg.UrlMetadataValue) and isinstance(version_url, dg.UrlMetadataValue)
    run_id = metadata["mlflow_run_id"].value
    assert run_url.url.startswith(f"{mlflow_url}/#/experiments/") and run_url.url.endswith(f"/runs/{run_id}")
    assert version_url.url == f"{mlflow_url}/#/models/{MODEL}/versions/1"
    # the links open: the server's UI answers (the fragment is resolved by its JavaScript)
    with urllib.request.urlopen(version_url.url.split("#")[0], timeout=10) as page:
        assert page.status == 200


def test_mlflow_models_serve_answers_invocations(mlflow_url, trained, tmp_path):
    port = free_port()
    serve = Service(
        "mlflow_models_serve",
        [str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{MODEL}@champion",
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
        tmp_path, clean_env(MLFLOW_TRACKING_URI=mlflow_url),
    )
    try:
        serve.wait_http(f"http://127.0.0.1:{port}/ping", timeout=180)
        rows = pd.read_csv(trained["landing"])
        sample = rows.head(8)
        payload = {"dataframe_split": json.loads(sample.drop(columns=["diagnosis"]).to_json(orient="split", index=False))}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"}, method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.loads(response.read())
        predictions = body["predictions"]
        assert len(predictions) == len(sample)
        # the champion scored ~0.96 accuracy on held-out rows; these rows it mostly saw in training
        agree = sum(p == t for p, t in zip(predictions, sample["diagnosis"], strict=True))
        assert agree >= 7, (predictions, list(sample["diagnosis"]))
    finally:
        serve.stop()


PIPELINE_FILE = ("name: bc\ntarget: diagnosis\ntask: classification\nid_columns: [patient_id]\n"
                 "positive_label: malignant\n")
# What a user does in the UI with a failed run ("Re-execute from failure"), through the API.
def files_of(*folders):
    return {p: p.read_bytes() for folder in folders for p in folder.rglob("*") if p.is_file()}


def test_mlflow_down_for_a_whole_run_fails_clearly_keeps_everything_and_a_rerun_registers(tmp_path):
    from ml_assets_tests.conftest import breast_cancer

    root = tmp_path / "mlflow_server"
    server, url = start_mlflow_server(root)
    work = tmp_path / "project"
    landing = work / "home" / "landing"
    landing.mkdir(parents=True)
    (work / "dagster_home").mkdir()
    (work / "ml_assets.yaml").write_text(PIPELINE_FILE)
    env = clean_env(MLFLOW_TRACKING_URI=url, DAGSTER_HOME=str(work / "dagster_home"),
                    ML_ASSETS_HOME=str(work / "home"), ML_ASSETS_SETTLE_SECONDS="0",
                    # retries in seconds: two step retries, one HTTP request each
                    ML_ASSETS_MLFLOW_RETRIES="2", ML_ASSETS_MLFLOW_RETRY_DELAY="0.5",
                    MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
    try:
        breast_cancer().head(300).to_csv(landing / "v1.csv", index=False)
        first = ml_assets(["run"], work, env)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "=> registered bc version 1 and promoted to champion" in first.stdout
        [key1] = re.findall(r"^(\S+)  \(v1\.csv\)", first.stdout, re.MULTILINE)

        server.stop()  # down before the next run starts, for all of it
        # the first version's files and the data contract (the store's indexes grow with v2)
        kept = files_of(work / "home" / "store" / "bc" / "versions", work / "home" / "contracts")
        breast_cancer().tail(300).to_csv(landing / "v2.csv", index=False)
        down = ml_assets(["run"], work, env)

        assert down.returncode == 1, down.stdout + down.stderr
        assert "Traceback" not in down.stdout + down.stderr
        [key2] = re.findall(r"^(\S+)  \(v2\.csv\)", down.stdout, re.MULTILINE)
        message = rf"MLflow tracking server {re.escape(url)} unreachable after 3 attempts over \d+ s: Connection refused"
        for step in ("drift_report", "evaluation_report"):
            assert re.search(rf"^  {step} +FAILED +[\d.]+s  {message}$", down.stdout, re.MULTILINE), down.stdout
        assert re.search(r"^  registered_model_version +skipped$", down.stdout, re.MULTILINE), down.stdout
        assert re.search(rf"^  => failed: v2\.csv \(data version {key2}\) in drift_report: {message} "
                         r"\(run [0-9a-f-]+\)$", down.stdout, re.MULTILINE), down.stdout
        assert [path for path, data in kept.items() if path.read_bytes() != data] == []  # nothing lost

        # MLflow returns on the same port with the same store
        server = Service("mlflow_server_again", list(server.process.args), root, clean_env(
            MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", MLFLOW_BACKEND_STORE_URI=f"sqlite:///{root / 'mlflow.db'}"))
        server.wait_http(f"{url}/health", timeout=180)
        mlflow = client(url)
        champion = mlflow.get_model_version_by_alias("bc", "champion")
        assert (champion.version, champion.tags["data_version"]) == ("1", key1)  # unchanged

        # the next `ml-assets run` resumes the failed run from the steps that failed
        rerun = ml_assets(["run"], work, env)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert re.search(rf"^{key2}  \(v2\.csv\): resuming run [0-9a-f-]+ from the step that failed$",
                         rerun.stdout, re.MULTILINE), rerun.stdout
        assert re.search(r"^  evaluation_report +ok ", rerun.stdout, re.MULTILINE), rerun.stdout
        assert "=> registered bc version 2" in rerun.stdout, rerun.stdout
        again = ml_assets(["run"], work, env)  # and only once
        assert again.returncode == 0 and "nothing new" in again.stdout, again.stdout
        registered = {v.version: v.tags["data_version"] for v in mlflow.search_model_versions("name='bc'")}
        assert registered == {"1": key1, "2": key2}
        experiment = mlflow.get_experiment_by_name("bc")
        assert {r.info.status for r in mlflow.search_runs([experiment.experiment_id])} == {"FINISHED"}
    finally:
        server.stop()
