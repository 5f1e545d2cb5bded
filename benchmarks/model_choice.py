"""Is the model the search chooses as good as careful hand-written baselines?

    python -m benchmarks.model_choice              # every table, two private splits each
    python -m benchmarks.model_choice --seeds 1

For tables other than the bundled demo (scikit-learn's wine, iris and digits, and generated
tables shaped like real ones), each split keeps a private quarter of the rows that neither the
search nor the baselines see. On the other three quarters: the model step's default search
(`ml_assets.core.training.train_model`), a careful linear baseline (scaled, one-hot encoded,
regularisation chosen by `LogisticRegressionCV` / `RidgeCV`) and histogram gradient boosting
with scikit-learn's defaults. All three are scored on the private rows with the primary metric;
the last column is the chosen model minus the better baseline (negative: the search lost).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from benchmarks.data import churn_table
from ml_assets.config import parse_settings
from ml_assets.core.columns import ColumnRoles
from ml_assets.core.evaluation import score
from ml_assets.core.modeling import _encoded_preprocessing, build_pipeline, fit_pipeline
from ml_assets.core.training import train_model


def _sklearn(name: str, target: str) -> pd.DataFrame:
    from sklearn import datasets

    frame = getattr(datasets, f"load_{name}")(as_frame=True).frame
    frame = frame.rename(columns={"target": target})
    frame[target] = "class_" + frame[target].astype(str)
    return frame


def _additive(rows: int = 4000, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.uniform(-3, 3, size=(rows, 8))
    logit = (2 * np.sin(2 * X[:, 0]) + 2 * np.abs(X[:, 1]) - 3 + 2 * (X[:, 2] > 1)
             - 2 * np.cos(3 * X[:, 3]))
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(8)])
    df["y"] = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return df


def _friedman(rows: int = 3000, seed: int = 5) -> pd.DataFrame:
    from sklearn.datasets import make_friedman1

    X, y = make_friedman1(rows, n_features=10, noise=1.0, random_state=seed)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(10)])
    df["y"] = y
    return df


def _linear_regression(rows: int = 2000, seed: int = 9) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 30))
    region = rng.choice(["north", "south", "east", "west"], rows)
    y = X @ rng.normal(size=30) + pd.Series(region).map(
        {"north": 2.0, "south": -1.0, "east": 0.5, "west": 0.0}).to_numpy() + rng.normal(0, 3, rows)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(30)])
    df["region"] = region
    df["y"] = y
    return df


def _churn() -> pd.DataFrame:
    return churn_table(20_000, seed=11).drop(columns=["customer_id"])


TABLES = {
    # name: (make, target, task)
    "wine": (lambda: _sklearn("wine", "y"), "y", "classification"),
    "iris": (lambda: _sklearn("iris", "y"), "y", "classification"),
    "digits": (lambda: _sklearn("digits", "y"), "y", "classification"),
    "churn (generated, 20k rows)": (_churn, "churn", "classification"),
    "additive waves (generated)": (_additive, "y", "classification"),
    "friedman1 (generated)": (_friedman, "y", "regression"),
    "linear + region (generated)": (_linear_regression, "y", "regression"),
}


def _roles(df: pd.DataFrame, target: str) -> ColumnRoles:
    features = [c for c in df.columns if c != target]
    numeric = tuple(c for c in features if pd.api.types.is_numeric_dtype(df[c]))
    categorical = tuple(c for c in features if c not in numeric)
    return ColumnRoles(target=target, numeric=numeric, categorical=categorical)


def _careful_linear(roles: ColumnRoles, task: str):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegressionCV, RidgeCV
    from sklearn.pipeline import Pipeline

    estimator = (LogisticRegressionCV(Cs=10, max_iter=3000) if task == "classification"
                 else RidgeCV(alphas=np.logspace(-3, 3, 13)))
    preprocess = ColumnTransformer(_encoded_preprocessing(roles), remainder="drop")
    return Pipeline([("preprocess", preprocess), ("estimator", estimator)])


def compare(name: str, seed: int) -> dict:
    from sklearn.model_selection import train_test_split

    make, target, task = TABLES[name]
    df = make()
    roles = _roles(df, target)
    for column in roles.categorical:
        df[column] = df[column].astype("category")
    stratify = df[target] if task == "classification" else None
    train, private = train_test_split(df, test_size=0.25, random_state=seed, stratify=stratify)
    settings = parse_settings({"name": "bench", "target": target, "task": task}, "benchmark")
    metric = settings.primary_metric
    X, y = train.drop(columns=[target]), train[target]
    X_private, y_private = private.drop(columns=[target]), private[target]

    started = time.perf_counter()
    chosen, result = train_model(roles, X, y, task=task, model_settings=settings.model,
                                 metric=metric, positive_label=None, seed=seed)
    search_seconds = time.perf_counter() - started
    linear = _careful_linear(roles, task).fit(X, y)
    boosting = fit_pipeline(build_pipeline(roles, task, "hist_gradient_boosting", {}, seed), X, y)
    scores = {label: score(model, X_private, y_private, task)[metric]
              for label, model in (("chosen", chosen), ("linear", linear), ("boosting", boosting))}
    direction = settings.metric_directions[metric]
    best = max(scores["linear"] * direction, scores["boosting"] * direction) * direction
    return {"table": name, "seed": seed, "rows": len(df), "metric": metric,
            "chosen_model": result.chosen["candidate"], **scores,
            "chosen_minus_best": (scores["chosen"] - best) * direction,
            "search_s": round(search_seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2, help="private splits per table")
    args = parser.parse_args(argv)
    # LogisticRegressionCV announces changes of its defaults on every fit.
    warnings.filterwarnings("ignore", category=FutureWarning)
    rows = [compare(name, seed) for name in TABLES for seed in range(args.seeds)]
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20,
                           "display.float_format", "{:.4f}".format):
        print(table.to_string(index=False))
    gaps = table["chosen_minus_best"]
    print(f"\nchosen minus the better baseline: median {gaps.median():+.4f}, "
          f"worst {gaps.min():+.4f}, within 0.01 on {int((gaps >= -0.01).sum())} of {len(gaps)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
