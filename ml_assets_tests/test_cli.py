"""`ml-assets` as a user runs it: a subprocess in a temporary home, exit codes, output, JSON."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

from ml_assets_tests.conftest import breast_cancer

STEP_LINE = re.compile(r"^  (\w+)\s+(ok|BLOCKED|FAILED|skipped)\s+(\d+\.\d+s)?")


def cli(cwd: Path, *args: str, env: dict | None = None, timeout: int = 300):
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("ML_ASSETS_", "MLFLOW_", "DAGSTER_"))
    }
    environ.update({"DAGSTER_HOME": str(cwd / "dagster_home"), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "ml_assets.cli", *args],
        cwd=cwd, env=environ, capture_output=True, text=True, timeout=timeout,
    )


def test_demo_run_status_and_a_blocked_file(tmp_path):
    demo = cli(tmp_path, "demo")
    assert demo.returncode == 0 and "breast_cancer.csv" in demo.stdout
    landing = tmp_path / ".ml_assets" / "landing"
    assert (landing / "breast_cancer.csv").exists()

    run = cli(tmp_path, "run")
    assert run.returncode == 0, run.stdout + run.stderr
    steps = {m.group(1): m.group(2) for line in run.stdout.splitlines() if (m := STEP_LINE.match(line))}
    assert steps == {
        "raw_data": "ok", "validated_data": "ok", "features": "ok", "drift_report": "ok",
        "model": "ok", "evaluation_report": "ok", "registered_model_version": "ok",
    }
    assert all(STEP_LINE.match(line).group(3) for line in run.stdout.splitlines() if STEP_LINE.match(line))
    assert "promoted to champion" in run.stdout

    again = cli(tmp_path, "run")
    assert again.returncode == 0 and "nothing new" in again.stdout

    bad = breast_cancer().head(100).drop(columns=["mean_area"])
    bad.to_csv(landing / "missing column.csv", index=False)
    blocked = cli(tmp_path, "run")
    assert blocked.returncode == 1
    assert "Traceback" not in blocked.stdout + blocked.stderr
    verdict = next(line for line in blocked.stdout.splitlines() if "=> blocked" in line)
    assert "missing column.csv" in verdict and "missing_column-" in verdict
    assert "data_contract" in verdict and "mean_area" in blocked.stdout

    status = cli(tmp_path, "status", "--json")
    assert status.returncode == 0
    data = json.loads(status.stdout)
    by_status = {v["file"]: v for v in data["versions"]}
    assert by_status["breast_cancer.csv"]["status"] == "champion"
    assert by_status["breast_cancer.csv"]["metrics"]["roc_auc"] > 0.9
    assert by_status["breast_cancer.csv"]["checks"]["quality_gate"]["passed"] is True
    assert by_status["missing column.csv"]["status"] == "blocked"
    assert by_status["missing column.csv"]["checks"]["data_contract"]["passed"] is False
    assert data["champion"]["version"] == 1
    assert data["champion"]["data_version"] == by_status["breast_cancer.csv"]["data_version"]

    text = cli(tmp_path, "status")
    assert text.returncode == 0 and "champion: breast_cancer version 1" in text.stdout


def test_pipeline_file_error_exits_2_naming_file_and_key(tmp_path):
    (tmp_path / "ml_assets.yaml").write_text("name: churn\ntarget: churn\ntask: clustering\n")
    result = cli(tmp_path, "run")
    assert result.returncode == 2
    assert "ml_assets.yaml" in result.stderr and "key 'task'" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_model_params_exit_2(tmp_path):
    (tmp_path / "ml_assets.yaml").write_text(
        "name: churn\ntarget: churn\ntask: classification\nmodel:\n  params: {max_dept: 3}\n"
    )
    result = cli(tmp_path, "run")
    assert result.returncode == 2 and "model.params.max_dept" in result.stderr


def test_usage_errors_exit_2(tmp_path):
    assert cli(tmp_path, "train").returncode == 2
    bad = cli(tmp_path, "demo", "--versions", "-1")
    assert bad.returncode == 2 and "expected 0 or more" in bad.stderr


def test_demo_writes_plausible_and_drifted_versions(tmp_path):
    assert cli(tmp_path, "demo", "--versions", "2").returncode == 0
    assert cli(tmp_path, "demo", "--versions", "1", "--drift").returncode == 0
    landing = tmp_path / ".ml_assets" / "landing"
    names = sorted(p.name for p in landing.glob("*.csv"))
    assert names == ["breast_cancer.csv", "breast_cancer_v002.csv", "breast_cancer_v003.csv",
                     "breast_cancer_v004_drift.csv"]
    base = pd.read_csv(landing / "breast_cancer.csv")
    plain = pd.read_csv(landing / "breast_cancer_v002.csv")
    drifted = pd.read_csv(landing / "breast_cancer_v004_drift.csv")
    assert list(plain.columns) == list(base.columns)
    assert not plain["patient_id"].isin(base["patient_id"]).any()  # new rows, not a resample
    assert abs(plain["mean_radius"].mean() - base["mean_radius"].mean()) < 0.5 * base["mean_radius"].std()
    assert drifted["mean_radius"].mean() > base["mean_radius"].mean() + 0.9 * base["mean_radius"].std()
    assert set(drifted["diagnosis"]) == {"benign", "malignant"}

    again = cli(tmp_path, "demo", "--if-empty")
    assert again.returncode == 0 and "already holds data" in again.stdout
