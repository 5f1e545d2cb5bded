"""Failed expectations in a person's words: what was observed, against what was allowed."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml_assets.core.contract.suite import NUMERIC_TYPES, ROW_COUNT_EXPECTATIONS, jsonable

def fmt_value(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    if isinstance(value, (bool, np.bool_, int, np.integer)):
        return str(value)
    return repr(value)


def _pct(percent: Any) -> str:
    return f"{float(percent or 0):.1f}%"


def _allowed(mostly: Any) -> str:
    mostly = 1.0 if mostly is None else float(mostly)
    return "none" if mostly >= 1.0 else f"{(1.0 - mostly) * 100:.1f}%"


def summarise(
    kind: str, column: str | None, kwargs: dict, result: dict, frame: pd.DataFrame, target: str
) -> str:
    label = f"target '{column}'" if column is not None and column == target else str(column)
    sample = result.get("partial_unexpected_list") or []
    distinct = list(dict.fromkeys(jsonable(sample)))[:3]
    examples = ", ".join(fmt_value(v) for v in distinct)
    percent = result.get("unexpected_percent")
    mostly = kwargs.get("mostly")
    if kind in ROW_COUNT_EXPECTATIONS:
        rows = result.get("observed_value")
        bounds = []
        if kwargs.get("min_value") is not None:
            bounds.append(f"at least {kwargs['min_value']}")
        if kwargs.get("max_value") is not None:
            bounds.append(f"at most {kwargs['max_value']}")
        if kwargs.get("value") is not None:
            bounds.append(f"exactly {kwargs['value']}")
        noun = "row" if rows == 1 else "rows"
        return f"the table has {rows} {noun}; expected {' and '.join(bounds) or 'another count'}"
    if kind == "expect_column_values_to_be_between":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        if low is not None and high is not None:
            where = f"outside [{fmt_value(low)}, {fmt_value(high)}]"
        elif low is not None:
            where = f"below {fmt_value(low)}"
        else:
            where = f"above {fmt_value(high)}"
        text = f"{label}: {_pct(percent)} of values {where} (allowed: {_allowed(mostly)})"
        return text + (f", e.g. {examples}" if examples else "")
    if kind == "expect_column_values_to_not_be_null":
        what = "labels" if column == target else "values"
        return f"{label}: {_pct(percent)} of {what} are missing (allowed: {_allowed(mostly)})"
    if kind == "expect_column_values_to_be_in_type_list":
        numeric = set(kwargs.get("type_list") or []) <= set(NUMERIC_TYPES)
        wanted = "numbers" if numeric else f"values of type {kwargs.get('type_list')}"
        if "partial_unexpected_list" in result:
            text = (
                f"{label}: {_pct(percent)} of values are not {wanted} (the column is read as text)"
            )
            return text + (f", e.g. {examples}" if examples else "")
        return f"{label}: expected {wanted}, found a column of dtype {result.get('observed_value')}"
    if kind == "expect_column_values_to_be_in_set" and column in frame.columns:
        series = frame[column]
        value_set = set(kwargs.get("value_set") or [])
        outside = series[series.notna() & ~series.isin(value_set)]
        counts = outside.astype(object).value_counts()
        values = [jsonable(v) for v in counts.index[:5]]
        count = int(result.get("unexpected_count") or len(outside))
        more = f" and {len(counts) - 5} more" if len(counts) > 5 else ""
        return (
            f"{label}: unexpected values {values}{more} in {count} rows "
            f"({_pct(percent)}; allowed: {_allowed(mostly)})"
        )
    observed = result.get("observed_value", percent)
    where = label if column is not None else "table"
    return f"{where}: {kind} failed (observed: {fmt_value(observed) if observed is not None else 'n/a'})"


def observed(result: dict) -> Any:
    if "observed_value" in result:
        return jsonable(result["observed_value"])
    keys = (
        "element_count",
        "missing_count",
        "unexpected_count",
        "unexpected_percent",
        "partial_unexpected_list",
    )
    return jsonable({k: result[k] for k in keys if k in result})

