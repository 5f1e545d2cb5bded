"""Rerun only what changed: editing the model's hyperparameters makes `model` and what
follows stale for every version, not the data assets; `ml-assets run --changed` reruns exactly
those, says which and why, and then finds nothing stale."""

import dagster as dg

from ml_assets.graph import INGEST_ASSETS, TRAIN_ASSETS
from ml_assets_tests.conftest import breast_cancer
from ml_assets_tests.test_cli import cli
from ml_assets_tests.test_faults import PIPELINE_FILE, instance_at

TRAINING = set(TRAIN_ASSETS)


def materialized_in(instance, run_id):
    """The assets a run materialised, by name (all of one pipeline: `<slug>/<name>`)."""
    return {
        e.dagster_event.asset_key.path[-1]
        for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    }


def test_editing_hyperparameters_reruns_exactly_the_model_and_what_follows(tmp_path):
    config = tmp_path / "ml_assets.yaml"
    config.write_text(PIPELINE_FILE)
    landing = tmp_path / ".ml_assets" / "landing"
    landing.mkdir(parents=True)
    base = breast_cancer()
    base.head(400).to_csv(landing / "a.csv", index=False)
    base.tail(400).to_csv(landing / "b.csv", index=False)
    env = {"ML_ASSETS_SETTLE_SECONDS": "0"}
    assert cli(tmp_path, "run", env=env).returncode == 0

    unchanged = cli(tmp_path, "run", "--changed", env=env)
    assert unchanged.returncode == 0 and "nothing stale: 2 data version(s) up to date" in unchanged.stdout

    config.write_text(PIPELINE_FILE + "model:\n  params: {learning_rate: 0.05, max_iter: 200}\n")
    instance = instance_at(tmp_path / "dagster_home")
    before = {r.run_id for r in instance.get_runs()}
    changed = cli(tmp_path, "run", "--changed", env=env)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    out = changed.stdout
    assert out.count("3 stale asset(s)") == 2  # every version
    assert "model                      stale: model: has a new code version" in out
    assert "evaluation_report          stale: upstream model is rematerialised" in out
    for untouched in INGEST_ASSETS:
        assert f"{untouched:<26} stale" not in out

    new_runs = [r for r in instance.get_runs() if r.run_id not in before]
    assert len(new_runs) == 2
    for run in new_runs:
        assert run.tags["ml_assets/trigger"] == "changed"
        assert materialized_in(instance, run.run_id) == TRAINING  # exactly the stale ones

    again = cli(tmp_path, "run", "--changed", env=env)
    assert "nothing stale: 2 data version(s) up to date" in again.stdout
