"""The quality gate: held-out metrics against gates.min / gates.max and the no-skill baseline,
each failure in words that name the settings key; and how those words print numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ml_assets.config import PipelineSettings


def format_metric(value: float | None) -> str:
    """A metric or threshold as the gate's and promotion's reasons print it ("n/a": none)."""
    if value is None:
        return "n/a"
    if value != 0 and (abs(value) >= 10_000 or abs(value) < 0.001):
        return f"{value:.4g}"
    return f"{value:.3f}"


def format_threshold(value: float) -> str:
    """A gate's threshold as the user set it: as a metric is printed, unless that would round
    it (a floor of 0.9999 is not "1.000")."""
    shown = format_metric(value)
    return shown if float(shown) == float(value) else f"{float(value):g}"


def format_metric_pair(a: float, b: float) -> tuple[str, str]:
    """Format two values so that different numbers never print the same."""
    for digits in (3, 4, 5, 6, 8, 10, 12):
        sa, sb = f"{a:.{digits}f}", f"{b:.{digits}f}"
        if a == b or sa != sb:
            if digits == 3:
                return format_metric(a), format_metric(b)
            return sa, sb
    return repr(a), repr(b)


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
                f"only one class present), so the {kind} {format_threshold(threshold)} {where} "
                "cannot be checked"
            )
        else:
            value = float(value)
            ok = value >= threshold if op == ">=" else value <= threshold
            entry.update(value=value, passed=ok)
            if not ok:
                failures.append(
                    f"{name} {format_metric(value)} is {words} {format_threshold(threshold)} {where}"
                )
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
                f"beat the baseline's {format_metric(base)} (gates.beat_baseline)"
            )
        else:
            value, base = float(value), float(base)
            ok = value > base if direction > 0 else value < base
            entry.update(value=value, threshold=base, passed=ok)
            if not ok:
                sv, sb = format_metric_pair(value, base)
                better = "higher" if direction > 0 else "lower"
                failures.append(
                    f"{name} {sv} is no better than the baseline's {sb} (a model that ignores "
                    f"the features; {better} is better); gates.beat_baseline requires the model "
                    "to beat it"
                )
        checked[f"baseline.{name}"] = entry

    return GateResult(passed=not failures, failures=failures, checked=checked)
