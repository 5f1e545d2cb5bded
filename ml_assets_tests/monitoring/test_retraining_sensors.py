"""drift_sensor, weekly_retrain and the failure notifier, through Dagster's test contexts.

Runs are really executed (in-process, on a real temporary instance and MLflow store); the
sensors and the schedule are evaluated with build_sensor_context / build_schedule_context and
evaluate_tick, cursors and run keys included.
"""

import datetime

import dagster as dg
import pandas as pd

from ml_assets.demo.simulator import make_version
from ml_assets.selections import ALL_ASSETS, INGEST_ASSETS, TRAIN_ASSETS
from ml_assets_tests.conftest import DATASETS, breast_cancer, make_project, run_selection

PIPELINE = DATASETS["breast_cancer"][1]


def sensor_tick(project, instance, name, cursor=None):
    defs = project.defs()
    context = dg.build_sensor_context(
        instance=instance, instance_ref=instance.get_ref(), cursor=cursor, definitions=defs
    )
    return defs.get_sensor_def(name).evaluate_tick(context)


def ingest(project, instance, name, df):
    project.drop(name, df)
    [key] = project.register_new(instance)
    assert run_selection(project, instance, key, INGEST_ASSETS).success
    return key


def swapped_labels(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["diagnosis"] = out["diagnosis"].map({"malignant": "benign", "benign": "malignant"})
    return out


def test_on_drift_or_decay_trains_first_version_then_drift_and_decay_only(tmp_path, instance):
    project = make_project(tmp_path, "bc", retrain={"policy": "on_drift_or_decay"}, **PIPELINE)
    base = breast_cancer()

    first = ingest(project, instance, "v1.csv", base)
    result = sensor_tick(project, instance, "drift_sensor")
    [request] = result.run_requests
    assert request.partition_key == first and request.run_key == f"retrain:{first}"
    assert request.tags["ml_assets/trigger"] == "no_champion"
    assert sorted(k.to_user_string() for k in request.asset_selection) == sorted(TRAIN_ASSETS)
    cursor = result.cursor
    assert sensor_tick(project, instance, "drift_sensor", cursor).run_requests == []  # cursor holds

    assert run_selection(project, instance, first, TRAIN_ASSETS).success
    assert project.registry().champion()["data_version"] == first

    steady = ingest(project, instance, "v2.csv", make_version(base, seed=2, drift=False))
    drifted = ingest(project, instance, "v3.csv", make_version(base, seed=3, drift=True))
    concept = ingest(project, instance, "v4.csv", swapped_labels(make_version(base, seed=4, drift=False)))
    result = sensor_tick(project, instance, "drift_sensor", cursor)
    requested = {r.partition_key: r.tags["ml_assets/trigger"] for r in result.run_requests}
    assert steady not in requested
    assert "drift" in requested[drifted]
    assert requested[concept] == "decay"  # the columns look the same; the labels moved
    assert {r.run_key for r in result.run_requests} == {f"retrain:{drifted}", f"retrain:{concept}"}

    # the drifted version retrains and is promoted; the version with swapped labels trains
    # a model, but it is compared on its own rows... and it must not silently win.
    assert run_selection(project, instance, drifted, TRAIN_ASSETS).success
    assert project.registry().champion()["data_version"] == drifted


def test_every_version_policy_requests_nothing_more(tmp_path, instance):
    project = make_project(tmp_path, "bc", **PIPELINE)
    base = breast_cancer()
    project.drop("v1.csv", base)
    [first] = project.register_new(instance)
    assert run_selection(project, instance, first, ALL_ASSETS).success
    project.drop("v2.csv", make_version(base, seed=3, drift=True))
    [second] = project.register_new(instance)
    assert run_selection(project, instance, second, ALL_ASSETS).success
    result = sensor_tick(project, instance, "drift_sensor")
    assert result.run_requests == []  # both already trained by their own runs


def test_never_policy_ingests_and_validates_only(tmp_path, instance):
    project = make_project(tmp_path, "bc", retrain={"policy": "never"}, **PIPELINE)
    project.drop("v1.csv", breast_cancer())
    new_data = sensor_tick(project, instance, "new_data_sensor")
    [request] = new_data.run_requests
    assert sorted(k.to_user_string() for k in request.asset_selection) == sorted(INGEST_ASSETS)
    for r in new_data.dynamic_partitions_requests:
        instance.add_dynamic_partitions(r.partitions_def_name, list(r.partition_keys))
    assert run_selection(project, instance, request.partition_key, INGEST_ASSETS).success
    assert sensor_tick(project, instance, "drift_sensor").run_requests == []


def test_retrain_run_refuses_a_version_whose_contract_failed(tmp_path, instance):
    project = make_project(tmp_path, "bc", retrain={"policy": "on_drift_or_decay"}, **PIPELINE)
    base = breast_cancer()
    ingest(project, instance, "v1.csv", base)
    bad = base.copy()
    bad["mean_radius"] = "n/a (scanner off)"
    project.drop("bad.csv", bad)
    [key] = project.register_new(instance)
    assert not run_selection(project, instance, key, INGEST_ASSETS).success
    # someone (a schedule, a click) asks to build features and train on it anyway
    result = run_selection(project, instance, key, ("features", *TRAIN_ASSETS))
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert failure.step_key == "features"
    assert "data contract" in failure.step_failure_data.error.to_string()
    assert not run_selection(project, instance, key, TRAIN_ASSETS).success  # no features: no model
    assert project.registry().champion() is None


def test_weekly_retrain_targets_the_newest_valid_version(tmp_path, instance):
    project = make_project(tmp_path, "bc", retrain={"cron": "0 4 * * 0", "timezone": "Europe/Paris"},
                           **PIPELINE)
    defs = project.defs()
    schedule = defs.get_schedule_def("weekly_retrain")
    assert schedule.cron_schedule == "0 4 * * 0" and schedule.execution_timezone == "Europe/Paris"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED

    when = datetime.datetime(2026, 11, 22, 4, 0, tzinfo=datetime.UTC)
    # A schedule context opens an instance of its own from the fixture's ref: closed by `with`,
    # as the daemon closes it. Left to the garbage collector, its teardown would run in
    # whichever later test happens to collect it.
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=when, repository_def=defs.get_repository_def()
    ) as context:
        assert isinstance(schedule.evaluate_tick(context).skip_message, str)

        base = breast_cancer()
        good = ingest(project, instance, "v1.csv", base)
        bad = base.head(100).drop(columns=["mean_area"])
        project.drop("v2.csv", bad)
        [bad_key] = project.register_new(instance)
        assert not run_selection(project, instance, bad_key, INGEST_ASSETS).success

        [request] = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == good  # the newest version is blocked: skip it
    assert request.tags["ml_assets/trigger"] == "schedule"
    assert request.run_key == f"schedule:{good}:{when.isoformat()}"


def test_failure_notifier_posts_blocked_gate_to_webhook(tmp_path, instance, webhook, monkeypatch):
    monkeypatch.setenv("ML_ASSETS_WEBHOOK_URL", webhook.url)
    project = make_project(tmp_path, "bc", **PIPELINE)
    project.env = type(project.env)(**{**project.env.__dict__, "webhook_url": webhook.url})
    project.drop("v1.csv", breast_cancer().head(10))  # too few rows: the contract blocks
    [key] = project.register_new(instance)
    result = run_selection(project, instance, key, ALL_ASSETS)
    assert not result.success

    run = instance.get_run_by_id(result.run_id)
    failure_event = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    sensor = project.defs().get_sensor_def("run_failure_notifier")
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_notifier", dagster_event=failure_event,
        dagster_instance=instance, dagster_run=run,
    ).for_run_failure()
    sensor(context, notifier=project.defs().resources["notifier"])  # the sensor's body
    [text] = webhook.texts()
    assert "gate blocked" in text and "pipeline bc" in text and key in text
    assert "data_contract" in text and f"/runs/{result.run_id}" in text


def test_promotion_is_notified_and_a_dead_webhook_never_fails_a_run(tmp_path, instance, webhook):
    project = make_project(tmp_path, "bc", **PIPELINE)
    project.env = type(project.env)(**{**project.env.__dict__, "webhook_url": webhook.url})
    import os

    os.environ["ML_ASSETS_WEBHOOK_URL"] = webhook.url
    try:
        project.drop("v1.csv", breast_cancer())
        [key] = project.register_new(instance)
        result = run_selection(project, instance, key, ALL_ASSETS)
        assert result.success
        [text] = webhook.texts()
        assert "promoted" in text and key in text and "version 1" in text

        os.environ["ML_ASSETS_WEBHOOK_URL"] = "http://127.0.0.1:9/closed"
        project.drop("v2.csv", make_version(breast_cancer(), seed=5, drift=True))
        [second] = project.register_new(instance)
        assert run_selection(project, instance, second, ALL_ASSETS).success
        logs = "\n".join(e.message or "" for e in instance.all_logs(result.run_id))
        assert webhook.url not in logs  # the URL is a secret
    finally:
        os.environ.pop("ML_ASSETS_WEBHOOK_URL", None)
