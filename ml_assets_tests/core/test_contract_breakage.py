"""Where the data contract draws the line: breakage blocks a version, change is only reported.

Breakage: a missing column, text in a number column, a new label class, a column gone mostly
empty, values off by orders of magnitude or negative where none was. Change: values that left
the first version's range by a plausible amount, a somewhat emptier column, a new category.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from ml_assets.config import PipelineFileError, parse_settings
from ml_assets.core.columns import infer_roles
from ml_assets.core.contract import (
    ContractResult,
    build_contract,
    load_contract,
    save_contract,
    validate_table,
)


def _contract(df: pd.DataFrame, target: str, task: str, **contract_settings) -> dict:
    settings = parse_settings(
        {"name": "t", "target": target, "task": task, "contract": contract_settings}, "test.yaml"
    )
    roles = infer_roles(df, target, settings.id_columns, settings.contract.max_categories)
    return build_contract(df, settings, roles)


def _accounts(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """A churn table: a price (never negative), months of tenure, a balance that can be negative,
    a contract type and the label."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "account_id": np.arange(1000, 1000 + n),
            "monthly_charges": rng.uniform(20, 120, n).round(2),
            "tenure": rng.integers(1, 73, n),
            "balance": rng.normal(0, 50, n).round(2),
            "contract": rng.choice(["monthly", "yearly", "two_year"], n),
            "churn": rng.choice(["yes", "no"], n, p=[0.3, 0.7]),
        }
    )


@pytest.fixture(scope="module")
def accounts():
    df = _accounts()
    return df, _contract(df, "churn", "classification")


def _blanked(series: pd.Series, share: float) -> pd.Series:
    """`series` with its first `share` of rows blank."""
    out = series.astype(float)
    out.iloc[: int(round(share * len(out)))] = np.nan
    return out


def _broken(result: ContractResult, column: str, expectation: str):
    """The version is blocked, and by exactly one breakage on `column`."""
    assert not result.success, f"{column} should have blocked the version"
    [failure] = result.failures
    assert (failure.column, failure.expectation, failure.severity) == (
        column,
        expectation,
        "critical",
    ), result.describe()
    assert result.describe().startswith(f"1 of {result.evaluated} expectations failed:")
    return failure


def _changed(result: ContractResult, column: str, expectation: str):
    """The version passes, and the one change reported is on `column`."""
    assert result.success, result.describe()
    assert result.failures == []
    assert [(c.column, c.expectation, c.severity) for c in result.changes] == [
        (column, expectation, "warning")
    ], result.describe_changes()
    return result.changes[0]


BETWEEN = "expect_column_values_to_be_between"
NOT_NULL = "expect_column_values_to_not_be_null"
IN_SET = "expect_column_values_to_be_in_set"


# --- values: moved by a plausible amount, or wrong by orders of magnitude --------------------


def test_prices_up_60_percent_are_a_change_named_in_the_report(accounts):
    df, contract = accounts

    result = validate_table(df.assign(monthly_charges=df["monthly_charges"] * 1.6), contract)

    change = _changed(result, "monthly_charges", BETWEEN)
    low, high = df["monthly_charges"].min(), df["monthly_charges"].max()
    kwargs = contract["expectations"][change.index]["kwargs"]
    # the first version's range widened by range_tolerance (0.5) x its span on each side
    assert kwargs["min_value"] == pytest.approx(low - 0.5 * (high - low), abs=1e-3)
    assert kwargs["max_value"] == pytest.approx(high + 0.5 * (high - low), abs=1e-3)
    bounds = f"[{kwargs['min_value']:.4g}, {kwargs['max_value']:.4g}]"
    assert change.summary.startswith("monthly_charges: ")
    assert f"% of values outside {bounds} (allowed: 1.0%)" in change.summary
    assert result.changed_columns == ["monthly_charges"]
    assert result.describe_changes().splitlines() == [
        "1 change from the contract (reported, not blocking):",
        f"- {change.summary}",
    ]
    assert contract["expectations"][change.index]["severity"] == "warning"
    metadata = result.to_metadata()
    assert json.loads(json.dumps(metadata, allow_nan=False)) == metadata
    assert metadata["success"] is True and metadata["failed"] == 0
    assert metadata["changed"] == 1 and metadata["changes"][0]["column"] == "monthly_charges"


@pytest.mark.parametrize("factor", [1000, 1e9], ids=["x1000", "x1e9"])
def test_a_units_slip_is_breakage(accounts, factor):
    df, contract = accounts

    result = validate_table(df.assign(monthly_charges=df["monthly_charges"] * factor), contract)

    failure = _broken(result, "monthly_charges", BETWEEN)
    assert "100.0% of values outside [0, " in failure.summary
    assert contract["expectations"][failure.index]["kwargs"]["max_value"] == pytest.approx(
        10 * df["monthly_charges"].max()
    )
    # the range it left is reported as well: widening the contract sees both
    assert result.changed_columns == ["monthly_charges"]


def test_an_integer_column_slipped_by_1000_is_breakage(accounts):
    df, contract = accounts

    failure = _broken(validate_table(df.assign(tenure=df["tenure"] * 1000), contract), "tenure", BETWEEN)

    assert contract["expectations"][failure.index]["kwargs"]["max_value"] == 720  # 10 x 72 months


def test_negative_values_where_none_were_seen_are_breakage(accounts):
    df, contract = accounts

    failure = _broken(
        validate_table(df.assign(monthly_charges=-df["monthly_charges"]), contract),
        "monthly_charges",
        BETWEEN,
    )

    assert contract["expectations"][failure.index]["kwargs"]["min_value"] == 0


def test_a_column_that_had_negatives_may_flip_sign(accounts):
    df, contract = accounts
    result = validate_table(df.assign(balance=-df["balance"]), contract)
    assert result.success, result.describe()


def test_a_stray_outlier_does_not_block(accounts):
    df, contract = accounts
    charges = df["monthly_charges"].copy()
    charges.iloc[7] = 1e9  # one typo in 400 rows: 0.25%, 1% allowed

    result = validate_table(df.assign(monthly_charges=charges), contract)

    assert result.success and result.changes == [], result.describe_changes()


def test_the_breakage_line_says_where_its_numbers_came_from(accounts):
    df, contract = accounts
    [breakage] = [
        e
        for e in contract["expectations"]
        if e["type"] == BETWEEN
        and e["kwargs"]["column"] == "monthly_charges"
        and e["severity"] == "critical"
    ]
    why = breakage["meta"]["why"]
    assert f"largest magnitude {df['monthly_charges'].max():.6g}" in why
    assert "breakage_magnitude=10" in why and "no negative value was seen" in why
    assert breakage["kwargs"]["mostly"] == 0.99


# --- categories and labels --------------------------------------------------------------------


def test_a_new_category_in_a_feature_is_a_change(accounts):
    df, contract = accounts
    plan = df["contract"].where(df.index % 5 != 0, "weekly")  # 20% new, 5% allowed

    change = _changed(validate_table(df.assign(contract=plan), contract), "contract", IN_SET)

    assert "'weekly'" in change.summary and "80 rows" in change.summary


def test_a_new_label_class_is_breakage(accounts):
    df, contract = accounts
    labels = df["churn"].where(df.index % 50 != 0, "paused")

    failure = _broken(validate_table(df.assign(churn=labels), contract), "churn", IN_SET)

    assert "target 'churn'" in failure.summary and "'paused'" in failure.summary


# --- blanks -----------------------------------------------------------------------------------


def test_a_column_gone_mostly_empty_is_breakage(accounts):
    df, contract = accounts

    result = validate_table(df.assign(tenure=_blanked(df["tenure"], 0.7)), contract)

    failure = _broken(result, "tenure", NOT_NULL)
    assert failure.summary == "tenure: 70.0% of values are missing (allowed: 50.0%)"
    assert result.changed_columns == ["tenure"]  # emptier than the change line too


def test_a_moderately_emptier_column_is_a_change(accounts):
    df, contract = accounts

    result = validate_table(df.assign(tenure=_blanked(df["tenure"], 0.2)), contract)

    change = _changed(result, "tenure", NOT_NULL)
    assert change.summary == "tenure: 20.0% of values are missing (allowed: 10.0%)"


def test_a_column_near_the_line_is_not_blocked_before_it_is_a_change():
    first = _accounts()
    first["tenure"] = _blanked(first["tenure"], 0.45)  # 45% blank from the start
    contract = _contract(first, "churn", "classification")

    # 52%: over breakage_null_share (0.5), but within 45% + null_share_tolerance (0.1)
    assert validate_table(first.assign(tenure=_blanked(first["tenure"], 0.52)), contract).success
    result = validate_table(first.assign(tenure=_blanked(first["tenure"], 0.6)), contract)
    assert _broken(result, "tenure", NOT_NULL).summary.endswith("(allowed: 55.0%)")


# --- the settings move the lines --------------------------------------------------------------


def test_breakage_magnitude_2_makes_x3_breakage():
    df = _accounts()
    tripled = df.assign(monthly_charges=df["monthly_charges"] * 3)

    default = validate_table(tripled, _contract(df, "churn", "classification"))
    strict = validate_table(tripled, _contract(df, "churn", "classification", breakage_magnitude=2))

    _changed(default, "monthly_charges", BETWEEN)
    failure = _broken(strict, "monthly_charges", BETWEEN)
    assert "outside [0, " in failure.summary
    assert failure.expected["max_value"] == pytest.approx(2 * df["monthly_charges"].max())


def test_breakage_negative_false_lets_negatives_through_as_a_change():
    df = _accounts()
    contract = _contract(df, "churn", "classification", breakage_negative=False)

    result = validate_table(df.assign(monthly_charges=-df["monthly_charges"]), contract)

    _changed(result, "monthly_charges", BETWEEN)


def test_a_larger_range_tolerance_makes_prices_up_60_percent_clean():
    df = _accounts()
    contract = _contract(df, "churn", "classification", range_tolerance=2)

    result = validate_table(df.assign(monthly_charges=df["monthly_charges"] * 1.6), contract)

    assert result.success and result.changes == [], result.describe_changes()


def test_breakage_null_share_moves_the_mostly_empty_line():
    df = _accounts()
    contract = _contract(df, "churn", "classification", breakage_null_share=0.15)

    result = validate_table(df.assign(tenure=_blanked(df["tenure"], 0.2)), contract)

    assert _broken(result, "tenure", NOT_NULL).summary.endswith("(allowed: 15.0%)")


def test_breakage_mostly_lets_more_outliers_through():
    df = _accounts()
    charges = df["monthly_charges"].where(df.index % 20 != 0, 1e6)  # 5% typos
    version = df.assign(monthly_charges=charges)

    assert not validate_table(version, _contract(df, "churn", "classification")).success
    lenient = _contract(df, "churn", "classification", breakage_mostly=0.9)
    assert validate_table(version, lenient).success


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("breakage_magnitude", 1, "greater than 1"),
        ("breakage_null_share", 0, "greater than 0"),
        ("breakage_mostly", 1.5, "less than or equal to 1"),
        ("breakage_negative", "sometimes", "bool"),
    ],
)
def test_a_bad_breakage_setting_names_the_key(key, value, expected):
    with pytest.raises(PipelineFileError) as raised:
        parse_settings(
            {"name": "t", "target": "y", "task": "regression", "contract": {key: value}},
            "pipeline.yaml",
        )
    message = str(raised.value)
    assert "pipeline.yaml" in message and f"contract.{key}" in message
    assert expected in message


# --- contracts written before severities ------------------------------------------------------


def test_an_old_contract_without_severities_still_blocks_a_range_failure(tmp_path, accounts):
    df, contract = accounts
    # what the earlier code wrote: format 1, no severities, no breakage expectations
    old = json.loads(json.dumps(contract))
    old["expectations"] = [
        {k: v for k, v in e.items() if k != "severity"}
        for e in old["expectations"]
        if e["severity"] == "warning" or "breakage" not in e["meta"]["why"]
    ]
    old["meta"]["ml_assets"]["format"] = 1
    path = tmp_path / "t.json"
    path.write_text(json.dumps(old, indent=2))

    result = validate_table(df.assign(monthly_charges=df["monthly_charges"] * 1.6), load_contract(path))

    failure = _broken(result, "monthly_charges", BETWEEN)
    assert old["expectations"][failure.index]["meta"]["why"].startswith(
        "numeric feature: observed range"
    )
    assert result.changes == []


def test_the_severities_survive_saving_and_loading(tmp_path, accounts):
    _, contract = accounts
    path = tmp_path / "t.json"
    save_contract(contract, path)

    loaded = load_contract(path)

    assert [e["severity"] for e in loaded["expectations"]] == [
        e["severity"] for e in contract["expectations"]
    ]
    assert loaded["meta"]["ml_assets"]["format"] == 2


# --- real data --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cancer():
    data = load_breast_cancer(as_frame=True)
    df = data.frame[[c for c in data.frame.columns if c.startswith("mean ")]].copy()
    df["diagnosis"] = data.target.map({0: "malignant", 1: "benign"})
    return df, _contract(df, "diagnosis", "classification")


@pytest.fixture(scope="module")
def wine():
    df = load_wine(as_frame=True).frame
    return df, _contract(df, "target", "classification")


@pytest.fixture(scope="module")
def diabetes():
    df = load_diabetes(as_frame=True, scaled=False).frame
    return df, _contract(df, "target", "regression")


@pytest.mark.parametrize(
    "dataset, column",
    [
        ("cancer", "mean fractal dimension"),
        ("wine", "proline"),
        ("diabetes", "bmi"),
        ("diabetes", "target"),
    ],
)
def test_real_columns_up_60_percent_are_a_change(request, dataset, column):
    df, contract = request.getfixturevalue(dataset)

    result = validate_table(df.assign(**{column: df[column] * 1.6}), contract)

    change = _changed(result, column, BETWEEN)
    assert column in change.summary and "of values outside" in change.summary


@pytest.mark.parametrize(
    "dataset, column, factor",
    [
        ("cancer", "mean area", 1000),
        ("cancer", "mean concavity", -1),
        ("wine", "magnesium", 1e9),
        ("diabetes", "target", 1000),
    ],
    ids=["cancer-x1000", "cancer-negative", "wine-x1e9", "diabetes-target-x1000"],
)
def test_real_columns_slipped_or_negated_are_breakage(request, dataset, column, factor):
    df, contract = request.getfixturevalue(dataset)

    result = validate_table(df.assign(**{column: df[column] * factor}), contract)

    failure = _broken(result, column, BETWEEN)

    assert column in failure.summary


def test_real_data_with_a_new_class_and_a_drifted_column_blocks_on_the_class_only(wine):
    df, contract = wine
    labels = df["target"].where(df.index % 10 != 0, 3)

    result = validate_table(df.assign(target=labels, proline=df["proline"] * 1.6), contract)

    failure = _broken(result, "target", IN_SET)
    assert "['3']" in failure.summary
    assert result.changed_columns == ["proline"]
