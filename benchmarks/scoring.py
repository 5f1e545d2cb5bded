"""`ml-assets score` beside a bare script doing the core of the same work, on a million rows.

    .venv/bin/python -m benchmarks.scoring                       # 1,000,000 rows, 3 repeats
    .venv/bin/python -m benchmarks.scoring --rows 100000 --repeat 1

A temporary home: the bundled breast cancer table lands and `ml-assets run` trains and
registers its champion (the pipeline file's defaults, so the model the search picks). The table
to score is the real rows resampled with replacement, each measurement multiplied by
1 + N(0, 0.02) noise, with new patient ids and no target, written as Parquet. Each repetition
times, as fresh processes, in turn: (a) a bare script: `mlflow.sklearn.load_model` of
`models:/<name>@champion`, `pd.read_parquet`, `predict_proba`; (b) `ml-assets score FILE
--output OUT.parquet`, which also checks the file against the data contract's feature rules,
verifies the model's checksum, predicts, and writes the predictions. The medians and the ratio
b/a are printed and written to benchmarks/results/scoring_<commit>.txt. Nothing is asserted.

"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.proc import base_env, run_measured

ROOT = Path(__file__).resolve().parents[1]
NAME = "breast_cancer"
TARGET_RATIO = 1.3
PIPELINE_FILE = """name: breast_cancer
target: diagnosis
task: classification
id_columns: [patient_id]
positive_label: malignant
"""
BARE = """
import sys
import mlflow, mlflow.sklearn
import pandas as pd
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.sklearn.load_model("models:/{name}@champion")
rows = pd.read_parquet(sys.argv[2])
proba = model.predict_proba(rows)
print(len(proba))
"""


def real_table() -> pd.DataFrame:
    return pd.read_csv(ROOT / "ml_assets" / "demo" / "breast_cancer.csv")


def rows_to_score(rows: int, seed: int = 0) -> pd.DataFrame:
    """The real rows resampled, each measurement moved by a little noise, new ids, no target."""
    real = real_table().drop(columns=["diagnosis"])
    rng = np.random.default_rng(seed)
    picked = real.iloc[rng.integers(0, len(real), rows)].reset_index(drop=True)
    features = [c for c in picked.columns if c != "patient_id"]
    noise = 1 + rng.normal(0, 0.02, size=(rows, len(features)))
    picked[features] = picked[features].to_numpy() * noise
    picked["patient_id"] = [f"S{i:07d}" for i in range(rows)]
    return picked


def make_home(work: Path) -> dict[str, str]:
    """A home with a champion trained by `ml-assets run` on the real table; its environment."""
    (work / "ml_assets.yaml").write_text(PIPELINE_FILE)
    landing = work / "home" / "landing"
    landing.mkdir(parents=True)
    shutil.copy(ROOT / "ml_assets" / "demo" / "breast_cancer.csv", landing / "breast_cancer.csv")
    env = base_env(ML_ASSETS_HOME=str(work / "home"), DAGSTER_HOME=str(work / "dagster_home"))
    trained = subprocess.run([sys.executable, "-m", "ml_assets.cli", "run"], cwd=work, env=env,
                             capture_output=True, text=True, timeout=1800)
    if trained.returncode != 0:
        raise SystemExit(f"ml-assets run failed:\n{trained.stdout}\n{trained.stderr}")
    print(trained.stdout.strip().splitlines()[-1])
    return env


def tracking_uri(work: Path, env: dict[str, str]) -> str:
    """The home's tracking URI, as ml_assets resolves it."""
    asked = subprocess.run(
        [sys.executable, "-c", "from ml_assets.environment import load_environment as e; "
         "print(e().tracking_uri)"], cwd=work, env=env, capture_output=True, text=True, check=True)
    return asked.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, help="keep the home, table and logs here")
    args = parser.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_scoring_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        env = make_home(work)
        uri = tracking_uri(work, env)
        table = work / "to_score.parquet"
        rows_to_score(args.rows).to_parquet(table, index=False)
        print(f"{args.rows:,} rows to score: {table.stat().st_size / 1e6:.0f} MB of Parquet")
        bare = [sys.executable, "-c", BARE.format(name=NAME), uri, str(table)]
        ours = [sys.executable, "-m", "ml_assets.cli", "score", str(table), "--output",
                str(work / "predictions.parquet")]
        walls: dict[str, list[float]] = {"bare": [], "score": []}
        for repetition in range(args.repeat):
            for case, argv in (("bare", bare), ("score", ours)):
                measured = run_measured(argv, env=env, cwd=work, log_dir=work / "logs",
                                        name=f"{case}_{repetition}")
                if not measured.ok:
                    raise SystemExit(f"{case} failed:\n{measured.tail()}")
                walls[case].append(measured.wall)
                print(f"  {case:<6} repetition {repetition + 1}: {measured.wall:.2f} s wall, "
                      f"{measured.cpu:.2f} s cpu, {measured.max_rss / 1e6:.0f} MB peak")
        report = render(args.rows, walls)
        print(report)
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True).stdout.strip() or "unknown"
        out = ROOT / "benchmarks" / "results" / f"scoring_{sha}.txt"
        out.write_text(report + "\n")
        print(f"written to {out}")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def render(rows: int, walls: dict[str, list[float]]) -> str:
    bare, score = statistics.median(walls["bare"]), statistics.median(walls["score"])
    ratio = score / bare
    return "\n".join([
        f"scoring {rows:,} rows, median of {len(walls['bare'])} (wall seconds, fresh processes); "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}",
        f"  (a) bare script: load_model + read_parquet + predict_proba   {bare:7.2f} s  "
        f"({', '.join(f'{w:.2f}' for w in walls['bare'])})",
        f"  (b) ml-assets score FILE --output OUT.parquet                {score:7.2f} s  "
        f"({', '.join(f'{w:.2f}' for w in walls['score'])})",
        f"  b/a {ratio:.2f} (target <= {TARGET_RATIO}: {'met' if ratio <= TARGET_RATIO else 'NOT met'})",
    ])


if __name__ == "__main__":
    main()
