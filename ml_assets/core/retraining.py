"""When to retrain: feature drift, performance decay of the champion, or no champion yet.

The performance trigger catches what feature drift cannot: when labels stop following the
features (concept drift), the columns look the same but the champion's score on the new
labelled rows falls. It falls "too far" when it is below the floor, or when it dropped by more
than `retrain.decay_margin` from the champion's own held-out evaluation.
"""

from __future__ import annotations

from ml_assets.config import PipelineSettings

BOOTSTRAP, DRIFT, DECAY = "no_champion", "drift", "decay"


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


def retrain_triggers(has_champion: bool, dataset_drift: bool, decay: dict | None) -> list[str]:
    if not has_champion:
        return [BOOTSTRAP]
    triggers = []
    if dataset_drift:
        triggers.append(DRIFT)
    if decay and decay.get("decayed"):
        triggers.append(DECAY)
    return triggers
