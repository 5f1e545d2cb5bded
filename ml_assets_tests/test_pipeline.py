"""The asset graph end to end through Dagster, on real datasets from scikit-learn's wheel.

Each test runs the pipeline's `<slug>__train_version` job in-process on an ephemeral instance against a real
MLflow sqlite store in a temporary home, and checks what a user would look at: the
materialisations and their metadata, the checks, the MLflow registry and the champion.
"""

import json
import re
import subprocess
import sys

import dagster as dg
import pandas as pd
import pytest

from ml_assets.graph import ALL_ASSETS, CHECKS, EVALUATION_REPORT, FEATURES, TRAIN_ASSETS
from ml_assets_tests.conftest import DATASETS, breast_cancer, make_project


def materialization(project, instance, asset, key):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=project.names.key(asset), asset_partitions=[key]), limit=1
    ).records
    return records[0].event_log_entry.asset_materialization if records else None


def mlflow_runs(project, experiment="bc"):
    """(status, data_version tag) of every MLflow run of the pipeline's experiment: one per
    Dagster run that registered (its candidates' child runs are not counted)."""
    client = project.registry().client()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs = client.search_runs([found.experiment_id])
    return sorted((r.info.status, r.data.tags.get("data_version")) for r in runs
                  if "mlflow.parentRunId" not in r.data.tags)


def check_results(result):
    return {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    }


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_first_version_becomes_champion(tmp_path, instance, dataset):
    load, pipeline = DATASETS[dataset]
    project = make_project(tmp_path, dataset, **pipeline)
    df = load()
    project.drop(f"{dataset}.csv", df)
    [key] = project.register_new(instance)

    result = project.run_version(instance, key)
    assert result.success, [e.message for e in result.all_events if e.is_failure]

    checks = check_results(result)
    assert {n: c.passed for n, c in checks.items()} == {c.name: True for c in CHECKS}
    for asset in ALL_ASSETS:
        assert materialization(project, instance, asset, key) is not None, asset

    raw = materialization(project, instance, "raw_data", key)
    assert raw.tags["dagster/data_version"] == project.store.version(key).sha256
    assert raw.metadata["dagster/row_count"].value == len(df)

    features = materialization(project, instance, "features", key).metadata
    assert features["train_rows"].value + features["test_rows"].value == len(df)

    report = materialization(project, instance, "evaluation_report", key).metadata
    if pipeline["task"] == "classification":
        assert report["metric/roc_auc"].value > 0.9
        assert "data:image/png;base64," in report["plots"].value
    else:
        assert report["metric/r2"].value > 0.2

    drift = materialization(project, instance, "drift_report", key).metadata
    assert drift["reference"].value == "no reference"

    champion = project.registry().champion()
    assert champion["version"] == 1 and champion["data_version"] == key
    mv = project.registry().client().get_model_version(dataset, "1")
    assert mv.tags["data_version"] == key and mv.tags["dagster_run_id"] == result.run_id
    assert mv.tags["promotion"] == "champion"

    run = project.registry().client().get_run(mv.run_id)
    assert run.info.status == "FINISHED"  # one MLflow run per Dagster run, ended properly
    assert run.data.tags["dagster_run_id"] == result.run_id

    # the heap frozen during the run (ml_assets/heap.py) is the collector's again
    import gc

    from ml_assets.heap import heap_frozen

    assert gc.get_freeze_count() == 0 and not heap_frozen()


def held_out_landing_rows(project, key: str, landed: pd.DataFrame, target: str) -> pd.DataFrame:
    """The landed rows the model was not trained on: the feature table's held-out rows (its
    rows are the landed rows in order when none was refused, which is checked here)."""
    from ml_assets.core.modeling import SPLIT_COLUMN, feature_columns

    table = pd.read_parquet(project.store.artifact_path(key, FEATURES, "parquet"))
    assert len(table) == len(landed)  # no row was refused: row i is landed row i
    columns = feature_columns(table, target)
    assert table[columns].equals(landed[columns])
    return landed[(table[SPLIT_COLUMN] == "test").to_numpy()]


def test_champion_loads_in_a_fresh_process_and_scores_held_out_landing_rows(tmp_path, instance):
    from sklearn.metrics import accuracy_score, roc_auc_score

    _, pipeline = DATASETS["breast_cancer"]
    project = make_project(tmp_path, "bc", **pipeline)
    landed = breast_cancer()
    project.drop("bc.csv", landed)
    [key] = project.register_new(instance)
    assert project.run_version(instance, key).success

    held_out = held_out_landing_rows(project, key, landed, "diagnosis")
    rows_file = tmp_path / "held_out.csv"
    held_out.drop(columns=["diagnosis"]).to_csv(rows_file, index=False)  # as a user's rows come
    script = f"""
import json, mlflow, mlflow.sklearn, mlflow.pyfunc, pandas as pd
mlflow.set_tracking_uri({project.env.tracking_uri!r})
rows = pd.read_csv({str(rows_file)!r})
model = mlflow.sklearn.load_model('models:/bc@champion')
malignant = model.predict_proba(rows)[:, list(model.classes_).index('malignant')]
labels = mlflow.pyfunc.load_model('models:/bc@champion').predict(rows.drop(columns=['patient_id']))
print(json.dumps({{"classes": list(model.classes_), "malignant": malignant.tolist(),
                  "labels": list(labels)}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["classes"] == ["benign", "malignant"]

    truth = held_out["diagnosis"].tolist()
    auc = roc_auc_score([t == "malignant" for t in truth], answer["malignant"])
    accuracy = accuracy_score(truth, answer["labels"])
    # better than a model that always says the commoner diagnosis of these rows, by far
    always_commoner = held_out["diagnosis"].value_counts(normalize=True).max()
    assert auc > 0.95 and accuracy > always_commoner + 0.25, (auc, accuracy, always_commoner)
    # what the registered model serves is what its evaluation measured on the same rows
    report = json.loads(project.store.artifact_path(key, EVALUATION_REPORT, "json").read_text())
    assert report["test_rows"] == len(held_out)
    assert auc == pytest.approx(report["metrics"]["roc_auc"], abs=1e-12)
    assert accuracy == pytest.approx(report["metrics"]["accuracy"], abs=1e-12)
    confusion = pd.crosstab(pd.Series(truth, name="truth"), pd.Series(answer["labels"], name="served"))
    assert report["confusion"] == {
        "labels": ["benign", "malignant"],
        "matrix": confusion.reindex(index=["benign", "malignant"], columns=["benign", "malignant"],
                                    fill_value=0).to_numpy().tolist(),
    }


def test_bad_file_is_blocked_and_champion_survives(tmp_path, instance):
    _, pipeline = DATASETS["breast_cancer"]
    project = make_project(tmp_path, "bc", **pipeline)
    good = breast_cancer()
    project.drop("good.csv", good)
    [first] = project.register_new(instance)
    assert project.run_version(instance, first).success

    bad = good.sample(200, random_state=3).copy()
    bad["mean_radius"] = bad["mean_radius"] * 1e9
    project.drop("bad.csv", bad)
    [second] = project.register_new(instance)
    result = project.run_version(instance, second)

    assert not result.success
    contract = check_results(result)["data_contract"]
    assert not contract.passed and contract.blocking
    assert contract.description == (
        f"data version {second}: 1 of 184 expectations failed:\n- mean_radius: 100.0% of values "
        "outside [0, 281.1] (allowed: 1.0%), e.g. 1.06e+10, 1.453e+10, 1.157e+10"
    )
    for asset in (FEATURES, *TRAIN_ASSETS):
        assert materialization(project, instance, asset, second) is None, asset
    assert project.registry().champion()["data_version"] == first
    # The blocked version never reached registration: no MLflow run of its own.
    assert mlflow_runs(project) == [("FINISHED", first)]

    # the next good file still trains
    project.drop("next.csv", good.sample(frac=0.9, random_state=4))
    [third] = project.register_new(instance)
    assert project.run_version(instance, third).success
    assert mlflow_runs(project) == sorted([("FINISHED", first), ("FINISHED", third)])


def test_failed_quality_gate_registers_nothing(tmp_path, instance):
    _, pipeline = DATASETS["breast_cancer"]
    project = make_project(tmp_path, "bc", **{**pipeline, "gates": {"min": {"roc_auc": 0.95}}})
    shuffled = breast_cancer()
    shuffled["diagnosis"] = shuffled["diagnosis"].sample(frac=1.0, random_state=0).to_numpy()
    project.drop("noise.csv", shuffled)
    [key] = project.register_new(instance)
    result = project.run_version(instance, key)

    gate = check_results(result)["quality_gate"]
    auc = json.loads(project.store.artifact_path(key, EVALUATION_REPORT, "json").read_text())["metrics"]["roc_auc"]
    assert not gate.passed
    assert gate.description == f"data version {key}: roc_auc {auc:.3f} is below the floor 0.950 set in gates.min.roc_auc"
    assert materialization(project, instance, "registered_model_version", key) is None
    assert project.registry().champion() is None
    assert mlflow_runs(project) == []  # no empty FAILED run in MLflow


def test_worse_model_is_registered_but_not_promoted(tmp_path, instance):
    _, pipeline = DATASETS["breast_cancer"]
    project = make_project(tmp_path, "bc", **pipeline)
    good = breast_cancer()
    project.drop("good.csv", good)
    [first] = project.register_new(instance)
    assert project.run_version(instance, first).success

    noisy = good.copy()
    flip = noisy.sample(frac=0.2, random_state=1).index  # a fifth of the labels flipped
    noisy.loc[flip, "diagnosis"] = noisy.loc[flip, "diagnosis"].map(
        {"malignant": "benign", "benign": "malignant"}
    )
    project.drop("noisy.csv", noisy)
    [second] = project.register_new(instance)
    result = project.run_version(instance, second)
    assert result.success

    registered = materialization(project, instance, "registered_model_version", second).metadata
    assert registered["promoted"].value is False
    report = json.loads(project.store.artifact_path(second, EVALUATION_REPORT, "json").read_text())
    own, champions = report["metrics"]["roc_auc"], report["champion"]["metrics"]["roc_auc"]
    assert registered["decision"].value == (
        f"not promoted: challenger roc_auc {own:.3f} on its own held-out rows is more than 10% worse "
        f"than the champion's {champions:.3f} at its evaluation (gates.max_drop_from_champion_evaluation): "
        "the new labels look noisier or less consistent; the champion stays."
    )
    assert check_results(result)["champion_comparison"].passed is False
    assert project.registry().champion()["data_version"] == first


def test_raw_data_is_kept_as_its_snapshot_and_read_again_by_a_later_run(tmp_path, instance):
    from ml_assets_tests.conftest import run_selection

    _, pipeline = DATASETS["breast_cancer"]
    project = make_project(tmp_path, "bc", **pipeline)
    project.drop("bc.csv", breast_cancer())
    [key] = project.register_new(instance)
    assert run_selection(project, instance, key, ["raw_data"]).success
    # the landed bytes are raw_data's record: no second copy of the table
    assert project.store.find_artifact(key, "raw_data") is None
    assert project.store.verify_snapshot(key).exists()

    # another run (another process, a resumed or --changed run) reads the snapshot again
    result = run_selection(project, instance, key, ["validated_data"])
    assert result.success
    validated = materialization(project, instance, "validated_data", key).metadata
    assert validated["dagster/row_count"].value == len(breast_cancer())

    # a snapshot changed behind the store's back is refused, naming the version
    snapshot = project.store.snapshot_path(key)
    snapshot.chmod(0o644)
    snapshot.write_text(snapshot.read_text().replace("malignant", "benign", 1))
    result = run_selection(project, instance, key, ["validated_data"])
    assert not result.success
    from ml_assets.cli.run_summary import summarize_run

    [failed] = [s for s in summarize_run(instance, result.run_id).steps if s.status == "failed"]
    assert failed.step == "validated_data"
    registered = project.store.version(key).sha256
    assert re.fullmatch(
        re.escape(f"the snapshot of {key} at {snapshot} was modified: sha256 ") + "[0-9a-f]{12}"
        + re.escape(f" != registered {registered[:12]}"),
        failed.error,
    ), failed.error
