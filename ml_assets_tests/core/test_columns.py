"""Column roles: ids and free text kept out of the model, categories and numbers told apart."""

import numpy as np
import pandas as pd

from ml_assets.core.columns import ColumnRoles, infer_roles


def frame(n=200):
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "customerID": [f"C{i:05d}" for i in range(n)],
            "row_id": np.arange(n),
            "email": [f"user{i}@example.org" for i in range(n)],
            "tenure": rng.integers(0, 72, n),
            "charges": rng.normal(60, 20, n),
            "contract": rng.choice(["monthly", "yearly", "two-year"], n),
            "paperless": rng.choice([True, False], n),
            "zip_code": rng.integers(1000, 1010, n),
            "churn": rng.choice(["yes", "no"], n),
        }
    )


def test_roles_of_a_messy_table():
    roles = infer_roles(frame(), "churn")
    assert set(roles.ids) == {"customerID", "row_id", "email"}
    assert set(roles.numeric) == {"tenure", "charges", "zip_code"}
    assert set(roles.categorical) == {"contract", "paperless"}
    assert "churn" not in roles.features
    assert roles.notes["email"] == "free text or id (200 distinct values in 200 rows): not used as a feature"


def test_declared_ids_win_and_roles_round_trip():
    roles = infer_roles(frame(), "churn", id_columns=["tenure"])
    assert "tenure" in roles.ids and "tenure" not in roles.features
    assert ColumnRoles.from_dict(roles.to_dict()) == roles


def test_repeated_values_in_an_id_named_column_are_a_feature():
    df = frame()
    df["plan_id"] = np.arange(len(df)) % 4  # a category coded as numbers, not an id
    assert "plan_id" in infer_roles(df, "churn").numeric
