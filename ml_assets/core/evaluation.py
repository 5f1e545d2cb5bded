"""Held-out evaluation: metrics, a no-skill baseline, plots, the quality gate and promotion.

Plain functions over a fitted scikit-learn estimator and a DataFrame; everything returned is
JSON-able (plots are PNG bytes). sklearn.metrics and matplotlib are imported inside the
functions that use them, so importing this module (and the code location) stays fast.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ml_assets.config import PipelineSettings
    from ml_assets.core.overlap import ComparisonRows

PLOT_SIZE = (5.0, 4.0)  # inches; at 100 dpi about 500 px wide, readable in the Dagster UI
PLOT_DPI = 100
MAX_SCATTER_POINTS = 5000  # regression plots subsample (deterministically) above this


# --------------------------------------------------------------------------- helpers


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, so labels and metrics are JSON-able."""
    return value.item() if isinstance(value, np.generic) else value


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


def _classes(model: Any) -> list[Any]:
    return [_plain(c) for c in model.classes_]


def _positive_index(classes: list[Any], positive_label: Any) -> int:
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
        return Predictions(pred, proba, None, _classes(model))
    pred = np.asarray(model.predict(X))
    proba, decision = _scores(model, X)
    return Predictions(pred, proba, decision, _classes(model))


def _label_codes(p: Predictions, y: pd.Series) -> tuple[list, np.ndarray, np.ndarray]:
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


def _safe(fn, *args, **kwargs) -> float | None:
    """A metric, or None when it is undefined on these rows (sklearn warns or raises)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return float(fn(*args, **kwargs))
        except (ValueError, ZeroDivisionError, IndexError):
            return None


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value != 0 and (abs(value) >= 10_000 or abs(value) < 0.001):
        return f"{value:.4g}"
    return f"{value:.3f}"


def _fmt_pair(a: float, b: float) -> tuple[str, str]:
    """Format two values so that different numbers never print the same."""
    for digits in (3, 4, 5, 6, 8, 10, 12):
        sa, sb = f"{a:.{digits}f}", f"{b:.{digits}f}"
        if a == b or sa != sb:
            if digits == 3:
                return _fmt(a), _fmt(b)
            return sa, sb
    return repr(a), repr(b)


# --------------------------------------------------------------------------- metrics


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
    _, y_true, pred = _label_codes(p, y)
    class_codes = list(range(len(classes)))
    proba, decision = p.proba, p.decision
    out: dict[str, float | None] = {"accuracy": _safe(skm.accuracy_score, y_true, pred)}

    if len(classes) == 2:
        pos_i = _positive_index(classes, positive_label)
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
        classes = _classes(dummy)
        if len(classes) == 2:
            try:
                _positive_index(classes, positive_label)
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
    labels, y_codes, pred_codes = _label_codes(p, y)
    if len(y) == 0 or not labels:
        return {"labels": labels, "matrix": []}
    n = len(labels)
    matrix = np.bincount(y_codes * n + pred_codes, minlength=n * n).reshape(n, n)
    return {"labels": labels, "matrix": matrix.astype(int).tolist()}


# --------------------------------------------------------------------------- plots


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
        pos_i = _positive_index(classes, positive_label)
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


# --------------------------------------------------------------------------- the gate


@dataclass
class GateResult:
    passed: bool
    failures: list[str] = field(default_factory=list)
    # per check: {"value", "threshold", "op", "passed"} (+ "source": the settings key)
    checked: dict[str, dict] = field(default_factory=dict)

    def to_metadata(self) -> dict:
        return {
            "passed": self.passed,
            "failures": list(self.failures),
            "checked": {k: dict(v) for k, v in self.checked.items()},
        }


def quality_gate(
    metrics: dict, settings: PipelineSettings, baseline: dict | None = None
) -> GateResult:
    """Check held-out metrics against gates.min / gates.max and, optionally, the baseline."""
    failures: list[str] = []
    checked: dict[str, dict] = {}
    explicit_min = settings.gates.min is not None

    bounds = [
        (name, floor, ">=", "gates.min", "below the floor", explicit_min)
        for name, floor in sorted(settings.min_gates.items())
    ] + [
        (name, ceiling, "<=", "gates.max", "above the ceiling", True)
        for name, ceiling in sorted(settings.max_gates.items())
    ]
    for name, threshold, op, key, words, explicit in bounds:
        source = f"{key}.{name}"
        where = f"set in {source}" if explicit else f"(the default for {source})"
        kind = "floor" if op == ">=" else "ceiling"
        value = metrics.get(name)
        entry = {"value": value, "threshold": float(threshold), "op": op, "source": source}
        if value is None or not math.isfinite(float(value)):
            entry.update(value=None, passed=False)
            failures.append(
                f"{name} could not be computed on the held-out rows (undefined there, e.g. "
                f"only one class present), so the {kind} {_fmt(threshold)} {where} "
                "cannot be checked"
            )
        else:
            value = float(value)
            ok = value >= threshold if op == ">=" else value <= threshold
            entry.update(value=value, passed=ok)
            if not ok:
                failures.append(f"{name} {_fmt(value)} is {words} {_fmt(threshold)} {where}")
        checked[f"{key}.{name}"] = entry

    if settings.gates.beat_baseline and baseline is not None:
        name = settings.primary_metric
        direction = settings.metric_directions[name]
        op = ">" if direction > 0 else "<"
        value, base = metrics.get(name), baseline.get(name)
        entry = {"value": value, "threshold": base, "op": op, "source": "gates.beat_baseline"}
        if base is None:
            # the no-skill model has no value to beat (e.g. undefined on one row): nothing
            # to compare; the min/max gates still apply
            entry.update(passed=True, note="the baseline has no value for this metric")
        elif value is None:
            entry.update(passed=False)
            failures.append(
                f"{name} could not be computed on the held-out rows, so it cannot be shown to "
                f"beat the baseline's {_fmt(base)} (gates.beat_baseline)"
            )
        else:
            value, base = float(value), float(base)
            ok = value > base if direction > 0 else value < base
            entry.update(value=value, threshold=base, passed=ok)
            if not ok:
                sv, sb = _fmt_pair(value, base)
                better = "higher" if direction > 0 else "lower"
                failures.append(
                    f"{name} {sv} is no better than the baseline's {sb} (a model that ignores "
                    f"the features; {better} is better); gates.beat_baseline requires the model "
                    "to beat it"
                )
        checked[f"baseline.{name}"] = entry

    return GateResult(passed=not failures, failures=failures, checked=checked)


# --------------------------------------------------------------------------- promotion


@dataclass
class PromotionDecision:
    promote: bool
    reason: str
    challenger: float | None  # None only when the challenger has no value for the metric
    champion: float | None
    metric: str

    def to_metadata(self) -> dict:
        return asdict(self)


def decide_promotion(
    challenger: dict,
    champion: dict | None,
    gate: GateResult,
    settings: PipelineSettings,
    n_rows: int | None = None,
    champion_evaluated: float | None = None,
    comparison: ComparisonRows | None = None,
    challenger_evaluated: float | None = None,
) -> PromotionDecision:
    """Promote a challenger that passed every gate and is not worse than the champion.

    `champion` holds the champion's metrics on the same held-out rows as `challenger`, or None
    when there is no champion. Worse means worse than champion by more than
    gates.promotion_tolerance, in the metric's direction.

    `comparison` says which held-out rows those are (ml_assets.core.overlap: the challenger's
    held-out rows the champion was not trained on); the reason states how many were compared
    and how many excluded, and fewer than gates.min_comparison_rows is no comparison at all:
    the champion stays. Without it, `n_rows` is the number of rows compared.

    `champion_evaluated` is the champion's primary metric at its own evaluation. On rows whose
    labels are noisy both models score badly, and the comparison on the same rows becomes a
    coin toss; so a challenger must also stay within gates.max_drop_from_champion_evaluation
    (relative) of what the champion achieved, or it is registered but not promoted. The
    challenger's side of that is `challenger_evaluated`, its own metric on all its held-out
    rows (default: its metric in `challenger`).
    """
    metric = settings.primary_metric
    direction = settings.metric_directions[metric]
    tol = float(settings.gates.promotion_tolerance)
    c_val = challenger.get(metric)
    c_val = float(c_val) if c_val is not None and math.isfinite(float(c_val)) else None
    k_val = None if champion is None else champion.get(metric)
    k_val = float(k_val) if k_val is not None and math.isfinite(float(k_val)) else None
    if comparison is not None:
        n_rows = comparison.compared
    rows = f"the same {n_rows} held-out rows" if n_rows is not None else "the same held-out rows"
    # Which rows were compared and which left out, after every reason that compared them.
    detail = "" if comparison is None else f" {_sentence(comparison.summary())}"

    def decision(promote: bool, reason: str) -> PromotionDecision:
        return PromotionDecision(promote, reason, c_val, k_val, metric)

    if not gate.passed:
        stays = "the champion stays" if champion is not None else "there is still no champion"
        return decision(
            False,
            f"not promoted: the quality gate failed ({'; '.join(gate.failures)}); {stays}.",
        )
    if champion is None:
        shown = f" with {metric} {_fmt(c_val)}" if c_val is not None else ""
        return decision(
            True, f"promoted: no champion yet, and the challenger{shown} passed every gate."
        )
    # Judged on each model's own evaluation, whichever rows the two are compared on.
    max_drop = float(settings.gates.max_drop_from_champion_evaluation)
    own = c_val if challenger_evaluated is None else challenger_evaluated
    if _is_number(own) and _is_number(champion_evaluated):
        own = float(own)
        bar = (champion_evaluated * (1 - max_drop) if direction > 0
               else champion_evaluated * (1 + max_drop))
        if (own < bar) if direction > 0 else (own > bar):
            return decision(
                False,
                f"not promoted: challenger {metric} {_fmt(own)} on its own held-out rows is "
                f"more than {max_drop:.0%} worse than the champion's {_fmt(champion_evaluated)} "
                "at its evaluation (gates.max_drop_from_champion_evaluation): the new labels "
                "look noisier or less consistent; the champion stays.",
            )
    min_rows = int(settings.gates.min_comparison_rows)
    if comparison is not None and comparison.too_few(min_rows):
        return decision(
            False,
            f"not promoted: only {comparison.compared} held-out rows were not seen by the "
            f"champion in training (gates.min_comparison_rows is {min_rows}): too few to "
            f"compare; the champion stays. {_sentence(comparison.excluded_text())}",
        )
    if c_val is None:
        return decision(
            False,
            f"not promoted: the challenger's {metric} could not be computed "
            f"on {rows}, so it cannot be compared; the champion stays.{detail}",
        )
    if k_val is None:
        return decision(
            True,
            f"promoted: the champion has no {metric} on {rows} (it could not "
            f"score them), and the challenger with {metric} {_fmt(c_val)} "
            f"passed every gate.{detail}",
        )

    sc, sk = _fmt_pair(c_val, k_val)
    not_worse = c_val >= k_val if direction > 0 else c_val <= k_val
    if not_worse:
        op = ">=" if direction > 0 else "<="
        return decision(
            True, f"challenger {metric} {sc} {op} champion {sk} on {rows}: promoted.{detail}"
        )
    within = c_val >= k_val - tol if direction > 0 else c_val <= k_val + tol
    if within:
        return decision(
            True,
            f"challenger {metric} {sc} is worse than champion {sk} on {rows}, but within the "
            f"promotion tolerance {_fmt(tol)} (gates.promotion_tolerance): promoted.{detail}",
        )
    op = "<" if direction > 0 else ">"
    tol_text = f" by more than the promotion tolerance {_fmt(tol)}" if tol else ""
    return decision(
        False,
        f"challenger {metric} {sc} {op} champion {sk} on {rows}{tol_text}: not promoted; "
        f"the champion stays.{detail}",
    )


def _is_number(value: Any) -> bool:
    return value is not None and math.isfinite(float(value))


def _sentence(text: str) -> str:
    """'compared on ...' -> 'Compared on ....'"""
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
