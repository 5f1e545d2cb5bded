"""The data contract on real data: what it accepts, what it blocks and what it tells the user.

The line between breakage (blocks) and change (reported) is tested in test_contract_breakage.py.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from ml_assets.config import parse_settings
from ml_assets.core.columns import infer_roles
from ml_assets.core.contract import (
    ContractFileError,
    ContractResult,
    build_contract,
    load_contract,
    roles_from_contract,
    save_contract,
    validate_table,
)


def _pipeline(name: str, df: pd.DataFrame, target: str, task: str, **extra):
    settings = parse_settings({"name": name, "target": target, "task": task, **extra}, "test.yaml")
    roles = infer_roles(df, target, settings.id_columns, settings.contract.max_categories)
    return settings, roles, build_contract(df, settings, roles)


@pytest.fixture(scope="module")
def cancer():
    """Breast cancer, binary: the ten "mean ..." measurements (a 30-feature suite is 3x slower
    to evaluate and tests nothing more) and a text label."""
    data = load_breast_cancer(as_frame=True)
    features = [c for c in data.frame.columns if c.startswith("mean ")]
    df = data.frame[features].copy()
    df["diagnosis"] = data.target.map({0: "malignant", 1: "benign"})
    _, roles, contract = _pipeline("cancer", df, "diagnosis", "classification")
    return df, roles, contract


@pytest.fixture(scope="module")
def wine():
    df = load_wine(as_frame=True).frame
    _, roles, contract = _pipeline("wine", df, "target", "classification")
    return df, roles, contract


@pytest.fixture(scope="module")
def diabetes():
    df = load_diabetes(as_frame=True, scaled=False).frame
    _, roles, contract = _pipeline("diabetes", df, "target", "regression")
    return df, roles, contract


def _customers(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """A frame like a CRM export: an id, a text category, a flag, blanks in a numeric column."""
    rng = np.random.default_rng(seed)
    income = rng.normal(50_000, 12_000, n).round(2)
    income[rng.choice(n, size=n // 20, replace=False)] = np.nan  # 5% blank cells
    return pd.DataFrame(
        {
            "customer_id": np.arange(10_000, 10_000 + n),
            "plan": rng.choice(["basic", "pro", "enterprise"], n),
            "is_active": rng.choice([True, False], n),
            "age": rng.integers(18, 80, n),
            "income": income,
            "churn": rng.choice(["yes", "no"], n, p=[0.3, 0.7]),
        }
    )


@pytest.fixture(scope="module")
def customers():
    df = _customers()
    _, roles, contract = _pipeline("customers", df, "churn", "classification")
    assert roles.ids == ("customer_id",) and set(roles.categorical) == {"plan", "is_active"}
    return df, roles, contract


def _only_failure(result: ContractResult):
    assert not result.success, "the version should have been blocked"
    assert len(result.failures) == 1, result.describe()
    assert result.failures[0].severity == "critical"
    return result.failures[0]


# --- the contract accepts the data it was inferred from -------------------------------------


@pytest.mark.parametrize("dataset", ["cancer", "wine", "diabetes", "customers"])
def test_contract_passes_on_its_own_version_and_on_a_resample(dataset, request):
    df, _, contract = request.getfixturevalue(dataset)
    resample = df.sample(frac=1.0, replace=True, random_state=1)

    for version in (df, resample):
        result = validate_table(version, contract)
        assert result.success, result.describe()
        assert result.failures == [] and result.changes == [], result.describe_changes()
        assert result.evaluated == len(contract["expectations"])
        assert result.describe() == f"all {result.evaluated} expectations passed"
        assert result.describe_changes() == "no change from the contract"


def test_contract_is_the_suite_with_roles_and_observed_schema(customers):
    df, roles, contract = customers
    meta = contract["meta"]["ml_assets"]

    assert contract["name"] == "customers"
    assert roles_from_contract(contract) == roles
    assert meta["inferred_from"] is None
    assert meta["format"] == 2
    assert meta["settings"]["min_rows"] == 30
    assert meta["settings"]["breakage_magnitude"] == 10
    assert meta["columns"]["income"] == {"dtype": "float64", "kind": "float", "null_share": 0.05}
    assert meta["columns"]["plan"]["kind"] == "text"
    checked = {(e["type"], e["kwargs"].get("column")) for e in contract["expectations"]}
    # the id is not required; features and the target are
    assert not any(column == "customer_id" for _, column in checked)
    for column in ("plan", "is_active", "age", "income", "churn"):
        assert ("expect_column_to_exist", column) in checked
    plan_set = next(
        e
        for e in contract["expectations"]
        if e["type"] == "expect_column_values_to_be_in_set" and e["kwargs"]["column"] == "plan"
    )
    assert plan_set["kwargs"]["value_set"] == ["basic", "enterprise", "pro"]
    assert all(e["meta"]["why"] for e in contract["expectations"])
    assert {e["severity"] for e in contract["expectations"]} == {"critical", "warning"}
    income_ranges = {
        e["severity"]: e["kwargs"]
        for e in contract["expectations"]
        if e["type"] == "expect_column_values_to_be_between" and e["kwargs"]["column"] == "income"
    }
    low, high = df["income"].min(), df["income"].max()
    change, breakage = income_ranges["warning"], income_ranges["critical"]
    assert change["min_value"] < low and change["max_value"] > high
    # breakage: 10 x the largest magnitude seen, and no negatives (none were seen)
    assert breakage["min_value"] == 0 and breakage["max_value"] == pytest.approx(10 * high)


# --- the file ---------------------------------------------------------------------------------


def test_save_and_load_round_trip_gives_a_readable_file(tmp_path, cancer):
    _, roles, contract = cancer
    path = tmp_path / "contracts" / "cancer.json"

    save_contract(contract, path)

    text = path.read_text(encoding="utf-8")
    on_disk = json.loads(text)
    assert on_disk["name"] == "cancer"
    assert len(on_disk["expectations"]) == len(contract["expectations"])
    first = on_disk["expectations"][0]
    assert first["type"] == "expect_table_row_count_to_be_between"
    assert first["meta"] == {
        "why": "contract.min_rows: fewer than 30 rows is too little to train and evaluate a model"
    }
    assert on_disk["meta"]["ml_assets"]["roles"]["target"] == "diagnosis"
    assert text.count("\n") > len(contract["expectations"])  # indented, not one long line
    assert [p.name for p in path.parent.iterdir()] == ["cancer.json"]  # no temporary left

    loaded = load_contract(path)
    assert loaded == contract
    assert roles_from_contract(loaded) == roles


def test_an_edited_contract_is_what_gets_evaluated(tmp_path, cancer):
    df, _, contract = cancer
    path = tmp_path / "cancer.json"
    save_contract(contract, path)
    edited = json.loads(path.read_text())
    edited["expectations"].append(
        {
            "type": "expect_column_max_to_be_between",
            "kwargs": {"column": "mean area", "max_value": 1},
        }
    )
    path.write_text(json.dumps(edited))

    failure = _only_failure(validate_table(df, load_contract(path)))

    assert failure.expectation == "expect_column_max_to_be_between"
    assert failure.summary == "mean area: expect_column_max_to_be_between failed (observed: 2501)"


@pytest.mark.parametrize(
    "content, reason",
    [
        ('{"name": "cancer", "expectations": [', "not valid JSON at line 1, column 37: Expecting value"),
        ("[1, 2]", "expected a JSON object (a Great Expectations suite), got list"),
        (
            {"type": "expect_column_to_be_awesome", "kwargs": {"column": "mean area"}},
            "expectation #3 (expect_column_to_be_awesome): unknown expectation type "
            "'expect_column_to_be_awesome'",
        ),
        (
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x", "mostly": 7}},
            "expectation #3 (expect_column_values_to_not_be_null): mostly: ensure this value is "
            "less than or equal to 1.0",
        ),
    ],
    ids=["bad-json", "not-an-object", "unknown-expectation", "bad-argument"],
)
def test_a_broken_file_is_reported_with_its_path_and_reason(tmp_path, cancer, content, reason):
    _, _, contract = cancer
    path = tmp_path / "cancer.json"
    if isinstance(content, dict):
        broken = json.loads(json.dumps(contract))
        broken["expectations"].insert(2, content)
        content = json.dumps(broken, indent=2)
    path.write_text(content)

    with pytest.raises(ContractFileError) as raised:
        load_contract(path)

    assert str(raised.value) == f"{path}: {reason}"


def test_a_missing_file_is_a_contract_file_error(tmp_path):
    with pytest.raises(ContractFileError) as raised:
        load_contract(tmp_path / "nope.json")
    assert str(raised.value) == f"{tmp_path / 'nope.json'}: contract file not found"


# --- blocked versions -------------------------------------------------------------------------


def _renamed(df):
    return df.rename(columns={"mean radius": "mean_radius"})


def _text_in_numeric(df):
    return df.assign(**{"mean texture": ["see notes"] * len(df)})


def _absurd(df):
    return df.assign(**{"mean area": df["mean area"] * 1e9})


def _mostly_empty(df):
    column = df["mean perimeter"].copy()
    column.iloc[np.arange(len(df)) % 4 != 3] = np.nan  # a column with no blank, now 75%
    return df.assign(**{"mean perimeter": column})


def _unseen_class(df):
    labels = df["diagnosis"].copy()
    labels.iloc[[3, 50, 400]] = "maybe"
    return df.assign(diagnosis=labels)


def _single_row(df):
    return df.head(1)


def _no_labels(df):
    return df.assign(diagnosis=[None] * len(df))


@pytest.mark.parametrize(
    "change, expectation, column, words",
    [
        (_renamed, "expect_column_to_exist", "mean radius", ["missing", "mean_radius"]),
        (_text_in_numeric, "expect_column_values_to_be_in_type_list", "mean texture", ["numbers"]),
        (_absurd, "expect_column_values_to_be_between", "mean area", ["100.0%", "outside"]),
        (
            _mostly_empty,
            "expect_column_values_to_not_be_null",
            "mean perimeter",
            ["75.0%", "missing", "allowed: 50.0%"],
        ),
        (_unseen_class, "expect_column_values_to_be_in_set", "diagnosis", ["'maybe'", "3 rows"]),
        (_single_row, "expect_table_row_count_to_be_between", None, ["1 row", "at least 30"]),
        (_no_labels, "expect_column_values_to_not_be_null", "diagnosis", ["100.0%", "labels"]),
    ],
    ids=[
        "renamed-feature",
        "text-in-numeric",
        "absurd-values",
        "mostly-empty",
        "unseen-class",
        "single-row",
        "no-labels",
    ],
)
def test_a_broken_version_is_blocked_with_one_clear_failure(
    cancer, change, expectation, column, words
):
    df, _, contract = cancer

    result = validate_table(change(df), contract)

    failure = _only_failure(result)
    assert failure.expectation == expectation
    assert failure.column == column
    if column is not None:
        assert column in failure.summary
    for word in words:
        assert word in failure.summary
    assert "\n" not in failure.summary
    assert result.describe().splitlines() == [
        f"1 of {result.evaluated} expectations failed:",
        f"- {failure.summary}",
    ]
    metadata = result.to_metadata()
    assert json.loads(json.dumps(metadata, allow_nan=False)) == metadata
    assert metadata["failed"] == 1 and metadata["failures"][0]["expectation"] == expectation


def test_a_missing_column_is_one_failure_not_one_per_expectation(cancer):
    df, _, contract = cancer
    on_radius = [e for e in contract["expectations"] if e["kwargs"].get("column") == "mean radius"]
    # exists, numbers, not mostly null, not much emptier, magnitude, range
    assert len(on_radius) == 6

    result = validate_table(df.drop(columns=["mean radius"]), contract)

    failure = _only_failure(result)
    assert failure.summary == "column 'mean radius' is missing"
    assert contract["expectations"][failure.index]["type"] == "expect_column_to_exist"
    assert result.changes == []  # the column's change expectations are not reported again
    assert result.evaluated == len(contract["expectations"]) - 5


def test_an_unseen_class_is_blocked_in_a_multiclass_target(wine):
    df, _, contract = wine
    labels = df["target"].copy()
    labels.iloc[:4] = 3

    failure = _only_failure(validate_table(df.assign(target=labels), contract))

    assert failure.expectation == "expect_column_values_to_be_in_set"
    assert failure.summary == "target 'target': unexpected values ['3'] in 4 rows (2.2%; allowed: none)"
    assert failure.expected == {"value_set": ["0", "1", "2"]}


def test_a_regression_target_out_of_range_is_blocked(diabetes):
    df, _, contract = diabetes

    failure = _only_failure(validate_table(df.assign(target=df["target"] * 1000), contract))

    assert failure.expectation == "expect_column_values_to_be_between"
    assert failure.column == "target"


def test_a_new_category_beyond_tolerance_is_a_change_not_a_block(customers):
    df, _, contract = customers
    plan = df["plan"].where(df.index % 4 != 0, "platinum")  # 25% new, 5% allowed

    result = validate_table(df.assign(plan=plan), contract)

    assert result.success and result.failures == [], result.describe()
    [change] = result.changes
    assert change.column == "plan" and change.severity == "warning"
    assert change.summary == "plan: unexpected values ['platinum'] in 75 rows (25.0%; allowed: 5.0%)"


# --- accepted versions ------------------------------------------------------------------------


def test_an_extra_column_is_accepted(cancer):
    df, _, contract = cancer
    result = validate_table(df.assign(comment="scanned twice"), contract)
    assert result.success, result.describe()


def test_a_missing_id_column_is_accepted(customers):
    df, _, contract = customers
    result = validate_table(df.drop(columns=["customer_id"]), contract)
    assert result.success, result.describe()


def test_a_few_blank_numeric_cells_are_accepted(cancer):
    df, _, contract = cancer
    column = df["mean smoothness"].copy()
    column.iloc[:20] = np.nan  # 3.5%, 10% allowed
    result = validate_table(df.assign(**{"mean smoothness": column}), contract)
    assert result.success, result.describe()


def test_a_modest_shift_is_accepted(cancer):
    df, _, contract = cancer
    column = df["mean radius"]
    result = validate_table(df.assign(**{"mean radius": column + column.std()}), contract)
    assert result.success, result.describe()
    assert result.changes == [], result.describe_changes()


def test_categories_and_labels_compare_as_text_however_pandas_read_them(customers, wine):
    customers_df, _, customers_contract = customers
    # a flag read as text (e.g. with a blank cell it is no longer a bool column)
    as_text = customers_df.assign(is_active=customers_df["is_active"].astype(str))
    assert validate_table(as_text, customers_contract).success

    wine_df, _, wine_contract = wine
    # integer classes read as floats because a few labels are blank
    labels = wine_df["target"].astype(float)
    labels.iloc[:5] = np.nan
    result = validate_table(wine_df.assign(target=labels), wine_contract)
    assert result.success, result.describe()


# --- what the user sees -----------------------------------------------------------------------


def test_a_failure_carries_the_rows_that_broke_it(cancer):
    df, _, contract = cancer
    shuffled = _unseen_class(df).sample(frac=1.0, random_state=3)  # not a 0..n-1 index

    failure = _only_failure(validate_table(shuffled, contract))

    assert len(failure.examples) == 3
    input_rows = shuffled.to_dict(orient="records")
    for example in failure.examples:
        assert example["diagnosis"] == "maybe"
        assert example in input_rows


def test_at_most_five_examples_are_real_rows(cancer):
    df, _, contract = cancer
    broken = _absurd(df)

    failure = _only_failure(validate_table(broken, contract))

    assert len(failure.examples) == 5
    input_rows = broken.to_dict(orient="records")
    assert all(example in input_rows for example in failure.examples)
    assert all(
        not math.isnan(v) for e in failure.examples for v in e.values() if isinstance(v, float)
    )


def test_validation_is_deterministic_and_leaves_the_input_alone(customers):
    df, _, contract = customers
    broken = df.assign(
        plan=df["plan"].where(df.index % 3 != 0, "legacy"),
        age=df["age"] * 1_000_000,
        churn=df["churn"].where(df.index != 7, "unknown"),
    )
    before = broken.copy()

    first = validate_table(broken, contract)
    second = validate_table(broken, contract)

    assert first.to_metadata() == second.to_metadata()
    # contract order; age x1e6 is breakage and also left its observed range
    assert [f.column for f in first.failures] == ["age", "churn"]
    assert [f.column for f in first.changes] == ["age", "plan"]
    for found in (first.failures, first.changes):
        indices = [f.index for f in found]
        assert indices == sorted(indices)
        assert all(contract["expectations"][f.index]["kwargs"]["column"] == f.column for f in found)
    pd.testing.assert_frame_equal(broken, before)


def test_no_progress_bars_on_stderr(capfd, wine):
    df, _, contract = wine
    validate_table(df, contract)
    assert "Calculating Metrics" not in capfd.readouterr().err


def test_importing_the_module_does_not_import_great_expectations():
    code = "import sys, ml_assets.core.contract; print('great_expectations' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
