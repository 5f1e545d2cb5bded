"""The labels sensor and `live_performance` on a real Dagster instance with a real champion
(one linear model on breast cancer for the module): labels files registered and checked once,
the run requested for the newest scored batch, the metric, counts and report of a measurement."""

import json
import shutil

import dagster as dg
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ml_assets.graph import LIVE_PERFORMANCE
from ml_assets.live.assets import LIVE_WINDOW, labels_check
from ml_assets.storage import VersionedStore, labels_store, scoring_store
from ml_assets_tests.conftest import make_project
from ml_assets_tests.live import (
    PIPELINE,
    deliver_labels,
    drop_labels,
    live_metadata,
    measure,
    new_batch,
    score_batch,
    tick,
    train_champion,
    true_labels,
)

ID, TARGET = "patient_id", "diagnosis"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """Champion version 1; batch A (569 rows) scored, then batch B (200 rows)."""
    root = tmp_path_factory.mktemp("live")
    project = make_project(root, "bc", **PIPELINE)
    with dg.instance_for_test() as instance:
        champion = train_champion(project, instance)
        a, b = new_batch(1), new_batch(2, rows=200)
        keys = (score_batch(project, instance, a, "a.csv", pd.Timestamp("2025-03-01", tz="UTC")),
                score_batch(project, instance, b, "b.csv", pd.Timestamp("2025-03-02", tz="UTC")))
        yield project, instance, champion, (a, b), keys


@pytest.fixture
def labels_home(home):
    """The module's home with no labels files yet (each test drops its own)."""
    project = home[0]
    shutil.rmtree(project.landing / "labels", ignore_errors=True)
    shutil.rmtree(labels_store(project.env.store_root, project.settings.name).base, ignore_errors=True)
    return home


def test_labels_are_measured_on_the_champions_predictions(labels_home):
    project, instance, champion, (a, b), (key_a, key_b) = labels_home
    names = project.names
    good = pd.concat([
        true_labels(a),
        true_labels(a).head(3),  # sent twice: duplicates, one kept
        pd.DataFrame({ID: [a[ID].iloc[5]], TARGET: ["benign" if a[TARGET].iloc[5] == "malignant" else "malignant"]}),
        pd.DataFrame({ID: ["P424242", None], TARGET: ["benign", "malignant"]}),  # never scored; no id
    ], ignore_index=True)
    drop_labels(project, "good.csv", good)
    drop_labels(project, "cancer.csv", pd.DataFrame({ID: [1, 2], TARGET: ["cancer", "benign"]}))
    drop_labels(project, "no_ids.csv", pd.DataFrame({"id": [1, 2], TARGET: ["benign", "benign"]}))

    result = tick(project, instance, names.labels_sensor)
    assert project.defs().get_sensor_def(names.labels_sensor).default_status == dg.DefaultSensorStatus.RUNNING
    store = labels_store(project.env.store_root, project.settings.name)
    checks = {labels_check(store, key)["file"]: labels_check(store, key) for key in store.versions()}
    assert checks["good.csv"]["valid"] and checks["good.csv"]["rows"] == len(good)
    assert checks["cancer.csv"]["reason"] == ("the labels 'cancer' are not among the classes the "
                                              "champion knows ('benign', 'malignant')")
    assert checks["no_ids.csv"]["reason"].startswith("missing the column(s) 'patient_id'")
    [request] = result.run_requests
    newest = max(store.versions().values(), key=lambda r: (r.registered_at, r.key)).key
    assert (request.partition_key, request.run_key) == (key_b, f"labels:{newest}")
    assert request.tags["ml_assets/trigger"] == "labels"
    again = tick(project, instance, names.labels_sensor, result.cursor)
    assert again.run_requests == [] and "no new labels files" in again.skip_message

    run = measure(project, instance, request.partition_key,
                  {**request.tags, "dagster/run_key": request.run_key})
    assert run.success
    meta = live_metadata(project, run)

    # expected: batch A's predictions joined to its true labels, the conflicting id left out
    predictions = pd.read_parquet(scoring_store(project.env.store_root, "bc").artifact_path(key_a, "predictions", "parquet"))
    joined = predictions.merge(true_labels(a), on=ID)
    joined = joined[joined[ID] != a[ID].iloc[5]]
    expected = roc_auc_score(joined[TARGET] == "malignant", joined["probability_malignant"])
    assert meta["metric"] == "roc_auc"
    assert meta["live_roc_auc"] == pytest.approx(expected)
    assert meta["labelled_rows"] == len(a) - 1
    assert meta["unlabelled_rows"] == len(b)  # batch B has no labels yet
    assert meta["champion_version"] == champion["version"] == 1
    assert meta["at_evaluation"] == pytest.approx(champion["metrics"]["roc_auc"])
    assert meta["decayed"] is False and meta["judged"] is True
    assert meta["reason"].startswith(f"live roc_auc {expected:.3f} on {len(a) - 1} labelled predictions: within")
    problems = meta["label_problems"]
    for line in ["| duplicate labels (same id, same value: one kept) | 3 |",
                 f"| conflicting labels (same id, different values: left out of the metric) | 1 | ids {a[ID].iloc[5]}; 1 predictions |",
                 "| labels without an id | 1 |", "| labels without a value | 0 |",
                 "| labels for ids never scored | 1 |",
                 "| labels files refused | 2 | cancer.csv: the labels 'cancer' are not among"]:
        assert line in problems, problems
    assert f"| 1 | {len(a) - 1} | {expected:.4g} |" in meta["per_model_version"]

    scoring = scoring_store(project.env.store_root, "bc")
    report = json.loads(scoring.artifact_path(key_b, LIVE_PERFORMANCE, "json").read_text())
    assert report["live_roc_auc"] == pytest.approx(expected) and report["batches"] == [key_a, key_b]
    assert (report["duplicate_labels"], report["conflicting_ids"], report["labels_never_scored"]) == (3, 1, 1)
    assert report["conflicting_id_list"] == [{ID: a[ID].iloc[5]}]
    window = pd.read_parquet(scoring.artifact_path(key_b, LIVE_WINDOW, "parquet"))
    assert len(window) == len(a) - 1 and set(window["scoring_batch"]) == {key_a}
    # nothing went through the data versions' IO managers: no folder of this batch there
    assert not VersionedStore(project.env.store_root, "bc").version_dir(key_b).exists()


def test_measuring_a_batch_counts_only_the_batches_scored_up_to_it(labels_home):
    project, instance, _, (a, b), (key_a, _) = labels_home
    deliver_labels(project, instance, "b_only.csv", true_labels(b))
    meta = live_metadata(project, measure(project, instance, key_a))
    # batch B was scored after A: its labels are for ids A never scored
    assert meta["labelled_rows"] == 0 and meta["unlabelled_rows"] == len(a)
    assert meta["judged"] is False and meta["reason"] == "too few labelled predictions: 0 < live.min_rows 30"
    assert "| labels for ids never scored | 200 |" in meta["label_problems"]


def test_a_batch_without_predictions_is_refused_by_name(labels_home):
    project, instance = labels_home[0], labels_home[1]
    store = scoring_store(project.env.store_root, "bc")
    (project.landing / "score").mkdir(exist_ok=True)
    new_batch(3, rows=10).to_csv(project.landing / "score" / "unscored.csv", index=False)
    [record] = store.scan_landing(project.landing, project.settings.scoring_glob).new
    instance.add_dynamic_partitions(project.names.scoring_partitions, [record.key])
    run = measure(project, instance, record.key)
    assert not run.success
    [failure] = [e for e in run.all_events if e.is_step_failure]
    assert (f"scoring batch {record.key} has no predictions yet"
            in failure.step_failure_data.user_failure_data.description)


def test_a_pipeline_without_join_columns_refuses_every_labels_file(tmp_path, instance):
    project = make_project(tmp_path, "noid", **{**PIPELINE, "id_columns": []})
    drop_labels(project, "labels.csv", pd.DataFrame({"x": [1], TARGET: ["benign"]}))
    result = tick(project, instance, project.names.labels_sensor)
    assert result.skip_message == "1 labels file(s) wait: no batch has been scored yet"
    store = labels_store(project.env.store_root, "noid")
    [key] = store.versions()
    assert labels_check(store, key)["reason"] == "pipeline noid has no id_columns (or live.join_on) to join labels on"
