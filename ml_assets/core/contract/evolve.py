"""The contract evolves by hand: widen it from a data version a person judged right, compare
two revisions, and describe it in a person's words. Plain Python: no GX, no Dagster.

Widening changes only the expectations the version fails, each just enough to take the
version in (padded the way inference pads), and says so in the expectation's `meta.why`.
What cannot be widened (a missing column, text in a numeric column, an expectation kind
this module does not know) is refused as a whole: a contract is never half widened.
"""

from __future__ import annotations

import copy
import getpass
import json
import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from ml_assets.config import ContractSettings
from ml_assets.core.contract.suite import (
    META_KEY,
    NUMERIC_TYPES,
    ROW_COUNT_EXPECTATIONS,
    ContractResult,
    ExpectationFailure,
    as_text,
    jsonable,
    text_columns,
)

BETWEEN = "expect_column_values_to_be_between"
IN_SET = "expect_column_values_to_be_in_set"
NOT_NULL = "expect_column_values_to_not_be_null"
TYPE_LIST = "expect_column_values_to_be_in_type_list"
EXISTS = "expect_column_to_exist"
ROW_COUNT = "expect_table_row_count_to_be_between"

# The default of `contract.breakage_magnitude` (the bound of a breakage range is this many
# times the largest magnitude seen), for pipeline settings that predate the key.
DEFAULT_BREAKAGE_MAGNITUDE = 10.0
SET_VALUES_SHOWN = 8


class CannotWiden(ValueError):
    """The version fails expectations that widening cannot fix; str() names each and why."""


@dataclass
class Widening:
    contract: dict  # the new revision
    revision: int
    widened: list[str]  # one line per widened expectation: "column: what old -> new"


# --------------------------------------------------------------------------------------------
# Revisions and their history, kept in the contract's meta


def _ours(contract: dict) -> dict:
    meta = contract.get("meta")
    ours = meta.get(META_KEY) if isinstance(meta, dict) else None
    return ours if isinstance(ours, dict) else {}


def revision_of(contract: dict) -> int:
    """The contract's revision; a file written before revisions were kept is revision 1."""
    revision = _ours(contract).get("revision")
    return revision if isinstance(revision, int) and not isinstance(revision, bool) and revision > 0 else 1


def history_of(contract: dict) -> list[dict]:
    history = _ours(contract).get("history")
    return [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []


def current_user() -> str:
    """Who made a revision: ML_ASSETS_USER, else the OS user."""
    user = os.environ.get("ML_ASSETS_USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        return "unknown"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def history_entry(
    revision: int, data_version: str | None, reason: str, widened: list[str],
    by: str | None = None, at: str | None = None,
) -> dict:
    return {
        "revision": revision,
        "at": at or utc_now(),
        "by": by or current_user(),
        "reason": reason,
        "data_version": data_version,
        "widened": list(widened),
    }


def start_history(contract: dict, data_version: str, by: str | None = None) -> dict:
    """Mark a freshly inferred contract as revision 1, with its first history entry."""
    ours = contract.setdefault("meta", {}).setdefault(META_KEY, {})
    ours["revision"] = 1
    ours["history"] = [
        history_entry(1, data_version, "inferred from the first accepted data version", [], by)
    ]
    return contract


# --------------------------------------------------------------------------------------------
# Widening


def failed_expectations(result: ContractResult) -> list[ExpectationFailure]:
    """Breakage and change failures, in the contract's order, one per expectation."""
    seen: set[int] = set()
    out = []
    for failure in sorted(
        [*result.failures, *result.changes], key=lambda f: (f.index is None, f.index or 0)
    ):
        if failure.index is not None:
            if failure.index in seen:
                continue
            seen.add(failure.index)
        out.append(failure)
    return out


def widen_contract(
    contract: dict,
    df: pd.DataFrame,
    failures: list[ExpectationFailure],
    settings: ContractSettings,
    data_version: str,
    reason: str = "",
    by: str | None = None,
) -> Widening:
    """The next revision of `contract`, widened just enough for `df` (data version
    `data_version`) to pass the expectations in `failures`; every other expectation is kept
    as it is. Raises CannotWiden naming each failure that widening cannot fix."""
    if not failures:
        raise ValueError("nothing to widen: the version fails no expectation")
    revision = revision_of(contract) + 1
    new = copy.deepcopy(contract)
    expectations = new.get("expectations") or []
    texts = set(text_columns(contract))
    is_format_2 = _format(contract) >= 2
    target = (_ours(contract).get("roles") or {}).get("target")
    refusals, widened = [], []
    for failure in failures:
        index = failure.index
        exp = expectations[index] if index is not None and 0 <= index < len(expectations) else None
        problem = _cannot_widen(failure, exp, df, data_version)
        if problem is not None:
            refusals.append(problem)
            continue
        old = copy.deepcopy(exp)
        try:
            exp["kwargs"] = _widened_kwargs(exp, df, settings, texts, is_format_2)
        except CannotWiden as exc:
            refusals.append(f"expectation #{index + 1} ({exp['type']}) on {_where(exp)}: {exc}")
            continue
        line = f"widened from {data_version} at revision {revision}" + (f": {reason}" if reason else "")
        meta = exp.setdefault("meta", {})
        meta["why"] = f"{meta['why']}\n{line}" if meta.get("why") else line
        widened.append(change_line(old, exp, is_format_2, target))
    if refusals:
        raise CannotWiden(
            f"the contract cannot be widened from {data_version}; nothing written:\n"
            + "\n".join(f"- {r}" for r in refusals)
        )
    ours = new.setdefault("meta", {}).setdefault(META_KEY, {})
    ours["revision"] = revision
    ours["history"] = [
        *history_of(contract),
        history_entry(revision, data_version, reason, widened, by),
    ]
    return Widening(contract=new, revision=revision, widened=widened)


def _cannot_widen(
    failure: ExpectationFailure, exp: dict | None, df: pd.DataFrame, data_version: str
) -> str | None:
    column = failure.column
    if failure.expectation == EXISTS or (column is not None and column not in df.columns):
        return (
            f"column '{column}' is missing from {data_version}: a contract cannot be widened to "
            "a missing column; fix the file, or edit the contract to drop the column"
        )
    number = f"expectation #{failure.index + 1} ({failure.expectation})" if failure.index is not None \
        else failure.expectation
    where = f"column '{column}'" if column is not None else "the table"
    if exp is None or exp.get("type") != failure.expectation:
        return f"{number} on {where}: not one expectation of the contract; edit the contract by hand"
    if isinstance(failure.observed, dict) and "error" in failure.observed:
        return (
            f"{number} on {where} could not be evaluated on {data_version} "
            f"({failure.observed['error']}); fix the file, or edit the contract by hand"
        )
    if failure.expectation == TYPE_LIST:
        numeric = set((exp.get("kwargs") or {}).get("type_list") or []) <= set(NUMERIC_TYPES)
        if numeric:
            return (
                f"{number} on {where}: {data_version} holds text in a numeric column: a contract "
                "cannot be widened to text in a numeric column; fix the file, or edit the "
                "contract (the column's role and expectations) by hand"
            )
        return f"{number} on {where}: a type list is not widened from data; edit the contract by hand"
    if failure.expectation not in (BETWEEN, IN_SET, NOT_NULL, ROW_COUNT):
        return (
            f"{number} on {where}: ml-assets does not know how to widen this kind of "
            "expectation; edit the contract by hand"
        )
    return None


def _widened_kwargs(
    exp: dict, df: pd.DataFrame, settings: ContractSettings, texts: set[str], is_format_2: bool
) -> dict:
    kind = exp["type"]
    kwargs = dict(exp.get("kwargs") or {})
    if kind == ROW_COUNT:
        return _widen_row_count(kwargs, len(df))
    series = df[kwargs["column"]]
    if kind == NOT_NULL:
        return _widen_nulls(kwargs, series, settings.null_share_tolerance)
    if kind == IN_SET:
        return _widen_set(kwargs, series, as_text_values=kwargs["column"] in texts)
    if is_magnitude_bound(exp, is_format_2):
        magnitude = getattr(settings, "breakage_magnitude", DEFAULT_BREAKAGE_MAGNITUDE)
        return _widen_magnitude_bound(kwargs, series, magnitude)
    return _widen_range(kwargs, series, settings.range_tolerance)


def _widen_row_count(kwargs: dict, rows: int) -> dict:
    if kwargs.get("min_value") is not None and rows < kwargs["min_value"]:
        kwargs["min_value"] = rows
    if kwargs.get("max_value") is not None and rows > kwargs["max_value"]:
        kwargs["max_value"] = rows
    return kwargs


def _widen_nulls(kwargs: dict, series: pd.Series, tolerance: float) -> dict:
    share = float(series.isna().mean()) if len(series) else 0.0
    if share >= 1.0:
        raise CannotWiden("every value is missing: fix the file, or edit the contract to drop the column")
    # As at inference: the version's missing share plus the tolerance; when that allows
    # everything, exactly the version's share (mostly 0 would no longer check anything).
    mostly = math.floor((1.0 - share - tolerance) * 1e6) / 1e6
    if mostly <= 0:
        mostly = math.floor((1.0 - share) * 1e6) / 1e6
    kwargs["mostly"] = min(float(kwargs.get("mostly", 1.0)), mostly)
    return kwargs


def _widen_set(kwargs: dict, series: pd.Series, as_text_values: bool) -> dict:
    old = list(kwargs.get("value_set") or [])
    if as_text_values:
        present = [str(v) for v in as_text(series).cat.categories]
        known = {str(v) for v in old}
    else:
        present = [jsonable(v) for v in pd.unique(series.dropna())]
        known = {json.dumps(v) for v in old}
    new_values = [v for v in present if (str(v) if as_text_values else json.dumps(v)) not in known]
    merged = old + sorted(dict.fromkeys(new_values), key=_sort_key)
    if old == sorted(old, key=_sort_key):
        merged = sorted(merged, key=_sort_key)
    kwargs["value_set"] = merged
    return kwargs


def _sort_key(value: Any) -> tuple:
    return (not isinstance(value, (int, float)), value if isinstance(value, (int, float)) else str(value))


def _numbers(series: pd.Series) -> np.ndarray:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return values[np.isfinite(values)]


def _widen_range(kwargs: dict, series: pd.Series, tolerance: float) -> dict:
    """Cover the version's values with the padding of inference: tolerance x their span on
    each side; a bound the version stays within is kept."""
    from ml_assets.core.contract.infer import _round_bound

    values = _numbers(series)
    if values.size == 0:
        raise CannotWiden("the column holds no number to widen the range to")
    low, high = float(values.min()), float(values.max())
    span = high - low
    pad = tolerance * (span if span > 0 else max(1.0, abs(low)))
    integer = pd.api.types.is_integer_dtype(series.dtype)
    if kwargs.get("min_value") is not None:
        bound = _round_bound(low - pad, low, down=True)
        bound = math.floor(bound) if integer else bound
        kwargs["min_value"] = min(kwargs["min_value"], bound)
    if kwargs.get("max_value") is not None:
        bound = _round_bound(high + pad, high, down=False)
        bound = math.ceil(bound) if integer else bound
        kwargs["max_value"] = max(kwargs["max_value"], bound)
    return kwargs


def _widen_magnitude_bound(kwargs: dict, series: pd.Series, magnitude: float) -> dict:
    """B = magnitude x the version's largest magnitude (never below the old bound); a [0, B]
    bound whose column now holds negatives becomes [-B, B]."""
    from ml_assets.core.contract.infer import _round_bound

    values = _numbers(series)
    if values.size == 0:
        raise CannotWiden("the column holds no number to widen the bound to")
    largest = float(np.abs(values).max()) or 1.0
    wanted = magnitude * largest
    bound = max(float(kwargs["max_value"]), _round_bound(wanted, wanted, down=False))
    if pd.api.types.is_integer_dtype(series.dtype):
        bound = math.ceil(bound)
    negative = float(values.min()) < 0 or float(kwargs["min_value"]) < 0
    kwargs["min_value"] = -bound if negative else kwargs["min_value"]
    kwargs["max_value"] = bound
    return kwargs


def _format(contract: dict) -> int:
    value = _ours(contract).get("format")
    return value if isinstance(value, int) else 1


def is_magnitude_bound(exp: dict, is_format_2: bool) -> bool:
    """The breakage range ("wrong by orders of magnitude"): a blocking [0, B] or [-B, B] range
    in a contract that draws a line between breakage and change. A blocking range of an older
    contract is the observed range padded by range_tolerance."""
    if exp.get("type") != BETWEEN or not is_format_2 or _severity(exp) != "critical":
        return False
    kwargs = exp.get("kwargs") or {}
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if not isinstance(low, (int, float)) or not isinstance(high, (int, float)) or high <= 0:
        return False
    return low == 0 or low == -high


# --------------------------------------------------------------------------------------------
# Words: one expectation, one change, the whole contract


def _severity(exp: dict) -> str:
    return exp.get("severity") or "critical"


def _column(exp: dict) -> str | None:
    column = (exp.get("kwargs") or {}).get("column")
    return column if isinstance(column, str) else None


def _where(exp: dict) -> str:
    column = _column(exp)
    return f"column '{column}'" if column is not None else "the table"


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def _share(mostly: Any) -> str:
    mostly = 1.0 if mostly is None else float(mostly)
    return f"{max(0.0, 1.0 - mostly) * 100:.1f}%"


def _values(values: list) -> str:
    shown = ", ".join(_num(v) if not isinstance(v, str) else repr(v) for v in values[:SET_VALUES_SHOWN])
    more = len(values) - SET_VALUES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def _what(exp: dict, is_format_2: bool, target: str | None = None) -> str:
    """What an expectation is about, as a short noun: "change range", "categories", ..."""
    kind = exp.get("type")
    if kind == BETWEEN:
        if is_magnitude_bound(exp, is_format_2):
            return "breakage bound"
        return "change range" if _severity(exp) == "warning" else "range"
    if kind == IN_SET:
        return "classes" if target is not None and _column(exp) == target else "categories"
    return {
        NOT_NULL: "missing share",
        TYPE_LIST: "type",
        EXISTS: "presence",
        ROW_COUNT: "row count",
        "expect_table_row_count_to_equal": "row count",
    }.get(kind, str(kind))


def _value(exp: dict) -> str:
    """An expectation's bounds or set, for a diff line: "[-32.5, 169.5]", "at most 10.0%"."""
    kind = exp.get("type")
    kwargs = exp.get("kwargs") or {}
    if kind == BETWEEN:
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        return f"[{'-inf' if low is None else _num(low)}, {'inf' if high is None else _num(high)}]"
    if kind == NOT_NULL:
        return f"at most {_share(kwargs.get('mostly'))} missing"
    if kind == IN_SET:
        return f"[{_values(list(kwargs.get('value_set') or []))}]"
    if kind in ROW_COUNT_EXPECTATIONS:
        return _row_count_rule(kwargs)
    if kind == TYPE_LIST:
        return "numbers" if set(kwargs.get("type_list") or []) <= set(NUMERIC_TYPES) else \
            f"types {kwargs.get('type_list')}"
    if kind == EXISTS:
        return "present"
    rest = {k: v for k, v in kwargs.items() if k != "column"}
    return json.dumps(rest, sort_keys=True, default=str)


def _row_count_rule(kwargs: dict) -> str:
    parts = []
    if kwargs.get("value") is not None:
        parts.append(f"exactly {kwargs['value']}")
    if kwargs.get("min_value") is not None:
        parts.append(f"at least {kwargs['min_value']}")
    if kwargs.get("max_value") is not None:
        parts.append(f"at most {kwargs['max_value']}")
    return " and ".join(parts) + " rows" if parts else "any number of rows"


def rule(exp: dict, is_format_2: bool) -> str:
    """One expectation in a person's words, for `contract show`."""
    kind = exp.get("type")
    kwargs = exp.get("kwargs") or {}
    mostly = kwargs.get("mostly")
    if kind == BETWEEN:
        text = f"within {_value(exp)}"
        if is_magnitude_bound(exp, is_format_2):
            low = kwargs.get("min_value")
            text += " (magnitude and sign)" if low == 0 else " (magnitude)"
        return text + (f", up to {_share(mostly)} outside" if mostly is not None and mostly < 1 else "")
    if kind == IN_SET:
        values = list(kwargs.get("value_set") or [])
        text = f"one of {_values(values)}"
        return text + (f", up to {_share(mostly)} others" if mostly is not None and mostly < 1 else "")
    if kind == NOT_NULL:
        return _value(exp)
    if kind in ROW_COUNT_EXPECTATIONS or kind in (TYPE_LIST, EXISTS):
        return _value(exp)
    return f"{kind} {_value(exp)}"


def change_line(old: dict, new: dict, is_format_2: bool, target: str | None = None) -> str:
    """ "monthly_charges: change range [-32.5, 169.5] -> [-51.8, 271.2]" """
    where = _column(new) or "table"
    before, after = _value(old), _value(new)
    if old.get("type") == IN_SET and new.get("type") == IN_SET:
        added = [v for v in new["kwargs"].get("value_set") or [] if v not in (old["kwargs"].get("value_set") or [])]
        removed = [v for v in old["kwargs"].get("value_set") or [] if v not in (new["kwargs"].get("value_set") or [])]
        parts = ([f"added {_values(added)}"] if added else []) + ([f"removed {_values(removed)}"] if removed else [])
        if parts:
            after = f"{after} ({'; '.join(parts)})"
    if before == after:
        keys = sorted(set(old.get("kwargs") or {}) | set(new.get("kwargs") or {}))
        diffs = [
            f"{k} {_num((old.get('kwargs') or {}).get(k))} -> {_num((new.get('kwargs') or {}).get(k))}"
            for k in keys
            if (old.get("kwargs") or {}).get(k) != (new.get("kwargs") or {}).get(k)
        ]
        if _severity(old) != _severity(new):
            diffs.append(f"severity {_severity(old)} -> {_severity(new)}")
        return f"{where}: {_what(new, is_format_2, target)} " + ("; ".join(diffs) or "unchanged")
    return f"{where}: {_what(new, is_format_2, target)} {before} -> {after}"


def _identity(exp: dict) -> tuple:
    return (exp.get("type"), _column(exp), _severity(exp))


def diff_contracts(old: dict, new: dict) -> list[str]:
    """What changed from `old` to `new`: lines "changed: ...", "added: ...", "removed: ...",
    per column; expectations are matched by kind, column and severity (`meta` is ignored)."""
    old_exps = [e for e in old.get("expectations") or [] if isinstance(e, dict)]
    new_exps = [e for e in new.get("expectations") or [] if isinstance(e, dict)]
    target = (_ours(new).get("roles") or {}).get("target")
    fmt2_old, fmt2_new = _format(old) >= 2, _format(new) >= 2
    unmatched_old: dict[tuple, list[dict]] = {}
    for exp in old_exps:
        unmatched_old.setdefault(_identity(exp), []).append(exp)
    changed, added = [], []
    for exp in new_exps:
        candidates = unmatched_old.get(_identity(exp))
        if candidates:
            before = candidates.pop(0)
            if (before.get("kwargs") or {}) != (exp.get("kwargs") or {}):
                changed.append(change_line(before, exp, fmt2_new, target))
        else:
            added.append(f"{_column(exp) or 'table'}: {_what(exp, fmt2_new, target)} "
                         f"{rule(exp, fmt2_new)} ({_severity_words(exp)})")
    removed = [
        f"{_column(exp) or 'table'}: {_what(exp, fmt2_old, target)} {rule(exp, fmt2_old)} "
        f"({_severity_words(exp)})"
        for exps in unmatched_old.values()
        for exp in exps
    ]
    lines = [f"changed: {line}" for line in changed]
    lines += [f"added: {line}" for line in added]
    lines += [f"removed: {line}" for line in removed]
    return lines


def _severity_words(exp: dict) -> str:
    return "reported" if _severity(exp) == "warning" else "blocks"


def describe_contract(contract: dict, source: str = "") -> str:
    """The contract for a person: revision, origin, per column its role and its rules grouped
    by what a failure does, and the history."""
    ours = _ours(contract)
    roles = ours.get("roles") or {}
    target = roles.get("target")
    is_format_2 = _format(contract) >= 2
    history = history_of(contract)
    lines = [f"data contract {contract.get('name')!r}, revision {revision_of(contract)}"
             + (f": {source}" if source else "")]
    first = next((h for h in history if h.get("revision") == 1), None)
    origin = ours.get("inferred_from") or (first or {}).get("data_version")
    rows = ours.get("rows")
    lines.append(
        f"inferred from {origin or 'an unrecorded version'}"
        + (f" ({rows} rows)" if isinstance(rows, int) else "")
        + (f" at {first['at']}" if first and first.get("at") else "")
    )
    by_column: dict[str | None, list[dict]] = {}
    for exp in contract.get("expectations") or []:
        if isinstance(exp, dict):
            by_column.setdefault(_column(exp), []).append(exp)
    role_of = {target: "target"} if target else {}
    for role, name in (("numeric", "numeric feature"), ("categorical", "categorical feature")):
        role_of.update({c: name for c in roles.get(role) or []})
    for column, exps in by_column.items():
        if column is None:
            lines.append("table")
        else:
            lines.append(f"{column} ({role_of.get(column, 'column')})")
        for severity, heading in (("critical", "blocks (breakage)"), ("warning", "reported (change)")):
            rules = [rule(e, is_format_2) for e in exps if _severity(e) == severity]
            if rules:
                lines.append(f"  {heading}: " + "; ".join(rules))
    ids = [c for c in roles.get("ids") or [] if c not in by_column]
    if ids:
        lines.append(f"id columns (not checked, not features): {', '.join(ids)}")
    lines.append("history")
    if not history:
        lines.append("  none recorded (the file predates contract revisions)")
    for entry in history:
        what = entry.get("reason") or "no reason given"
        if entry.get("revision") != 1 or entry.get("widened"):
            what = f"accepted {entry.get('data_version')}: {what}"
        else:
            what = f"{what}: {entry.get('data_version')}"
        lines.append(f"  revision {entry.get('revision')}  {entry.get('at')}  {entry.get('by')}  {what}")
        lines += [f"      widened {w}" for w in entry.get("widened") or []]
    return "\n".join(lines)
