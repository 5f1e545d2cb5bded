"""The train/test split and the scikit-learn pipeline, preprocessing included.

The preprocessing (imputation, encoding, scaling) lives inside the fitted `Pipeline`, so the
registered model takes rows in the landing file's format and training and serving cannot drift
apart. Columns are listed explicitly (no `make_column_selector`), which keeps the model
serialisable by skops, MLflow's safe format for scikit-learn.

Which estimator a version gets is chosen by ml_assets.core.search (or fixed by the pipeline
file); this module builds and fits any of the three families.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml_assets.core.columns import ColumnRoles

SPLIT_COLUMN = "__split__"
# Each row's identity (ml_assets.core.overlap): which rows a champion was trained on.
ROW_KEY_COLUMN = "__row_key__"
# Bookkeeping columns of the feature table: never features, never shown to a model.
BOOKKEEPING_COLUMNS = (SPLIT_COLUMN, ROW_KEY_COLUMN)
MISSING_CATEGORY = "__missing__"
# A category seen in fewer training rows is treated as missing (too few rows to learn from).
MIN_CATEGORY_ROWS = 5


class ModelSettingsError(ValueError):
    """Bad model settings in the pipeline file; str() names the key."""


def _estimator_class(estimator: str, task: str):
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge

    classes = {
        ("hist_gradient_boosting", "classification"): HistGradientBoostingClassifier,
        ("hist_gradient_boosting", "regression"): HistGradientBoostingRegressor,
        ("random_forest", "classification"): RandomForestClassifier,
        ("random_forest", "regression"): RandomForestRegressor,
        ("linear", "classification"): LogisticRegression,
        ("linear", "regression"): Ridge,
    }
    return classes[(estimator, task)]


def make_estimator(estimator: str, task: str, params: dict[str, Any], seed: int,
                   key: str = "model.params"):
    """The estimator with `params`; an unknown or bad parameter is named by its `key` in the
    pipeline file."""
    cls = _estimator_class(estimator, task)
    allowed = cls().get_params()
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ModelSettingsError(
            f"key '{key}.{unknown[0]}': expected a parameter of {cls.__name__} "
            f"(one of {', '.join(sorted(allowed))})"
        )
    defaults: dict[str, Any] = {}
    if "random_state" in allowed:
        defaults["random_state"] = seed
    if estimator == "linear" and task == "classification":
        defaults["max_iter"] = 2000
    try:
        return cls(**{**defaults, **params})
    except (TypeError, ValueError) as exc:
        raise ModelSettingsError(f"key '{key}': {exc}") from None


def build_pipeline(roles: ColumnRoles, task: str, estimator: str, params: dict, seed: int,
                   key: str = "model.params"):
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    model = make_estimator(estimator, task, params, seed, key)
    if estimator == "hist_gradient_boosting":
        transformers = _native_preprocessing(roles, model, params)
    else:
        transformers = _encoded_preprocessing(roles)
    # remainder="drop": id columns and any extra columns in the input are ignored.
    preprocess = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("preprocess", preprocess), ("estimator", model)])


def _native_preprocessing(roles: ColumnRoles, model, params: dict) -> list:
    """Histogram gradient boosting takes missing values and categories natively.

    Numeric columns pass through as they are (blanks stay NaN: the trees learn where missing
    rows go, better than a median would); text columns become one ordinal code each, declared
    as categorical to the estimator, which splits on groups of categories. One column per
    feature instead of one per category: on a million rows with a few text columns, a third of
    the memory during the fit and less time (scikit-learn's "Categorical Feature Support in
    Gradient Boosting" example).

    The encoder's categories are set by `fit_pipeline` from the training rows: the ones seen at
    least MIN_CATEGORY_ROWS times, at most `max_bins` of them (the estimator's limit for a
    categorical feature). Rare, blank and unseen categories are missing values, which the trees
    route as learned. Counting with pandas instead of the encoder's own `min_frequency` (a
    Python loop over every row) fits 800k rows with five text columns in 6.6 s instead of 8.5 s
    (`python -m benchmarks.fit_encoding`).
    """
    from sklearn.preprocessing import OrdinalEncoder

    transformers: list = []
    if roles.numeric:
        transformers.append(("numeric", "passthrough", list(roles.numeric)))
    if roles.categorical:
        encoder = OrdinalEncoder(
            handle_unknown="use_encoded_value",
            unknown_value=np.nan,
            encoded_missing_value=np.nan,
            dtype=np.float64,
        )
        transformers.append(("categorical", encoder, list(roles.categorical)))
        if "categorical_features" not in params:
            model.set_params(
                categorical_features=[False] * len(roles.numeric) + [True] * len(roles.categorical)
            )
    return transformers


def fit_pipeline(pipeline, X: pd.DataFrame, y: pd.Series):
    """Fit a pipeline of `build_pipeline` on the training rows; returns it.

    A native-categorical encoder left on categories="auto" first gets its categories from X
    (see `_native_preprocessing`). The fitted model is plain scikit-learn either way.
    """
    return prepare_pipeline(pipeline, X).fit(X, y)


def prepare_pipeline(pipeline, X: pd.DataFrame):
    """Set what a pipeline of `build_pipeline` takes from the training rows before any fit (a
    native-categorical encoder's categories); returns it. Cross-validation clones it after."""
    from sklearn.preprocessing import OrdinalEncoder

    preprocess = pipeline.named_steps["preprocess"]
    estimator = pipeline.named_steps["estimator"]
    for name, encoder, columns in preprocess.transformers:
        if name == "categorical" and isinstance(encoder, OrdinalEncoder) \
                and isinstance(encoder.categories, str):
            limit = int(estimator.get_params()["max_bins"])
            encoder.set_params(categories=[frequent_categories(X[c], limit) for c in columns])
    return pipeline


def frequent_categories(column: pd.Series, limit: int) -> list:
    """The values seen at least MIN_CATEGORY_ROWS times, the `limit` most frequent of them
    (ties by value, so the same rows always give the same model), sorted."""
    counts = column.value_counts(dropna=True, sort=False)
    counts = counts[counts >= MIN_CATEGORY_ROWS]
    kept = counts.index.tolist()
    if len(kept) > limit:
        ranked = sorted(zip(counts.to_numpy().tolist(), kept, strict=True),
                        key=lambda cv: (-cv[0], _order(cv[1])))
        kept = [value for _, value in ranked[:limit]]
    return sorted(kept, key=_order)


def _order(value) -> tuple:
    # A text column read from a file may still mix types (e.g. True and "yes"); numbers and
    # booleans sort naturally, which the encoder requires of non-text columns.
    return (type(value).__name__, value)


def _encoded_preprocessing(roles: ColumnRoles) -> list:
    """Imputation, scaling and one-hot encoding, for estimators that need numbers only."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    transformers: list = []
    if roles.numeric:
        numeric = Pipeline(
            [
                # Blank numeric cells: median-imputed inside the model, with a missing-value
                # indicator so the model can still learn from "was blank".
                ("impute", SimpleImputer(strategy="median", add_indicator=True)),
                ("scale", StandardScaler()),
            ]
        )
        transformers.append(("numeric", numeric, list(roles.numeric)))
    if roles.categorical:
        categorical = Pipeline(
            [
                ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)),
                (
                    "encode",
                    # Unseen or rare categories at prediction time are not errors: they map to
                    # the infrequent bucket (or all zeros), as the contract allows a few.
                    OneHotEncoder(
                        handle_unknown="infrequent_if_exist",
                        min_frequency=5,
                        max_categories=30,
                        sparse_output=False,
                    ),
                ),
            ]
        )
        transformers.append(("categorical", categorical, list(roles.categorical)))
    return transformers


def split_rows(y: pd.Series, task: str, test_size: float, seed: int) -> pd.Series:
    """'train'/'test' per row; stratified for classification when every class has 2+ rows.

    Fixed by the data (same rows and seed -> same split), so every model of a version, and the
    champion it is compared with, is scored on the same held-out rows.
    """
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    stratify = None
    if task == "classification":
        counts = y.value_counts()
        n_test = int(np.ceil(test_size * len(y)))
        if counts.min() >= 2 and n_test >= len(counts):
            # Integer codes numbered in sorted-label order are the classes scikit-learn would
            # derive from the labels, so the split is the same, without sorting every row's
            # label as a Python object (1M rows: 0.8 s -> 0.2 s).
            stratify = pd.factorize(y.to_numpy(), sort=True)[0]
    _, test_idx = train_test_split(index, test_size=test_size, random_state=seed, stratify=stratify)
    split = np.full(len(y), "train", dtype=object)
    split[test_idx] = "test"
    return pd.Series(split, index=y.index, name=SPLIT_COLUMN)


def train_test(features: pd.DataFrame, target: str):
    """(X_train, y_train, X_test, y_test) from a feature table with its split column."""
    is_test, columns = _sides(features, target)
    # One selection per side: no intermediate copy of the whole table without the target.
    y = features[target]
    return (features.loc[~is_test, columns], y[~is_test],
            features.loc[is_test, columns], y[is_test])


def held_out(features: pd.DataFrame, target: str):
    """(y_train, X_test, y_test): what an evaluation needs (the training labels for the
    no-skill baseline, the held-out rows), without copying the training rows' features."""
    is_test, columns = _sides(features, target)
    y = features[target]
    return y[~is_test], features.loc[is_test, columns], y[is_test]


def feature_columns(features: pd.DataFrame, target: str) -> list[str]:
    """The columns of a feature table a model takes: all but the target and the bookkeeping."""
    return [c for c in features.columns if c != target and c not in BOOKKEEPING_COLUMNS]


def _sides(features: pd.DataFrame, target: str) -> tuple[np.ndarray, list[str]]:
    is_test = (features[SPLIT_COLUMN] == "test").to_numpy()
    return is_test, feature_columns(features, target)
