"""drift_sensor, weekly_retrain and the failure notifier, through Dagster's test contexts.

Runs are really executed (in-process, on a real temporary instance and MLflow store); the
sensors and the schedule are evaluated with build_sensor_context / build_schedule_context and
evaluate_tick, cursors and run keys included.
"""

import datetime
import json
import re

import dagster as dg
import pandas as pd

from ml_assets.core.evaluation.gate import format_metric_pair
from ml_assets.demo.simulator import make_version
from ml_assets.monitoring.notifications import retrain_note
from ml_assets.monitoring.sensors import TAG_VALUE_LIMIT, columns_tag
from ml_assets.graph import (
    ALL_ASSETS,
    DATA_CHANGES,
    DATA_CONTRACT,
    DRIFT_REPORT,
    EVALUATION_REPORT,
    FEATURES,
    INGEST_ASSETS,
    VALIDATE_ASSETS,
    TRAIN_ASSETS,
)
from ml_assets.selections import latest_check_passed
from ml_assets_tests.conftest import DATASETS, breast_cancer, make_project, run_selection

# The drift and decay scenarios below were built around one model, gradient boosting; how
# the model is chosen has its own tests (core/test_search.py, test_model_search.py).
PIPELINE = {**DATASETS["breast_cancer"][1], "model": {"estimator": "hist_gradient_boosting"}}


def sensor_tick(project, instance, name, cursor=None):
    defs = project.defs()
    # The daemon gives a sensor the resources it names; a test context gets them explicitly.
    context = dg.build_sensor_context(
        instance=instance, instance_ref=instance.get_ref(), cursor=cursor, definitions=defs,
        resources={"notifier": defs.resources["notifier"]},
    )
    return defs.get_sensor_def(name).evaluate_tick(context)


def user_strings(keys) -> list[str]:
    return sorted(key.to_user_string() for key in keys)


def ingest(project, instance, name, df):
    project.drop(name, df)
    [key] = project.register_new(instance)
    assert run_selection(project, instance, key, INGEST_ASSETS).success
    return key


def stored_report(project, key: str) -> dict:
    """The evaluation_report a version's run wrote to the store."""
    return json.loads(project.store.artifact_path(key, EVALUATION_REPORT, "json").read_text())


def swapped_labels(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["diagnosis"] = out["diagnosis"].map({"malignant": "benign", "benign": "malignant"})
    return out


def test_on_drift_or_decay_trains_first_version_then_drift_and_decay_only(tmp_path, instance):
    project = make_project(tmp_path, "bc", retrain={"policy": "on_drift_or_decay"}, **PIPELINE)
    base = breast_cancer()

    first = ingest(project, instance, "v1.csv", base)
    result = sensor_tick(project, instance, project.names.drift_sensor)
    [request] = result.run_requests
    assert request.partition_key == first and request.run_key == f"retrain:{first}"
    assert request.tags["ml_assets/trigger"] == "no_champion"
    assert user_strings(request.asset_selection) == user_strings(project.names.keys(TRAIN_ASSETS))
    cursor = result.cursor
    assert sensor_tick(project, instance, project.names.drift_sensor, cursor).run_requests == []  # cursor holds

    assert run_selection(project, instance, first, TRAIN_ASSETS).success
    assert project.registry().champion()["data_version"] == first

    steady = ingest(project, instance, "v2.csv", make_version(base, seed=2, drift=False))
    drifted = ingest(project, instance, "v3.csv", make_version(base, seed=3, drift=True))
    concept = ingest(project, instance, "v4.csv", swapped_labels(make_version(base, seed=4, drift=False)))
    result = sensor_tick(project, instance, project.names.drift_sensor, cursor)
    requested = {r.partition_key: r.tags["ml_assets/trigger"] for r in result.run_requests}
    assert steady not in requested
    # columns shifted by one to two standard deviations: the dataset drifted, and the champion
    # scores worse on it
    assert requested[drifted] == "drift+decay"
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
    result = sensor_tick(project, instance, project.names.drift_sensor)
    assert result.run_requests == []  # both already trained by their own runs


def test_never_policy_ingests_and_validates_only(tmp_path, instance):
    project = make_project(tmp_path, "bc", retrain={"policy": "never"}, **PIPELINE)
    project.drop("v1.csv", breast_cancer())
    new_data = sensor_tick(project, instance, project.names.new_data_sensor)
    [request] = new_data.run_requests
    # validated first; the rest of the ingestion (features, drift_report) once the contract passed
    assert user_strings(request.asset_selection) == user_strings(project.names.keys(VALIDATE_ASSETS))
    for r in new_data.dynamic_partitions_requests:
        instance.add_dynamic_partitions(r.partitions_def_name, list(r.partition_keys))
    assert run_selection(project, instance, request.partition_key, INGEST_ASSETS).success
    assert sensor_tick(project, instance, project.names.drift_sensor).run_requests == []


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
    result = run_selection(project, instance, key, (FEATURES, *TRAIN_ASSETS))
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert failure.step_key == f"{project.names.slug}__{FEATURES}"
    assert failure.step_failure_data.user_failure_data.description == (
        f"refusing to train on data version {key}: its data contract (validated_data:data_contract) failed"
    )
    assert not run_selection(project, instance, key, TRAIN_ASSETS).success  # no features: no model
    assert project.registry().champion() is None


def test_weekly_retrain_targets_the_newest_valid_version(tmp_path, instance):
    project = make_project(tmp_path, "bc", retrain={"cron": "0 4 * * 0", "timezone": "Europe/Paris"},
                           **PIPELINE)
    defs = project.defs()
    schedule = defs.get_schedule_def(project.names.weekly_retrain)
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
    sensor = project.defs().get_sensor_def(project.names.run_failure_notifier)
    context = dg.build_run_status_sensor_context(
        sensor_name=project.names.run_failure_notifier, dagster_event=failure_event,
        dagster_instance=instance, dagster_run=run,
    ).for_run_failure()
    sensor(context, notifier=project.defs().resources["notifier"])  # the sensor's body
    [text] = webhook.texts()
    # one expectation of the contract failed, of however many it has: the table's length
    assert re.fullmatch(
        re.escape(f"[ml_assets] gate blocked: pipeline bc, data version {key}, step validated_data: "
                  f"check data_contract failed: data version {key}: 1 of ")
        + r"\d+"
        + re.escape(" expectations failed:\n- the table has 10 rows; expected at least 30 "
                    f"(run http://127.0.0.1:3000/runs/{result.run_id})"),
        text,
    ), text


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
        roc_auc = stored_report(project, key)["metrics"]["roc_auc"]
        assert text == (
            f"[ml_assets] promoted: pipeline bc, data version {key}, step registered_model_version: "
            f"bc version 1 is the new champion: promoted: no champion yet, and the challenger with "
            f"roc_auc {roc_auc:.3f} passed every gate. (run http://127.0.0.1:3000/runs/{result.run_id})"
        )

        os.environ["ML_ASSETS_WEBHOOK_URL"] = "http://127.0.0.1:9/closed"
        project.drop("v2.csv", make_version(breast_cancer(), seed=5, drift=True))
        [second] = project.register_new(instance)
        assert run_selection(project, instance, second, ALL_ASSETS).success
        logs = "\n".join(e.message or "" for e in instance.all_logs(result.run_id))
        assert webhook.url not in logs  # the URL is a secret
    finally:
        os.environ.pop("ML_ASSETS_WEBHOOK_URL", None)


# x1.6 takes more than the contract's 1% of these columns' values beyond its widened ranges
CHANGED = ["mean_symmetry", "mean_fractal_dimension", "worst_smoothness"]


def test_change_with_drift_requests_one_retrain_that_says_why(tmp_path, instance, webhook,
                                                              monkeypatch):
    monkeypatch.setenv("ML_ASSETS_WEBHOOK_URL", webhook.url)
    project = make_project(tmp_path, "bc", retrain={"policy": "on_drift_or_decay"}, **PIPELINE)
    project.env = type(project.env)(**{**project.env.__dict__, "webhook_url": webhook.url})
    base = breast_cancer()
    first = ingest(project, instance, "v1.csv", base)
    cursor = sensor_tick(project, instance, project.names.drift_sensor).cursor
    assert run_selection(project, instance, first, TRAIN_ASSETS).success
    # a first model is news when it is promoted, not when it is requested
    assert [t.split(": pipeline bc,")[0] for t in webhook.texts()] == ["[ml_assets] promoted"]

    same = ingest(project, instance, "same.csv", make_version(base, seed=2, drift=False))
    raised = base.copy()
    raised[CHANGED] = raised[CHANGED] * 1.6  # the same patients, three measurements 60% higher
    moved = ingest(project, instance, "raised.csv", raised)
    # the real data contract: change is reported (a warning), never breakage
    slug = project.names.slug
    assert latest_check_passed(instance, DATA_CONTRACT, moved, slug) is True
    assert latest_check_passed(instance, DATA_CHANGES, moved, slug) is False
    assert latest_check_passed(instance, DATA_CHANGES, same, slug) is True
    drift_meta = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=project.names.key(DRIFT_REPORT), asset_partitions=[moved]),
        limit=1,
    ).records[0].asset_materialization.metadata
    assert not drift_meta["dataset_drift"].value  # 3 of 30 columns: the share alone never retrains
    assert set(drift_meta["change_columns"].value) == set(CHANGED)
    assert all(c in drift_meta["moved_columns_table"].value for c in CHANGED)
    assert drift_meta["moved_column_pictures"].value.count("data:image/png;base64,") == 3

    sent = len(webhook.texts())
    tick = sensor_tick(project, instance, project.names.drift_sensor, cursor)
    [request] = tick.run_requests  # not `same`
    assert request.partition_key == moved and request.run_key == f"retrain:{moved}"
    assert request.tags["ml_assets/trigger"] == "change"
    assert set(request.tags["ml_assets/moved_columns"].split(",")) == set(CHANGED)
    [text] = webhook.texts()[sent:]
    named = ", ".join(sorted(CHANGED))
    assert text == (f"[ml_assets] retraining requested: pipeline bc, data version {moved}: "
                    f"change in {named} (contract + drift against champion version 1 ({first}))")

    # The request was launched (its run carries the run key) but trained nothing yet, and
    # drift_report is materialised again: no second request, no second notification.
    job = project.defs().resolve_job_def(project.names.job)
    assert job.execute_in_process(
        partition_key=moved, instance=instance, tags={"dagster/run_key": request.run_key},
        asset_selection=[project.names.key(DRIFT_REPORT)],
    ).success
    again = sensor_tick(project, instance, project.names.drift_sensor, tick.cursor)
    assert again.run_requests == [] and int(again.cursor) > int(tick.cursor)
    assert len(webhook.texts()) == sent + 1

    # the retraining run: its registration's notification names the trigger and the columns
    retrained = job.execute_in_process(
        partition_key=moved, instance=instance, tags=request.tags, raise_on_error=False,
        asset_selection=project.names.keys(TRAIN_ASSETS),
    )
    assert retrained.success
    # The same patients (same patient_id, same split): the champion never trained on the
    # challenger's held-out rows, and scores them with the raised measurements.
    report = stored_report(project, moved)
    champion = report["champion"]
    challenger_auc, champion_auc = format_metric_pair(
        champion["challenger_metrics_on_these_rows"]["roc_auc"], champion["metrics_on_these_rows"]["roc_auc"]
    )
    reason = report["decision"]["reason"]
    # the paired comparison (DeLong's test on these 114 rows) decided
    assert reason.startswith(f"challenger roc_auc {challenger_auc} vs champion {champion_auc} on "
                             "the same 114 held-out rows: difference ")
    assert "(DeLong; " in reason and report["paired_comparison"]["n_rows"] == 114
    assert reason.endswith(
        "(gates.promotion_tolerance): promoted. Compared on all 114 held-out rows; none "
        "excluded: none of them is a row the champion was trained on (matched by id columns "
        "patient_id).")
    [outcome] = webhook.texts()[sent + 1:]
    assert outcome == (
        f"[ml_assets] promoted: pipeline bc, data version {moved}, step registered_model_version: "
        f"bc version 2 is the new champion: {reason} (retrained for change; moved: {named}) "
        f"(run http://127.0.0.1:3000/runs/{retrained.run_id})"
    )


def test_moved_columns_tag_keeps_whole_names_and_counts_the_rest():
    names = [f"measurement_{i:02d}_of_the_scanner" for i in range(20)]
    tag = columns_tag(names)
    kept = tag.split(",")[:-1]
    assert len(tag) <= TAG_VALUE_LIMIT and kept == names[:len(kept)] and len(kept) >= 5
    assert tag.endswith(f",+{len(names) - len(kept)} more")
    assert columns_tag(names[:3]) == ",".join(names[:3])


def test_a_registration_names_the_retrain_that_drift_sensor_requested():
    tags = {"ml_assets/trigger": "drift+change", "ml_assets/moved_columns": "tenure,contract"}
    assert retrain_note(tags) == " (retrained for drift+change; moved: tenure, contract)"
    assert retrain_note({"ml_assets/trigger": "decay"}) == " (retrained for decay)"
    for trigger in ("no_champion", "new_data", "schedule", "cli"):
        assert retrain_note({"ml_assets/trigger": trigger}) == ""
    assert retrain_note({}) == ""
