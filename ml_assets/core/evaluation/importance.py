"""Which features the model leans on: permutation importance of the primary metric on held-out
rows, computed on the fitted pipeline with the raw columns (its preprocessing included)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ml_assets.config import CLASSIFICATION_METRICS, REGRESSION_METRICS
from ml_assets.core.evaluation.metrics import score_predictions
from ml_assets.core.evaluation.predictions import labelled, predict


def _direction(task: str, metric: str) -> int:
    directions = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    if metric not in directions:
        raise ValueError(
            f"feature importance: metric {metric!r} is not a {task} metric "
            f"(one of {', '.join(sorted(directions))})"
        )
    return directions[metric]


def _scorer(task: str, metric: str, positive_label: Any):
    """A scorer where larger is better: the metric exactly as the evaluation computes it
    (positive class, macro one-vs-rest roc_auc), negated for the lower-is-better ones, so a
    feature whose shuffling costs the most has the largest importance."""
    direction = _direction(task, metric)

    def score(model: Any, X: pd.DataFrame, y: Any) -> float:
        value = score_predictions(predict(model, X, task), pd.Series(y), task,
                                  positive_label).get(metric)
        return math.nan if value is None else direction * value

    return score


def _sample(X: pd.DataFrame, y: pd.Series, max_rows: int | None,
            seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """A seeded sample of at most max_rows rows, in their original order."""
    if max_rows is None or len(y) <= max_rows:
        return X, y
    keep = np.sort(np.random.default_rng(seed).choice(len(y), size=max_rows, replace=False))
    return X.iloc[keep].reset_index(drop=True), y.iloc[keep].reset_index(drop=True)


def _columns_read(model: Any) -> list[str] | None:
    """The input columns the model uses: a pipeline's ColumnTransformer drops ids and extra
    columns (remainder="drop"), which would otherwise rank with importance 0. None: unknown."""
    from sklearn.compose import ColumnTransformer

    first = model.steps[0][1] if hasattr(model, "steps") else model
    if isinstance(first, ColumnTransformer) and hasattr(first, "transformers_"):
        used: list[str] = []
        for _, transformer, columns in first.transformers_:
            if isinstance(transformer, str) and transformer == "drop":
                continue
            names = [columns] if isinstance(columns, str) else list(columns)
            if not all(isinstance(c, str) for c in names):
                return None  # columns chosen by position or mask: keep every column
            used.extend(c for c in names if c not in used)
        return used
    names = getattr(model, "feature_names_in_", None)
    return None if names is None else [str(c) for c in names]


def _model_columns(model: Any, X: pd.DataFrame) -> pd.DataFrame:
    """Only the columns the model reads, in the order it lists them."""
    names = _columns_read(model)
    if names is None:
        return X
    missing = [c for c in names if c not in X.columns]
    if missing:
        raise ValueError(f"feature importance: the held-out rows lack the model's column(s) "
                         f"{', '.join(map(repr, missing))}")
    return X[names]


def permutation_importances(
    model: Any,
    X: pd.DataFrame,
    y: pd.Series,
    *,
    task: str,
    metric: str,
    positive_label: Any,
    seed: int,
    max_rows: int | None = 5000,
    n_repeats: int = 5,
    top: int = 10,
) -> list[dict]:
    """`[{"feature", "importance", "std"}]`, the `top` largest importances first: how much the
    metric worsens when a feature's values are shuffled (mean and spread over n_repeats
    shuffles), on a seeded sample of at most max_rows labelled rows. Empty when the metric is
    undefined on the rows (one class present)."""
    from sklearn.inspection import permutation_importance

    X, y = labelled(pd.DataFrame(X).reset_index(drop=True), y)
    X = _model_columns(model, X)
    X, y = _sample(X, y, max_rows, seed)
    scorer = _scorer(task, metric, positive_label)
    if len(y) == 0 or math.isnan(scorer(model, X, y)):
        return []
    # n_jobs=1: the machine may be shared and the caller may already run in parallel.
    result = permutation_importance(model, X, y, scoring=scorer, n_repeats=n_repeats,
                                    random_state=seed, n_jobs=1)
    rows = [
        {"feature": str(name), "importance": float(mean), "std": float(std)}
        for name, mean, std in zip(X.columns, result.importances_mean, result.importances_std,
                                   strict=True)
        if math.isfinite(mean)
    ]
    rows.sort(key=lambda r: (-r["importance"], r["feature"]))
    return rows[:top]
