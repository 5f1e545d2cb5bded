"""The synthetic churn-like table every case of the benchmark trains on.

Generated with numpy from a fixed seed, so every run of the benchmark measures the same bytes:
an id column, numeric and text columns, a few blank cells, and a binary target `churn` that
depends on the features through a logistic model plus noise (so the model has something to
learn, and a roc_auc around 0.8 passes the default quality gate).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20240517
PIPELINE_NAME = "churn_bench"
TARGET = "churn"

# The pipeline file used by (b) and (c); the bare script (a) reads the same keys.
PIPELINE_YAML = f"""\
name: {PIPELINE_NAME}
target: {TARGET}
task: classification
id_columns: [customer_id]
positive_label: "yes"
"""

REGIONS = [f"region_{i:02d}" for i in range(12)]
PAYMENT = ["electronic_check", "mailed_check", "bank_transfer", "credit_card"]


def _blank(rng: np.random.Generator, values: pd.Series, share: float) -> pd.Series:
    mask = rng.random(len(values)) < share
    return values.mask(mask)


def churn_table(rows: int, seed: int = SEED) -> pd.DataFrame:
    """`rows` customers; 15 columns (1 id, 8 numeric, 5 text, the target)."""
    rng = np.random.default_rng(seed)
    n = rows
    tenure = rng.integers(0, 73, n)
    contract = rng.choice(["month-to-month", "one_year", "two_year"], n, p=[0.55, 0.21, 0.24])
    internet = rng.choice(["dsl", "fiber", "none"], n, p=[0.34, 0.44, 0.22])
    payment = rng.choice(PAYMENT, n, p=[0.34, 0.23, 0.22, 0.21])
    monthly = np.round(rng.uniform(18.0, 60.0, n) + np.where(internet == "fiber", 45.0, 0.0)
                       + np.where(internet == "dsl", 15.0, 0.0), 2)
    total = np.round(monthly * tenure * rng.normal(1.0, 0.03, n), 2)
    support_calls = rng.poisson(1.5, n)
    usage_gb = np.round(rng.lognormal(3.0, 0.8, n) * (internet != "none"), 1)
    last_login_days = np.round(rng.exponential(12.0, n), 1)
    satisfaction = rng.integers(1, 6, n)
    senior = (rng.random(n) < 0.16).astype(int)

    logit = (
        -1.2
        + 1.6 * (contract == "month-to-month")
        - 0.9 * (contract == "two_year")
        - 0.035 * tenure
        + 0.018 * (monthly - 60.0)
        + 0.35 * support_calls
        + 0.6 * (payment == "electronic_check")
        + 0.5 * (internet == "fiber")
        - 0.45 * (satisfaction - 3)
        + 0.03 * last_login_days
        + 0.3 * senior
        + rng.normal(0.0, 1.0, n)  # noise: the label is not a function of the features
    )
    churn = np.where(rng.random(n) < 1.0 / (1.0 + np.exp(-logit)), "yes", "no")

    df = pd.DataFrame(
        {
            "customer_id": rng.permutation(n) + 1_000_000,
            "gender": rng.choice(["female", "male"], n),
            "senior_citizen": senior,
            "region": rng.choice(REGIONS, n),
            "tenure_months": tenure,
            "contract": contract,
            "payment_method": payment,
            "internet_service": internet,
            "monthly_charges": monthly,
            "total_charges": total,
            "support_calls": support_calls,
            "data_usage_gb": usage_gb,
            "last_login_days": last_login_days,
            "satisfaction": satisfaction,
            "churn": churn,
        }
    )
    # A few blank cells, as real exports have: new customers without a total, unknown
    # service, unanswered surveys.
    df["total_charges"] = _blank(rng, df["total_charges"], 0.005)
    df["internet_service"] = _blank(rng, df["internet_service"], 0.01)
    df["data_usage_gb"] = _blank(rng, df["data_usage_gb"], 0.01)
    df["satisfaction"] = _blank(rng, df["satisfaction"], 0.02)
    return df


def write_table(rows: int, folder: Path) -> Path:
    """Write the table of `rows` rows once as CSV into `folder`; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"churn_{rows}.csv"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        churn_table(rows).to_csv(tmp, index=False)
        tmp.rename(path)
    return path
