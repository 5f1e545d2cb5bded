"""Validating the data contract against fitting the default model, side by side in one process.

    .venv/bin/python -m benchmarks.validation                      # 1M rows, median of 3
    .venv/bin/python -m benchmarks.validation --rows 100000 --repeat 1

On the benchmark table (`benchmarks/data.py`, written as CSV and read back with `read_table`,
as a landed file is): the default model's fit on the training split (`split_rows` +
`train_test` + `build_pipeline` + `fit_pipeline`, the pipeline file's defaults), and
`validate_table` of the contract `build_contract` infers from the table itself, on (a) the
table (passes), (b) a drifted copy (three numeric columns x1.6 and a tenth of one categorical
column moved to a new category: change warnings), (c) a broken copy (one column x1000:
breakage). Every repetition runs the four in turn; the medians and the ratio of each
validation to the fit are printed. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from benchmarks.data import PIPELINE_NAME, TARGET, write_table

TARGET_RATIO = 0.25
DRIFTED_COLUMNS = ("monthly_charges", "tenure_months", "total_charges")
DRIFTED_CATEGORY = ("payment_method", "crypto_wallet", 0.10)
BROKEN_COLUMN = "tenure_months"


def settings():
    """The pipeline file's defaults, as benchmarks/bare.py builds them (no dagster import)."""
    from ml_assets.config import ContractSettings, ModelSettings

    return SimpleNamespace(
        name=PIPELINE_NAME, target=TARGET, task="classification", id_columns=["customer_id"],
        positive_label="yes", seed=42, test_size=0.2, model=ModelSettings(),
        contract=ContractSettings(),
    )


def drifted(df: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns x1.6 (beyond the widened range: change) and a new category's share."""
    column, category, share = DRIFTED_CATEGORY
    rng = np.random.default_rng(7)
    moved = df[column].mask(rng.random(len(df)) < share, category)
    return df.assign(**{c: df[c] * 1.6 for c in DRIFTED_COLUMNS}, **{column: moved})


def broken(df: pd.DataFrame) -> pd.DataFrame:
    """One column x1000: past the breakage bound, a units slip."""
    return df.assign(**{BROKEN_COLUMN: df[BROKEN_COLUMN] * 1000})


def fit_default_model(df: pd.DataFrame, roles, s) -> float:
    """Seconds to split and fit the default model, as benchmarks/bare.py's "fit" phase."""
    from ml_assets.core.modeling import (
        SPLIT_COLUMN,
        build_pipeline,
        fit_pipeline,
        split_rows,
        train_test,
    )

    started = time.perf_counter()
    table = df[[*roles.features, s.target]].reset_index(drop=True)
    table[SPLIT_COLUMN] = split_rows(table[s.target], s.task, s.test_size, s.seed)
    X_train, y_train, _, _ = train_test(table, s.target)
    # The fit alone, of the estimator that ran before the search existed.
    pipeline = build_pipeline(roles, s.task, s.model.estimator or "hist_gradient_boosting",
                              s.model.params, s.seed)
    fit_pipeline(pipeline, X_train, y_train)
    return time.perf_counter() - started


def timed_validation(df: pd.DataFrame, contract: dict):
    from ml_assets.core.contract import validate_table

    started = time.perf_counter()
    result = validate_table(df, contract)
    return time.perf_counter() - started, result


def verdict(result) -> str:
    def listed(failures) -> str:
        columns = ", ".join(dict.fromkeys(f.column or "table" for f in failures))
        return f"{len(failures)}" + (f" ({columns})" if columns else "")

    return (f"{'passes' if result.success else 'BLOCKED'}; breakage {listed(result.failures)}; "
            f"changes {listed(result.changes)}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.validation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; medians are shown")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="folder for the CSV table, kept and reused (default: a temp folder)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from ml_assets.core.columns import infer_roles
    from ml_assets.core.contract import build_contract
    from ml_assets.core.tables import read_table

    work = args.workdir or Path(tempfile.mkdtemp(prefix="ml_assets_validation_"))
    try:
        df = read_table(write_table(args.rows, work))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    started = time.perf_counter()
    import great_expectations  # noqa: F401 - timed: once per process, outside the figures

    gx_import = time.perf_counter() - started
    s = settings()
    roles = infer_roles(df, s.target, s.id_columns, max_categories=s.contract.max_categories)
    contract = build_contract(df, s, roles)
    cases = {"(a) the table itself": df, "(b) drifted copy": drifted(df),
             "(c) broken copy": broken(df)}

    # Imports and first-call costs (GX, scikit-learn) are paid once here, untimed.
    small = df.head(1000)
    fit_default_model(small, roles, s)
    timed_validation(small, contract)

    fits: list[float] = []
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    verdicts: dict[str, str] = {}
    for _ in range(args.repeat):
        fits.append(fit_default_model(df, roles, s))
        for name, frame in cases.items():
            took, result = timed_validation(frame, contract)
            seconds[name].append(took)
            verdicts[name] = verdict(result)

    fit = statistics.median(fits)
    kinds = pd.Series([e["type"] for e in contract["expectations"]]).value_counts()
    print(f"{len(df):,} rows x {len(df.columns)} columns; contract of "
          f"{len(contract['expectations'])} expectations "
          f"({', '.join(f'{n} {k}' for k, n in kinds.items())}); median of {args.repeat}; "
          f"{os.cpu_count()} CPUs, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'what':34s} {'seconds':>8s} {'/ fit':>7s}  target <= {TARGET_RATIO}  result")
    print(f"{'fit of the default model':34s} {fit:8.2f}  (all: "
          f"{', '.join(f'{x:.2f}' for x in fits)})")
    for name in cases:
        median = statistics.median(seconds[name])
        ratio = median / fit
        met = "yes" if ratio <= TARGET_RATIO else "NO"
        print(f"{'validate_table ' + name:34s} {median:8.2f} {ratio:7.3f}  met {met:3s}         "
              f"{verdicts[name]}  (all: {', '.join(f'{x:.2f}' for x in seconds[name])})")
    print(f"not in the figures: importing great_expectations took {gx_import:.2f} s, once per "
          "process (validated_data pays it in a run's process, before its first validation)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
