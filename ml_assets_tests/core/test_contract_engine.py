"""How validate_table runs Great Expectations: a big table is validated in several batches, with
a verdict-only pass first and the failed expectations evaluated again for their examples. A
user must get the same verdict, observed values and examples however the table was split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ml_assets.core.contract.validate as engine
from ml_assets.config import parse_settings
from ml_assets.core.columns import infer_roles
from ml_assets.core.contract import build_contract, validate_table

ROWS = 2_000


def _accounts(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    spend = rng.gamma(2.0, 40.0, ROWS).round(2)
    spend[rng.choice(ROWS, size=ROWS // 50, replace=False)] = np.nan
    return pd.DataFrame(
        {
            "account_id": np.arange(ROWS) + 500_000,
            "tenure": rng.integers(0, 60, ROWS),
            "spend": spend,
            "logins": rng.poisson(4.0, ROWS),
            "plan": rng.choice(["basic", "pro", "team"], ROWS),
            "region": rng.choice(["north", "south", "east", "west"], ROWS),
            "churned": rng.choice(["yes", "no"], ROWS, p=[0.25, 0.75]),
        }
    )


@pytest.fixture(scope="module")
def accounts():
    df = _accounts()
    settings = parse_settings(
        {"name": "accounts", "target": "churned", "task": "classification",
         "id_columns": ["account_id"]},
        "test.yaml",
    )
    roles = infer_roles(df, "churned", settings.id_columns, settings.contract.max_categories)
    return df, build_contract(df, settings, roles)


def _broken(df: pd.DataFrame) -> pd.DataFrame:
    """Every kind of failure at once: breakage, change, text in a numeric column, a lost column."""
    rng = np.random.default_rng(1)
    return df.drop(columns=["region"]).assign(
        tenure=df["tenure"] * 1000,  # breakage (x1000) and change (out of the range seen)
        spend=df["spend"].mask(rng.random(ROWS) < 0.3),  # emptier: a change
        logins=df["logins"].astype(str).where(rng.random(ROWS) < 0.9, "n/a"),  # text
        plan=df["plan"].where(rng.random(ROWS) < 0.8, "enterprise"),  # a new category
    )


@pytest.mark.parametrize("bytes_per_batch", [1, 10**12], ids=["a-batch-per-column", "one-batch"])
def test_a_table_gets_the_same_verdict_however_it_is_batched(
    accounts, monkeypatch, bytes_per_batch
):
    df, contract = accounts
    broken = _broken(df)
    reference = validate_table(broken, contract).to_metadata()

    monkeypatch.setattr(engine, "BYTES_PER_BATCH", bytes_per_batch)
    result = validate_table(broken, contract)
    clean = validate_table(df, contract)

    assert result.to_metadata() == reference
    assert clean.success and not clean.changes
    assert clean.evaluated == len(contract["expectations"])
    assert [f.column for f in result.failures] == ["tenure", "logins", "region"]
    assert result.changed_columns == ["tenure", "spend", "plan"]
    assert result.failures[1].summary == (
        "logins: 100.0% of values are not numbers (the column is read as text), e.g. '3', '1', '6'"
    )
    rows = broken.astype(object).where(broken.notna(), None).to_dict(orient="records")
    for failure in result.failures + result.changes:
        if failure.column in ("tenure", "plan"):
            # the examples come from the second, "SUMMARY" pass: real rows that broke it
            assert 0 < len(failure.examples) <= 5
            assert all(example in rows for example in failure.examples)


def test_a_failure_found_in_the_verdict_pass_keeps_its_observed_values(accounts):
    df, contract = accounts
    moved = df.assign(tenure=df["tenure"] * 1000)

    result = validate_table(moved, contract)

    failure = result.failures[0]
    assert failure.column == "tenure" and failure.expectation == "expect_column_values_to_be_between"
    assert failure.observed["unexpected_percent"] > 90
    assert failure.observed["partial_unexpected_list"] == [
        example["tenure"] for example in failure.examples
    ]
