"""The primary metric on slices of the held-out rows (one slice per value of a feature column,
numeric columns cut into quantile bins), the challenger beside the champion, and the slices on
which the challenger is worse by more than `slices.max_drop`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml_assets.core.evaluation.gate import format_metric
from ml_assets.core.evaluation.metrics import score_predictions
from ml_assets.core.evaluation.predictions import Predictions

MISSING_SLICE = "(missing)"
OTHER_SLICE = "(other)"
# Float noise in a difference must not turn "worse by exactly max_drop" into a failure.
_EPSILON = 1e-12


@dataclass(frozen=True)
class Slice:
    """One slice of a column: its label and the mask of its rows."""

    label: str
    mask: np.ndarray

    @property
    def rows(self) -> int:
        return int(self.mask.sum())


def _number(value: float, digits: int) -> str:
    """A bin edge with `digits` significant digits, never in exponent notation."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return np.format_float_positional(value, precision=digits, unique=True, fractional=False,
                                      trim="-")


def _edge_labels(edges: np.ndarray) -> list[str]:
    """Edges printed with as few digits as keep distinct edges distinct."""
    for digits in (3, 4, 5, 6, 8, 10, 12, 17):
        shown = [_number(e, digits) for e in edges]
        if len(set(shown)) == len(shown):
            return shown
    return [repr(float(e)) for e in edges]


def _is_binned(values: pd.Series, bins: int) -> bool:
    """Numeric (not boolean) columns with more distinct values than bins are cut into bins."""
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    return numeric and values.nunique(dropna=True) > bins


def _quantile_slices(values: pd.Series, bins: int) -> list[Slice]:
    """`bins` quantile bins of these rows, labelled "[low, high)" (the last one "[low, high]").
    Edges that coincide (many equal values) merge their bins, so there may be fewer."""
    present = values.notna().to_numpy()
    numbers = values.to_numpy(dtype=float, na_value=np.nan)
    edges = np.unique(np.quantile(numbers[present], np.linspace(0, 1, bins + 1)))
    shown = _edge_labels(edges)
    # side="right": a value equal to an inner edge starts the next bin, as "[low, high)" says.
    index = np.searchsorted(edges[1:-1], numbers, side="right")
    slices = []
    for i in range(len(edges) - 1):
        closing = "]" if i == len(edges) - 2 else ")"
        label = f"[{shown[i]}, {shown[i + 1]}{closing}"
        slices.append(Slice(label, present & (index == i)))
    return slices


def _value_label(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a few-valued float column: "2", not "2.0"
    return str(value)


def _sort_key(value: Any) -> tuple:
    """Numbers in numeric order before text in text order (a column may mix them)."""
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _value_slices(values: pd.Series) -> list[Slice]:
    """One slice per distinct value present, in sorted order."""
    present = values.notna().to_numpy()
    codes, uniques = pd.factorize(values, sort=False)
    order = sorted(range(len(uniques)), key=lambda i: _sort_key(uniques[i]))
    slices = []
    for i in order:
        mask = codes == i
        if mask.any():
            slices.append(Slice(_value_label(uniques[i]), mask & present))
    return slices


def column_slices(values: pd.Series, *, bins: int, min_rows: int) -> list[Slice]:
    """The slices of one column: values or quantile bins, then "(missing)", then "(other)"
    (every slice with fewer than min_rows rows, grouped)."""
    values = pd.Series(values).reset_index(drop=True)
    slices = _quantile_slices(values, bins) if _is_binned(values, bins) else _value_slices(values)
    missing = values.isna().to_numpy()
    if missing.any():
        slices.append(Slice(MISSING_SLICE, missing))
    kept = [s for s in slices if s.rows >= min_rows]
    small = [s for s in slices if 0 < s.rows < min_rows]
    if small:
        kept.append(Slice(OTHER_SLICE, np.logical_or.reduce([s.mask for s in small])))
    return kept


def _metric_on(p: Predictions | None, y: pd.Series, mask: np.ndarray, task: str,
               positive_label: Any, metric: str) -> float | None:
    """The metric on the rows of a slice; None where it is undefined (one class present)."""
    if p is None:
        return None
    value = score_predictions(p.rows(mask), y[mask].reset_index(drop=True), task,
                              positive_label).get(metric)
    return None if value is None or not math.isfinite(value) else float(value)


def _failure(column: str, row: dict, metric: str, worse_by: float, max_drop: float) -> str:
    return (
        f"slice {column} = {row['slice']} ({row['rows']} rows): {metric} "
        f"{format_metric(row['challenger'])} vs champion {format_metric(row['champion'])}, "
        f"worse by {format_metric(worse_by)} (more than slices.max_drop {max_drop:g})"
    )


def _check_aligned(columns: dict[str, pd.Series], y: pd.Series, challenger: Predictions,
                   champion: Predictions | None) -> None:
    n = len(y)
    if len(challenger.pred) != n:
        raise ValueError(f"slices: the challenger's predictions have {len(challenger.pred)} "
                         f"rows, the held-out labels {n}")
    if champion is not None and len(champion.pred) != n:
        raise ValueError(f"slices: the champion's predictions have {len(champion.pred)} rows, "
                         f"the held-out labels {n}")
    for column, values in columns.items():
        if len(values) != n:
            raise ValueError(f"slices.columns: column {column!r} has {len(values)} held-out "
                             f"values, the held-out labels {n}")


def slice_table(
    columns: dict[str, pd.Series],
    y: pd.Series,
    challenger: Predictions,
    champion: Predictions | None,
    *,
    task: str,
    positive_label: Any,
    metric: str,
    direction: int,
    min_rows: int,
    bins: int,
    max_drop: float | None,
) -> dict:
    """The primary metric of the challenger (and champion) on each slice of each column.

    `columns`, `y` and both predictions are aligned row for row. A slice decides (can refuse
    promotion) when there is a champion, max_drop is set, the slice has min_rows rows and the
    metric is defined for both models; it fails when the challenger is worse than the champion
    by more than max_drop in the metric's direction (+1 higher is better, -1 lower is better).
    """
    y = pd.Series(y).reset_index(drop=True)
    _check_aligned(columns, y, challenger, champion)
    # plain Python numbers: the report is stored as JSON and shown as metadata
    min_rows, bins = int(min_rows), int(bins)
    max_drop = None if max_drop is None else float(max_drop)
    rows: list[dict] = []
    failures: list[str] = []
    for column, values in columns.items():
        for piece in column_slices(values, bins=bins, min_rows=min_rows):
            mine = _metric_on(challenger, y, piece.mask, task, positive_label, metric)
            theirs = _metric_on(champion, y, piece.mask, task, positive_label, metric)
            difference = None if mine is None or theirs is None else mine - theirs
            decides = (champion is not None and max_drop is not None and piece.rows >= min_rows
                       and difference is not None)
            row = {"column": column, "slice": piece.label, "rows": piece.rows,
                   "challenger": mine, "champion": theirs, "difference": difference,
                   "decides": decides}
            rows.append(row)
            if decides:
                worse_by = -direction * difference
                if worse_by > max_drop + _EPSILON:
                    failures.append(_failure(column, row, metric, worse_by, max_drop))
    return {"metric": metric, "min_rows": min_rows, "max_drop": max_drop, "rows": rows,
            "failures": failures}


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _signed(value: float | None) -> str:
    if value is None:
        return "n/a"
    return ("+" if value > 0 else "") + format_metric(value)


def slice_markdown(report_slices: dict | None) -> str:
    """The slice table as markdown (Dagster metadata), its failures listed below it."""
    if not report_slices or not report_slices.get("rows"):
        return "No slices: `slices.columns` names no column."
    metric = report_slices.get("metric", "metric")
    max_drop = report_slices.get("max_drop")
    lines = [
        f"| column | slice | rows | challenger {metric} | champion {metric} | difference "
        "| decides |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in report_slices["rows"]:
        lines.append(
            f"| {_cell(str(row['column']))} | {_cell(str(row['slice']))} | {row['rows']} "
            f"| {format_metric(row.get('challenger'))} | {format_metric(row.get('champion'))} "
            f"| {_signed(row.get('difference'))} | {'yes' if row.get('decides') else 'no'} |"
        )
    lines.append("")
    lines.append(
        f"Slices with fewer than {report_slices.get('min_rows')} rows are grouped into "
        f"{OTHER_SLICE}; "
        + ("slices report only (slices.max_drop is null)." if max_drop is None else
           f"a deciding slice fails when the challenger is worse by more than {max_drop:g}.")
    )
    failures = report_slices.get("failures") or []
    if failures:
        lines.append("")
        lines.append("Failures:")
        lines.extend(f"- {_cell(f)}" for f in failures)
    return "\n".join(lines)
