"""`<slug>/predictions` and `<slug>__scoring_sensor` on a real Dagster instance and MLflow store.

One home for the module: two scoring files dropped before there was a champion (the sensor's
tick and a scoring run recorded then), then a linear champion trained on breast cancer.
"""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ml_assets.graph import ALL_ASSETS, PREDICTIONS
from ml_assets.storage import scoring_store
from ml_assets_tests.conftest import DATASETS, breast_cancer, launch_request, make_project, run_selection

PIPELINE = {**DATASETS["breast_cancer"][1], "model": {"estimator": "linear"}}
COLUMNS = ["patient_id", "prediction", "probability_benign", "probability_malignant",
           "model_version", "model_data_version", "scoring_batch", "scored_at", "row"]


def rows_to_score(start: int, stop: int) -> pd.DataFrame:
    return breast_cancer().iloc[start:stop].drop(columns=["diagnosis"])


def drop_to_score(project, name: str, frame: pd.DataFrame):
    (project.landing / "score").mkdir(parents=True, exist_ok=True)
    frame.to_csv(project.landing / "score" / name, index=False)


def tick(project, instance):
    defs = project.defs()
    context = dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(), definitions=defs)
    return defs.get_sensor_def(project.names.scoring_sensor).evaluate_tick(context)


def score(project, instance, batch: str):
    job = project.defs().resolve_job_def(project.names.score_job)
    return job.execute_in_process(partition_key=batch, instance=instance, raise_on_error=False)


def register_batch(project, instance, name: str, frame: pd.DataFrame) -> str:
    """What the sensor does with a new file: a scoring batch, and its partition."""
    drop_to_score(project, name, frame)
    store = scoring_store(project.env.store_root, project.settings.name)
    [record] = store.scan_landing(project.landing, project.settings.scoring_glob).new
    instance.add_dynamic_partitions(project.names.scoring_partitions, [record.key])
    return record.key


def materialization(result, project):
    key = project.names.key(PREDICTIONS)
    events = [e.materialization for e in result.get_asset_materialization_events()
              if e.asset_key == key]
    return events[0] if events else None


class Home:
    def __init__(self, project, instance):
        self.project, self.instance = project, instance
        self.batches = scoring_store(project.env.store_root, project.settings.name)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("scoring")
    project = make_project(root, "breast_cancer", **PIPELINE)
    with dg.instance_for_test() as instance:
        state = Home(project, instance)
        drop_to_score(project, "monday.csv", rows_to_score(0, 100))
        drop_to_score(project, "tuesday.csv", rows_to_score(100, 160))
        state.before = tick(project, instance)
        for request in state.before.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        state.monday, state.tuesday = sorted(state.batches.versions(), key=lambda k: not k.startswith("monday"))
        state.no_champion_run = score(project, instance, state.monday)

        project.drop("v1.csv", breast_cancer())
        [state.version] = project.register_new(instance)
        assert run_selection(project, instance, state.version, ALL_ASSETS).success
        yield state


def test_without_a_champion_the_sensor_adds_the_batches_and_requests_nothing(home):
    before = home.before
    assert before.skip_message == "no champion yet for breast_cancer: 2 scoring batches wait"
    assert before.run_requests == []
    [request] = before.dynamic_partitions_requests
    assert request.partitions_def_name == "breast_cancer__scoring_batch"
    assert sorted(request.partition_keys) == sorted([home.monday, home.tuesday])


def test_a_scoring_run_without_a_champion_succeeds_and_writes_nothing(home):
    run = home.no_champion_run
    assert run.success
    assert materialization(run, home.project) is None
    assert not home.batches.artifact_path(home.monday, PREDICTIONS, "parquet").exists()
    logs = [e.message for e in home.instance.all_logs(run.run_id) if e.message]
    assert any(f"no champion yet for breast_cancer: scoring batch {home.monday} is not scored" in m
               for m in logs)


def test_once_there_is_a_champion_each_batch_gets_one_run_ever(home):
    project, instance = home.project, home.instance
    result = tick(project, instance)
    requests = {r.partition_key: r for r in result.run_requests}
    assert set(requests) == {home.monday, home.tuesday}
    assert {r.run_key for r in result.run_requests} == {f"score:{home.monday}", f"score:{home.tuesday}"}
    assert tick(project, instance).run_requests == []
    # the same bytes under another name are not a second batch
    drop_to_score(project, "monday_again.csv", rows_to_score(0, 100))
    again = tick(project, instance)
    assert again.run_requests == [] and again.dynamic_partitions_requests == []
    assert len(home.batches.versions()) == 2
    # a new file is a new batch, requested on the tick that finds it
    drop_to_score(project, "wednesday.csv", rows_to_score(160, 170))
    later = tick(project, instance)
    [new_batch] = [k for k in home.batches.versions() if k.startswith("wednesday")]
    assert [r.run_key for r in later.run_requests] == [f"score:{new_batch}"]
    assert list(later.dynamic_partitions_requests[0].partition_keys) == [new_batch]
    # what the daemon does with the request
    instance.add_dynamic_partitions(project.names.scoring_partitions, [new_batch])
    run = launch_request(project.defs(), instance, project.names.score_job, later.run_requests[0],
                         project.names.scoring_sensor)
    assert run.success and materialization(run, project).partition == new_batch


def test_predictions_are_the_champions_on_every_row_with_their_lineage(home):
    project = home.project
    run = score(project, home.instance, home.tuesday)
    assert run.success
    path = home.batches.artifact_path(home.tuesday, PREDICTIONS, "parquet")
    scored = pd.read_parquet(path)
    source = rows_to_score(100, 160).reset_index(drop=True)
    assert list(scored.columns) == COLUMNS
    assert list(scored["patient_id"]) == list(source["patient_id"])
    assert list(scored["row"]) == list(range(60))
    assert set(scored["scoring_batch"]) == {home.tuesday} and scored["scored_at"].nunique() == 1
    assert str(scored["scored_at"].dtype) == "datetime64[ns, UTC]"
    assert set(scored["model_version"]) == {1} and set(scored["model_data_version"]) == {home.version}
    champion = project.registry().load_version(1)
    np.testing.assert_allclose(scored[["probability_benign", "probability_malignant"]],
                               champion.predict_proba(source))
    assert list(scored["prediction"]) == list(champion.predict(source))

    meta = materialization(run, project).metadata
    assert meta["rows"].value == 60 and meta["dagster/row_count"].value == 60
    assert meta["model_version"].value == 1 and meta["model_data_version"].value == home.version
    assert meta["mlflow_model_version"].value.endswith("/#/models/breast_cancer/versions/1")
    shares = meta["class_shares"].value
    assert set(shares) <= {"benign", "malignant"} and sum(shares.values()) == pytest.approx(1.0)
    assert str(source["patient_id"][0]) in meta["preview"].value
    # nothing lands in the data-version store
    assert not project.store.version_dir(home.tuesday).exists()


def test_the_asset_declares_its_lineage_to_the_registered_model(home):
    project = home.project
    spec = project.defs().resolve_assets_def(project.names.key(PREDICTIONS))
    [dep] = spec.specs_by_key[project.names.key(PREDICTIONS)].deps
    assert dep.asset_key == project.names.key("registered_model_version")
    assert isinstance(dep.partition_mapping, dg.AllPartitionMapping)
    assert spec.partitions_def.name == "breast_cancer__scoring_batch"


def test_a_batch_breaking_the_contract_fails_named_and_writes_nothing(home):
    project, instance = home.project, home.instance
    bad = rows_to_score(200, 230).assign(mean_texture="see notes")
    batch = register_batch(project, instance, "broken.csv", bad)
    run = score(project, instance, batch)
    assert not run.success
    [failure] = [e for e in run.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    message = failure.step_failure_data.user_failure_data.description
    assert message.startswith(f"broken.csv (scoring batch {batch}) by check data_contract: 1 of ")
    assert "mean_texture: 100.0% of values are not numbers" in message
    assert "expect_column_values_to_be_in_type_list on 'mean_texture'" in message
    assert not home.batches.artifact_path(batch, PREDICTIONS, "parquet").exists()
    assert failure.step_failure_data.user_failure_data is not None  # a Failure, not a crash


def test_a_batch_without_its_id_column_fails_named(home):
    project, instance = home.project, home.instance
    batch = register_batch(project, instance, "anonymous.csv",
                           rows_to_score(300, 320).drop(columns=["patient_id"]))
    run = score(project, instance, batch)
    [failure] = [e for e in run.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failure.step_failure_data.user_failure_data.description.startswith(
        f"anonymous.csv (scoring batch {batch}): missing the id column(s) ['patient_id']")
    assert not home.batches.artifact_path(batch, PREDICTIONS, "parquet").exists()
