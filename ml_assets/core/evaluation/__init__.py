"""Held-out evaluation: metrics, a no-skill baseline, plots, the quality gate and promotion.

Plain functions over a fitted scikit-learn estimator and a DataFrame; everything returned is
JSON-able (plots are PNG bytes). sklearn.metrics and matplotlib are imported inside the
functions that use them, so importing this package (and the code location) stays fast.

- predictions: the one pass of a model over the rows (`predict`, `Predictions`), `labelled`;
- metrics: `score`, `score_predictions`, `baseline_scores`, `confusion`;
- plotting: the PNGs (`plots`, `plot_predictions`);
- gate: `quality_gate` and its `GateResult`;
- paired: `compare_paired` (the champion comparison with its interval, `PairedComparison`) and
  `metric_intervals` (bootstrap intervals of one model's metrics);
- promotion: `decide_promotion` and the wording of its `PromotionDecision`.
"""

from __future__ import annotations

from ml_assets.core.evaluation.gate import GateResult, quality_gate
from ml_assets.core.evaluation.metrics import (
    baseline_scores,
    confusion,
    confusion_predictions,
    score,
    score_predictions,
)
from ml_assets.core.evaluation.plotting import (
    MAX_SCATTER_POINTS,
    PLOT_DPI,
    PLOT_SIZE,
    plot_predictions,
    plots,
)
from ml_assets.core.evaluation.paired import PairedComparison, compare_paired, metric_intervals
from ml_assets.core.evaluation.predictions import (
    ARGMAX_PROBA_CLASSIFIERS,
    Predictions,
    labelled,
    predict,
)
from ml_assets.core.evaluation.promotion import PromotionDecision, decide_promotion

__all__ = [
    "ARGMAX_PROBA_CLASSIFIERS",
    "MAX_SCATTER_POINTS",
    "PLOT_DPI",
    "PLOT_SIZE",
    "GateResult",
    "PairedComparison",
    "Predictions",
    "PromotionDecision",
    "baseline_scores",
    "compare_paired",
    "confusion",
    "confusion_predictions",
    "decide_promotion",
    "labelled",
    "metric_intervals",
    "plot_predictions",
    "plots",
    "predict",
    "quality_gate",
    "score",
    "score_predictions",
]
