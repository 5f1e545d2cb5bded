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
# (`df[df[col].notnull()]`, then `df[unexpected]`), so one 1,000,000 x 20 batch took 15 s; and
# it fingerprints every batch frame (a hash of each cell and of the index, then md5 of those).
# So a big table is validated a few columns at a time, the batches sized in bytes per row: a
# categorical column (one-byte codes) costs an eighth of a float64 one to copy, so the text
# columns of the benchmark table share one batch while its numeric columns go two by two.
# Measured with `python -m benchmarks.validation` (1,000,000 rows, 8 numeric and 6
# categorical columns, 72 expectations; GX 1.24, pandas 2.3), median of 5 on a table that
# passes: 2/4/8/16/32 MB per batch took 0.78/0.72/0.70/0.67/0.68 s, the whole table in one
# batch 1.04 s. Small tables stay in one batch (GX's fixed cost is a few ms per expectation).
BYTES_PER_BATCH = 16_000_000

# The first pass asks GX for the verdict only: "BOOLEAN_ONLY" computes each expectation's
# unexpected count and nothing more, where "SUMMARY" also gathers the first unexpected values
# and their row indices (more filtered copies of the batch frame, even for an expectation that
# passes). The failed expectations are then evaluated again with RESULT_FORMAT on the same
# validator (same batch, no second fingerprint) for their examples, so a clean table pays for
# no examples and a failing one for its failures only. Measured as above: 0.74 s verdict first,
# 1.04 s in one "SUMMARY" pass (median of 5).
FIRST_PASS_FORMAT = {"result_format": "BOOLEAN_ONLY"}

# "SUMMARY" returns up to 5 unexpected values and their row indices for pandas without the
# complete lists; the unexpected-index *query* is a string listing every unexpected index, so
# it is turned off.
RESULT_FORMAT = {
    "result_format": "SUMMARY",
    "partial_unexpected_count": MAX_EXAMPLES,
    "return_unexpected_index_query": False,
}


def _row_bytes(dtype: Any) -> int:
    """Bytes per row that GX copies when it filters a column of this dtype."""
    if isinstance(dtype, pd.CategoricalDtype):
        # the codes: int8 up to 127 categories, then int16, int32
        return next(b for b, top in ((1, 2**7), (2, 2**15), (4, 2**31), (8, None))
                    if top is None or len(dtype.categories) < top)
    return int(getattr(dtype, "itemsize", 0) or 8)


def _batches(
    expectations: list[dict], frame: pd.DataFrame
) -> list[tuple[list[str] | None, list[int]]]:
    """Expectation indices grouped into batches: (columns of the batch frame, indices).

    None as columns means the whole table; [] a frame with the rows but no columns. A column
    the frame lacks is in no batch frame (its expectations fail as missing), and costs nothing.
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
    budget = max(1, BYTES_PER_BATCH // max(1, len(frame)))
    dtypes = dict(zip(frame.columns, frame.dtypes, strict=True))
    batches: list[tuple[list[str] | None, list[int]]] = []
    used = budget
    for column, indices in by_column.items():
        size = _row_bytes(dtypes[column]) if column in dtypes else 0
        if column in dtypes and pd.api.types.is_object_dtype(dtypes[column]):
            size = budget  # a batch of its own: see _run_suite
        if batches and used + size <= budget:
            used += size
        else:
            batches.append(([], []))
            used = size
        columns, members = batches[-1]
        if column in dtypes:
            columns.append(column)
        members.extend(indices)
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
    built: dict[int, Any] = {}  # GX objects by contract position; a bad one fails the file
    for i, expectation in enumerate(expectations):
        try:
            built[i] = build_expectation(expectation)
        except ValueError as exc:
            raise ContractFileError(
                f"contract {contract.get('name')!r}: expectation #{i + 1}: {exc}"
            ) from None
    results: dict[int, Any] = {}
    for columns, indices in _batches(expectations, frame):
        batch_frame = frame if columns is None else frame[columns]
        results.update(_run_suite(batch_definition, built, indices, batch_frame))

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


def _suite(expectations: dict[int, Any], indices: list[int]):
    """A GX suite of those expectations (GX objects by contract position), each with its
    position as id: all a result needs to be put back in the contract's order.

    Built outside the context's suite store: adding it there would serialise every expectation
    again, which is all that store is for here.
    """
    gx = gx_module()
    suite = gx.ExpectationSuite(name="contract", expectations=[expectations[i] for i in indices])
    for expectation, i in zip(suite.expectations, indices, strict=True):
        expectation.id = str(i)
    return suite


def _run_suite(
    batch_definition, built: dict[int, Any], indices: list[int], frame: pd.DataFrame
) -> dict[int, Any]:
    """Validate those expectations on one batch frame; their GX results by contract position.

    A verdict-only pass first, then the failed expectations again for their examples (see
    FIRST_PASS_FORMAT), both on one validator (one batch, one fingerprint).

    A column of Python objects (numbers read as text: it is there to fail) has a batch of its
    own (see _batches), evaluated in one "SUMMARY" pass, one expectation at a time: GX checks
    such a column's types value by value in Python (about a second a million rows), and a range
    check that raises on text makes GX compute again every metric of the same resolution round,
    up to three times (which ones depends on set order, so on the process's hash seed). Measured
    on the benchmark table with one numeric column as text (1,000,000 rows, hash seeds 1-4):
    2.0-7.3 s in one graph, 2.0-3.0 s one expectation at a time.
    """
    try:
        # What ValidationDefinition.run does inside, minus storing the result in the context's
        # result store (a JSON serialisation of every result: 0.2-0.5 s per table).
        from ml_assets.private_apis import Validator
    except ImportError:  # pragma: no cover - a later GX 1.x may move it; the public way works
        return _run_definition(batch_definition, built, indices, frame)
    objects = any(pd.api.types.is_object_dtype(d) for d in frame.dtypes)
    validator = Validator(
        batch_definition=batch_definition,
        batch_parameters={"dataframe": frame},
        result_format=RESULT_FORMAT if objects else FIRST_PASS_FORMAT,
    )
    if objects:
        results: dict[int, Any] = {}
        for i in indices:
            results.update(_by_position(validator.validate_expectation_suite(_suite(built, [i]))))
        return results
    results = _by_position(validator.validate_expectation_suite(_suite(built, indices)))
    failed = [i for i in indices if not results[i].success]
    if failed:
        validator.result_format = RESULT_FORMAT
        # copies: an expectation belongs to one suite (GX refuses one that has an id)
        again = {i: built[i].copy(update={"id": None}) for i in failed}
        results.update(_by_position(validator.validate_expectation_suite(_suite(again, failed))))
    return results


def _by_position(outcome) -> dict[int, Any]:
    return {int(result.expectation_config.id): result for result in outcome.results}


def _run_definition(
    batch_definition, built: dict[int, Any], indices: list[int], frame: pd.DataFrame
) -> dict[int, Any]:  # pragma: no cover - only where GX's Validator class moved
    """The public way: a ValidationDefinition in the context, one "SUMMARY" pass."""
    gx = gx_module()
    context = batch_definition.data_asset.datasource.data_context
    suite = context.suites.add(
        gx.ExpectationSuite(
            name=f"contract-{indices[0]}", expectations=[built[i] for i in indices]
        )
    )
    position = {exp.id: i for exp, i in zip(suite.expectations, indices, strict=True)}
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=suite.name, data=batch_definition, suite=suite)
    )
    outcome = definition.run(batch_parameters={"dataframe": frame}, result_format=RESULT_FORMAT)
    return {position[r.expectation_config.id]: r for r in outcome.results}


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

