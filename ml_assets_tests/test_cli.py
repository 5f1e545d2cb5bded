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


def steps_of(output: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for line in output.splitlines() if (m := STEP_LINE.match(line))}


def section(output: str, pipeline: str) -> str:
    """What `ml-assets run` printed for one pipeline (each starts with `=== <name> ===`)."""
    return output.split(f"=== {pipeline} ===", 1)[1].split("\n=== ", 1)[0].split("\nsummary:")[0]


ALL_OK = {
    "raw_data": "ok", "validated_data": "ok", "features": "ok", "drift_report": "ok",
    "model": "ok", "evaluation_report": "ok", "registered_model_version": "ok",
}


def test_demo_run_status_and_a_blocked_file(tmp_path):
    """The bundled demo: two pipelines, a classifier and a regressor, each trained from its
    own landing folder; a blocked file in one never hides the other's result."""
    demo = cli(tmp_path, "demo")
    assert demo.returncode == 0, demo.stderr
    landing = tmp_path / ".ml_assets" / "landing"
    assert (landing / "breast_cancer" / "breast_cancer.csv").exists()
    assert (landing / "diabetes" / "diabetes.csv").exists()

    run = cli(tmp_path, "run")
    assert run.returncode == 0, run.stdout + run.stderr
    for pipeline in ("breast_cancer", "diabetes"):
        out = section(run.stdout, pipeline)
        assert steps_of(out) == ALL_OK, out
        assert all(STEP_LINE.match(line).group(3) for line in out.splitlines() if STEP_LINE.match(line))
        assert f"=> registered {pipeline} version 1 and promoted to champion" in out
    assert re.search(r"^  breast_cancer\s+ok$", run.stdout, re.M)
    assert re.search(r"^  diabetes\s+ok$", run.stdout, re.M)
    # the classifier's model was searched for, the regressor's is fixed by its pipeline file
    assert re.search(r"^  model +ok +[\d.]+s  \w+ #\d \(\w+\), best of 10 candidates$",
                     section(run.stdout, "breast_cancer"), re.M)
    assert re.search(r"^  model +ok +[\d.]+s  linear #1 \(Ridge\), fixed by model\.estimator$",
                     section(run.stdout, "diabetes"), re.M)

    again = cli(tmp_path, "run")
    assert again.returncode == 0 and again.stdout.count("nothing new") == 2

    bad = breast_cancer().head(100).drop(columns=["mean_area"])
    bad.to_csv(landing / "breast_cancer" / "missing column.csv", index=False)
    blocked = cli(tmp_path, "run")
    assert blocked.returncode == 1
    assert "Traceback" not in blocked.stdout + blocked.stderr
    # the verdict names the file, the version, the check and the reason, exactly
    assert re.search(
        r"^  => blocked: missing column\.csv \(data version missing_column-[0-9a-f]{12}\) by check "
        r"validated_data:data_contract: 1 of \d+ expectations failed:\n     - column 'mean_area' is missing$",
        blocked.stdout, re.M), blocked.stdout
    assert "nothing new" in section(blocked.stdout, "diabetes")
    assert re.search(r"^  breast_cancer\s+blocked or failed", blocked.stdout, re.M)
    assert re.search(r"^  diabetes\s+ok$", blocked.stdout, re.M)

    every = json.loads(cli(tmp_path, "status", "--json").stdout)
    assert [p["name"] for p in every["pipelines"]] == ["breast_cancer", "diabetes"]
    assert every["invalid"] == []
    regressor = every["pipelines"][1]
    assert regressor["champion"]["version"] == 1
    assert regressor["versions"][0]["metrics"]["r2"] > 0.2

    status = cli(tmp_path, "status", "--json", "--pipeline", "breast_cancer")
    assert status.returncode == 0
    data = json.loads(status.stdout)
    by_status = {v["file"]: v for v in data["versions"]}
    assert by_status["breast_cancer.csv"]["status"] == "champion"
    assert by_status["breast_cancer.csv"]["metrics"]["roc_auc"] > 0.9
    assert by_status["breast_cancer.csv"]["checks"]["quality_gate"]["passed"] is True
    assert by_status["missing column.csv"]["status"] == "blocked"
    assert by_status["missing column.csv"]["checks"]["data_contract"]["passed"] is False
    assert by_status["missing column.csv"]["blocked_by"] == ["validated_data:data_contract"]
    assert data["champion"]["version"] == 1
    assert data["champion"]["data_version"] == by_status["breast_cancer.csv"]["data_version"]

    text = cli(tmp_path, "status")
    assert text.returncode == 0
    assert "champion: breast_cancer version 1" in text.stdout
    assert "champion: diabetes version 1" in text.stdout


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
    landing = tmp_path / ".ml_assets" / "landing" / "breast_cancer"
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
    assert again.returncode == 0 and again.stdout.count("already holds data") == 2


def test_demo_writes_scoring_batches_and_their_late_labels(tmp_path):
    assert cli(tmp_path, "demo", "--score", "2").returncode == 0
    landing = tmp_path / ".ml_assets" / "landing" / "breast_cancer"
    batches = sorted((landing / "score").glob("*.csv"))
    assert [p.name for p in batches] == ["breast_cancer_batch_001.csv", "breast_cancer_batch_002.csv"]
    base = pd.read_csv(landing / "breast_cancer.csv")
    first = pd.read_csv(batches[0])
    # the landing format without the target, new patients
    assert list(first.columns) == [c for c in base.columns if c != "diagnosis"]
    assert not first["patient_id"].isin(base["patient_id"]).any()

    shifted = cli(tmp_path, "demo", "--shifted-labels")
    assert shifted.returncode == 0, shifted.stderr
    labels = pd.read_csv(landing / "labels" / "breast_cancer_batch_001_labels_shifted.csv")
    assert list(labels.columns) == ["patient_id", "diagnosis"]
    assert labels["patient_id"].tolist() == first["patient_id"].tolist()
    # the world changed: the labels now follow one measurement, with the class shares kept
    truth = cli(tmp_path, "demo", "--labels")
    assert truth.returncode == 0 and "every scoring batch has its labels" in truth.stdout
    assert set(labels["diagnosis"]) == {"benign", "malignant"}
    malignant = labels["diagnosis"] == "malignant"
    separating = [c for c in first.columns[1:]
                  if first.loc[malignant.to_numpy(), c].min() >= first.loc[~malignant.to_numpy(), c].max()]
    assert len(separating) == 1  # one measurement now separates the classes exactly
