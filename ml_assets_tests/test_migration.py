"""A home written by the last single-pipeline release (its code is in fixtures/, as released)
keeps its versions, verdicts, metrics and champion after the upgrade and `ml-assets migrate`;
until then nothing of the pipeline runs, so no version is trained twice."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

from ml_assets_tests.conftest import DATASETS, breast_cancer

RELEASE = Path(__file__).parent / "fixtures" / "single_pipeline_release.tar.gz"


def cli(cwd: Path, *args: str, code: Path | None = None):
    """`ml-assets` of this checkout, or of the release unpacked at `code`."""
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("ML_ASSETS_", "MLFLOW_", "DAGSTER_", "PYTHONPATH"))}
    environ.update({
        "DAGSTER_HOME": str(cwd / "dagster_home"),
        "ML_ASSETS_HOME": str(cwd / "home"),
        "ML_ASSETS_CONFIG": str(cwd / "ml_assets.yaml"),
        "ML_ASSETS_SETTLE_SECONDS": "0",
    })
    if code is not None:
        environ["PYTHONPATH"] = str(code)  # ahead of the installed package
    return subprocess.run([sys.executable, "-m", "ml_assets.cli", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=600)


def test_a_single_pipeline_home_keeps_its_history_through_migrate(tmp_path):
    release = tmp_path / "release"
    with tarfile.open(RELEASE) as archive:
        archive.extractall(release, filter="data")
    # a name whose slug differs from it: the store and MLflow keep the name, Dagster the slug
    settings = {"name": "breast-cancer", **DATASETS["breast_cancer"][1]}
    (tmp_path / "ml_assets.yaml").write_text(yaml.safe_dump(settings))
    landing = tmp_path / "home" / "landing"
    landing.mkdir(parents=True)
    df = breast_cancer()
    df.iloc[:400].to_csv(landing / "first.csv", index=False)
    first = cli(tmp_path, "run", code=release)
    assert first.returncode == 0, first.stdout + first.stderr
    df.iloc[:300].drop(columns=["mean_radius"]).to_csv(landing / "broken.csv", index=False)
    old = cli(tmp_path, "run", code=release)
    assert old.returncode == 1, old.stdout + old.stderr  # the broken file is blocked
    old_status = json.loads(cli(tmp_path, "status", "--json", code=release).stdout)
    assert {v["status"] for v in old_status["versions"]} == {"champion", "blocked"}

    # The upgrade: before migrating, nothing runs and the message says what to do.
    df.to_csv(landing / "second.csv", index=False)
    refused = cli(tmp_path, "run")
    assert refused.returncode == 2
    assert ("pipeline 'breast-cancer': 2 data version(s) were recorded before pipelines were "
            "named after their slug; run `ml-assets migrate`") in refused.stderr

    migrated = cli(tmp_path, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "pipeline 'breast-cancer': 2 data version(s) moved under breast_cancer/..." in migrated.stdout
    status = json.loads(cli(tmp_path, "status", "--json").stdout)
    before = {v["data_version"]: v for v in old_status["versions"]}
    after = {v["data_version"]: v for v in status["versions"]}
    for key, version in before.items():
        assert after[key]["status"] == version["status"]
        assert after[key]["metrics"] == version["metrics"]
        assert after[key]["model_version"] == version["model_version"]
        assert {n: c["passed"] for n, c in after[key]["checks"].items()} == \
            {n: c["passed"] for n, c in version["checks"].items()}
        assert after[key]["blocked_by"] == version["blocked_by"]
    assert status["champion"]["version"] == old_status["champion"]["version"] == 1

    # The next run trains the new file only, against the champion the old release made.
    run = cli(tmp_path, "run")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("=> registered breast-cancer version 2") == 1
    assert "first.csv" not in run.stdout and "broken.csv" not in run.stdout
    status = json.loads(cli(tmp_path, "status", "--json").stdout)
    assert len(status["versions"]) == 3
    assert cli(tmp_path, "migrate").stdout.strip() == "pipeline 'breast-cancer': nothing to migrate"
