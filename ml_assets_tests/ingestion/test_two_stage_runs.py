"""A version runs in two stages: its validation run, then, once its data contract passed, the
run of the rest. A blocked version plans nothing downstream, so the UI, which paints an asset
as failed when the latest run that planned it failed, keeps the other assets' last good state."""

import dagster as dg

from ml_assets.graph import (
    ALL_ASSETS,
    INGEST_ASSETS,
    STAGE_TAG,
    VALIDATE_ASSETS,
    after_validation,
)
from ml_assets_tests.conftest import DATASETS, breast_cancer, launch_request, make_project
from ml_assets_tests.ingestion.test_new_data_sensor import apply, tick
from ml_assets_tests.test_cli import STEP_LINE, cli


def launch(project, instance, request, sensor_name):
    return launch_request(project.defs(), instance, project.names.job, request, sensor_name)


def step_lines(output: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for line in output.splitlines() if (m := STEP_LINE.match(line))]


def planned(instance, run_id) -> set[str]:
    """The assets a run planned: the UI marks these failed when the run fails."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED).records
    return {r.event_log_entry.dagster_event.asset_key.path[-1] for r in records}


def test_the_rest_of_a_version_is_requested_only_after_its_contract_passed(tmp_path, instance):
    project = make_project(tmp_path, "bc", **DATASETS["breast_cancer"][1])
    sensor_name = project.names.new_data_sensor
    df = breast_cancer()
    project.drop("a.csv", df)
    _, first = tick(project, instance)
    apply(instance, first)
    [validation] = first.run_requests
    [good] = project.store.versions()
    assert validation.run_key == good
    assert [k.path[-1] for k in validation.asset_selection] == list(VALIDATE_ASSETS)
    assert validation.tags[STAGE_TAG] == "validate"

    # nothing more while the validation run has not happened
    _, waiting = tick(project, instance, cursor=first.cursor)
    assert waiting.run_requests == []

    run = launch(project, instance, validation, sensor_name)
    assert run.success
    assert planned(instance, run.run_id) == set(VALIDATE_ASSETS)
    _, second = tick(project, instance, cursor=first.cursor)
    [rest] = second.run_requests
    assert (rest.partition_key, rest.run_key) == (good, f"{good}:train")
    # retrain.policy every_version (the default): the rest is everything after validation
    assert [k.path[-1] for k in rest.asset_selection] == list(after_validation(ALL_ASSETS))
    assert (rest.tags["ml_assets/trigger"], rest.tags[STAGE_TAG]) == ("new_data", "train")
    assert launch(project, instance, rest, sensor_name).success
    assert project.registry().champion()["data_version"] == good

    # a file missing a column: its validation run is blocked, and nothing else is asked for
    project.drop("b.csv", df.head(200).drop(columns=["mean_area"]))
    _, third = tick(project, instance, cursor=second.cursor)
    apply(instance, third)
    [blocked_request] = third.run_requests
    bad = blocked_request.partition_key
    blocked = launch(project, instance, blocked_request, sensor_name)
    assert not blocked.success
    assert planned(instance, blocked.run_id) == set(VALIDATE_ASSETS)
    _, fourth = tick(project, instance, cursor=third.cursor)
    assert fourth.run_requests == [] and fourth.cursor != third.cursor
    _, fifth = tick(project, instance, cursor=fourth.cursor)
    assert fifth.run_requests == [] and fifth.skip_message
    assert project.registry().champion()["data_version"] == good
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": bad}))
    assert [r.run_id for r in runs] == [blocked.run_id]


def test_under_on_drift_or_decay_the_rest_is_features_and_drift_report(tmp_path, instance):
    project = make_project(tmp_path, "bc", retrain={"policy": "on_drift_or_decay"},
                           **DATASETS["breast_cancer"][1])
    project.drop("a.csv", breast_cancer())
    _, first = tick(project, instance)
    apply(instance, first)
    [validation] = first.run_requests
    assert launch(project, instance, validation, project.names.new_data_sensor).success
    _, second = tick(project, instance, cursor=first.cursor)
    [rest] = second.run_requests
    assert [k.path[-1] for k in rest.asset_selection] == list(after_validation(INGEST_ASSETS))
    assert [k.path[-1] for k in rest.asset_selection] == ["features", "drift_report"]


def test_a_validation_run_started_elsewhere_is_not_followed_up(tmp_path, instance):
    """A run of raw_data and validated_data launched from the UI, or by `ml-assets run` (which
    runs the rest itself), is not this sensor's to continue."""
    project = make_project(tmp_path, "bc", **DATASETS["breast_cancer"][1])
    project.drop("a.csv", breast_cancer())
    _, first = tick(project, instance)
    apply(instance, first)
    [validation] = first.run_requests
    assert launch(project, instance, validation, "someone_else").success
    _, second = tick(project, instance, cursor=first.cursor)
    assert second.run_requests == []


def test_ml_assets_run_plans_nothing_downstream_of_a_blocked_version(tmp_path):
    project = make_project(tmp_path, "bc", **DATASETS["breast_cancer"][1])
    env = {"ML_ASSETS_CONFIG": str(project.env.config_path), "ML_ASSETS_HOME": str(tmp_path / "home")}
    df = breast_cancer()
    project.drop("a.csv", df)
    good = cli(tmp_path, "run", env=env)
    assert good.returncode == 0, good.stdout + good.stderr
    # the steps of both runs, printed as one list, each once
    assert step_lines(good.stdout) == [(asset, "ok") for asset in ALL_ASSETS], good.stdout

    project.drop("b.csv", df.head(200).drop(columns=["mean_area"]))
    bad = cli(tmp_path, "run", env=env)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert step_lines(bad.stdout) == [("raw_data", "ok"), ("validated_data", "BLOCKED")], bad.stdout

    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        [good_key, bad_key] = sorted(project.store.versions(), key=lambda k: not k.startswith("a-"))
        good_runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": good_key}))
        # oldest first: the validation run, then the rest
        stages = [(r.tags[STAGE_TAG], planned(instance, r.run_id)) for r in reversed(good_runs)]
        assert stages == [("validate", set(VALIDATE_ASSETS)), ("train", set(after_validation(ALL_ASSETS)))]
        [bad_run] = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": bad_key}))
        assert bad_run.status == dg.DagsterRunStatus.FAILURE
        assert planned(instance, bad_run.run_id) == set(VALIDATE_ASSETS)
        # known as blocked by a gate, so it is not resumed as a failed run
        assert bad_run.tags["ml_assets/blocked_by"] == "validated_data:data_contract"
    again = cli(tmp_path, "run", env=env)
    assert again.returncode == 0 and "nothing new: 2 data version(s) registered" in again.stdout, again.stdout
