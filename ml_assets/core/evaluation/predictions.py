"""A model's outputs on held-out rows, computed once and shared: predictions, class scores and
classes, the labelled rows, and the integer label codes the metrics count with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, so labels and metrics are JSON-able."""
    return value.item() if isinstance(value, np.generic) else value


def labelled(X: Any, y: pd.Series) -> tuple[Any, pd.Series]:
    """Rows with a label (metrics cannot be computed on missing labels), index reset."""
    y = pd.Series(y).reset_index(drop=True)
    keep = y.notna().to_numpy()
    if keep.all():
        return X, y
    if isinstance(X, pd.DataFrame | pd.Series):
        X = X.reset_index(drop=True)[keep]
    else:
        X = np.asarray(X)[keep]
    return X, y[keep].reset_index(drop=True)


def model_classes(model: Any) -> list[Any]:
    return [_plain(c) for c in model.classes_]


def positive_index(classes: list[Any], positive_label: Any) -> int:
    """Index of the positive class in model.classes_ (default: classes_[1], sklearn's convention)."""
    if positive_label is None:
        return 1
    for i, c in enumerate(classes):
        if c == positive_label:
            return i
    # A YAML `positive_label: 1` against string labels "1"/"0" (or the other way round).
    for i, c in enumerate(classes):
        if str(c) == str(positive_label):
            return i
    raise ValueError(
        f"positive_label {positive_label!r} is not one of the model's classes {classes}"
    )


def _scores(model: Any, X: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(predict_proba, decision_function) - whichever the model offers."""
    if hasattr(model, "predict_proba"):
        try:
            return np.asarray(model.predict_proba(X), dtype=float), None
        except (AttributeError, NotImplementedError):
            # e.g. SVC(probability=False): hasattr is True on some versions, the call fails
            pass
    if hasattr(model, "decision_function"):
        return None, np.asarray(model.decision_function(X), dtype=float)
    return None, None


@dataclass(frozen=True)
class Predictions:
    """A model's outputs on some rows, computed once and shared by metrics, confusion and plots
    (on a million rows each pass through a gradient-boosting model costs seconds)."""

    pred: np.ndarray
    proba: np.ndarray | None = None  # predict_proba, classifiers that offer it
    decision: np.ndarray | None = None  # decision_function, classifiers without predict_proba
    classes: list[Any] | None = None  # model.classes_, classifiers only

    def rows(self, keep: np.ndarray) -> Predictions:
        """The predictions of the rows where `keep` is True (a boolean mask over the rows)."""
        return Predictions(
            self.pred[keep],
            None if self.proba is None else self.proba[keep],
            None if self.decision is None else self.decision[keep],
            self.classes,
        )


# Classifiers whose predict() scikit-learn defines as the class of highest predict_proba (the
# same arrays, in the same order): one pass over the rows gives both, where predict() and
# predict_proba() would each run the preprocessing and every tree (200k rows: 0.5 s each).
ARGMAX_PROBA_CLASSIFIERS = frozenset({
    "HistGradientBoostingClassifier", "RandomForestClassifier", "ExtraTreesClassifier",
    "DecisionTreeClassifier",
})


def _predicts_argmax_proba(model: Any) -> bool:
    final = type(model.steps[-1][1] if hasattr(model, "steps") else model)  # a Pipeline's estimator
    return final.__module__.startswith("sklearn.") and final.__name__ in ARGMAX_PROBA_CLASSIFIERS


def predict(model: Any, X: Any, task: str = "classification") -> Predictions:
    """Run the model over X once: predictions, and for classifiers their scores and classes."""
    if task == "regression" or not hasattr(model, "classes_"):
        return Predictions(np.asarray(model.predict(X)))
    if _predicts_argmax_proba(model):
        proba = np.asarray(model.predict_proba(X), dtype=float)
        pred = np.asarray(model.classes_).take(proba.argmax(axis=1))
        return Predictions(pred, proba, None, model_classes(model))
    pred = np.asarray(model.predict(X))
    proba, decision = _scores(model, X)
    return Predictions(pred, proba, decision, model_classes(model))


def label_codes(p: Predictions, y: pd.Series) -> tuple[list, np.ndarray, np.ndarray]:
    """(labels, codes of y, codes of the predictions): the model's classes first, then labels
    seen only in these rows (in text order). scikit-learn's metrics on text labels sort and
    compare Python strings (200k rows: a tenth of a second per metric); on integer codes they
    take milliseconds, with the same results."""
    classes = list(p.classes) if p.classes is not None else []
    seen = {_plain(v) for v in pd.unique(y.to_numpy())} | {_plain(v) for v in pd.unique(p.pred)}
    labels = classes + sorted(seen - set(classes), key=str)
    dtype = pd.CategoricalDtype(labels)
    y_codes = pd.Categorical(y.to_numpy(), dtype=dtype).codes.astype(np.int64)
    pred_codes = pd.Categorical(p.pred, dtype=dtype).codes.astype(np.int64)
    return labels, y_codes, pred_codes
