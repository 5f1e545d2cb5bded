"""weekly_retrain under the real daemon (`dagster dev`): a pipeline that never trains on
arrival (retrain.policy: never) with a schedule firing every minute, started with `dagster
schedule start` and stopped with the UI's toggle, as a user would; its tick retrains the newest version whose data
contract passed, once, and neither an older version nor a newer blocked one."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from ml_assets.demo.simulator import DEMO_TABLES, make_version
from ml_assets.graph import DATA_CONTRACT, DagsterNames
from ml_assets.registry.mlflow_wiring import RegisteredModel
from ml_assets.selections import latest_check_passed
from ml_assets.storage import VersionedStore
from ml_assets_tests.e2e.conftest import serving_dagster_dev, wait_for

pytestmark = pytest.mark.system

NAME = "visits"
NAMES = DagsterNames.of(NAME)
LOCATION = "ml_assets.definitions"  # `dagster dev -m ml_assets.definitions`'s code location
PIPELINE = {
    "name": NAME, "target": "progression", "task": "regression", "id_columns": ["visit_id"],
    "model": {"estimator": "linear"}, "gates": {"min": {"r2": 0.25}},
    "retrain": {"policy": "never", "cron": "* * * * *"},
}
TICKS = """
query Ticks($selector: ScheduleSelector!) {
  scheduleOrError(scheduleSelector: $selector) {
    __typename
    ... on Schedule { id scheduleState { status ticks(limit: 10) { status runIds } } }
  }
}"""
# What the UI's toggle sends to stop a running schedule.
STOP = """
mutation Stop($id: String!) {
  stopRunningSchedule(id: $id) {
    __typename
    ... on ScheduleStateResult { scheduleState { status } }
  }
}"""


def land(landing: Path, file: str, table: pd.DataFrame) -> None:
    landing.mkdir(parents=True, exist_ok=True)
    tmp = landing / f".{file}.tmp"
    table.to_csv(tmp, index=False)
    tmp.rename(landing / file)


def version_of(store: VersionedStore, file: str) -> str | None:
    return next((r.key for r in store.versions().values() if r.source_name == file), None)


def contract_verdict(instance, key: str) -> bool | None:
    """Whether the version's data contract passed; None before the check ran."""
    return latest_check_passed(instance, DATA_CONTRACT, key, NAMES.slug)


def land_and_validate(instance, store, landing, file: str, table: pd.DataFrame):
    """Land a file and wait until its run has judged it against the data contract."""
    land(landing, file, table)
    key = wait_for(lambda: version_of(store, file), 60, f"{file} to be registered as a data version")
    wait_for(lambda: contract_verdict(instance, key) is not None, 180,
             f"the data contract check of {file}", interval=1)
    return key, contract_verdict(instance, key)


def start_schedule(dev) -> None:
    """`dagster schedule start <name>` against the instance and code location of `dev`."""
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "schedule", "start", NAMES.weekly_retrain, "-m", LOCATION],
        cwd=dev.root, env=dev.env, capture_output=True, text=True, timeout=180, check=False,
    )
    assert done.returncode == 0, f"dagster schedule start: {done.stdout}\n{done.stderr}"


def graphql(dev, query: str, variables: dict) -> dict:
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(f"{dev.url}/graphql", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    assert "errors" not in answer, answer
    return answer["data"]


def schedule(dev) -> dict:
    """The schedule's id, status and ticks, as the UI's GraphQL query reads them."""
    found = graphql(dev, TICKS, {"selector": {
        "repositoryLocationName": LOCATION, "repositoryName": "__repository__",
        "scheduleName": NAMES.weekly_retrain}})["scheduleOrError"]
    assert found["__typename"] == "Schedule", found
    return found


def schedule_state(dev) -> dict:
    return schedule(dev)["scheduleState"]


def stop_schedule(dev) -> None:
    """The UI's toggle: quicker than `dagster schedule stop`, which loads the code location
    first, and the next minute's tick must not come before it."""
    stopped = graphql(dev, STOP, {"id": schedule(dev)["id"]})["stopRunningSchedule"]
    assert stopped["__typename"] == "ScheduleStateResult", stopped


def finished_run(instance, run_id: str):
    run = instance.get_run_by_id(run_id)
    return run if run is not None and run.is_finished else None


def scheduled_runs(instance) -> list:
    return instance.get_runs(filters=dg.RunsFilter(tags={"ml_assets/trigger": "schedule"}))


@pytest.fixture
def dev(tmp_path):
    """`dagster dev` serving the one pipeline file, sensors ticking every second."""
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / f"{NAME}.yaml").write_text(yaml.safe_dump(PIPELINE))
    with serving_dagster_dev(tmp_path, {"ML_ASSETS_SENSOR_INTERVAL": "1", "ML_ASSETS_SETTLE_SECONDS": "0"}) as dev:
        yield dev


def test_weekly_retrain_retrains_the_newest_valid_version_once(tmp_path, dev):
    home = tmp_path / "home"
    landing, store = home / "landing" / NAME, VersionedStore(home / "store", NAME)
    registry = RegisteredModel(f"sqlite:///{home / 'mlflow.db'}", NAME)
    instance = dev.instance()

    visits = pd.read_csv(DEMO_TABLES["diabetes"].path)
    older, passed = land_and_validate(instance, store, landing, "older.csv", visits)
    assert passed is True
    newest_valid, passed = land_and_validate(
        instance, store, landing, "newer.csv",
        make_version(visits, seed=2, drift=False, target="progression", table=DEMO_TABLES["diabetes"]))
    assert passed is True
    blocked, passed = land_and_validate(instance, store, landing, "blocked.csv",
                                        visits.head(120).drop(columns=["bmi"]))
    assert passed is False
    # retrain.policy never: nothing was trained on arrival
    assert registry.champion() is None and scheduled_runs(instance) == []
    assert schedule_state(dev)["status"] == "STOPPED"  # the default

    start_schedule(dev)
    try:
        assert schedule_state(dev)["status"] == "RUNNING"
        [run] = wait_for(lambda: scheduled_runs(instance), 150,
                         "weekly_retrain's first tick to request a run", interval=1)
    finally:
        stop_schedule(dev)
    assert schedule_state(dev)["status"] == "STOPPED"
    assert run.tags["dagster/partition"] == newest_valid

    finished = wait_for(lambda: finished_run(instance, run.run_id), 240,
                        "the scheduled retraining to finish", interval=2)
    assert finished.status == dg.DagsterRunStatus.SUCCESS
    ticks = schedule_state(dev)["ticks"]
    assert [t["status"] for t in ticks if t["runIds"]] == ["SUCCESS"]
    assert [t["runIds"] for t in ticks if t["runIds"]] == [[run.run_id]]
    assert len(scheduled_runs(instance)) == 1  # once: stopped before the next minute's tick

    champion = registry.champion()
    assert champion["data_version"] == newest_valid and champion["version"] == 1
    versions = registry.client().search_model_versions(f"name = '{NAME}'")
    assert [(int(v.version), v.tags["data_version"], v.tags["dagster_run_id"]) for v in versions] \
        == [(1, newest_valid, run.run_id)]
    assert older != newest_valid and blocked != newest_valid
