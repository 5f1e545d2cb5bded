"""The code location's executor: in-process by default, multiprocess when a run asks for it.

Runs go through `dagster asset materialize` in a fresh process, the path a run launched by a
sensor or the UI takes (a process that loads the code location from its module), against a
real sqlite DAGSTER_HOME; which process ran each step is read back from the event log.
"""

import json
import os
import subprocess
import sys

import dagster as dg

from ml_assets.graph import ALL_ASSETS, EVALUATION_REPORT
from ml_assets_tests.conftest import DATASETS, breast_cancer, make_project

MULTIPROCESS = {"execution": {"config": {"multiprocess": {"start_method": {"forkserver": {}}}}}}


def materialize(project, dagster_home, key, run_config=None):
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home),
           "ML_ASSETS_HOME": str(project.env.home), "ML_ASSETS_SETTLE_SECONDS": "0"}
    # the data version's graph (the scoring assets have partitions of their own)
    selection = ",".join(f"{project.names.slug}/{asset}" for asset in ALL_ASSETS)
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m",
               "ml_assets.definitions", "--select", selection, "--partition", key]
    if run_config:
        command += ["--config-json", json.dumps(run_config)]
    done = subprocess.run(command, cwd=project.root, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def step_pids(instance, run) -> dict[str, int]:
    starts = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
    return {e.dagster_event.step_key: e.dagster_event.pid for e in starts}


def metrics(instance, run, evaluation_report: dg.AssetKey) -> dict[str, float]:
    """The evaluation's metric/* and the row counts of the run's materialisations."""
    found = {}
    for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = record.dagster_event.event_specific_data.materialization
        for name, value in materialization.metadata.items():
            if name.startswith("metric/") or name in ("dagster/row_count", "test_rows"):
                found[f"{materialization.asset_key.to_user_string()} {name}"] = value.value
    assert any(name.startswith(f"{evaluation_report.to_user_string()} metric/") for name in found)
    return found


def test_steps_run_in_one_process_by_default_and_in_their_own_when_a_run_asks(tmp_path):
    _, pipeline = DATASETS["breast_cancer"]
    project = make_project(tmp_path, "bc", **pipeline)
    project.drop("bc.csv", breast_cancer())
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("")
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        [key] = project.register_new(instance)

    materialize(project, dagster_home, key)
    materialize(project, dagster_home, key, MULTIPROCESS)

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        records = sorted(instance.get_run_records(), key=lambda r: r.create_timestamp)
        default_run, multiprocess_run = (r.dagster_run for r in records)
        assert default_run.status == multiprocess_run.status == dg.DagsterRunStatus.SUCCESS
        assert default_run.run_config.get("execution") is None

        steps = {f"{project.names.slug}__{asset}" for asset in ALL_ASSETS}
        default_pids = step_pids(instance, default_run)
        assert set(default_pids) == steps and len(set(default_pids.values())) == 1

        separate_pids = step_pids(instance, multiprocess_run)
        assert set(separate_pids) == steps and len(set(separate_pids.values())) == 7
        assert not set(separate_pids.values()) & set(default_pids.values())

        # In one process, steps hand frames on without reading them back; in separate ones
        # each step reads the store. The results are the same.
        report = project.names.key(EVALUATION_REPORT)
        assert metrics(instance, default_run, report) == metrics(instance, multiprocess_run, report)
    # the second run compared with the champion the first made (loaded in its own step
    # process) and registered version 2 of the same model
    assert project.registry().client().get_model_version("bc", "2").tags["data_version"] == key
