"""Widening the data contract from a version a person judged right: only what the version
fails changes, each kind of expectation the way inference would have drawn it, what cannot be
widened is refused whole, and two revisions can be compared."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

from ml_assets.config import parse_settings
from ml_assets.core.columns import infer_roles
from ml_assets.core.contract import build_contract, validate_table
from ml_assets.core.contract.evolve import (
    CannotWiden,
    describe_contract,
    diff_contracts,
    failed_expectations,
    history_of,
    revision_of,
    start_history,
    widen_contract,
)

BETWEEN = "expect_column_values_to_be_between"


def _customers(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Like a CRM export: an id, a text category, an integer, blanks in a float, a text label."""
    rng = np.random.default_rng(seed)
    income = rng.normal(50_000, 12_000, n).round(2)
    income[rng.choice(n, size=n // 20, replace=False)] = np.nan  # 5% blank cells
    return pd.DataFrame(
        {
            "customer_id": np.arange(10_000, 10_000 + n),
            "plan": rng.choice(["basic", "pro", "enterprise"], n),
            "age": rng.integers(18, 80, n),
            "income": income,
            "churn": rng.choice(["yes", "no"], n, p=[0.3, 0.7]),
        }
    )


@pytest.fixture(scope="module")
def setup():
    df = _customers()
    settings = parse_settings(
        {"name": "customers", "target": "churn", "task": "classification"}, "customers.yaml"
    )
    roles = infer_roles(df, "churn", settings.id_columns, settings.contract.max_categories)
    contract = start_history(build_contract(df, settings, roles), "first-000000000000", by="ana")
    return df, settings, contract


def _find(contract: dict, kind: str, column: str | None, severity: str | None = None) -> int:
    matches = [
        i
        for i, e in enumerate(contract["expectations"])
        if e["type"] == kind
        and e["kwargs"].get("column") == column
        and (severity is None or e["severity"] == severity)
    ]
    assert len(matches) == 1, (kind, column, severity, matches)
    return matches[0]


def _widen(contract, settings, version: pd.DataFrame, key="v2-000000000000", reason="judged right"):
    failures = failed_expectations(validate_table(version, contract))
    assert failures, "the version should fail the contract"
    widening = widen_contract(contract, version, failures, settings.contract, key, reason, by="ana")
    return failures, widening


def _assert_only_changed(old: dict, new: dict, indices: set[int]) -> None:
    """Every expectation outside `indices` is byte-for-byte what it was."""
    assert len(old["expectations"]) == len(new["expectations"])
    for i, (before, after) in enumerate(zip(old["expectations"], new["expectations"], strict=True)):
        same = json.dumps(before, sort_keys=True) == json.dumps(after, sort_keys=True)
        assert same != (i in indices), (i, before, after)


def _passes(contract: dict, version: pd.DataFrame) -> bool:
    result = validate_table(version, contract)
    return not result.failures and not result.changes


# --- each kind of expectation ----------------------------------------------------------------


def test_a_moved_range_is_widened_with_the_padding_of_inference(setup):
    df, settings, contract = setup
    moved = df.copy()
    moved["income"] = moved["income"] * 1.6  # prices went up: change, not breakage
    before = copy.deepcopy(contract)
    failures, widening = _widen(contract, settings, moved, reason="prices rose 60%")

    change = _find(contract, BETWEEN, "income", "warning")
    assert [f.index for f in failures] == [change]
    assert contract == before  # the current revision is not touched
    _assert_only_changed(contract, widening.contract, {change})
    old, new = contract["expectations"][change]["kwargs"], widening.contract["expectations"][change]["kwargs"]
    values = moved["income"].dropna()
    low, high = values.min(), values.max()
    pad = settings.contract.range_tolerance * (high - low)
    assert new["min_value"] == pytest.approx(min(old["min_value"], low - pad), rel=1e-5)
    assert new["max_value"] == pytest.approx(high + pad, rel=1e-5) and new["max_value"] >= high + pad
    assert new["mostly"] == old["mostly"]
    why = widening.contract["expectations"][change]["meta"]["why"]
    assert why.endswith("\nwidened from v2-000000000000 at revision 2: prices rose 60%")
    assert widening.widened == [
        f"income: change range [{old['min_value']:.6g}, {old['max_value']:.6g}] -> "
        f"[{new['min_value']:.6g}, {new['max_value']:.6g}]"
    ]
    assert _passes(widening.contract, moved)


def test_a_units_slip_widens_the_breakage_bound_and_negatives_open_it_below(setup):
    df, settings, contract = setup
    slipped = df.copy()
    slipped["age"] = slipped["age"] * 1000
    slipped.loc[:9, "age"] = -slipped.loc[:9, "age"]  # and a sign never seen before
    failures, widening = _widen(contract, settings, slipped)

    bound = _find(contract, BETWEEN, "age", "critical")
    change = _find(contract, BETWEEN, "age", "warning")
    assert {f.index for f in failures} == {bound, change}
    assert contract["expectations"][bound]["kwargs"]["min_value"] == 0  # [0, B] before
    _assert_only_changed(contract, widening.contract, {bound, change})
    new = widening.contract["expectations"][bound]["kwargs"]
    largest = slipped["age"].abs().max()
    assert new["max_value"] == settings.contract.breakage_magnitude * largest
    assert new["min_value"] == -new["max_value"]  # [-B, B]
    assert isinstance(new["max_value"], int)  # an integer column keeps whole bounds
    assert _passes(widening.contract, slipped)


def test_a_breakage_bound_without_negatives_stays_at_zero(setup):
    df, settings, contract = setup
    slipped = df.assign(age=df["age"] * 1000)
    _, widening = _widen(contract, settings, slipped)
    bound = widening.contract["expectations"][_find(contract, BETWEEN, "age", "critical")]["kwargs"]
    assert bound["min_value"] == 0 and bound["max_value"] == 10 * slipped["age"].max()


def test_new_categories_and_a_new_class_are_added_to_their_sets(setup):
    df, settings, contract = setup
    new = df.copy()
    new.loc[:59, "plan"] = "premium"  # 20%: beyond category_mostly
    new.loc[:4, "churn"] = "paused"  # a label the model never saw: breakage
    failures, widening = _widen(contract, settings, new)

    plan = _find(contract, "expect_column_values_to_be_in_set", "plan")
    churn = _find(contract, "expect_column_values_to_be_in_set", "churn")
    assert {f.index for f in failures} == {plan, churn}
    _assert_only_changed(contract, widening.contract, {plan, churn})
    sets = {i: widening.contract["expectations"][i]["kwargs"]["value_set"] for i in (plan, churn)}
    assert sets[plan] == ["basic", "enterprise", "premium", "pro"]
    assert sets[churn] == ["no", "paused", "yes"]
    assert "churn: classes ['no', 'yes'] -> ['no', 'paused', 'yes'] (added 'paused')" in widening.widened
    assert _passes(widening.contract, new)


def test_an_emptier_column_lowers_mostly_to_its_share_plus_the_tolerance(setup):
    df, settings, contract = setup
    emptier = df.copy()
    emptier.loc[: int(len(df) * 0.3), "income"] = np.nan
    share = emptier["income"].isna().mean()
    _, widening = _widen(contract, settings, emptier)

    change = _find(contract, "expect_column_values_to_not_be_null", "income", "warning")
    _assert_only_changed(contract, widening.contract, {change})
    mostly = widening.contract["expectations"][change]["kwargs"]["mostly"]
    assert mostly == pytest.approx(1 - share - settings.contract.null_share_tolerance, abs=1e-6)
    assert widening.widened == [
        f"income: missing share at most {(1 - contract['expectations'][change]['kwargs']['mostly']) * 100:.1f}% "
        f"missing -> at most {(1 - mostly) * 100:.1f}% missing"
    ]
    assert _passes(widening.contract, emptier)


def test_a_smaller_table_lowers_the_row_count_minimum(setup):
    df, settings, contract = setup
    small = df.head(12)
    _, widening = _widen(contract, settings, small)
    rows = _find(contract, "expect_table_row_count_to_be_between", None)
    new = widening.contract["expectations"][rows]["kwargs"]
    assert contract["expectations"][rows]["kwargs"]["min_value"] == 30
    assert new["min_value"] == 12
    assert "table: row count at least 30 rows -> at least 12 rows" in widening.widened
    assert _passes(widening.contract, small)


def test_the_new_revision_records_who_when_why_and_what(setup):
    df, settings, contract = setup
    moved = df.assign(income=df["income"] * 1.6)
    _, widening = _widen(contract, settings, moved, key="v2-abc", reason="prices rose")
    assert revision_of(contract) == 1 and revision_of(widening.contract) == 2
    first, second = history_of(widening.contract)
    assert first == history_of(contract)[0]
    assert first["revision"] == 1 and first["data_version"] == "first-000000000000"
    assert second["revision"] == 2 and second["by"] == "ana" and second["reason"] == "prices rose"
    assert second["data_version"] == "v2-abc" and second["widened"] == widening.widened
    assert second["at"].endswith("+00:00")


def test_a_version_that_passes_the_widened_contract_has_nothing_left_to_widen(setup):
    df, settings, contract = setup
    moved = df.assign(income=df["income"] * 1.6)
    _, widening = _widen(contract, settings, moved)
    assert failed_expectations(validate_table(moved, widening.contract)) == []
    with pytest.raises(ValueError, match="nothing to widen"):
        widen_contract(widening.contract, moved, [], settings.contract, "v2")


# --- refused ----------------------------------------------------------------------------------


def test_a_missing_column_is_refused_naming_it_and_what_to_do(setup):
    df, settings, contract = setup
    failures = failed_expectations(validate_table(df.drop(columns=["income"]), contract))
    with pytest.raises(CannotWiden) as refused:
        widen_contract(contract, df.drop(columns=["income"]), failures, settings.contract, "v3-1")
    message = str(refused.value)
    assert "the contract cannot be widened from v3-1; nothing written" in message
    assert (
        "column 'income' is missing from v3-1: a contract cannot be widened to a missing "
        "column; fix the file, or edit the contract to drop the column"
    ) in message


def test_text_in_a_numeric_column_is_refused_even_beside_what_could_be_widened(setup):
    df, settings, contract = setup
    bad = df.copy()
    bad["age"] = bad["age"].astype(object)
    bad.loc[:99, "age"] = "unknown"
    bad.loc[:59, "plan"] = "premium"  # widenable, but the contract is never half widened
    failures = failed_expectations(validate_table(bad, contract))
    with pytest.raises(CannotWiden) as refused:
        widen_contract(contract, bad, failures, settings.contract, "v4-1")
    message = str(refused.value)
    type_list = _find(contract, "expect_column_values_to_be_in_type_list", "age")
    assert f"expectation #{type_list + 1} (expect_column_values_to_be_in_type_list) on column 'age'" in message
    assert "holds text in a numeric column" in message
    assert "plan" not in message


def test_an_expectation_kind_it_does_not_know_is_refused(setup):
    df, settings, contract = setup
    edited = copy.deepcopy(contract)
    edited["expectations"].append(
        {"type": "expect_column_values_to_match_regex",
         "kwargs": {"column": "plan", "regex": "^(basic|pro)$"}, "meta": {}, "severity": "critical"}
    )
    failures = failed_expectations(validate_table(df, edited))
    assert [f.expectation for f in failures] == ["expect_column_values_to_match_regex"]
    with pytest.raises(CannotWiden, match="does not know how to widen this kind of expectation"):
        widen_contract(edited, df, failures, settings.contract, "v5-1")


# --- diff and show ----------------------------------------------------------------------------


def test_diff_lists_changed_added_and_removed_expectations_per_column(setup):
    df, settings, contract = setup
    moved = df.assign(income=df["income"] * 1.6)
    _, widening = _widen(contract, settings, moved)
    change = _find(contract, BETWEEN, "income", "warning")
    old = contract["expectations"][change]["kwargs"]
    new = widening.contract["expectations"][change]["kwargs"]
    assert diff_contracts(contract, widening.contract) == [
        f"changed: income: change range [{old['min_value']:.6g}, {old['max_value']:.6g}] -> "
        f"[{new['min_value']:.6g}, {new['max_value']:.6g}]"
    ]
    assert diff_contracts(contract, contract) == []

    edited = copy.deepcopy(widening.contract)
    dropped = edited["expectations"].pop(_find(edited, "expect_column_values_to_be_in_set", "plan"))
    edited["expectations"].append(
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "customer_id"},
         "meta": {}, "severity": "warning"}
    )
    lines = diff_contracts(widening.contract, edited)
    assert "added: customer_id: expect_column_values_to_be_unique " in lines[0]
    assert lines[0].endswith("(reported)")
    assert lines[1] == (
        "removed: plan: categories one of 'basic', 'enterprise', 'pro', up to "
        f"{(1 - dropped['kwargs']['mostly']) * 100:.1f}% others (reported)"
    )


def test_describe_groups_each_column_by_what_a_failure_does_and_shows_the_history(setup):
    df, settings, contract = setup
    _, widening = _widen(contract, settings, df.assign(income=df["income"] * 1.6), reason="prices")
    text = describe_contract(widening.contract, "customers.json")
    lines = text.splitlines()
    assert lines[0] == "data contract 'customers', revision 2: customers.json"
    assert lines[1].startswith("inferred from first-000000000000 (300 rows) at ")
    income = lines.index("income (numeric feature)")
    assert lines[income + 1].startswith("  blocks (breakage): present; numbers; ")
    assert "(magnitude and sign)" in lines[income + 1]
    assert lines[income + 2].startswith("  reported (change): at most 15.0% missing; within [")
    assert "churn (target)" in lines and "  blocks (breakage): present; at most 20.0% missing; one of 'no', 'yes'" in lines
    assert "id columns (not checked, not features): customer_id" in lines
    history = lines[lines.index("history") + 1 :]
    assert "  ana  inferred from the first accepted data version: first-000000000000" in history[0]
    assert history[1].startswith("  revision 2  ") and history[1].endswith("  ana  accepted v2-000000000000: prices")
    assert history[2] == f"      widened {widening.widened[0]}"
