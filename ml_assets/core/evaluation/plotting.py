"""PNG plots of held-out performance (confusion matrix, ROC and precision-recall curves;
residuals, predicted vs actual). matplotlib is imported inside the functions that draw."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd

from ml_assets.core.evaluation.metrics import confusion_predictions, score_predictions
from ml_assets.core.evaluation.predictions import (
    Predictions,
    labelled,
    positive_index,
    predict,
)

PLOT_SIZE = (5.0, 4.0)  # inches; at 100 dpi about 500 px wide, readable in the Dagster UI
PLOT_DPI = 100
MAX_SCATTER_POINTS = 5000  # regression plots subsample (deterministically) above this


def _figure():
    # A Figure that pyplot never sees: no global figure registry (nothing to leak or close,
    # safe in threads) and no GUI backend, whatever matplotlib.use() says elsewhere.
    from matplotlib.figure import Figure

    return Figure(figsize=PLOT_SIZE, dpi=PLOT_DPI)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=PLOT_DPI)
    fig.clear()
    return buf.getvalue()


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)


def _short(label: Any, width: int = 18) -> str:
    text = str(label)
    return text if len(text) <= width else text[: width - 1] + "…"


def _confusion_png(cm: dict) -> bytes:
    fig = _figure()
    ax = fig.add_subplot()
    labels, matrix = cm["labels"], np.asarray(cm["matrix"])
    ax.set_title("Confusion matrix (held-out rows)")
    if matrix.size == 0:
        _note(ax, "no held-out rows")
        return _png(fig)
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    n = len(labels)
    ticks = range(n)
    ax.set_xticks(
        ticks,
        [_short(lab) for lab in labels],
        rotation=45 if n > 3 else 0,
        ha="right" if n > 3 else "center",
    )
    ax.set_yticks(ticks, [_short(lab) for lab in labels])
    ax.set_xlabel("Predicted label")
    ax.set_ylabel("Actual label")
    if n <= 20:
        cut = matrix.max() / 2 if matrix.max() else 0
        size = 10 if n <= 6 else 7
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    str(matrix[i, j]),
                    ha="center",
                    va="center",
                    fontsize=size,
                    color="white" if matrix[i, j] > cut else "black",
                )
    return _png(fig)


def _curve_pngs(p: Predictions, y: pd.Series, positive_label: Any) -> tuple[bytes, bytes]:
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    classes = p.classes or []
    proba, decision = p.proba, p.decision
    y_true = y.to_numpy()
    curves: list[tuple[str, np.ndarray, np.ndarray]] = []  # (name, is_pos, score)
    if len(classes) == 2:
        pos_i = positive_index(classes, positive_label)
        if proba is not None:
            s = proba[:, pos_i]
        elif decision is not None:
            s = decision if pos_i == 1 else -decision
        else:
            s = None
        if s is not None:
            curves.append((str(classes[pos_i]), y_true == classes[pos_i], s))
    elif proba is not None:
        for i, c in enumerate(classes):
            curves.append((str(c), y_true == c, proba[:, i]))
    binary = len(classes) == 2

    roc_fig, pr_fig = _figure(), _figure()
    roc_ax, pr_ax = roc_fig.add_subplot(), pr_fig.add_subplot()
    suffix = f" (positive: {_short(curves[0][0])})" if binary and curves else " (one-vs-rest)"
    roc_ax.set_title("ROC curve" + suffix)
    pr_ax.set_title("Precision-recall curve" + suffix)
    drawn = 0
    for name, is_pos, s in curves:
        n_pos = int(is_pos.sum())
        if n_pos == 0 or n_pos == len(is_pos):
            continue  # a curve needs both positives and negatives
        fpr, tpr, _ = roc_curve(is_pos, s)
        prec, rec, _ = precision_recall_curve(is_pos, s, drop_intermediate=True)
        ap = average_precision_score(is_pos, s)
        label = "" if binary else f"{_short(name, 14)}: "
        roc_ax.plot(fpr, tpr, lw=1.5, label=f"{label}AUC = {auc(fpr, tpr):.3f}")
        pr_ax.step(rec, prec, where="post", lw=1.5, label=f"{label}AP = {ap:.3f}")
        if binary:
            pr_ax.axhline(
                n_pos / len(is_pos),
                color="grey",
                ls=":",
                lw=1,
                label=f"prevalence = {n_pos / len(is_pos):.3f}",
            )
        drawn += 1
    roc_ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="chance")
    roc_ax.set_xlabel("False positive rate")
    roc_ax.set_ylabel("True positive rate")
    pr_ax.set_xlabel("Recall")
    pr_ax.set_ylabel("Precision")
    for ax in (roc_ax, pr_ax):
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(
                loc="lower right" if ax is roc_ax else "lower left", fontsize=8 if drawn > 4 else 9
            )
        else:
            _note(
                ax,
                "undefined: the held-out labels hold one class only"
                if curves
                else "the model gives no scores",
            )
    return _png(roc_fig), _png(pr_fig)


def _sample(y_true: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(y_true) <= MAX_SCATTER_POINTS:
        return y_true, pred
    idx = np.random.default_rng(0).choice(len(y_true), MAX_SCATTER_POINTS, replace=False)
    return y_true[idx], pred[idx]


def _regression_pngs(p: Predictions, y: pd.Series) -> dict[str, bytes]:
    y_true = y.to_numpy(dtype=float)
    pred = np.asarray(p.pred, dtype=float)
    n = len(y_true)
    y_s, p_s = _sample(y_true, pred)
    shown = f" ({len(y_s)} of {n} rows)" if len(y_s) < n else f" ({n} rows)"
    alpha = 0.6 if len(y_s) <= 500 else 0.3

    res_fig = _figure()
    ax = res_fig.add_subplot()
    ax.scatter(p_s, y_s - p_s, s=10, alpha=alpha, edgecolors="none")
    ax.axhline(0, color="grey", ls="--", lw=1)
    ax.set_title("Residuals vs predicted" + shown)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("Residual (actual - predicted)")
    ax.grid(alpha=0.3)

    pva_fig = _figure()
    ax = pva_fig.add_subplot()
    ax.scatter(y_s, p_s, s=10, alpha=alpha, edgecolors="none", label="held-out rows")
    if n:
        lo = float(min(y_true.min(), pred.min()))
        hi = float(max(y_true.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], color="grey", ls="--", lw=1, label="perfect prediction")
        r2 = score_predictions(p, y, "regression").get("r2")
        if r2 is not None:
            ax.plot([], [], " ", label=f"R² = {r2:.3f}")
        ax.legend(loc="upper left", fontsize=9)
    ax.set_title("Predicted vs actual" + shown)
    ax.set_xlabel("Actual")
    ax.set_ylabel("Predicted")
    ax.grid(alpha=0.3)
    return {"residuals": _png(res_fig), "predicted_vs_actual": _png(pva_fig)}


def plots(
    model: Any, X: pd.DataFrame, y: pd.Series, task: str, positive_label: Any = None
) -> dict[str, bytes]:
    """PNG plots of held-out performance, about 500 x 400 px.

    classification: "confusion_matrix", "roc_curve", "pr_curve" (multiclass: one-vs-rest);
    regression: "residuals", "predicted_vs_actual".
    """
    X, y = labelled(X, y)
    return plot_predictions(predict(model, X, task), y, task, positive_label)


def plot_predictions(
    p: Predictions, y: pd.Series, task: str, positive_label: Any = None,
    confusion_matrix: dict | None = None,
) -> dict[str, bytes]:
    """plots() from predictions already made on labelled rows (and, if already computed,
    their confusion_predictions())."""
    y = pd.Series(y).reset_index(drop=True)
    if task == "regression":
        return _regression_pngs(p, y)
    roc, pr = _curve_pngs(p, y, positive_label)
    if confusion_matrix is None:
        confusion_matrix = confusion_predictions(p, y)
    return {
        "confusion_matrix": _confusion_png(confusion_matrix),
        "roc_curve": roc,
        "pr_curve": pr,
    }
