"""When to retrain: no champion yet, dataset drift, change, or performance decay of the champion.

Dataset drift needs `drift.share` of the feature columns to drift: a market that moves prices,
tenure and one category moves three columns of twenty, and never gets there. The change
trigger catches it with two independent pieces of evidence on the same feature column: the data
contract reports values beyond what it has seen (the `data_changes` check), and the column's
distribution drifted from the champion's training rows. Either alone is not enough: a sample
can drift a little by chance, and a new regime the champion has already learnt keeps the
contract warning without drifting from the champion.

The performance trigger catches what feature drift cannot: when labels stop following the
features (concept drift), the columns look the same but the champion's score on the new
labelled rows falls. It falls "too far" when it is below the floor, or when it dropped by more
than `retrain.decay_margin` from the champion's own held-out evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence

from ml_assets.config import PipelineSettings

BOOTSTRAP, DRIFT, CHANGE, DECAY = "no_champion", "drift", "change", "decay"
MAX_NAMED = 8  # columns named in a notification


def performance_floor(settings: PipelineSettings) -> float | None:
    if settings.retrain.performance_floor is not None:
        return settings.retrain.performance_floor
    metric = settings.primary_metric
    return settings.min_gates.get(metric) if settings.metric_directions[metric] > 0 else settings.max_gates.get(metric)


def assess_decay(now: float | None, at_evaluation: float | None, settings: PipelineSettings) -> dict:
    """Did the champion's primary metric on this version fall below the floor or the margin?"""
    metric = settings.primary_metric
    direction = settings.metric_directions[metric]
    floor = performance_floor(settings)
    result = {"metric": metric, "on_this_version": now, "at_evaluation": at_evaluation,
              "floor": floor, "margin": settings.retrain.decay_margin, "decayed": False}
    if now is None:
        result["reason"] = f"{metric} of the champion could not be computed on this version"
        return result
    reasons = []
    if floor is not None and direction * (now - floor) < 0:
        reasons.append(f"{metric} {now:.3f} is past the floor {floor:.3f}")
    if at_evaluation is not None:
        drop = direction * (at_evaluation - now)
        result["drop"] = drop
        if drop > settings.retrain.decay_margin:
            reasons.append(
                f"{metric} fell from {at_evaluation:.3f} at its evaluation to {now:.3f} "
                f"(more than the margin {settings.retrain.decay_margin})"
            )
    result["decayed"] = bool(reasons)
    result["reason"] = "; ".join(reasons) if reasons else (
        f"champion {metric} {now:.3f} on this version, within the margin"
    )
    return result


def change_columns(report: dict) -> list[str]:
    """Feature columns of a drift report with both pieces of evidence: reported changed by the
    data contract, and drifted against the reference (the champion's training rows)."""
    return [
        m["column"] for m in report.get("moved", []) if m.get("drifted") and m.get("contract_change")
    ]


def retrain_triggers(
    has_champion: bool,
    dataset_drift: bool,
    decay: dict | None,
    change_columns: Sequence[str] = (),
) -> list[str]:
    """Why to retrain, in this order: no_champion (alone), drift, change, decay; [] for none."""
    if not has_champion:
        return [BOOTSTRAP]
    triggers = []
    if dataset_drift:
        triggers.append(DRIFT)
    if change_columns:
        triggers.append(CHANGE)
    if decay and decay.get("decayed"):
        triggers.append(DECAY)
    return triggers


def _names(columns: Sequence[str]) -> str:
    named = ", ".join(columns[:MAX_NAMED])
    return named + (f" and {len(columns) - MAX_NAMED} more" if len(columns) > MAX_NAMED else "")


def describe_triggers(
    triggers: Sequence[str],
    *,
    reference: str | None = None,
    change_columns: Sequence[str] = (),
    drifted_columns: Sequence[str] = (),
    share_drifted: float | None = None,
    share_threshold: float | None = None,
    decay_reason: str | None = None,
) -> str:
    """Why retraining was requested, in words: each trigger with the columns behind it.

    "change in monthly_charges, tenure (contract + drift against champion version 1)".
    """
    against = f" against {reference}" if reference else ""
    parts = []
    for trigger in triggers:
        if trigger == BOOTSTRAP:
            parts.append("no champion yet")
        elif trigger == DRIFT:
            share = ""
            if share_drifted is not None and share_threshold is not None:
                share = (f", {100 * share_drifted:.0f}% of the feature columns >= drift.share "
                         f"{100 * share_threshold:.0f}%")
            names = _names(list(drifted_columns)) or "the feature columns"
            parts.append(f"drift in {names} (dataset drift{against}{share})")
        elif trigger == CHANGE:
            parts.append(f"change in {_names(list(change_columns)) or 'some columns'}"
                         f" (contract + drift{against})")
        elif trigger == DECAY:
            parts.append(f"decay: {decay_reason or 'the champion scores worse on this version'}")
        else:
            parts.append(trigger)
    return "; ".join(parts)
