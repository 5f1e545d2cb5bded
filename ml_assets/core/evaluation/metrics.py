"""Held-out metrics of a fitted estimator, the same metrics for a no-skill baseline, and the
confusion matrix. sklearn is imported inside the functions that use it."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

from ml_assets.core.evaluation.predictions import (
    Predictions,
    label_codes,
    labelled,
    model_classes,
    positive_index,
    predict,
)


def _finite(metrics: dict[str, Any]) -> dict[str, float]:
    """Keep only defined metrics, as plain floats (an undefined metric is left out, never nan)."""
    out: dict[str, float] = {}
    for name, value in metrics.items():
        if value is None:
            continue
        value = float(value)
        if math.isfinite(value):
            out[name] = value
    return out


def _safe(fn, *args, **kwargs) -> float | None:
    """A metric, or None when it is undefined on these rows (sklearn warns or raises)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return float(fn(*args, **kwargs))
        except (ValueError, ZeroDivisionError, IndexError):
            return None


def score(
    model: Any, X: pd.DataFrame, y: pd.Series, task: str, positive_label: Any = None
) -> dict[str, float]:
    """Held-out metrics of a fitted estimator: roc_auc, accuracy, f1, log_loss | r2, rmse, mae.

    Binary: roc_auc and f1 are of the positive class (`positive_label`, else classes_[1]).
    Multiclass: roc_auc is macro one-vs-rest, f1 is macro. A metric that is undefined on
    these rows (one class present, one row, ...) is left out. Rows with a missing label are
    not scored.
    """
    X, y = labelled(X, y)
    if len(y) == 0:
        return {}
    return score_predictions(predict(model, X, task), y, task, positive_label)


def score_predictions(
    p: Predictions, y: pd.Series, task: str, positive_label: Any = None
) -> dict[str, float]:
    """score() from predictions already made on labelled rows (see labelled())."""
    from sklearn import metrics as skm

    y = pd.Series(y).reset_index(drop=True)
    if len(y) == 0:
        return {}
    pred = p.pred
    if task == "regression":
        y_true = y.to_numpy(dtype=float)
        pred = pred.astype(float)
        return _finite(
            {
                "r2": _safe(skm.r2_score, y_true, pred),
                "rmse": _safe(skm.root_mean_squared_error, y_true, pred),
                "mae": _safe(skm.mean_absolute_error, y_true, pred),
            }
        )
    if task != "classification":
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")

    classes = p.classes if p.classes is not None else []
    # Labels as integer codes, code i for classes[i] (the columns of proba).
    _, y_true, pred = label_codes(p, y)
    class_codes = list(range(len(classes)))
    proba, decision = p.proba, p.decision
    out: dict[str, float | None] = {"accuracy": _safe(skm.accuracy_score, y_true, pred)}

    if len(classes) == 2:
        pos_i = positive_index(classes, positive_label)
        is_pos = y_true == pos_i
        if proba is not None:
            pos_score = proba[:, pos_i]
        elif decision is not None:
            # decision_function is positive for classes_[1]
            pos_score = decision if pos_i == 1 else -decision
        else:
            pos_score = None
        if pos_score is not None and 0 < is_pos.sum() < len(is_pos):
            out["roc_auc"] = _safe(skm.roc_auc_score, is_pos, pos_score)
        # f1 of the positive class, as a binary problem (robust to labels unseen in training)
        out["f1"] = _safe(skm.f1_score, is_pos, pred == pos_i, zero_division=0.0)
    else:
        out["f1"] = _safe(skm.f1_score, y_true, pred, average="macro", zero_division=0.0)
        if proba is not None:
            out["roc_auc"] = _safe(
                skm.roc_auc_score,
                y_true,
                proba,
                multi_class="ovr",
                average="macro",
                labels=class_codes,
            )
    if proba is not None:
        out["log_loss"] = _safe(skm.log_loss, y_true, proba, labels=class_codes)
    return _finite(out)


class _Constant:
    """A fitted dummy that only needs the number of rows to predict."""

    def __init__(self, dummy: Any):
        self.dummy = dummy
        if hasattr(dummy, "classes_"):
            self.classes_ = dummy.classes_

    def predict(self, X: Any) -> np.ndarray:
        return self.dummy.predict(np.zeros((len(X), 1)))

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.dummy.predict_proba(np.zeros((len(X), 1)))


def baseline_scores(
    y_train: pd.Series, X_test: Any, y_test: pd.Series, task: str, positive_label: Any = None
) -> dict[str, float]:
    """The same metrics for a model that ignores the features.

    DummyClassifier(strategy="prior") or DummyRegressor(strategy="mean"), fitted on y_train.
    """
    from sklearn.dummy import DummyClassifier, DummyRegressor

    y_train = pd.Series(y_train).dropna()
    if len(y_train) == 0:
        return {}
    if task == "classification":
        # The prior is the share of each class: fitted on the distinct labels weighted by
        # their counts, the same dummy as on every row, without sorting 800k text labels.
        counts = y_train.value_counts(sort=False)
        dummy = DummyClassifier(strategy="prior")
        dummy.fit(np.zeros((len(counts), 1)), counts.index.to_numpy(),
                  sample_weight=counts.to_numpy(dtype=float))
    else:
        dummy = DummyRegressor(strategy="mean")
        y_train = y_train.astype(float)
        dummy.fit(np.zeros((len(y_train), 1)), y_train.to_numpy())
    rows = pd.DataFrame(index=range(len(y_test)))  # the dummy only needs the row count
    if task == "classification" and positive_label is not None:
        classes = model_classes(dummy)
        if len(classes) == 2:
            try:
                positive_index(classes, positive_label)
            except ValueError:
                positive_label = None  # the training labels hold one class only
    return score(_Constant(dummy), rows, y_test, task, positive_label)


def confusion(model: Any, X: Any, y: pd.Series) -> dict:
    """{"labels": [...], "matrix": [[...]]}: rows are actual labels, columns predicted."""
    X, y = labelled(X, y)
    return confusion_predictions(predict(model, X), y)


def confusion_predictions(p: Predictions, y: pd.Series) -> dict:
    """confusion() from predictions already made on labelled rows."""
    y = pd.Series(y).reset_index(drop=True)
    # the model's classes, then labels seen only in the held-out rows
    labels, y_codes, pred_codes = label_codes(p, y)
    if len(y) == 0 or not labels:
        return {"labels": labels, "matrix": []}
    n = len(labels)
    matrix = np.bincount(y_codes * n + pred_codes, minlength=n * n).reshape(n, n)
    return {"labels": labels, "matrix": matrix.astype(int).tolist()}
