"""The live core on hand-built frames with known answers: labels files checked, the join and
every count, the window, the metric (scikit-learn's on the joined rows), the decay verdict, and
the window's rows read back into the landing format."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import r2_score, roc_auc_score

from ml_assets.config import parse_settings
from ml_assets.core.live import (
    CONFLICTING,
    LABEL,
    LABEL_STATE,
    LABELLED,
    LabelsError,
    LiveError,
    join_labels,
    label_text,
    labelled_table,
    live_metrics,
    live_window,
    measure,
    read_labels,
    rows_to_retrain,
    unlabelled,
    verdict,
)

T0 = pd.Timestamp("2025-03-01T12:00:00", tz="UTC")


def settings(**extra):
    base = {"name": "bc", "target": "diagnosis", "task": "classification",
            "id_columns": ["patient_id"], "positive_label": "malignant"}
    return parse_settings({**base, **extra}, "test")


def predictions(ids, batch="b1", version=1, scored_at=T0, proba=None, id_column="patient_id"):
    """A predictions file in the shared format: ids, prediction, probabilities, model columns."""
    n = len(ids)
    proba = np.linspace(0.1, 0.9, n) if proba is None else np.asarray(proba, dtype=float)
    return pd.DataFrame({
        id_column: ids,
        "prediction": np.where(proba >= 0.5, "malignant", "benign"),
        "probability_benign": 1 - proba,
        "probability_malignant": proba,
        "model_version": np.int64(version),
        "model_data_version": "v1-abc",
        "scoring_batch": batch,
        "scored_at": pd.Series([scored_at] * n, dtype="datetime64[ns, UTC]"),
        "row": np.arange(n, dtype=np.int64),
    })


def nones(values) -> list:
    """Missing labels as None (the join leaves NaN where a prediction has no label)."""
    return [None if pd.isna(v) else v for v in values]


def labels(rows, id_column="patient_id"):
    return pd.DataFrame(rows, columns=[id_column, "diagnosis"])


def test_labels_as_text_make_1_1_0_and_text_1_one_class():
    assert label_text(pd.Series([1, 0, None])).tolist() == ["1", "0", None]
    assert label_text(pd.Series([1.0, 0.0])).tolist() == ["1", "0"]
    assert label_text(pd.Series(["1", " 0"])).tolist() == ["1", "0"]
    assert label_text(pd.Series(["malignant ", "benign"])).tolist() == ["malignant", "benign"]
    assert label_text(pd.Series([True, False])).tolist() == ["True", "False"]


def test_join_counts_every_label_problem_and_keeps_the_prediction_order():
    preds = predictions([1, 2, 3, 4, 5, 6])
    raw = labels([(1, "malignant"), (1, "malignant"), (2, "malignant"), (2, "benign"),
                  (None, "benign"), (3, None), (99, "benign"), (4, "benign")])
    joined = join_labels(preds, raw, ["patient_id"], "diagnosis")
    assert joined.counts == {
        "labels": 8, "labels_without_id": 1, "labels_without_value": 1, "duplicate_labels": 1,
        "conflicting_ids": 1, "labels_never_scored": 1, "labelled_predictions": 2,
        "conflicting_predictions": 1, "unlabelled_predictions": 3,
    }
    assert joined.conflicting_ids == [{"patient_id": 2.0}]
    rows = joined.rows
    assert rows["patient_id"].tolist() == [1, 2, 3, 4, 5, 6] and rows["row"].tolist() == list(range(6))
    assert nones(rows[LABEL]) == ["malignant", None, None, "benign", None, None]
    assert rows[LABEL_STATE].astype(object).tolist() == [LABELLED, CONFLICTING, np.nan, LABELLED, np.nan, np.nan]


def test_ids_match_whatever_type_each_file_read_them_as():
    preds = predictions([7, 8, 9])
    text_ids = labels([("7", "benign"), ("8.0", "malignant")])
    float_ids = labels([(7.0, "benign"), (9.0, "malignant"), (np.nan, "benign")])
    assert nones(join_labels(preds, text_ids, ["patient_id"], "diagnosis").rows[LABEL]) == ["benign", None, None]
    joined = join_labels(preds, float_ids, ["patient_id"], "diagnosis")
    assert nones(joined.rows[LABEL]) == ["benign", None, "malignant"]
    assert joined.counts["labels_without_id"] == 1


def test_join_on_two_columns_and_an_id_scored_in_two_batches():
    preds = pd.concat([predictions([1, 1, 2], batch="b1"), predictions([1], batch="b2")], ignore_index=True)
    preds["site"] = ["paris", "lyon", "paris", "paris"]
    raw = pd.DataFrame({"patient_id": [1, 2, 2], "site": ["paris", "paris", "lyon"],
                        "diagnosis": ["malignant", "benign", "benign"]})
    joined = join_labels(preds, raw, ["patient_id", "site"], "diagnosis")
    assert nones(joined.rows[LABEL]) == ["malignant", None, "benign", "malignant"]
    assert joined.counts["labels_never_scored"] == 1  # (2, lyon) was never scored
    assert joined.counts["labelled_predictions"] == 3


def test_window_takes_the_newest_labelled_predictions_of_the_champion_only():
    old = predictions([1, 2, 3], batch="b1", version=1, scored_at=T0 - pd.Timedelta(days=10))
    mid = predictions([4, 5, 6], batch="b2", version=2, scored_at=T0 - pd.Timedelta(days=3))
    new = predictions([7, 8, 9], batch="b3", version=2, scored_at=T0)
    raw = labels([(i, "benign") for i in range(1, 10) if i != 8])
    rows = join_labels(pd.concat([old, mid, new], ignore_index=True), raw, ["patient_id"], "diagnosis").rows
    assert live_window(rows, 2, 10)["patient_id"].tolist() == [4, 5, 6, 7, 9]  # 8 unlabelled
    assert live_window(rows, 2, 3)["patient_id"].tolist() == [6, 7, 9]  # the newest three
    assert live_window(rows, 2, 10, window_days=1, now=T0)["patient_id"].tolist() == [7, 9]
    assert live_window(rows, 1, 10)["patient_id"].tolist() == [1, 2, 3]


def test_the_live_metric_is_scikit_learns_on_the_joined_rows():
    rng = np.random.default_rng(0)
    proba = rng.random(200)
    truth = np.where(rng.random(200) < proba, "malignant", "benign")
    preds = predictions(list(range(200)), proba=proba)
    raw = labels(list(zip(range(200), truth, strict=True)))
    rows = join_labels(preds, raw, ["patient_id"], "diagnosis").rows
    metrics = live_metrics(rows, "classification", "malignant")
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(truth == "malignant", proba))
    assert metrics["accuracy"] == pytest.approx(np.mean((proba >= 0.5) == (truth == "malignant")))
    # the other class as positive: roc_auc of its own probability column
    flipped = live_metrics(rows, "classification", "benign")["roc_auc"]
    assert flipped == pytest.approx(roc_auc_score(truth == "benign", 1 - proba))


def test_the_live_metric_of_a_regressor_and_of_integer_classes():
    reg = settings(target="progression", task="regression", positive_label=None)
    preds = predictions([1, 2, 3, 4]).drop(columns=["probability_benign", "probability_malignant"])
    preds["prediction"] = [10.0, 20.0, 30.0, 40.0]
    raw = pd.DataFrame({"patient_id": [1, 2, 3, 4], "progression": [12.0, 18.0, 33.0, 41.0]})
    rows = join_labels(preds, read_labels_frame(raw, reg), ["patient_id"], "progression").rows
    assert live_metrics(rows, "regression")["r2"] == pytest.approx(
        r2_score([12, 18, 33, 41], [10, 20, 30, 40]))

    # classes 0/1: the probability columns say "0", "1"; a CSV of labels reads them as numbers
    preds = predictions([1, 2, 3, 4], proba=[0.2, 0.8, 0.6, 0.1]).rename(
        columns={"probability_benign": "probability_0", "probability_malignant": "probability_1"})
    preds["prediction"] = ["0", "1", "1", "0"]
    ints = settings(positive_label=1)
    raw = read_labels_frame(pd.DataFrame({"patient_id": [1, 2, 3, 4], "diagnosis": [0, 1, 0, 0]}), ints)
    rows = join_labels(preds, raw, ["patient_id"], "diagnosis").rows
    assert live_metrics(rows, "classification", 1)["roc_auc"] == pytest.approx(
        roc_auc_score([0, 1, 0, 0], [0.2, 0.8, 0.6, 0.1]))


def read_labels_frame(frame, s):
    from ml_assets.core.live import checked_labels

    return checked_labels(frame, s)


def test_decay_verdicts():
    s = settings()  # roc_auc, floor 0.7 (the gate), margin 0.05
    assert verdict(0.95, 12, 0.97, s) == {
        "judged": False, "decayed": False, "reason": "too few labelled predictions: 12 < live.min_rows 30"}
    fine = verdict(0.95, 100, 0.97, s)
    assert (fine["judged"], fine["decayed"]) == (True, False)
    assert fine["reason"] == ("live roc_auc 0.950 on 100 labelled predictions: within the margin 0.05 "
                              "from 0.970 at its evaluation, floor 0.700")
    fell = verdict(0.85, 100, 0.97, s)
    assert fell["decayed"] and "fell from 0.970 at its evaluation to 0.850" in fell["reason"]
    floor = verdict(0.6, 100, None, s)
    assert floor["decayed"] and "past the floor 0.700" in floor["reason"]
    undefined = verdict(None, 100, 0.97, s)
    assert (undefined["judged"], undefined["decayed"]) == (False, False)
    assert verdict(0.1, 100, 0.97, settings(live={"min_rows": 500}))["judged"] is False


def test_measure_reports_the_champion_and_every_version():
    s = settings(live={"min_rows": 3})
    rng = np.random.default_rng(1)
    first = predictions(list(range(50)), batch="b1", version=1, proba=rng.random(50))
    second = predictions(list(range(50, 100)), batch="b2", version=2, proba=rng.random(50),
                         scored_at=T0 + pd.Timedelta(hours=1))
    truth = labels([(i, "malignant" if i % 2 else "benign") for i in range(100)])
    joined = join_labels(pd.concat([first, second], ignore_index=True), truth, ["patient_id"], "diagnosis")
    report, window = measure(joined, s, {"version": 2, "metrics": {"roc_auc": 0.99}})
    assert report["champion_version"] == 2 and report["labelled_rows"] == 50 == len(window)
    assert set(window["model_version"]) == {2}
    assert report["live_roc_auc"] == pytest.approx(roc_auc_score(
        np.arange(50, 100) % 2 == 1, second["probability_malignant"]))
    assert report["decayed"] and report["at_evaluation"] == 0.99  # random scores: far below
    assert [v["model_version"] for v in report["per_version"]] == [1, 2]
    assert [v["labelled_rows"] for v in report["per_version"]] == [50, 50]
    none, empty = measure(unlabelled(first), s, None)
    assert none["reason"] == "no champion: nothing to measure" and empty.empty
    assert none["unlabelled_predictions"] == 50


def write(tmp_path, name, frame_or_bytes):
    path = tmp_path / name
    if isinstance(frame_or_bytes, bytes):
        path.write_bytes(frame_or_bytes)
    else:
        frame_or_bytes.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("content, message", [
    (b"", "cannot be read as a table: the file is empty (0 bytes)"),
    (b"\x00\x01\x02binary", "cannot be read as a table: binary content"),
    (pd.DataFrame({"id": [1], "diagnosis": ["benign"]}),
     "missing the column(s) 'patient_id': a labels file holds the join columns ['patient_id'] "
     "and the target 'diagnosis'"),
    (pd.DataFrame({"patient_id": [1], "outcome": ["benign"]}), "missing the column(s) 'diagnosis'"),
    (pd.DataFrame({"patient_id": [1, 2, 3], "diagnosis": ["benign", "cancer", "unsure"]}),
     "the labels 'cancer', 'unsure' are not among the classes the champion knows ('benign', 'malignant')"),
])
def test_bad_labels_files_are_refused_with_the_reason(tmp_path, content, message):
    path = write(tmp_path, "labels.csv", content)
    with pytest.raises(LabelsError) as refused:
        read_labels(path, settings(), classes=["benign", "malignant"])
    assert str(refused.value).startswith(message), str(refused.value)


def test_regression_labels_must_be_numbers_and_files_have_a_size_limit(tmp_path):
    reg = settings(target="progression", task="regression", positive_label=None)
    path = write(tmp_path, "labels.csv", pd.DataFrame(
        {"patient_id": range(40), "progression": ["high", "low"] * 20}))
    with pytest.raises(LabelsError, match=r"the target 'progression' holds values that are not numbers "
                                          r"\('high', 'low'\); pipeline bc is a regression"):
        read_labels(path, reg)
    big = write(tmp_path, "big.csv", pd.DataFrame({"patient_id": range(5000), "diagnosis": "benign"}))
    with pytest.raises(LabelsError, match=r"too large: 0\.\d MB, above live.max_file_mb 0.01"):
        read_labels(big, settings(live={"max_file_mb": 0.01}))
    with pytest.raises(LabelsError, match="pipeline bc has no id_columns \\(or live.join_on\\) to join labels on"):
        read_labels(big, settings(id_columns=[]))
    # a file of good labels reads as join columns + target, labels as text
    good = write(tmp_path, "good.csv", pd.DataFrame({"patient_id": [1, 2], "x": [0, 0],
                                                     "diagnosis": ["benign", "malignant"]}))
    frame = read_labels(good, settings(), classes=["benign", "malignant"])
    assert list(frame.columns) == ["patient_id", "diagnosis"] and frame["diagnosis"].tolist() == ["benign", "malignant"]


def test_the_window_becomes_rows_in_the_landing_format():
    batches = {
        "b1": pd.DataFrame({"patient_id": [1, 2, 3], "radius": [1.0, 2.0, 3.0], "site": ["a", "b", "c"]}),
        "b2": pd.DataFrame({"site": ["d", "e"], "patient_id": [4, 5], "radius": [4.0, 5.0], "extra": [0, 0]}),
    }
    window = pd.DataFrame({"scoring_batch": ["b1", "b2", "b1"], "row": [2, 1, 0],
                           LABEL: ["malignant", "benign", "benign"]})
    table = labelled_table(window, batches.__getitem__, ["patient_id", "site", "radius", "diagnosis"], "diagnosis")
    assert table.to_dict("list") == {"patient_id": [3, 5, 1], "site": ["c", "e", "a"],
                                     "radius": [3.0, 5.0, 1.0], "diagnosis": ["malignant", "benign", "benign"]}
    # classes 0/1 are compared as text; a landing format with a numeric target gets numbers back
    coded = labelled_table(window.assign(**{LABEL: ["1", "0", "0"]}), batches.__getitem__,
                           ["patient_id", "diagnosis"], "diagnosis", np.dtype("int64"))
    assert coded["diagnosis"].tolist() == [1, 0, 0] and coded["diagnosis"].dtype == np.int64
    with pytest.raises(LiveError, match="scoring batch b1 has no column\\(s\\) 'texture' that the pipeline's "
                                        "data versions have"):
        labelled_table(window, batches.__getitem__, ["patient_id", "texture", "diagnosis"], "diagnosis")
    with pytest.raises(LiveError, match="scoring batch b2 has 2 rows; its predictions name row 7"):
        labelled_table(window.assign(row=[0, 7, 0]), batches.__getitem__, ["patient_id", "diagnosis"], "diagnosis")


def test_a_retraining_needs_enough_rows_for_the_comparison():
    assert rows_to_retrain(settings()) == 150  # 30 held-out rows at test_size 0.2
    assert rows_to_retrain(settings(test_size=0.3, gates={"min_comparison_rows": 50})) == 167
