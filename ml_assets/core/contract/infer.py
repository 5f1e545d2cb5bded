"""Inferring the contract from the first accepted data version (see the package docstring)."""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any

import numpy as np
import pandas as pd

from ml_assets.config import ContractSettings, PipelineSettings
from ml_assets.core.columns import ColumnRoles
from ml_assets.core.contract.suite import (
    CONTRACT_FORMAT,
    CRITICAL,
    META_KEY,
    NUMERIC_TYPES,
    WARNING,
    as_text,
    build_expectation,
    canonical,
    gx_module,
)

def _round_bound(value: float, observed: float, down: bool) -> float:
    """`value` to 6 significant digits so the file reads well, never cutting off `observed`."""
    if value == 0 or not math.isfinite(value):
        return float(value)
    quantum = Decimal(1).scaleb(math.floor(math.log10(abs(value))) - 5)
    nearest = float(Decimal(value).quantize(quantum, rounding=ROUND_HALF_EVEN))
    if (nearest <= observed) if down else (nearest >= observed):
        return nearest
    rounding = ROUND_FLOOR if down else ROUND_CEILING
    return float(Decimal(value).quantize(quantum, rounding=rounding))


def _numbers(series: pd.Series) -> np.ndarray:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return values[np.isfinite(values)]


def _range_expectation(
    column: str, series: pd.Series, tolerance: float, mostly: float, role: str
) -> dict | None:
    values = _numbers(series)
    if values.size == 0:
        return None
    low, high = float(values.min()), float(values.max())
    span = high - low
    pad = tolerance * (span if span > 0 else max(1.0, abs(low)))
    min_value = _round_bound(low - pad, low, down=True)
    max_value = _round_bound(high + pad, high, down=False)
    if pd.api.types.is_integer_dtype(series.dtype):
        min_value, max_value = math.floor(min_value), math.ceil(max_value)
    return _expectation(
        "expect_column_values_to_be_between",
        {"column": column, "min_value": min_value, "max_value": max_value, "mostly": mostly},
        f"{role}: observed range [{low:.6g}, {high:.6g}] in the first accepted version, "
        f"widened by range_tolerance={tolerance} x "
        + ("the span" if span > 0 else "max(1, |value|) (a constant column)")
        + f" on each side; more than {1 - mostly:.1%} of values outside is a change "
        "(reported, not blocking)",
        WARNING,
    )


def _breakage_range_expectation(
    column: str, series: pd.Series, settings: ContractSettings, role: str
) -> dict | None:
    """Values wrong by orders of magnitude, or negative where none was: a units slip, a sign.

    One version's range is a sample, so leaving it is change; the bound here is a multiple
    of the largest magnitude seen, which plausible drift does not reach.
    """
    values = _numbers(series)
    if values.size == 0:
        return None
    low, high = float(values.min()), float(values.max())
    largest = max(abs(low), abs(high)) or 1.0
    bound = settings.breakage_magnitude * largest
    bound = _round_bound(bound, bound, down=False)
    if pd.api.types.is_integer_dtype(series.dtype):
        bound = math.ceil(bound)
    no_negatives = settings.breakage_negative and low >= 0
    mostly = settings.breakage_mostly
    return _expectation(
        "expect_column_values_to_be_between",
        {
            "column": column,
            "min_value": 0 if no_negatives else -bound,
            "max_value": bound,
            "mostly": mostly,
        },
        f"{role}: largest magnitude {largest:.6g} in the first accepted version "
        f"(range [{low:.6g}, {high:.6g}]); beyond breakage_magnitude="
        f"{settings.breakage_magnitude:g} x that"
        + (", or negative (no negative value was seen)" if no_negatives else "")
        + f", is breakage: more than {1 - mostly:.1%} of values there blocks the version",
        CRITICAL,
    )


def _null_expectation(column: str, null_share: float, tolerance: float, role: str) -> dict | None:
    allowed = min(1.0, null_share + tolerance)
    mostly = round(1.0 - allowed, 6)
    if mostly <= 0:
        return None
    return _expectation(
        "expect_column_values_to_not_be_null",
        {"column": column, "mostly": mostly},
        f"{role}: {null_share:.1%} missing in the first accepted version; more than "
        f"{allowed:.1%} missing is a change (null_share_tolerance={tolerance}; reported, not "
        "blocking)",
        WARNING,
    )


def _breakage_null_expectation(
    column: str, null_share: float, settings: ContractSettings, role: str
) -> dict | None:
    """A column that was not mostly empty and now is: an export or a join that broke."""
    line = settings.breakage_null_share
    if null_share >= line:
        return None
    # Never tighter than the change line: what blocks has always moved more than a change.
    allowed = max(line, min(1.0, null_share + settings.null_share_tolerance))
    mostly = round(1.0 - allowed, 6)
    if mostly <= 0:
        return None
    return _expectation(
        "expect_column_values_to_not_be_null",
        {"column": column, "mostly": mostly},
        f"{role}: {null_share:.1%} missing in the first accepted version, below "
        f"breakage_null_share={line:g}; more than {allowed:.1%} missing is breakage and blocks "
        "the version",
        CRITICAL,
    )


def _expectation(kind: str, kwargs: dict, why: str, severity: str = CRITICAL) -> dict:
    """One expectation; severity "critical" is breakage (blocks), "warning" change."""
    return {"type": kind, "kwargs": kwargs, "meta": {"why": why}, "severity": severity}


def _dtype_kind(dtype: Any) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype):
        return "text"
    return "other"


def build_contract(df: pd.DataFrame, settings: PipelineSettings, roles: ColumnRoles) -> dict:
    """The GX suite (JSON form) inferred from `df`, the first accepted data version."""
    gx = gx_module()
    c = settings.contract
    target = roles.target
    null_shares = {str(col): round(float(df[col].isna().mean()), 6) for col in df.columns}
    exps: list[dict] = [
        _expectation(
            "expect_table_row_count_to_be_between",
            {"min_value": c.min_rows},
            f"contract.min_rows: fewer than {c.min_rows} rows is too little to train and "
            "evaluate a model",
        )
    ]
    for column in roles.numeric:
        series = df[column]
        role = "numeric feature"
        exps.append(
            _expectation("expect_column_to_exist", {"column": column}, f"{role} used by the model")
        )
        exps.append(
            _expectation(
                "expect_column_values_to_be_in_type_list",
                {"column": column, "type_list": NUMERIC_TYPES},
                f"{role} (dtype {series.dtype} in the first accepted version): values must be "
                "numbers",
            )
        )
        exps.append(_breakage_null_expectation(column, null_shares[column], c, role))
        exps.append(_null_expectation(column, null_shares[column], c.null_share_tolerance, role))
        exps.append(_breakage_range_expectation(column, series, c, role))
        exps.append(_range_expectation(column, series, c.range_tolerance, c.range_mostly, role))
    for column in roles.categorical:
        series = df[column]
        role = "categorical feature"
        categories = sorted(as_text(series).cat.categories)
        checked = 0 < len(categories) <= c.max_categories
        exps.append(
            _expectation(
                "expect_column_to_exist",
                {"column": column},
                f"{role} used by the model"
                + (
                    ""
                    if checked or not categories
                    else f" ({len(categories)} distinct values, more than "
                    f"max_categories={c.max_categories}: categories not checked)"
                ),
            )
        )
        exps.append(_breakage_null_expectation(column, null_shares[column], c, role))
        exps.append(_null_expectation(column, null_shares[column], c.null_share_tolerance, role))
        if checked:
            exps.append(
                _expectation(
                    "expect_column_values_to_be_in_set",
                    {"column": column, "value_set": categories, "mostly": c.category_mostly},
                    f"{role}: the {len(categories)} categories of the first accepted version, "
                    f"compared as text; more than {1 - c.category_mostly:.1%} of values new is "
                    "a change (reported, not blocking)",
                    WARNING,
                )
            )
    series = df[target]
    exps.append(
        _expectation("expect_column_to_exist", {"column": target}, "the target (label) column")
    )
    label_mostly = round(1.0 - c.max_missing_label_share, 6)
    if label_mostly > 0:
        exps.append(
            _expectation(
                "expect_column_values_to_not_be_null",
                {"column": target, "mostly": label_mostly},
                f"target: up to {c.max_missing_label_share:.1%} of rows may lack a label "
                "(contract.max_missing_label_share)",
            )
        )
    if settings.task == "classification":
        classes = sorted(as_text(series).cat.categories)
        if classes:
            exps.append(
                _expectation(
                    "expect_column_values_to_be_in_set",
                    {"column": target, "value_set": classes},
                    f"target: the {len(classes)} classes of the first accepted version, "
                    "compared as text; a class the model never saw blocks the version",
                )
            )
    else:
        exps.append(
            _expectation(
                "expect_column_values_to_be_in_type_list",
                {"column": target, "type_list": NUMERIC_TYPES},
                "target of a regression: values must be numbers",
            )
        )
        exps.append(_breakage_range_expectation(target, series, c, "target"))
        exps.append(_range_expectation(target, series, c.range_tolerance, c.range_mostly, "target"))

    meta = {
        META_KEY: {
            "format": CONTRACT_FORMAT,
            "about": (
                f"Data contract of pipeline {settings.name!r}, inferred from the first accepted "
                "data version and evaluated on every version. Review and edit the expectations "
                "freely (any Great Expectations 1.x expectation works); categorical columns and "
                "a classification target are compared as text. A failed expectation of "
                "severity 'critical' is breakage and blocks the version; one of severity "
                "'warning' is a change, reported without blocking."
            ),
            "task": settings.task,
            "target": target,
            "roles": roles.to_dict(),
            "columns": {
                str(col): {
                    "dtype": str(df[col].dtype),
                    "kind": _dtype_kind(df[col].dtype),
                    "null_share": null_shares[str(col)],
                }
                for col in sorted(df.columns, key=str)
            },
            "rows": len(df),
            "inferred_from": None,
            "settings": c.model_dump(),
        }
    }
    suite = gx.ExpectationSuite(
        name=settings.name,
        expectations=[build_expectation(e) for e in exps if e is not None],
        meta=meta,
    )
    return canonical(suite.to_json_dict())

