"""Permutation importance on fitted pipelines: the feature a target is built from ranks above
noise, for every metric's direction, deterministically, on at most max_rows rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from ml_assets.core.columns import ColumnRoles
from ml_assets.core.evaluation.importance import permutation_importances
from ml_assets.core.modeling import build_pipeline, fit_pipeline


def generated(rows: int, task: str, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """signal decides the target, weak nudges it, noise and the text column `colour` do not;
    `row_id` is an id the model never reads."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "row_id": np.arange(rows),
        "signal": rng.normal(size=rows),
        "weak": rng.normal(size=rows),
        "noise": rng.normal(size=rows),
        "colour": pd.Categorical(rng.choice(["red", "green", "blue"], size=rows)),
    })
    value = 3 * X["signal"] + 0.5 * X["weak"] + rng.normal(scale=0.5, size=rows)
    if task == "regression":
        return X, value.rename("target")
    return X, pd.Series(np.where(value > 0, "yes", "no"), name="target")


def fitted(task: str, estimator: str, X: pd.DataFrame, y: pd.Series):
    roles = ColumnRoles("target", numeric=("signal", "weak", "noise"), categorical=("colour",),
                        ids=("row_id",))
    pipeline = build_pipeline(roles, task, estimator, {}, seed=0)
    return fit_pipeline(pipeline, X, y)


@pytest.mark.parametrize(
    ("task", "estimator", "metric"),
    [
        ("classification", "linear", "roc_auc"),
        ("classification", "hist_gradient_boosting", "log_loss"),
        ("classification", "linear", "accuracy"),
        ("regression", "hist_gradient_boosting", "rmse"),
        ("regression", "linear", "r2"),
        ("regression", "linear", "mae"),
    ],
)
def test_the_feature_the_target_is_built_from_ranks_first(task, estimator, metric):
    X_train, y_train = generated(1500, task, seed=1)
    X, y = generated(600, task, seed=2)
    model = fitted(task, estimator, X_train, y_train)
    ranking = permutation_importances(model, X, y, task=task, metric=metric,
                                      positive_label="yes" if task == "classification" else None,
                                      seed=0)
    by_feature = {r["feature"]: r for r in ranking}
    assert ranking[0]["feature"] == "signal"
    # lower-is-better metrics are signed so that mattering more is a larger importance
    assert by_feature["signal"]["importance"] > 0.1 * abs(by_feature["noise"]["importance"]) + 0.05
    assert by_feature["signal"]["importance"] > by_feature["noise"]["importance"]
    assert set(by_feature) == {"signal", "weak", "noise", "colour"}  # never the id column
    assert [r["importance"] for r in ranking] == sorted(
        (r["importance"] for r in ranking), reverse=True)
    assert all(r["std"] >= 0 for r in ranking)


def test_same_seed_same_numbers_and_top_limits_the_list():
    X, y = generated(800, "classification")
    model = fitted("classification", "linear", X, y)
    args = {"task": "classification", "metric": "roc_auc", "positive_label": "yes"}
    first = permutation_importances(model, X, y, seed=3, **args)
    assert first == permutation_importances(model, X, y, seed=3, **args)
    assert first != permutation_importances(model, X, y, seed=4, **args)
    assert permutation_importances(model, X, y, seed=3, top=2, **args) == first[:2]


def test_at_most_max_rows_are_scored():
    X, y = generated(1000, "classification")
    X = X[["signal", "weak", "noise"]]
    seen: list[int] = []

    def record_rows(values):
        seen.append(len(values))
        return values

    model = make_pipeline(FunctionTransformer(record_rows), StandardScaler(),
                          LogisticRegression()).fit(X, y)
    seen.clear()
    ranking = permutation_importances(model, X, y, task="classification", metric="roc_auc",
                                      positive_label="yes", seed=0, max_rows=250, n_repeats=2)
    assert ranking[0]["feature"] == "signal"
    assert seen and set(seen) == {250}


def test_multiclass_wine_ranks_real_features_above_an_added_noise_column():
    data = load_wine(as_frame=True)
    X = data.frame.drop(columns="target")
    X["noise"] = np.random.default_rng(0).normal(size=len(X))
    y = data.target.map({0: "barolo", 1: "grignolino", 2: "barbera"})
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y)
    ranking = permutation_importances(model, X, y, task="classification", metric="log_loss",
                                      positive_label=None, seed=0, top=20)
    features = [r["feature"] for r in ranking]
    assert len(ranking) == X.shape[1]
    assert features.index("noise") > features.index("proline")
    assert ranking[0]["importance"] > 0


def test_undefined_metric_gives_no_ranking_and_bad_metric_is_named():
    X, y = generated(300, "classification")
    model = fitted("classification", "linear", X, y)
    one_class = y == "yes"
    assert permutation_importances(model, X[one_class], y[one_class], task="classification",
                                   metric="roc_auc", positive_label="yes", seed=0) == []
    with pytest.raises(ValueError, match="metric 'r2' is not a classification metric"):
        permutation_importances(model, X, y, task="classification", metric="r2",
                                positive_label="yes", seed=0)
