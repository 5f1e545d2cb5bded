"""The model fit with categories counted by pandas (ml_assets) against the encoder's own
`min_frequency` counting, side by side on the benchmark table; same predictions expected.

    .venv/bin/python -m benchmarks.fit_encoding                 # 1M rows, 2 rounds
    .venv/bin/python -m benchmarks.fit_encoding --rows 100000
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.data import churn_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fit_encoding", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)

    from ml_assets.core.columns import infer_roles
    from ml_assets.core.modeling import (
        MIN_CATEGORY_ROWS,
        SPLIT_COLUMN,
        build_pipeline,
        fit_pipeline,
        split_rows,
        train_test,
    )

    target = "churn"
    df = churn_table(args.rows)
    roles = infer_roles(df, target, [], max_categories=50)
    table = df[[*roles.features, target]].astype(dict.fromkeys(roles.categorical, "category"))
    table[SPLIT_COLUMN] = split_rows(table[target], "classification", 0.2, 42)
    X, y, X_test, _ = train_test(table, target)

    def encoder_counting():
        pipeline = build_pipeline(roles, "classification", "hist_gradient_boosting", {}, 42)
        encoder = dict((n, t) for n, t, _ in pipeline.named_steps["preprocess"].transformers)
        max_bins = pipeline.named_steps["estimator"].max_bins
        encoder["categorical"].set_params(min_frequency=MIN_CATEGORY_ROWS, max_categories=max_bins)
        return pipeline.fit(X, y)

    def pandas_counting():
        return fit_pipeline(
            build_pipeline(roles, "classification", "hist_gradient_boosting", {}, 42), X, y)

    best: dict[str, float] = {}
    predictions = {}
    for _ in range(args.rounds):
        for name, fit in (("encoder min_frequency", encoder_counting),
                          ("pandas-counted categories", pandas_counting)):
            started = time.perf_counter()
            model = fit()
            best[name] = min(best.get(name, np.inf), time.perf_counter() - started)
            predictions[name] = model.predict(X_test)
    print(f"fit of {len(X):,} training rows, {len(roles.categorical)} text and "
          f"{len(roles.numeric)} numeric features (best of {args.rounds})")
    for name, seconds in best.items():
        print(f"  {name:28s} {seconds:6.2f} s")
    old, new = best.values()
    same = np.mean(predictions["encoder min_frequency"] == predictions["pandas-counted categories"])
    print(f"  ratio new/old {new / old:.2f}; same predicted class on {same:.2%} of test rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
