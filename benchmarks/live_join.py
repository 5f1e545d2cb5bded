"""Late labels joined to predictions: the join, every label-problem count, the window and the
live metric, on a million predictions and a million labels.

    .venv/bin/python -m benchmarks.live_join                    # 1M + 1M, 3 repeats
    .venv/bin/python -m benchmarks.live_join --rows 100000 --repeat 1

The predictions are in the shared predictions-file format (ten batches, two model versions,
integer ids); the labels cover 90 % of them, plus 2 % duplicated rows, 1 % conflicting ids
(a second, different label), 2 % ids never scored and a few without an id or a value. Each
repetition times `join_labels` + `measure` (the window of the champion's newest 10,000
labelled predictions, its roc_auc, the per-version metric and the verdict) as live_performance
runs them, and, on its own, the join with ids read as text (a labels CSV whose ids are quoted).
Nothing is asserted; the counts are printed so a change that alters them shows.
"""

import argparse
import statistics
import subprocess
import time

import numpy as np
import pandas as pd

TARGET_SECONDS = 5.0  # "a few seconds" for a million of each


def make_predictions(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    proba = rng.random(rows)
    batch = np.arange(rows) * 10 // rows
    start = pd.Timestamp("2025-01-01", tz="UTC")
    return pd.DataFrame({
        "customer_id": np.arange(rows, dtype=np.int64) + 1_000_000,
        "prediction": np.where(proba >= 0.5, "yes", "no"),
        "probability_no": 1 - proba,
        "probability_yes": proba,
        "model_version": np.where(batch < 5, 1, 2).astype(np.int64),
        "model_data_version": "churn-0123456789ab",
        "scoring_batch": [f"batch_{b}" for b in batch],
        "scored_at": (start + pd.to_timedelta(batch, unit="D")).astype("datetime64[ns, UTC]"),
        "row": (np.arange(rows) - batch * (rows // 10)).astype(np.int64),
    })


def make_labels(predictions: pd.DataFrame, rows: int, seed: int = 1) -> pd.DataFrame:
    """`rows` labels: most for scored ids, some duplicated, conflicting, never scored, blank."""
    rng = np.random.default_rng(seed)
    ids = predictions["customer_id"].to_numpy()
    proba = predictions["probability_yes"].to_numpy()
    n_dup, n_conflict, n_unknown, n_blank = (int(rows * s) for s in (0.02, 0.01, 0.02, 0.001))
    n_main = rows - n_dup - n_conflict - n_unknown - 2 * n_blank
    picked = rng.choice(len(ids), size=n_main, replace=False)
    # labels follow the probabilities, a little worse for model version 2 (decay)
    truth = np.where(rng.random(n_main) < proba[picked] * 0.9 + 0.05, "yes", "no")
    main = pd.DataFrame({"customer_id": ids[picked], "churn": truth})
    flip = {"yes": "no", "no": "yes"}
    parts = [
        main,
        main.sample(n_dup, random_state=2),
        main.sample(n_conflict, random_state=3).assign(churn=lambda f: f["churn"].map(flip)),
        pd.DataFrame({"customer_id": np.arange(n_unknown) + 9_000_000, "churn": "no"}),
        pd.DataFrame({"customer_id": [np.nan] * n_blank, "churn": "yes"}),
        pd.DataFrame({"customer_id": ids[:n_blank], "churn": [None] * n_blank}),
    ]
    return pd.concat(parts, ignore_index=True).sample(frac=1.0, random_state=4).reset_index(drop=True)


def settings():
    from ml_assets.config import parse_settings

    return parse_settings({"name": "churn", "target": "churn", "task": "classification",
                           "id_columns": ["customer_id"], "positive_label": "yes"}, "benchmark")


def measure_once(predictions, labels, s) -> tuple[float, dict]:
    from ml_assets.core.live import checked_labels, join_labels, measure

    start = time.perf_counter()
    checked = checked_labels(labels, s, ["no", "yes"])
    joined = join_labels(predictions, checked, s.join_columns, s.target)
    report, _ = measure(joined, s, {"version": 2, "metrics": {"roc_auc": 0.8}})
    return time.perf_counter() - start, report


def text_join_once(predictions, labels, s) -> float:
    from ml_assets.core.live import checked_labels, join_labels

    as_text = labels.assign(customer_id=labels["customer_id"].astype("Int64").astype(str))
    start = time.perf_counter()
    join_labels(predictions, checked_labels(as_text, s, ["no", "yes"]), s.join_columns, s.target)
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    s = settings()
    predictions = make_predictions(args.rows)
    labels = make_labels(predictions, args.rows)
    measure_once(predictions.head(1000), labels.head(1000), s)  # imports and first calls
    times, text_times, report = [], [], {}
    for _ in range(args.repeat):
        seconds, report = measure_once(predictions, labels, s)
        times.append(seconds)
        text_times.append(text_join_once(predictions, labels, s))
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"code: {sha} (working tree)")
    print(f"{len(predictions):,} predictions, {len(labels):,} labels, median of {args.repeat}")
    print(f"join + counts + window + metric: {statistics.median(times):.2f} s "
          f"(all: {', '.join(f'{t:.2f}' for t in times)}; target <= {TARGET_SECONDS:g} s)")
    print(f"the same join, ids read as text:  {statistics.median(text_times):.2f} s "
          f"(all: {', '.join(f'{t:.2f}' for t in text_times)})")
    counts = ["labels", "labels_without_id", "labels_without_value", "duplicate_labels",
              "conflicting_ids", "labels_never_scored", "labelled_predictions",
              "conflicting_predictions", "unlabelled_predictions", "labelled_rows"]
    for name in counts:
        print(f"  {name:<24} {report[name]:>10,}")
    print(f"  live roc_auc {report['live_roc_auc']:.4f}; {report['reason']}")


if __name__ == "__main__":
    main()
