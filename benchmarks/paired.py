"""What the paired champion comparison costs: compare_paired (row weights, DeLong for binary
roc_auc) and metric_intervals at a large held-out size, and the same bootstrap done the obvious way (scikit-learn's
metric called on every resample) at a smaller one, with the ratio per resample-row.

    .venv/bin/python -m benchmarks.paired --rows 200000 --small 5000
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np
import pandas as pd

from ml_assets.core.evaluation import Predictions, score_predictions
from ml_assets.core.evaluation.paired import compare_paired, metric_intervals

CASES = [("classification", "roc_auc", 1), ("classification", "accuracy", 1),
         ("classification", "log_loss", -1), ("classification", "f1", 1),
         ("regression", "r2", 1), ("regression", "rmse", -1)]


def predictions(task: str, rows: int, seed: int) -> tuple[pd.Series, Predictions, Predictions]:
    """Labels and two models' predictions that differ a little (the challenger is less noisy)."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=rows)
    if task == "regression":
        y = pd.Series(signal * 3 + rng.normal(size=rows))
        return (y, Predictions(signal * 3 + rng.normal(scale=0.9, size=rows)),
                Predictions(signal * 3 + rng.normal(scale=1.0, size=rows)))
    y = pd.Series((signal + rng.normal(size=rows) > 0).astype(int))

    def model(noise: float) -> Predictions:
        p1 = 1 / (1 + np.exp(-(signal + rng.normal(scale=noise, size=rows))))
        proba = np.column_stack([1 - p1, p1])
        return Predictions((p1 > 0.5).astype(int), proba, None, [0, 1])

    return y, model(0.9), model(1.0)


def naive(y: pd.Series, new: Predictions, old: Predictions, task: str, metric: str,
          resamples: int, seed: int) -> np.ndarray:
    """The bootstrap done the obvious way: draw rows, call scikit-learn on each resample."""
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(resamples):
        idx = rng.integers(0, len(y), len(y))
        y_r = y.iloc[idx].reset_index(drop=True)
        pair = []
        for p in (new, old):
            drawn = Predictions(p.pred[idx], None if p.proba is None else p.proba[idx], None,
                                p.classes)
            pair.append(score_predictions(drawn, y_r, task).get(metric, np.nan))
        diffs.append(pair[0] - pair[1])
    return np.asarray(diffs)


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def compare(task: str, metric: str, direction: int, rows: int, resamples: int):
    """(seconds, PairedComparison) of compare_paired on generated predictions of `rows` rows
    (generating them is not timed)."""
    y, new, old = predictions(task, rows, 1)
    return timed(partial(compare_paired, y, new, old, task=task, positive_label=None,
                         metric=metric, direction=direction, confidence=0.95, tolerance=0.01,
                         resamples=resamples, seed=42))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.paired", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--small", type=int, default=5_000, help="rows for the naive bootstrap")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--naive-resamples", type=int, default=100,
                        help="resamples timed for the naive bootstrap (it is scaled up)")
    args = parser.parse_args(argv)

    print(f"{'metric':<10} {'method':<18} {args.rows:>9} rows  {args.small:>6} rows  "
          f"naive at {args.small} (per {args.resamples})  ratio")
    for task, metric, direction in CASES:
        big, result = compare(task, metric, direction, args.rows, args.resamples)
        small, _ = compare(task, metric, direction, args.small, args.resamples)
        y, new, old = predictions(task, args.small, 1)
        slow, _ = timed(partial(naive, y, new, old, task, metric, args.naive_resamples, 42))
        slow *= args.resamples / args.naive_resamples
        print(f"{metric:<10} {result.method:<18} {big:>8.2f}s  {small:>10.3f}s  "
              f"{slow:>24.2f}s  {slow / small:>6.0f}x")
    # the other bootstrap of the evaluation: every held-out metric of the challenger
    for task in ("classification", "regression"):
        y, new, _ = predictions(task, args.rows, 1)
        took, _ = timed(partial(metric_intervals, y, new, task=task, positive_label=None,
                                resamples=args.resamples, seed=42))
        print(f"metric_intervals, {task}, {args.rows} rows: {took:.2f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
