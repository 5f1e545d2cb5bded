"""The data contract: a Great Expectations 1.x suite per pipeline, kept as a JSON file.

The suite is built once, from the pipeline file and the schema of the first accepted data
version, saved where users can review and edit it, and evaluated on every data version
(dagster-ge does not support GX 1.x; this module is the small bridge, with no Dagster import).

What the contract requires of a new version:

- at least `contract.min_rows` rows;
- every feature column (numeric and categorical) and the target is present. Id columns are
  not required, and extra columns are accepted: the model ignores both;
- numeric features hold numbers, are not much emptier than before, and stay (mostly) within
  the observed range widened by `range_tolerance` x the span on each side;
- categorical features are not much emptier than before and (mostly) keep to the observed
  categories (when there were at most `max_categories` of them);
- the target: at most `max_missing_label_share` missing; for classification no unseen class,
  for regression numbers within the widened range.

Categorical columns and a classification target are compared as text on both sides
(`True`, `1`, `1.0` and `"1"` are read the same way as when the contract was built), so a
column that pandas reads as bool in one file and as text in the next is not a false alarm.

Great Expectations is imported only inside the functions that use it (it costs seconds).
"""

from __future__ import annotations

import difflib
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml_assets.config import PipelineSettings
from ml_assets.core.columns import ColumnRoles

META_KEY = "ml_assets"
CONTRACT_FORMAT = 1
MAX_EXAMPLES = 5

# Dtype names GX's pandas engine understands; the nullable pandas dtypes go by class name and
# plain `int`/`float` accept Python numbers in an object column.
NUMERIC_TYPES = [
    *(f"int{b}" for b in (8, 16, 32, 64)),
    *(f"uint{b}" for b in (8, 16, 32, 64)),
    *(f"float{b}" for b in (16, 32, 64)),
    *(f"Int{b}Dtype" for b in (8, 16, 32, 64)),
    *(f"UInt{b}Dtype" for b in (8, 16, 32, 64)),
    "Float32Dtype",
    "Float64Dtype",
    "int",
    "float",
]

# GX's pandas engine copies the whole batch frame for every column-map expectation
# (`df[df[col].notnull()]`, then `df[unexpected]`), so one 1,000,000 x 20 batch took 15 s.
# Validating a few columns per batch keeps each copy small. Measured on 1,000,000 rows x 20
# columns (15 numeric, 4 categorical, a text target; 76 expectations), GX 1.24, pandas 2.3:
# 2.0 s when it passes, 2.3-2.9 s with a range, a null-share and a category failure; a numeric
# column that is entirely text costs 5-7 s (GX checks the type of each value of an object
# column in Python). Budgets of 2M/4M/8M/30M cells per batch took 2.0/2.1/3.0/7.7 s; small
# tables stay in one batch (GX's fixed cost is ~10 ms per expectation, not per row).
CELLS_PER_BATCH = 1_000_000

# "SUMMARY" returns up to 5 unexpected values and their row indices for pandas without the
# complete lists; the unexpected-index *query* is a string listing every unexpected index, so
# it is turned off.
RESULT_FORMAT = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": MAX_EXAMPLES,
    "return_unexpected_index_query": False,
}

# Table-level expectations that need the row count only: validated with the first column batch
# (or on a frame with no columns) so GX does not hash every cell of the table for them.
ROW_COUNT_EXPECTATIONS = {"expect_table_row_count_to_be_between", "expect_table_row_count_to_equal"}

_EXPECTATION_KEYS = {
    "type",
    "kwargs",
    "meta",
    "notes",
    "description",
    "severity",
    "id",
    "rendered_content",
}


class ContractFileError(ValueError):
    """A contract file that cannot be used; str() names the file and the reason."""


@dataclass
class ExpectationFailure:
    expectation: str
    column: str | None
    summary: str
    observed: Any
    expected: Any
    examples: list[dict] = field(default_factory=list)


@dataclass
class ContractResult:
    """The verdict on one data version.

    `evaluated` counts the expectations that could be evaluated: a missing column is one
    failure, and the other expectations on it (or on a numeric column that failed its type
    check and so could not be ranged) are left out of the count rather than reported again.
    """

    success: bool
    evaluated: int
    failures: list[ExpectationFailure]

    def to_metadata(self) -> dict:
        return {
            "success": self.success,
            "evaluated": self.evaluated,
            "failed": len(self.failures),
            "failures": [asdict(f) for f in self.failures],
        }

    def describe(self) -> str:
        if not self.failures:
            return f"all {self.evaluated} expectations passed"
        lines = [f"{len(self.failures)} of {self.evaluated} expectations failed:"]
        lines += [f"- {f.summary}" for f in self.failures]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Great Expectations, imported late


def _gx():
    import great_expectations as gx  # analytics off: ml_assets/library_settings.py

    return gx


def _ephemeral_context():
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # The validator reads this to decide on tqdm bars ("Calculating Metrics") on stderr.
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def _pydantic_reason(exc: Exception) -> str:
    """A short reason from a GX or pydantic error: the first message per field."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        seen: dict[str, str] = {}
        for error in errors():
            key = ".".join(str(p) for p in error.get("loc", ())) or "value"
            seen.setdefault(key, error.get("msg", ""))
        if seen:
            return "; ".join(f"{k}: {m}" for k, m in seen.items())
    text = getattr(exc, "message", None) or str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _build_expectation(config: dict):
    """A GX Expectation from its JSON form; raises ValueError with a short reason."""
    _gx()
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    if not isinstance(config, dict):
        raise ValueError(f"expected an object with 'type' and 'kwargs', got {config!r:.60}")
    unknown = set(config) - _EXPECTATION_KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    if not isinstance(config.get("type"), str):
        raise ValueError("'type' must be the name of an expectation, e.g. expect_column_to_exist")
    if not isinstance(config.get("kwargs"), dict):
        raise ValueError("'kwargs' must be an object")
    clean = {k: v for k, v in config.items() if k not in ("id", "rendered_content")}
    try:
        return ExpectationConfiguration(**clean).to_domain_obj()
    except Exception as exc:  # GX raises its own, pydantic's and TypeErrors here
        if type(exc).__name__ == "ExpectationNotFoundError":
            raise ValueError(f"unknown expectation type {config['type']!r}") from None
        raise ValueError(_pydantic_reason(exc)) from None


# --------------------------------------------------------------------------------------------
# Building the contract


def _category_key(value: Any) -> str:
    """One text form per category, however pandas happened to read it."""
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    return str(value)


def _as_text(series: pd.Series) -> pd.Series:
    """The series as a categorical of text keys (missing stays missing).

    Works on the distinct values only, so it costs one factorize on a big column; a
    categorical dtype also makes GX's null and set checks several times faster than object.
    """
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        uniques = list(series.cat.categories)
    else:
        codes, uniques_index = pd.factorize(series, use_na_sentinel=True)
        uniques = list(uniques_index)
    keys = [_category_key(u) for u in uniques]
    categories = list(dict.fromkeys(keys))
    if len(categories) == len(keys):
        new_codes = codes
    else:
        position = {k: i for i, k in enumerate(categories)}
        remap = np.array([position[k] for k in keys], dtype=np.int64)
        new_codes = np.where(codes >= 0, remap[np.clip(codes, 0, None)], -1)
    values = pd.Categorical.from_codes(
        np.asarray(new_codes), categories=pd.Index(categories, dtype=object)
    )
    return pd.Series(values, index=series.index, name=series.name)


def _text_columns(contract: dict) -> list[str]:
    meta = (contract.get("meta") or {}).get(META_KEY) or {}
    roles = meta.get("roles") or {}
    columns = list(roles.get("categorical") or [])
    if meta.get("task") == "classification" and roles.get("target"):
        columns.append(roles["target"])
    return columns


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
        + f" on each side; up to {1 - mostly:.1%} of values may fall outside",
    )


def _null_expectation(column: str, null_share: float, tolerance: float, role: str) -> dict | None:
    allowed = min(1.0, null_share + tolerance)
    mostly = round(1.0 - allowed, 6)
    if mostly <= 0:
        return None
    return _expectation(
        "expect_column_values_to_not_be_null",
        {"column": column, "mostly": mostly},
        f"{role}: {null_share:.1%} missing in the first accepted version; up to {allowed:.1%} "
        f"may be missing (null_share_tolerance={tolerance})",
    )


def _expectation(kind: str, kwargs: dict, why: str) -> dict:
    return {"type": kind, "kwargs": kwargs, "meta": {"why": why}}


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
    gx = _gx()
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
        exps.append(_null_expectation(column, null_shares[column], c.null_share_tolerance, role))
        exps.append(_range_expectation(column, series, c.range_tolerance, c.range_mostly, role))
    for column in roles.categorical:
        series = df[column]
        role = "categorical feature"
        categories = sorted(_as_text(series).cat.categories)
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
        exps.append(_null_expectation(column, null_shares[column], c.null_share_tolerance, role))
        if checked:
            exps.append(
                _expectation(
                    "expect_column_values_to_be_in_set",
                    {"column": column, "value_set": categories, "mostly": c.category_mostly},
                    f"{role}: the {len(categories)} categories of the first accepted version, "
                    f"compared as text; up to {1 - c.category_mostly:.1%} of values may be new",
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
        classes = sorted(_as_text(series).cat.categories)
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
        exps.append(_range_expectation(target, series, c.range_tolerance, c.range_mostly, "target"))

    meta = {
        META_KEY: {
            "format": CONTRACT_FORMAT,
            "about": (
                f"Data contract of pipeline {settings.name!r}, inferred from the first accepted "
                "data version and evaluated on every version. Review and edit the expectations "
                "freely (any Great Expectations 1.x expectation works); categorical columns and "
                "a classification target are compared as text."
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
        expectations=[_build_expectation(e) for e in exps if e is not None],
        meta=meta,
    )
    return _canonical(suite.to_json_dict())


_KWARGS_ORDER = ("column", "min_value", "max_value", "value_set", "type_list", "mostly")


def _canonical(contract: dict) -> dict:
    """Key order that reads well: name, expectations (type, kwargs with column first, meta)."""
    expectations = []
    for exp in contract.get("expectations", []):
        exp = {k: v for k, v in exp.items() if not (k == "id" and v is None)}
        kwargs = dict(exp.get("kwargs", {}))
        ordered = {k: kwargs.pop(k) for k in _KWARGS_ORDER if k in kwargs}
        ordered.update(sorted(kwargs.items()))
        first = {"type": exp.get("type"), "kwargs": ordered}
        first.update({k: v for k, v in exp.items() if k not in first})
        expectations.append(first)
    out: dict = {"name": contract.get("name"), "expectations": expectations}
    out.update(
        {
            k: v
            for k, v in contract.items()
            if k not in out and not (k in ("id", "notes") and v is None)
        }
    )
    return out


# --------------------------------------------------------------------------------------------
# The file


def save_contract(contract: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = _dumps(_canonical(contract))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _dumps(value: Any, level: int = 0, width: int = 100) -> str:
    """JSON with 2-space indentation, lists of plain values packed into lines (readable diffs)."""

    def atom(v: Any) -> str:
        return json.dumps(v, ensure_ascii=False, allow_nan=False)

    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{atom(str(k))}: {_dumps(v, level + 1, width)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        if any(isinstance(v, (dict, list, tuple)) for v in value):
            items = [f"{inner}{_dumps(v, level + 1, width)}" for v in value]
            return "[\n" + ",\n".join(items) + f"\n{pad}]"
        atoms = [atom(v) for v in value]
        if len(pad) + sum(len(a) + 2 for a in atoms) <= width - 20:
            return "[" + ", ".join(atoms) + "]"
        lines, line = [], ""
        for a in atoms:
            if line and len(inner) + len(line) + len(a) + 2 > width:
                lines.append(line)
                line = ""
            line = f"{line}, {a}" if line else a
        lines.append(line)
        return "[\n" + ",\n".join(inner + ln for ln in lines) + f"\n{pad}]"
    return atom(value)


def check_contract(contract: Any, source: str = "contract") -> None:
    """Raise ContractFileError (naming `source`) unless `contract` is a usable suite."""
    if not isinstance(contract, dict):
        raise ContractFileError(
            f"{source}: expected a JSON object (a Great Expectations suite), "
            f"got {type(contract).__name__}"
        )
    name = contract.get("name")
    if not isinstance(name, str) or not name:
        raise ContractFileError(f"{source}: key 'name': expected the suite name (a string)")
    expectations = contract.get("expectations")
    if not isinstance(expectations, list):
        raise ContractFileError(f"{source}: key 'expectations': expected a list of expectations")
    built = []
    for number, config in enumerate(expectations, start=1):
        kind = config.get("type") if isinstance(config, dict) else None
        try:
            built.append(_build_expectation(config))
        except ValueError as exc:
            what = f" ({kind})" if isinstance(kind, str) else ""
            raise ContractFileError(f"{source}: expectation #{number}{what}: {exc}") from None
    meta = contract.get("meta")
    ours = meta.get(META_KEY) if isinstance(meta, dict) else None
    roles = ours.get("roles") if isinstance(ours, dict) else None
    if not isinstance(roles, dict) or not isinstance(roles.get("target"), str):
        raise ContractFileError(
            f"{source}: key 'meta.{META_KEY}.roles': expected the column roles "
            "(target, numeric, categorical, ids) written when the contract was built"
        )
    for key in ("numeric", "categorical", "ids"):
        if not isinstance(roles.get(key, []), list):
            raise ContractFileError(
                f"{source}: key 'meta.{META_KEY}.roles.{key}': expected a list of column names"
            )
    gx = _gx()
    try:
        gx.ExpectationSuite(name=name, expectations=built, meta=dict(meta))
    except Exception as exc:
        raise ContractFileError(f"{source}: not a valid suite: {_pydantic_reason(exc)}") from None


def load_contract(path: Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContractFileError(f"{path}: contract file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractFileError(f"{path}: cannot read the contract file ({exc})") from None
    try:
        contract = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ContractFileError(
            f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    check_contract(contract, str(path))
    return contract


def roles_from_contract(contract: dict) -> ColumnRoles:
    try:
        return ColumnRoles.from_dict(contract["meta"][META_KEY]["roles"])
    except (KeyError, TypeError):
        raise ContractFileError(
            f"contract {contract.get('name')!r}: no column roles in meta.{META_KEY}.roles"
        ) from None


# --------------------------------------------------------------------------------------------
# Validation


def _batches(expectations: list[dict], rows: int) -> list[tuple[list[str] | None, list[int]]]:
    """Expectation indices grouped into batches: (columns of the batch frame, indices).

    None as columns means the whole table; [] a frame with the rows but no columns.
    """
    row_count: list[int] = []
    whole: list[int] = []
    by_column: dict[str, list[int]] = {}
    for i, exp in enumerate(expectations):
        kwargs = exp.get("kwargs") or {}
        column = kwargs.get("column")
        if isinstance(column, str) and set(kwargs) <= {"column", *_SINGLE_COLUMN_KWARGS}:
            by_column.setdefault(column, []).append(i)
        elif exp.get("type") in ROW_COUNT_EXPECTATIONS:
            row_count.append(i)
        else:
            whole.append(i)
    per_batch = max(1, CELLS_PER_BATCH // max(1, rows))
    columns = list(by_column)
    batches: list[tuple[list[str] | None, list[int]]] = []
    for start in range(0, len(columns), per_batch):
        chunk = columns[start : start + per_batch]
        batches.append((chunk, [i for col in chunk for i in by_column[col]]))
    if row_count:
        if batches:
            batches[0][1].extend(row_count)
        else:
            batches.append(([], row_count))
    if whole:
        batches.append((None, whole))
    return batches


# kwargs that do not bring other columns into an expectation (row_condition may name any column)
_SINGLE_COLUMN_KWARGS = {
    "mostly",
    "min_value",
    "max_value",
    "strict_min",
    "strict_max",
    "value_set",
    "type_list",
    "type_",
    "parse_strings_as_datetimes",
    "regex",
    "regex_list",
    "match_on",
    "value",
    "values",
    "strictly",
    "quantile_ranges",
    "allow_relative_error",
    "result_format",
    "catch_exceptions",
    "include_config",
}


def _prepare(df: pd.DataFrame, text_columns: list[str]) -> pd.DataFrame:
    frame = df
    if not (
        isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0 and frame.index.step == 1
    ):
        # GX reports unexpected rows by index label; positions make the examples exact.
        frame = frame.reset_index(drop=True)
    replace = {c: _as_text(frame[c]) for c in dict.fromkeys(text_columns) if c in frame.columns}
    if replace:
        frame = pd.DataFrame(
            {c: replace.get(c, frame[c]) for c in frame.columns}, index=frame.index, copy=False
        )
    return frame


def _exception_message(result: Any) -> str | None:
    info = getattr(result, "exception_info", None) or {}
    if "raised_exception" in info:
        if not info.get("raised_exception"):
            return None
        return str(info.get("exception_message") or "an error inside Great Expectations")
    for value in info.values():
        if isinstance(value, dict) and (
            value.get("raised_exception") or value.get("exception_message")
        ):
            return str(value.get("exception_message") or "an error inside Great Expectations")
    return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, np.ndarray)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if math.isnan(number):
            return None
        return number if math.isfinite(number) else ("inf" if number > 0 else "-inf")
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _records(df: pd.DataFrame, positions: list[int]) -> list[dict]:
    positions = [p for p in positions if isinstance(p, (int, np.integer)) and 0 <= p < len(df)]
    rows = df.iloc[positions[:MAX_EXAMPLES]]
    return [_jsonable(record) for record in rows.to_dict(orient="records")]


def _fmt(value: Any) -> str:
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


def _summarise(
    kind: str, column: str | None, kwargs: dict, result: dict, frame: pd.DataFrame, target: str
) -> str:
    label = f"target '{column}'" if column is not None and column == target else str(column)
    sample = result.get("partial_unexpected_list") or []
    distinct = list(dict.fromkeys(_jsonable(sample)))[:3]
    examples = ", ".join(_fmt(v) for v in distinct)
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
            where = f"outside [{_fmt(low)}, {_fmt(high)}]"
        elif low is not None:
            where = f"below {_fmt(low)}"
        else:
            where = f"above {_fmt(high)}"
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
        values = [_jsonable(v) for v in counts.index[:5]]
        count = int(result.get("unexpected_count") or len(outside))
        more = f" and {len(counts) - 5} more" if len(counts) > 5 else ""
        return (
            f"{label}: unexpected values {values}{more} in {count} rows "
            f"({_pct(percent)}; allowed: {_allowed(mostly)})"
        )
    observed = result.get("observed_value", percent)
    where = label if column is not None else "table"
    return f"{where}: {kind} failed (observed: {_fmt(observed) if observed is not None else 'n/a'})"


def _observed(result: dict) -> Any:
    if "observed_value" in result:
        return _jsonable(result["observed_value"])
    keys = (
        "element_count",
        "missing_count",
        "unexpected_count",
        "unexpected_percent",
        "partial_unexpected_list",
    )
    return _jsonable({k: result[k] for k in keys if k in result})


def validate_table(df: pd.DataFrame, contract: dict) -> ContractResult:
    """Evaluate the contract on one data version; failures come in the contract's order."""
    gx = _gx()
    expectations = list(contract.get("expectations") or [])
    meta = (contract.get("meta") or {}).get(META_KEY) or {}
    target = (meta.get("roles") or {}).get("target") or meta.get("target") or ""
    frame = _prepare(df, _text_columns(contract))

    context = _ephemeral_context()
    batch_definition = (
        context.data_sources.add_pandas("contract")
        .add_dataframe_asset("table")
        .add_batch_definition_whole_dataframe("whole_table")
    )
    results: dict[int, Any] = {}
    for number, (columns, indices) in enumerate(_batches(expectations, len(frame))):
        if columns is None:
            batch_frame = frame
        else:
            batch_frame = frame[[c for c in columns if c in frame.columns]]
        built = []
        for i in indices:
            try:
                built.append(_build_expectation(expectations[i]))
            except ValueError as exc:
                raise ContractFileError(
                    f"contract {contract.get('name')!r}: expectation #{i + 1}: {exc}"
                ) from None
        suite = context.suites.add(
            gx.ExpectationSuite(
                name=f"{contract.get('name', 'contract')}-{number}", expectations=built
            )
        )
        position = {exp.id: i for exp, i in zip(suite.expectations, indices, strict=False)}
        outcome = _run_suite(context, batch_definition, suite, batch_frame, number)
        for result in outcome.results:
            results[position[result.expectation_config.id]] = result

    failed = sorted(i for i, r in results.items() if not r.success)
    missing: dict[str, list[int]] = {}
    for i in failed:
        column = (expectations[i].get("kwargs") or {}).get("column")
        if isinstance(column, str) and column not in frame.columns:
            missing.setdefault(column, []).append(i)
    plain_failure_columns = {
        (expectations[i].get("kwargs") or {}).get("column")
        for i in failed
        if _exception_message(results[i]) is None
    }

    failures: list[ExpectationFailure] = []
    not_evaluated = 0
    reported_missing: set[str] = set()
    roles = meta.get("roles") or {}
    for i in failed:
        exp = expectations[i]
        kind = exp.get("type", "")
        kwargs = exp.get("kwargs") or {}
        column = kwargs.get("column")
        result = results[i]
        if column in missing:
            if column in reported_missing:
                not_evaluated += 1
                continue
            reported_missing.add(column)
            failures.append(_missing_failure(column, frame, target, roles))
            continue
        message = _exception_message(result)
        if message is not None and column is not None and column in plain_failure_columns:
            # e.g. a range check on a numeric column full of text: the type failure says it.
            not_evaluated += 1
            continue
        details = result.result or {}
        expected = _jsonable({k: v for k, v in kwargs.items() if k not in ("column", "batch_id")})
        if message is not None:
            reason = message.strip().splitlines()[0] if message.strip() else "error"
            failures.append(
                ExpectationFailure(
                    expectation=kind,
                    column=column,
                    summary=f"{column or 'table'}: {kind} could not be evaluated ({reason})",
                    observed={"error": reason},
                    expected=expected,
                    examples=[],
                )
            )
            continue
        failures.append(
            ExpectationFailure(
                expectation=kind,
                column=column,
                summary=_summarise(kind, column, kwargs, details, frame, target),
                observed=_observed(details),
                expected=expected,
                examples=_records(df, list(details.get("partial_unexpected_index_list") or [])),
            )
        )
    return ContractResult(
        success=not failures,
        evaluated=len(expectations) - not_evaluated,
        failures=failures,
    )


def _run_suite(context, batch_definition, suite, frame: pd.DataFrame, number: int):
    """Validate one batch frame; the suite validation result."""
    try:
        # What ValidationDefinition.run does inside, minus storing the result in the context's
        # result store (a JSON serialisation of every result: 0.2-0.5 s per table).
        from great_expectations.validator.v1_validator import Validator
    except ImportError:  # pragma: no cover - a later GX 1.x may move it; the public way works
        gx = _gx()
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"batch-{number}", data=batch_definition, suite=suite)
        )
        return definition.run(batch_parameters={"dataframe": frame}, result_format=RESULT_FORMAT)
    validator = Validator(
        batch_definition=batch_definition,
        batch_parameters={"dataframe": frame},
        result_format=RESULT_FORMAT,
    )
    return validator.validate_expectation_suite(suite)


def _missing_failure(
    column: str, frame: pd.DataFrame, target: str, roles: dict
) -> ExpectationFailure:
    if column == target:
        what, role = f"target column '{column}'", "target"
    else:
        what = f"column '{column}'"
        role = next(
            (r for r in ("numeric", "categorical", "ids") if column in (roles.get(r) or [])),
            "column",
        )
    # Only a column the contract does not know can be the renamed one.
    known = {
        roles.get("target"),
        *(c for r in ("numeric", "categorical", "ids") for c in roles.get(r) or []),
    }
    unknown = [str(c) for c in frame.columns if c not in known]
    close = difflib.get_close_matches(column, unknown, n=1, cutoff=0.75)
    hint = f" (a column '{close[0]}' is present: renamed?)" if close else ""
    return ExpectationFailure(
        expectation="expect_column_to_exist",
        column=column,
        summary=f"{what} is missing{hint}",
        observed={"column_present": False, "similar_columns": close},
        expected={"column": column, "role": role},
        examples=[],
    )
