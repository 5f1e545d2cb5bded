"""Slice metrics on scikit-learn's real tables: binning, grouping of small slices, undefined
metrics, and the failures that refuse promotion."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ml_assets.core.evaluation.metrics import score_predictions
from ml_assets.core.evaluation.predictions import Predictions, predict
from ml_assets.core.evaluation.slices import column_slices, slice_markdown, slice_table

WEAK_FEATURES = ["mean fractal dimension", "texture error"]


@pytest.fixture(scope="module")
def cancer():
    """Held-out rows of breast cancer, a strong model (every feature) and a weak one (two
    features that say little about the diagnosis), with a generated region column."""
    data = load_breast_cancer(as_frame=True)
    y = data.target.map({0: "malignant", 1: "benign"}).rename("diagnosis")
    X_tr, X_te, y_tr, y_te = train_test_split(data.data, y, test_size=0.5, random_state=0,
                                              stratify=y)
    strong = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X_tr, y_tr)
    weak = make_pipeline(StandardScaler(), LogisticRegression()).fit(X_tr[WEAK_FEATURES], y_tr)
    X_te, y_te = X_te.reset_index(drop=True), y_te.reset_index(drop=True)
    rng = np.random.default_rng(7)
    region = pd.Series(rng.choice(["north", "south", "east", "west", "isle"], size=len(y_te),
                                  p=[0.35, 0.3, 0.2, 0.1, 0.05]), name="region")
    return X_te, y_te, region, predict(strong, X_te), predict(weak, X_te[WEAK_FEATURES])


def mixed(strong: Predictions, weak: Predictions, weak_rows: np.ndarray) -> Predictions:
    """A challenger that is the strong model except on `weak_rows`, where it is the weak one."""
    return Predictions(
        np.where(weak_rows, weak.pred, strong.pred),
        np.where(weak_rows[:, None], weak.proba, strong.proba),
        None,
        strong.classes,
    )


def table(columns, y, challenger, champion, **overrides):
    settings = {"task": "classification", "positive_label": "malignant", "metric": "roc_auc",
                "direction": 1, "min_rows": 20, "bins": 4, "max_drop": 0.05}
    return slice_table(columns, y, challenger, champion, **{**settings, **overrides})


def test_numeric_column_is_cut_into_quantile_bins_labelled_by_their_edges():
    values = pd.Series(np.arange(100, dtype=float) / 10)  # 0.0 .. 9.9
    slices = column_slices(values, bins=4, min_rows=1)
    assert [s.label for s in slices] == ["[0, 2.48)", "[2.48, 4.95)", "[4.95, 7.43)",
                                         "[7.43, 9.9]"]
    assert [s.rows for s in slices] == [25, 25, 25, 25]
    # every row in exactly one bin, and each bin holds the values its label says
    assert np.array_equal(np.sum([s.mask for s in slices], axis=0), np.ones(100))
    assert values[slices[1].mask].min() == 2.5 and values[slices[1].mask].max() == 4.9


def test_few_valued_and_text_columns_get_one_slice_per_value_and_missing_its_own():
    few = pd.Series([3.0, 1.0, 2.0, np.nan] * 10)  # 3 distinct values, not more than bins
    assert [(s.label, s.rows) for s in column_slices(few, bins=4, min_rows=1)] == [
        ("1", 10), ("2", 10), ("3", 10), ("(missing)", 10)]
    text = pd.Series(["b", "a", None, "c"] * 5, dtype="category")
    assert [(s.label, s.rows) for s in column_slices(text, bins=4, min_rows=1)] == [
        ("a", 5), ("b", 5), ("c", 5), ("(missing)", 5)]


def test_tied_values_merge_bins_instead_of_making_empty_ones():
    values = pd.Series([0.0] * 80 + list(np.linspace(1, 2, 20)))  # 80% zeros
    slices = column_slices(values, bins=4, min_rows=1)
    assert sum(s.rows for s in slices) == 100
    assert all(s.rows > 0 for s in slices)
    assert slices[-1].label.endswith("2]")


def test_small_slices_are_grouped_into_other(cancer):
    X, y, region, strong, _ = cancer
    counts = region.value_counts()
    min_rows = int(counts["west"]) + 1  # west and isle are too small alone
    report = table({"region": region}, y, strong, strong, min_rows=min_rows)
    by_slice = {row["slice"]: row for row in report["rows"]}
    assert list(by_slice) == ["east", "north", "south", "(other)"]
    assert by_slice["(other)"]["rows"] == counts["west"] + counts["isle"]
    assert sum(row["rows"] for row in report["rows"]) == len(y)
    # the grouped slice has enough rows here, so it decides like any other
    assert by_slice["(other)"]["decides"] is (by_slice["(other)"]["rows"] >= min_rows)


def test_slice_metric_is_the_metric_of_its_rows(cancer):
    X, y, region, strong, weak = cancer
    report = table({"region": region}, y, strong, weak)
    north = next(r for r in report["rows"] if r["slice"] == "north")
    rows = (region == "north").to_numpy()
    expected = score_predictions(strong.rows(rows), y[rows].reset_index(drop=True),
                                 "classification", "malignant")["roc_auc"]
    assert north["challenger"] == pytest.approx(expected)
    assert north["difference"] == pytest.approx(north["challenger"] - north["champion"])


def test_a_slice_where_the_challenger_is_clearly_worse_fails_and_is_named(cancer):
    X, y, region, strong, weak = cancer
    north = (region == "north").to_numpy()
    challenger = mixed(strong, weak, north)
    report = table({"region": region}, y, challenger, strong)
    assert len(report["failures"]) == 1
    failure = report["failures"][0]
    row = next(r for r in report["rows"] if r["slice"] == "north")
    assert failure.startswith(f"slice region = north ({north.sum()} rows): roc_auc ")
    assert "more than slices.max_drop 0.05" in failure
    assert row["decides"] is True and row["difference"] < -0.05
    # the other regions are the same model on both sides
    assert all(r["difference"] == 0 for r in report["rows"] if r["slice"] != "north")


def test_a_small_slice_never_decides_however_much_worse(cancer):
    X, y, region, strong, weak = cancer
    isle = (region == "isle").to_numpy()
    challenger = mixed(strong, weak, isle)
    report = table({"region": region}, y, challenger, strong, min_rows=isle.sum() + 1)
    other = next(r for r in report["rows"] if r["slice"] == "(other)")
    assert other["rows"] == isle.sum() and other["decides"] is False
    assert report["failures"] == []


def test_max_drop_null_reports_without_deciding(cancer):
    X, y, region, strong, weak = cancer
    challenger = mixed(strong, weak, (region == "north").to_numpy())
    report = table({"region": region}, y, challenger, strong, max_drop=None)
    assert report["max_drop"] is None and report["failures"] == []
    assert not any(r["decides"] for r in report["rows"])
    assert any(r["difference"] < -0.05 for r in report["rows"])


def test_undefined_metric_is_none_and_never_decides(cancer):
    X, y, region, strong, weak = cancer
    # slicing by the diagnosis itself: each slice holds one class, where roc_auc is undefined
    report = table({"diagnosis": y}, y, weak, strong, max_drop=0.0)
    assert [r["slice"] for r in report["rows"]] == ["benign", "malignant"]
    for row in report["rows"]:
        assert row["challenger"] is None and row["champion"] is None
        assert row["difference"] is None and row["decides"] is False
    assert report["failures"] == []


def test_without_a_champion_slices_are_reported_only(cancer):
    X, y, region, strong, _ = cancer
    report = table({"region": region, "mean radius": X["mean radius"]}, y, strong, None)
    assert [r["column"] for r in report["rows"]] == ["region"] * 5 + ["mean radius"] * 4
    assert all(r["champion"] is None and r["difference"] is None and not r["decides"]
               for r in report["rows"])
    assert all(r["challenger"] is not None for r in report["rows"])


def test_lower_is_better_metric_fails_when_the_challenger_errs_more():
    data = load_diabetes(as_frame=True, scaled=False)
    X, y = data.data, data.target
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.5, random_state=0)
    X_te, y_te = X_te.reset_index(drop=True), y_te.reset_index(drop=True)
    good = predict(make_pipeline(StandardScaler(), Ridge()).fit(X_tr, y_tr), X_te, "regression")
    sex = X_te["sex"].map({1.0: "female", 2.0: "male"})
    male = (sex == "male").to_numpy()
    # on male patients the challenger always predicts the training mean
    worse = Predictions(np.where(male, y_tr.mean(), good.pred))
    report = slice_table({"sex": sex}, y_te, worse, good, task="regression", positive_label=None,
                         metric="rmse", direction=-1, min_rows=30, bins=4, max_drop=5.0)
    male_row = next(r for r in report["rows"] if r["slice"] == "male")
    assert male_row["difference"] > 5.0  # higher error
    assert len(report["failures"]) == 1 and report["failures"][0].startswith(
        f"slice sex = male ({male.sum()} rows): rmse ")


def test_same_inputs_give_the_same_json_report(cancer):
    X, y, region, strong, weak = cancer
    columns = {"region": region, "mean radius": X["mean radius"]}
    first = table(columns, y, weak, strong)
    assert json.dumps(first) == json.dumps(table(columns, y, weak, strong))


def test_misaligned_column_is_named(cancer):
    X, y, region, strong, _ = cancer
    with pytest.raises(ValueError, match="slices.columns: column 'region' has 10 held-out"):
        table({"region": region[:10]}, y, strong, strong)


def test_markdown_shows_every_slice_and_the_failures(cancer):
    X, y, region, strong, weak = cancer
    report = table({"region": region}, y, mixed(strong, weak, (region == "north").to_numpy()),
                   strong)
    text = slice_markdown(report)
    assert text.splitlines()[0].startswith("| column | slice | rows | challenger roc_auc")
    for row in report["rows"]:
        assert f"| region | {row['slice']} | {row['rows']} |" in text
    assert "Failures:" in text and report["failures"][0] in text
    assert slice_markdown(None).startswith("No slices")
