"""Evaluating the contract on one data version with Great Expectations."""

from __future__ import annotations

import difflib
from typing import Any

import numpy as np
import pandas as pd

from ml_assets.core.contract.explain import observed, summarise
from ml_assets.core.contract.suite import (
    CRITICAL,
    MAX_EXAMPLES,
    ROW_COUNT_EXPECTATIONS,
    META_KEY,
    ContractFileError,
    ContractResult,
    ExpectationFailure,
    as_text,
    build_expectation,
    ephemeral_context,
    gx_module,
    jsonable,
    text_columns,
)

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
    replace = {c: as_text(frame[c]) for c in dict.fromkeys(text_columns) if c in frame.columns}
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



def _records(df: pd.DataFrame, positions: list[int]) -> list[dict]:
    positions = [p for p in positions if isinstance(p, (int, np.integer)) and 0 <= p < len(df)]
    rows = df.iloc[positions[:MAX_EXAMPLES]]
    return [jsonable(record) for record in rows.to_dict(orient="records")]


def validate_table(df: pd.DataFrame, contract: dict) -> ContractResult:
    """Evaluate the contract on one data version, failures in the contract's order.

    Failed expectations of severity "critical" are breakage (`failures`: they block); the
    others ("warning", "info") are change (`changes`: reported, never blocking).
    """
    gx = gx_module()
    expectations = list(contract.get("expectations") or [])
    meta = (contract.get("meta") or {}).get(META_KEY) or {}
    target = (meta.get("roles") or {}).get("target") or meta.get("target") or ""
    frame = _prepare(df, text_columns(contract))

    context = ephemeral_context()
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
                built.append(build_expectation(expectations[i]))
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
            # one verdict per missing column, as severe as the most severe expectation on it
            first = next((j for j in missing[column] if _severity(expectations[j]) == CRITICAL), i)
            severity = _severity(expectations[first])
            failures.append(_missing_failure(column, frame, target, roles, first, severity))
            continue
        message = _exception_message(result)
        if message is not None and column is not None and column in plain_failure_columns:
            # e.g. a range check on a numeric column full of text: the type failure says it.
            not_evaluated += 1
            continue
        details = result.result or {}
        expected = jsonable({k: v for k, v in kwargs.items() if k not in ("column", "batch_id")})
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
                    index=i,
                    severity=_severity(exp),
                )
            )
            continue
        failures.append(
            ExpectationFailure(
                expectation=kind,
                column=column,
                summary=summarise(kind, column, kwargs, details, frame, target),
                observed=observed(details),
                expected=expected,
                examples=_records(df, list(details.get("partial_unexpected_index_list") or [])),
                index=i,
                severity=_severity(exp),
            )
        )
    breakage = [f for f in failures if f.severity == CRITICAL]
    return ContractResult(
        success=not breakage,
        evaluated=len(expectations) - not_evaluated,
        failures=breakage,
        changes=[f for f in failures if f.severity != CRITICAL],
    )


def _severity(expectation: dict) -> str:
    """GX's severity of an expectation; one written without any (an older contract) is critical."""
    return str(expectation.get("severity") or CRITICAL).lower()


def _run_suite(context, batch_definition, suite, frame: pd.DataFrame, number: int):
    """Validate one batch frame; the suite validation result."""
    try:
        # What ValidationDefinition.run does inside, minus storing the result in the context's
        # result store (a JSON serialisation of every result: 0.2-0.5 s per table).
        from great_expectations.validator.v1_validator import Validator
    except ImportError:  # pragma: no cover - a later GX 1.x may move it; the public way works
        gx = gx_module()
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
    column: str,
    frame: pd.DataFrame,
    target: str,
    roles: dict,
    index: int | None = None,
    severity: str = CRITICAL,
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
        index=index,
        severity=severity,
    )

