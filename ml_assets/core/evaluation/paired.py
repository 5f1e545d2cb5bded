"""Uncertainty of held-out metrics: the paired comparison of a challenger with the champion on
the same rows (bootstrap of the difference, or DeLong's test for binary roc_auc), and
bootstrap intervals of one model's metrics.

Bootstrap resamples are row weights (how often each row was drawn): every metric here is a
function of weighted sums over rows, so a thousand resamples are a few matrix products instead
of a thousand calls to scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml_assets.core.evaluation.gate import format_metric
from ml_assets.core.evaluation.metrics import score_predictions
from ml_assets.core.evaluation.predictions import Predictions, label_codes, positive_index

PAIRED_BOOTSTRAP = "paired bootstrap"
DELONG = "DeLong"
TOO_LITTLE_EVIDENCE = "too little evidence"
# More resamples than this share with the metric undefined (one class drawn): no verdict.
MAX_UNDEFINED_SHARE = 0.10
# Multiclass roc_auc ranks every row once per class and resample: on more rows than this the
# bootstrap runs on a seeded sample of them.
MAX_RANKED_ROWS = 20_000
# Resamples drawn at once hold at most this many row weights (64 MB) in memory. Each resample
# is drawn on its own, so how many are drawn at once never changes the numbers.
_CHUNK_WEIGHTS = 8_000_000
_SEED_SALT = 0x5EED


@dataclass
class PairedComparison:
    """The challenger against the champion on the same rows, in the metric's raw units."""

    metric: str
    method: str  # PAIRED_BOOTSTRAP | DELONG
    confidence: float
    tolerance: float
    difference: float | None  # challenger - champion
    ci_low: float | None  # two-sided interval of the difference at `confidence`
    ci_high: float | None
    n_rows: int
    resamples: int | None  # None for DeLong (closed form)
    seed: int
    verdict: str  # "better" | "worse" | "not different" | TOO_LITTLE_EVIDENCE
    summary: str
    # One-sided bound at `confidence` of the difference in the metric's better direction:
    # the challenger is not worse than the champion by more than -bound.
    one_sided_bound: float | None = None

    @property
    def decided(self) -> bool:
        return self.verdict != TOO_LITTLE_EVIDENCE

    def not_worse(self) -> bool:
        """Promotion's rule: at `confidence`, not worse than the champion beyond `tolerance`."""
        return self.one_sided_bound is not None and self.one_sided_bound >= -self.tolerance

    def to_metadata(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- per-row terms


def _clean(y: pd.Series) -> pd.Series:
    return pd.Series(y).reset_index(drop=True)


def _classification_terms(p: Predictions, y: pd.Series, positive_label: Any) -> dict:
    """What the classification metrics of one model are sums of: integer codes of the labels
    and predictions, scores of each class, and the per-row log loss."""
    classes = p.classes if p.classes is not None else []
    _, y_codes, pred_codes = label_codes(p, y)
    terms: dict[str, Any] = {"y": y_codes, "pred": pred_codes, "k": len(classes)}
    if len(classes) == 2:
        pos = positive_index(classes, positive_label)
        terms["pos"] = pos
        if p.proba is not None:
            terms["score"] = p.proba[:, pos]
        elif p.decision is not None:
            terms["score"] = p.decision if pos == 1 else -p.decision
    if p.proba is not None:
        terms["proba"] = p.proba
        if len(classes) and (y_codes < len(classes)).all():
            # scikit-learn's log_loss: probabilities clipped to [eps, 1 - eps]
            eps = np.finfo(p.proba.dtype).eps
            picked = np.clip(p.proba[np.arange(len(y_codes)), y_codes], eps, 1 - eps)
            terms["log_loss"] = -np.log(picked)
    return terms


def _ratio(num: np.ndarray, den: np.ndarray, empty: float = math.nan) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), empty)


class _Sums:
    """The per-row columns whose weighted sums the metrics are functions of. One matrix
    product per chunk of resamples gives every sum of every metric of both models; column 0 is
    the weight of the resample itself (its number of rows)."""

    def __init__(self, n: int):
        self.columns: list[np.ndarray] = [np.ones(n)]

    def add(self, column: np.ndarray) -> int:
        self.columns.append(np.asarray(column, dtype=float))
        return len(self.columns) - 1

    def matrix(self) -> np.ndarray:
        return np.column_stack(self.columns)


# finish(S, W): a metric's value per resample from the sums S = W @ columns (and W itself,
# for the rank metrics)
Finish = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _mean_of(sums: _Sums, column: np.ndarray) -> Finish:
    i = sums.add(column)
    return lambda S, W: S[:, i] / S[:, 0]


def _f1(sums: _Sums, t: dict) -> Finish:
    """f1 of the positive class (binary) or macro f1 over the classes present in the resample,
    zero where a class has no true or predicted row (zero_division=0)."""
    y, pred = t["y"], t["pred"]
    if t["k"] == 2:
        is_pos, said_pos = y == t["pos"], pred == t["pos"]
        tp, fp, fn = (sums.add(c) for c in (is_pos & said_pos, ~is_pos & said_pos,
                                            is_pos & ~said_pos))
        return lambda S, W: _ratio(2 * S[:, tp], 2 * S[:, tp] + S[:, fp] + S[:, fn], 0.0)
    labels = np.union1d(np.unique(y), np.unique(pred))
    per_class = [(sums.add((y == c) & (pred == c)), sums.add(y == c), sums.add(pred == c))
                 for c in labels]

    def macro(S: np.ndarray, W: np.ndarray) -> np.ndarray:
        tp = np.column_stack([S[:, i] for i, _, _ in per_class])
        seen = np.column_stack([S[:, j] + S[:, k] for _, j, k in per_class])
        present = seen > 0
        f1 = _ratio(2 * tp, seen, 0.0)
        return (f1 * present).sum(axis=1) / present.sum(axis=1)

    return macro


def _r2(sums: _Sums, y: np.ndarray, err: np.ndarray) -> Finish:
    sy, syy, sse = sums.add(y), sums.add(y**2), sums.add(err**2)

    def r2(S: np.ndarray, W: np.ndarray) -> np.ndarray:
        sst = S[:, syy] - S[:, sy] ** 2 / S[:, 0]
        # a resample of equal labels has no variance to explain: undefined
        defined = sst > 1e-12 * np.maximum(S[:, syy], 1)
        return np.where(defined, 1 - S[:, sse] / np.where(defined, sst, 1), math.nan)

    return r2


def _weighted_auc(W: np.ndarray, score: np.ndarray, is_pos: np.ndarray) -> np.ndarray:
    """roc_auc of `score` for `is_pos` under each row of weights W (ties count a half); nan
    where a resample holds one class only."""
    order = np.argsort(score, kind="stable")
    s = score[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # groups of tied scores
    w = W[:, order]
    pos_w = np.add.reduceat(w * is_pos[order], starts, axis=1)
    neg_w = np.add.reduceat(w * ~is_pos[order], starts, axis=1)
    below = np.cumsum(neg_w, axis=1) - neg_w
    num = (pos_w * (below + 0.5 * neg_w)).sum(axis=1)
    return _ratio(num, pos_w.sum(axis=1) * neg_w.sum(axis=1))


def _weighted_metric(metric: str, task: str, t: dict, sums: _Sums) -> Finish | None:
    """How one model's `metric` is computed from weighted sums of its per-row terms (which it
    adds to `sums`); None when the metric does not exist for this model (no scores, labels it
    never saw)."""
    if task == "regression":
        y, err = t["y"], t["pred"] - t["y"]
        if metric == "mae":
            return _mean_of(sums, np.abs(err))
        if metric == "rmse":
            mse = _mean_of(sums, err**2)
            return lambda S, W: np.sqrt(mse(S, W))
        return _r2(sums, y, err) if metric == "r2" else None
    if metric == "accuracy":
        return _mean_of(sums, t["y"] == t["pred"])
    if metric == "f1":
        return _f1(sums, t)
    if metric == "log_loss":
        return None if t.get("log_loss") is None else _mean_of(sums, t["log_loss"])
    if metric == "roc_auc":
        if t["k"] == 2:
            if "score" not in t:
                return None
            is_pos = t["y"] == t["pos"]
            return lambda S, W: _weighted_auc(W, t["score"], is_pos)
        if "proba" not in t:
            return None
        # macro one-vs-rest, undefined when a class is absent from the resample
        return lambda S, W: np.mean([_weighted_auc(W, t["proba"][:, k], t["y"] == k)
                                     for k in range(t["k"])], axis=0)
    return None


def _terms(p: Predictions, y: pd.Series, task: str, positive_label: Any) -> dict:
    if task == "regression":
        return {"y": y.to_numpy(dtype=float), "pred": np.asarray(p.pred, dtype=float)}
    return _classification_terms(p, y, positive_label)


# --------------------------------------------------------------------------- resampling


def _bootstrap(n: int, resamples: int, seed: int, sums: _Sums,
               finishes: list[Finish]) -> np.ndarray:
    """Each metric (`finishes`, reading `sums`) on `resamples` bootstrap resamples of n rows:
    an array of one row per resample, one column per metric. A resample is a row of weights
    W, how many times each row was drawn (n draws with replacement)."""
    rng = np.random.default_rng([seed, _SEED_SALT])
    columns = sums.matrix()
    out = []
    chunk = max(1, min(64, _CHUNK_WEIGHTS // max(n, 1)))
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        W = np.empty((size, n))
        for row in W:  # one bincount per resample stays in cache: twice as fast as one of all
            row[:] = np.bincount(rng.integers(0, n, size=n), minlength=n)
        S = W @ columns
        out.append(np.column_stack([finish(S, W) for finish in finishes]))
    return np.concatenate(out)


def _sample_rows(n: int, max_rows: int, seed: int) -> np.ndarray | None:
    """A seeded sample of max_rows row positions, in order; None when n fits."""
    if n <= max_rows:
        return None
    return np.sort(np.random.default_rng([seed, _SEED_SALT, 1]).choice(n, max_rows,
                                                                       replace=False))


def _needs_sample(metric: str, task: str, p: Predictions) -> bool:
    return (task == "classification" and metric == "roc_auc"
            and p.classes is not None and len(p.classes) > 2)


def _take(p: Predictions, y: pd.Series, keep: np.ndarray | None) -> tuple[Predictions, pd.Series]:
    if keep is None:
        return p, y
    mask = np.zeros(len(y), dtype=bool)
    mask[keep] = True
    return p.rows(mask), y[mask].reset_index(drop=True)


# --------------------------------------------------------------------------- DeLong


def _midranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x, method="average")


def _delong(scores: list[np.ndarray], is_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(AUCs, their covariance matrix) of several scorers on the same rows, by DeLong's method
    (the fast midrank form: one sort per scorer)."""
    scores_pos = [s[is_pos] for s in scores]
    scores_neg = [s[~is_pos] for s in scores]
    m, n = len(scores_pos[0]), len(scores_neg[0])
    v10, v01, aucs = [], [], []
    for sp, sn in zip(scores_pos, scores_neg, strict=True):
        all_ranks = _midranks(np.concatenate([sp, sn]))
        rank_pos, rank_neg = _midranks(sp), _midranks(sn)
        aucs.append((all_ranks[:m].sum() - m * (m + 1) / 2) / (m * n))
        v10.append((all_ranks[:m] - rank_pos) / n)
        v01.append(1 - (all_ranks[m:] - rank_neg) / m)
    cov = np.atleast_2d(np.cov(np.array(v10))) / m + np.atleast_2d(np.cov(np.array(v01))) / n
    return np.array(aucs), cov


def _normal_quantile(q: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(q))


# --------------------------------------------------------------------------- comparison


def _signed(value: float) -> str:
    return ("+" if value > 0 else "") + format_metric(value)


def _point(p: Predictions, y: pd.Series, task: str, positive_label: Any,
           metric: str) -> float | None:
    value = score_predictions(p, y, task, positive_label).get(metric)
    return None if value is None or not math.isfinite(value) else float(value)


def compare_paired(
    y: pd.Series,
    challenger: Predictions,
    champion: Predictions,
    *,
    task: str,
    positive_label: Any,
    metric: str,
    direction: int,
    confidence: float,
    tolerance: float,
    resamples: int,
    seed: int,
    min_rows: int = 30,
) -> PairedComparison:
    """Compare two models' `metric` on the same labelled rows (predictions aligned row for row).

    Binary roc_auc: DeLong's test (closed form). Otherwise a paired bootstrap: each resample
    draws rows once and scores both models on them; the interval is the percentile interval of
    the differences. Resamples where the metric is undefined are dropped; more than 10 % of
    them, fewer than `min_rows` rows, or a metric undefined on the rows themselves give the
    verdict "too little evidence". Otherwise "better"/"worse" (in the metric's direction) when
    the two-sided interval at `confidence` excludes 0, else "not different".
    """
    y = _clean(y)
    n = len(y)
    if len(challenger.pred) != n or len(champion.pred) != n:
        raise ValueError(f"paired comparison: {n} labels, but {len(challenger.pred)} challenger "
                         f"and {len(champion.pred)} champion predictions")
    confidence, tolerance = float(confidence), float(tolerance)
    mine = _point(challenger, y, task, positive_label, metric)
    theirs = _point(champion, y, task, positive_label, metric)
    difference = None if mine is None or theirs is None else mine - theirs
    binary_auc = (task == "classification" and metric == "roc_auc"
                  and challenger.classes is not None and len(challenger.classes) == 2
                  and list(challenger.classes) == list(champion.classes or []))
    method = DELONG if binary_auc else PAIRED_BOOTSTRAP
    base = dict(metric=metric, method=method, confidence=confidence, tolerance=tolerance,
                difference=difference, n_rows=n, seed=int(seed),
                resamples=None if binary_auc else int(resamples))

    def too_little(why: str) -> PairedComparison:
        return PairedComparison(**base, ci_low=None, ci_high=None, verdict=TOO_LITTLE_EVIDENCE,
                                summary=f"too little evidence to compare {metric} on {n} "
                                        f"rows: {why}.")

    if n < min_rows:
        return too_little(f"fewer than gates.min_comparison_rows ({min_rows})")
    if difference is None:
        which = "challenger" if mine is None else "champion"
        return too_little(f"the {which}'s {metric} is undefined on these rows")

    if binary_auc:
        interval = _delong_interval(challenger, champion, y, positive_label, direction,
                                    confidence)
    else:
        interval = _bootstrap_interval(challenger, champion, y, task=task,
                                       positive_label=positive_label, metric=metric,
                                       direction=direction, confidence=confidence,
                                       resamples=int(resamples), seed=int(seed))
    if isinstance(interval, str):
        return too_little(interval)
    low, high, bound, note = interval
    if low > 0 or high < 0:  # the interval excludes no difference
        verdict = "better" if direction * (1 if low > 0 else -1) > 0 else "worse"
    else:
        verdict = "not different"
    summary = (f"{metric} difference (challenger - champion) {_signed(difference)} on {n} rows, "
               f"{confidence:.0%} interval [{format_metric(low)}, {format_metric(high)}] by "
               f"{note}: {verdict}.")
    return PairedComparison(**base, ci_low=float(low), ci_high=float(high), verdict=verdict,
                            summary=summary, one_sided_bound=float(bound))


def _delong_interval(challenger: Predictions, champion: Predictions, y: pd.Series,
                     positive_label: Any, direction: int,
                     confidence: float) -> tuple[float, float, float, str] | str:
    """(low, high, one-sided bound, how) by DeLong's test, or why there is none."""
    t_new = _classification_terms(challenger, y, positive_label)
    t_old = _classification_terms(champion, y, positive_label)
    is_pos = t_new["y"] == t_new["pos"]
    if min(is_pos.sum(), (~is_pos).sum()) < 2:
        return "DeLong's test needs at least two rows of each class"
    aucs, cov = _delong([t_new["score"], t_old["score"]], is_pos)
    diff = float(aucs[0] - aucs[1])
    se = math.sqrt(max(float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]), 0.0))
    half = _normal_quantile((1 + confidence) / 2) * se
    bound = direction * diff - _normal_quantile(confidence) * se
    return diff - half, diff + half, bound, "DeLong's test"


def _bootstrap_interval(challenger: Predictions, champion: Predictions, y: pd.Series, *,
                        task: str, positive_label: Any, metric: str, direction: int,
                        confidence: float, resamples: int,
                        seed: int) -> tuple[float, float, float, str] | str:
    """(low, high, one-sided bound, how) of the paired bootstrap, or why there is none."""
    n = len(y)
    keep = _sample_rows(n, MAX_RANKED_ROWS, seed) if _needs_sample(metric, task,
                                                                    challenger) else None
    new, y_s = _take(challenger, y, keep)
    old, _ = _take(champion, y, keep)
    sums = _Sums(len(y_s))
    f_new = _weighted_metric(metric, task, _terms(new, y_s, task, positive_label), sums)
    f_old = _weighted_metric(metric, task, _terms(old, y_s, task, positive_label), sums)
    if f_new is None or f_old is None:
        return f"{metric} cannot be resampled for these models"
    both = _bootstrap(len(y_s), resamples, seed, sums, [f_new, f_old])
    diffs = both[:, 0] - both[:, 1]
    defined = diffs[np.isfinite(diffs)]
    dropped = resamples - len(defined)
    if dropped > MAX_UNDEFINED_SHARE * resamples:
        return (f"{metric} was undefined on {dropped} of {resamples} resamples "
                f"(more than {MAX_UNDEFINED_SHARE:.0%})")
    alpha = 1 - confidence
    low, high = np.quantile(defined, [alpha / 2, 1 - alpha / 2])
    bound = float(np.quantile(direction * defined, alpha))
    how = f"{PAIRED_BOOTSTRAP} of {resamples} resamples"
    if dropped:
        how += f" ({dropped} undefined, dropped)"
    if keep is not None:
        how += f" on a seeded sample of {len(keep)} of the {n} rows"
    return float(low), float(high), bound, how


def metric_intervals(
    y: pd.Series,
    predictions: Predictions,
    *,
    task: str,
    positive_label: Any,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, dict]:
    """{metric: {"value", "ci_low", "ci_high", "confidence"}}: bootstrap percentile intervals
    of each held-out metric of one model (bounds None where the metric was undefined on more
    than 10 % of the resamples). Binary roc_auc: DeLong's interval (normal, from its variance);
    multiclass roc_auc resamples a seeded sample of at most MAX_RANKED_ROWS rows."""
    y = _clean(y)
    values = score_predictions(predictions, y, task, positive_label) if len(y) else {}
    if not values:
        return {}
    alpha = 1 - float(confidence)
    bounds: dict[str, tuple[float, float] | None] = {}
    sums = _Sums(len(y))
    full = _terms(predictions, y, task, positive_label)
    finishes: dict[str, Finish] = {}
    for metric in values:
        if task == "classification" and metric == "roc_auc":
            bounds[metric] = _roc_auc_interval(predictions, y, full, confidence, resamples, seed)
            continue
        finish = _weighted_metric(metric, task, full, sums)
        if finish is not None:
            finishes[metric] = finish
    if finishes:
        draws = _bootstrap(len(y), resamples, seed, sums, list(finishes.values()))
        for metric, column in zip(finishes, draws.T, strict=True):
            bounds[metric] = _percentiles(column, alpha, resamples)
    out = {}
    for metric, value in values.items():
        low, high = bounds.get(metric) or (None, None)
        out[metric] = {"value": float(value), "ci_low": low, "ci_high": high,
                       "confidence": float(confidence)}
    return out


def _percentiles(draws: np.ndarray, alpha: float,
                 resamples: int) -> tuple[float, float] | None:
    defined = draws[np.isfinite(draws)]
    if len(defined) < (1 - MAX_UNDEFINED_SHARE) * resamples:
        return None
    low, high = np.quantile(defined, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def _roc_auc_interval(p: Predictions, y: pd.Series, terms: dict, confidence: float,
                      resamples: int, seed: int) -> tuple[float, float] | None:
    """Binary: DeLong's normal interval (ranking each resample of many rows costs seconds).
    Multiclass: the bootstrap on a seeded sample of at most MAX_RANKED_ROWS rows."""
    if terms["k"] == 2:
        if "score" not in terms:
            return None
        is_pos = terms["y"] == terms["pos"]
        if min(is_pos.sum(), (~is_pos).sum()) < 2:
            return None
        aucs, cov = _delong([terms["score"]], is_pos)
        half = _normal_quantile((1 + confidence) / 2) * math.sqrt(max(float(cov[0, 0]), 0.0))
        return max(float(aucs[0]) - half, 0.0), min(float(aucs[0]) + half, 1.0)
    p_s, y_s = _take(p, y, _sample_rows(len(y), MAX_RANKED_ROWS, seed))
    sums = _Sums(len(y_s))
    finish = _weighted_metric("roc_auc", "classification",
                              _terms(p_s, y_s, "classification", None), sums)
    if finish is None:
        return None
    draws = _bootstrap(len(y_s), resamples, seed, sums, [finish])[:, 0]
    return _percentiles(draws, 1 - confidence, resamples)
