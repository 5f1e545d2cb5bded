"""Promotion: does the challenger replace the champion, and the reason in words (which rows
were compared, which gate or tolerance decided)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ml_assets.core.evaluation.gate import GateResult, format_metric, format_metric_pair

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ml_assets.config import PipelineSettings
    from ml_assets.core.evaluation.paired import PairedComparison
    from ml_assets.core.overlap import ComparisonRows


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
    paired: PairedComparison | None = None,
    slice_failures: Sequence[str] = (),
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

    `paired` is the paired comparison of the two models on those rows (ml_assets.core.
    evaluation.paired). With gates.promotion_confidence set it decides: promoted when, at that
    confidence, the challenger is not worse than the champion by more than the tolerance (the
    one-sided bound of the difference in the metric's better direction is >= -tolerance); too
    little evidence keeps the champion. With gates.promotion_confidence null, or without
    `paired`, the two metrics are compared as points. `slice_failures` (the slices on which
    the challenger is worse than the champion by more than slices.max_drop) refuse promotion.
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
        shown = f" with {metric} {format_metric(c_val)}" if c_val is not None else ""
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
                f"not promoted: challenger {metric} {format_metric(own)} on its own held-out "
                f"rows is more than {max_drop:.0%} worse than the champion's "
                f"{format_metric(champion_evaluated)} "
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
            f"score them), and the challenger with {metric} {format_metric(c_val)} "
            f"passed every gate.{detail}",
        )

    sc, sk = format_metric_pair(c_val, k_val)
    if slice_failures:
        return decision(
            False,
            f"not promoted: challenger {metric} {sc} vs champion {sk} on {rows}, but worse "
            f"than the champion on {len(slice_failures)} slice(s): {'; '.join(slice_failures)}; "
            f"the champion stays.{detail}",
        )
    if paired is not None and settings.gates.promotion_confidence is not None:
        return decision(*_paired_decision(paired, metric, sc, sk, rows, tol, detail))
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
            f"promotion tolerance {format_metric(tol)} (gates.promotion_tolerance): "
            f"promoted.{detail}",
        )
    op = "<" if direction > 0 else ">"
    tol_text = f" by more than the promotion tolerance {format_metric(tol)}" if tol else ""
    return decision(
        False,
        f"challenger {metric} {sc} {op} champion {sk} on {rows}{tol_text}: not promoted; "
        f"the champion stays.{detail}",
    )


def _paired_decision(paired: PairedComparison, metric: str, sc: str, sk: str, rows: str,
                     tol: float, detail: str) -> tuple[bool, str]:
    """Promote when, at the comparison's confidence, the challenger is not worse than the
    champion beyond the tolerance; too little evidence keeps the champion."""
    if not paired.decided:
        return False, (f"not promoted: challenger {metric} {sc} vs champion {sk} on {rows}, "
                       f"but there is {paired.summary} The champion stays.{detail}")
    confidence = f"{paired.confidence:.0%}"
    how = paired.method if paired.resamples is None else (
        f"{paired.method}, {paired.resamples} resamples, seed {paired.seed}")
    found = (f"challenger {metric} {sc} vs champion {sk} on {rows}: difference "
             f"{_signed(paired.difference)}, {confidence} interval "
             f"[{format_metric(paired.ci_low)}, {format_metric(paired.ci_high)}] ({how}; "
             f"{paired.verdict})")
    bound = paired.one_sided_bound
    at_most = (f"better by at least {format_metric(bound)}" if bound >= 0
               else f"worse by at most {format_metric(-bound)}")
    limit = f"the promotion tolerance {format_metric(tol)} (gates.promotion_tolerance)"
    if paired.not_worse():
        return True, (f"{found}; with {confidence} confidence the challenger is {at_most}, "
                      f"within {limit}: promoted.{detail}")
    return False, (f"{found}; with {confidence} confidence the challenger may be worse by "
                   f"{format_metric(-bound)}, more than {limit}: not promoted; the champion "
                   f"stays.{detail}")


def _signed(value: float | None) -> str:
    return ("+" if value is not None and value > 0 else "") + format_metric(value)


def _is_number(value: Any) -> bool:
    return value is not None and math.isfinite(float(value))


def _sentence(text: str) -> str:
    """'compared on ...' -> 'Compared on ....'"""
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
