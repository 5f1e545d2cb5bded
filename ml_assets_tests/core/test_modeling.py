"""The scikit-learn pipeline: native categorical gradient boosting, the split, safe storage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ml_assets.core.columns import ColumnRoles
from ml_assets.core.modeling import (
    MIN_CATEGORY_ROWS,
    SPLIT_COLUMN,
    build_pipeline,
    fit_pipeline,
    frequent_categories,
    split_rows,
    train_test,
)
from ml_assets.storage import load_model, save_model

PLANS = ["basic", "plus", "premium", "family"]


def customers(rows: int, seed: int = 0) -> pd.DataFrame:
    """Generated customers whose churn depends mostly on a text column (the plan)."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(PLANS, rows)
    region = rng.choice([f"r{i}" for i in range(8)], rows)
    tenure = rng.integers(0, 72, rows).astype(float)
    logit = np.select([plan == "basic", plan == "family"], [1.8, -1.5], 0.0) - 0.02 * tenure
    churn = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    df = pd.DataFrame({"customer_id": np.arange(rows), "plan": plan, "region": region,
                       "tenure": tenure, "churn": churn})
    df.loc[rng.random(rows) < 0.02, "tenure"] = np.nan  # a few blanks, as in landed files
    df.loc[rng.random(rows) < 0.02, "region"] = None
    return df


ROLES = ColumnRoles(numeric=("tenure",), categorical=("plan", "region"), ids=("customer_id",),
                    target="churn")


def feature_table(df: pd.DataFrame) -> pd.DataFrame:
    table = df[["tenure", "plan", "region", "churn"]].copy()
    table[SPLIT_COLUMN] = split_rows(table["churn"], "classification", 0.25, 42)
    return table


@pytest.fixture(scope="module")
def fitted():
    table = feature_table(customers(4000))
    X_train, y_train, X_test, y_test = train_test(table, "churn")
    model = build_pipeline(ROLES, "classification", "hist_gradient_boosting", {}, 42)
    fit_pipeline(model, X_train, y_train)
    return model, X_test, y_test


def test_train_test_keeps_features_only_and_follows_the_split():
    table = feature_table(customers(400))
    X_train, y_train, X_test, y_test = train_test(table, "churn")
    assert list(X_train.columns) == ["tenure", "plan", "region"]
    assert len(X_train) + len(X_test) == len(table)
    assert len(X_test) == (table[SPLIT_COLUMN] == "test").sum()
    assert y_train.index.equals(X_train.index) and y_test.index.equals(X_test.index)


def test_gradient_boosting_gets_one_column_per_feature_and_declares_the_text_ones(fitted):
    model, _, _ = fitted
    estimator = model.named_steps["estimator"]
    # No one-hot expansion: the trees split on groups of categories themselves.
    assert estimator.n_features_in_ == 3
    assert list(estimator.is_categorical_) == [False, True, True]


def test_gradient_boosting_learns_from_a_text_column(fitted):
    model, X_test, y_test = fitted
    scores = model.predict_proba(X_test)[:, list(model.classes_).index("yes")]
    assert roc_auc_score(y_test == "yes", scores) > 0.7


def test_unseen_and_blank_categories_and_blank_numbers_are_predicted(fitted):
    model, _, _ = fitted
    rows = pd.DataFrame({"tenure": [np.nan, 12.0, 3.0], "plan": ["basic", "enterprise", None],
                         "region": [None, "r1", "nowhere"]})
    proba = model.predict_proba(rows)
    assert proba.shape == (3, 2)
    assert np.allclose(proba.sum(axis=1), 1.0)


def test_categorical_and_plain_text_inputs_give_the_same_predictions():
    # The feature table stores text as categoricals; serving sends plain strings.
    table = feature_table(customers(2000, seed=3))
    as_category = table.copy()
    for column in ("plan", "region"):
        as_category[column] = as_category[column].astype("category")
    X_train, y_train, X_test, _ = train_test(as_category, "churn")
    model = build_pipeline(ROLES, "classification", "hist_gradient_boosting", {}, 42)
    fit_pipeline(model, X_train, y_train)
    plain = X_test.astype({"plan": object, "region": object})
    assert np.array_equal(model.predict_proba(X_test), model.predict_proba(plain))


def test_linear_models_keep_imputation_and_one_hot_encoding():
    table = feature_table(customers(1000))
    X_train, y_train, X_test, _ = train_test(table, "churn")
    model = build_pipeline(ROLES, "classification", "linear", {}, 42)
    fit_pipeline(model, X_train, y_train)
    # tenure + its missing indicator + one column per plan and region (and blank region)
    assert model.named_steps["estimator"].n_features_in_ > 10
    assert model.predict(X_test).shape == (len(X_test),)


def test_a_fitted_native_categorical_model_round_trips_through_the_store(fitted, tmp_path):
    model, X_test, _ = fitted
    path = tmp_path / "model.skops"
    save_model(path, model)
    loaded = load_model(path)
    assert np.array_equal(loaded.predict_proba(X_test), model.predict_proba(X_test))


def test_a_user_categorical_features_setting_is_kept():
    model = build_pipeline(ROLES, "classification", "hist_gradient_boosting",
                           {"categorical_features": None}, 42)
    assert model.named_steps["estimator"].categorical_features is None


def test_rare_categories_are_missing_values_and_the_most_frequent_fit_the_bins():
    rng = np.random.default_rng(1)
    rows = 6000
    # 300 frequent cities (more than the estimator's 255 bins), 5 cities seen twice each
    city = np.concatenate([rng.choice([f"c{i:03d}" for i in range(300)], rows - 10),
                           np.repeat([f"rare{i}" for i in range(5)], 2)])
    y = pd.Series(np.where(rng.random(rows) < 0.5, "yes", "no"))
    X = pd.DataFrame({"tenure": rng.random(rows), "city": city})
    roles = ColumnRoles(numeric=("tenure",), categorical=("city",), target="churn")
    model = fit_pipeline(build_pipeline(roles, "classification", "hist_gradient_boosting", {}, 42),
                         X, y)
    [categories] = model.named_steps["preprocess"].named_transformers_["categorical"].categories_
    assert len(categories) == 255 and not any(c.startswith("rare") for c in categories)
    rare, blank = X.iloc[[0, 0]].copy(), X.iloc[[0]].copy()
    rare["city"] = ["rare0", "never-seen"]
    blank["city"] = None
    assert np.allclose(model.predict_proba(rare), model.predict_proba(blank))


def test_frequent_categories_are_the_same_for_the_same_rows_in_any_order():
    values = pd.Series(["b"] * 7 + ["a"] * 7 + ["c"] * 9 + ["d"] * (MIN_CATEGORY_ROWS - 1))
    assert frequent_categories(values, limit=10) == ["a", "b", "c"]
    # a tie at the limit is broken by value, not by row order
    assert frequent_categories(values, limit=2) == ["a", "c"]
    assert frequent_categories(values.sample(frac=1, random_state=3), limit=2) == ["a", "c"]
    assert frequent_categories(values.astype("category"), limit=2) == ["a", "c"]
    assert frequent_categories(pd.Series([True] * 6 + [False] * 5), limit=5) == [False, True]


def test_the_split_is_the_one_stratifying_on_the_labels_gives():
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(7)
    y = pd.Series(rng.choice(["yes", "no", "maybe"], 5000, p=[0.2, 0.7, 0.1]))
    _, expected = train_test_split(np.arange(len(y)), test_size=0.25, random_state=42,
                                   stratify=y.to_numpy())
    split = split_rows(y, "classification", 0.25, 42)
    assert sorted(np.flatnonzero(split == "test")) == sorted(expected)
    shares = y[split == "test"].value_counts(normalize=True)
    assert abs(shares["maybe"] - 0.1) < 0.01
