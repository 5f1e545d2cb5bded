"""Two versions of one pipeline landing at once under the real daemon (`dagster dev`, the run
queue of deploy/dev/dagster.yaml: one run per pipeline at a time): their runs wait for each
other instead of racing to the champion alias, so the second model is compared with the
first, which is champion by then."""

from __future__ import annotations

import itertools

import dagster as dg
import pandas as pd
import pytest
import yaml

from ml_assets.demo.simulator import DEMO_TABLES, make_version
from ml_assets.registry.mlflow_wiring import RegisteredModel
from ml_assets_tests.e2e.conftest import serving_dagster_dev, wait_for

pytestmark = pytest.mark.system

NAME = "visits"
PIPELINE = {
    "name": NAME, "target": "progression", "task": "regression", "id_columns": ["visit_id"],
    "model": {"estimator": "linear"}, "gates": {"min": {"r2": 0.25}},
}


def land_together(landing, tables: dict[str, pd.DataFrame]) -> None:
    """Write every file aside, then move them all in: one sensor tick sees them together."""
    landing.mkdir(parents=True, exist_ok=True)
    for file, table in tables.items():
        table.to_csv(landing / f".{file}.tmp", index=False)
    for file in tables:
        (landing / f".{file}.tmp").rename(landing / file)


def registered_versions(registry: RegisteredModel) -> dict[str, int]:
    """data version -> MLflow model version."""
    found = registry.client().search_model_versions(f"name = '{NAME}'")
    return {v.tags["data_version"]: int(v.version) for v in found}


def pipeline_runs(instance) -> list:
    return instance.get_run_records(filters=dg.RunsFilter(tags={"ml_assets/pipeline": NAME}))


def all_finished(instance) -> bool:
    records = pipeline_runs(instance)
    return bool(records) and all(r.dagster_run.is_finished for r in records)


def evaluated_against(instance, key: str) -> str:
    """The champion version the evaluation_report of a version was compared with."""
    [record] = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey([NAME, "evaluation_report"]),
                              asset_partitions=[key]), limit=1).records
    return str(record.asset_materialization.metadata["champion_version"].value)


@pytest.fixture
def dev(tmp_path):
    """`dagster dev` serving the one pipeline file, sensors ticking every second."""
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / f"{NAME}.yaml").write_text(yaml.safe_dump(PIPELINE))
    with serving_dagster_dev(tmp_path, {"ML_ASSETS_SENSOR_INTERVAL": "1", "ML_ASSETS_SETTLE_SECONDS": "0"}) as dev:
        yield dev


def test_two_versions_landing_at_once_run_one_after_the_other(tmp_path, dev):
    home = tmp_path / "home"
    registry = RegisteredModel(f"sqlite:///{home / 'mlflow.db'}", NAME)
    instance = dev.instance()

    visits = pd.read_csv(DEMO_TABLES["diabetes"].path)
    land_together(home / "landing" / NAME, {
        "march.csv": visits,
        "april.csv": make_version(visits, seed=2, drift=False, target="progression",
                                  table=DEMO_TABLES["diabetes"]),
    })
    models = wait_for(lambda: len(registered_versions(registry)) == 2 and registered_versions(registry),
                      300, "a model version registered for each of the two versions", interval=2)
    wait_for(lambda: all_finished(instance), 120, "every run of the pipeline to finish", interval=2)

    records = sorted(pipeline_runs(instance), key=lambda r: r.start_time)
    assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)
    assert {r.dagster_run.tags["dagster/partition"] for r in records} == set(models)
    for earlier, later in itertools.pairwise(records):
        assert later.start_time >= earlier.end_time, (
            f"runs {earlier.dagster_run.run_id} and {later.dagster_run.run_id} of {NAME} overlapped")
    # The queue did hold a run back: one was requested while another was still running.
    assert any(later.create_timestamp.timestamp() < earlier.end_time
               for earlier, later in itertools.combinations(records, 2))

    # The second model was compared with the first, champion by then.
    by_number = {number: key for key, number in models.items()}
    assert set(by_number) == {1, 2}
    assert evaluated_against(instance, by_number[1]) == "none"
    assert evaluated_against(instance, by_number[2]) == "1"
