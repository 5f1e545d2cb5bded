"""What registration records in MLflow beside the model, on the breast cancer demo table run
through Dagster against a real MLflow sqlite store: the model card (an artifact of the version's
run and the registered_model_version asset's metadata), one child run per candidate of the model
search, and the version tags of the chosen estimator and of the paired comparison that decided."""

from __future__ import annotations

import dataclasses
import json

import dagster as dg
import pytest

from ml_assets.core.evaluation.gate import format_metric
from ml_assets.demo.simulator import make_version
from ml_assets.graph import EVALUATION_REPORT, REGISTERED_MODEL_VERSION
from ml_assets_tests.conftest import DATASETS, breast_cancer, make_project

CARD_SECTIONS = ["Data", "Model", "Held-out metrics", "Slices", "Top features",
                 "Promotion decision"]


def latest_metadata(project, instance, asset, key) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=project.names.key(asset), asset_partitions=[key]), limit=1
    ).records
    return records[0].event_log_entry.asset_materialization.metadata


def stored_report(project, key) -> dict:
    return json.loads(project.store.artifact_path(key, EVALUATION_REPORT, "json").read_text())


def downloaded_card(project, run_id: str, tmp_path) -> str:
    import mlflow.artifacts

    path = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="model_card.md", dst_path=str(tmp_path / run_id),
        tracking_uri=project.env.tracking_uri,
    )
    with open(path) as handle:
        return handle.read()


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    """The demo table as version 1 (the first champion), then new patients as version 2,
    compared with it on rows it never saw; the webhook's messages recorded."""
    from dagster import instance_for_test

    from ml_assets_tests.conftest import WebhookServer

    tmp_path = tmp_path_factory.mktemp("card")
    webhook = WebhookServer()
    monkeypatch = pytest.MonkeyPatch()
    # MLflow exports the tracking URI it was given; undo() then removes it again, so no later
    # test of this worker inherits this module's store.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setenv("ML_ASSETS_WEBHOOK_URL", webhook.url)
    try:
        project = make_project(tmp_path, "bc", **DATASETS["breast_cancer"][1])
        project.env = dataclasses.replace(project.env, webhook_url=webhook.url)
        with instance_for_test() as instance:
            project.drop("bc.csv", breast_cancer())
            [first] = project.register_new(instance)
            assert project.run_version(instance, first).success
            project.drop("bc_2.csv", make_version(breast_cancer(), seed=11, drift=False))
            [second] = project.register_new(instance)
            assert project.run_version(instance, second).success
            metadata = {key: latest_metadata(project, instance, REGISTERED_MODEL_VERSION, key)
                        for key in (first, second)}
        yield project, (first, second), metadata, webhook.texts(), tmp_path
    finally:
        monkeypatch.undo()
        webhook.close()


def test_each_version_run_carries_its_model_card(two_versions):
    project, keys, metadata, _, tmp_path = two_versions
    client = project.registry().client()
    for number, key in enumerate(keys, start=1):
        version = client.get_model_version("bc", str(number))
        card = downloaded_card(project, version.run_id, tmp_path)
        search = json.loads((project.store.version_dir(key) / "model_search.json").read_text())

        assert card.startswith(f"# Model card: bc version {number}\n")
        assert [line[3:] for line in card.splitlines() if line.startswith("## ")] == CARD_SECTIONS
        assert f"data version: `{key}`" in card
        report = stored_report(project, key)
        rows = report["train_rows"] + report["test_rows"]
        assert f"rows: {rows} (training {report['train_rows']}, held out {report['test_rows']})" in card
        assert "feature columns: 30" in card  # the demo table's 30 measurements
        chosen = search["chosen"]
        assert f"chosen: {chosen['candidate']} ({chosen['estimator']})" in card
        for trial in search["candidates"]:
            assert f"| {trial['candidate']} | {trial['estimator']} |" in card
        assert report["decision"]["reason"] in card
        # The same card in the asset's metadata, as markdown.
        shown = metadata[key]["model_card"]
        assert isinstance(shown, dg.MarkdownMetadataValue) and shown.value == card


def test_every_candidate_is_a_child_run_of_the_version_run(two_versions):
    project, keys, _, _, _ = two_versions
    client = project.registry().client()
    experiment = client.get_experiment_by_name("bc").experiment_id
    for number, key in enumerate(keys, start=1):
        parent = client.get_run(client.get_model_version("bc", str(number)).run_id)
        search = json.loads((project.store.version_dir(key) / "model_search.json").read_text())
        children = client.search_runs(
            [experiment], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
        )
        by_name = {run.info.run_name: run for run in children}

        assert sorted(by_name) == sorted(t["candidate"] for t in search["candidates"])
        assert len(children) == len(search["candidates"]) > 1
        chosen = [run for run in children if run.data.tags.get("chosen") == "true"]
        assert [run.info.run_name for run in chosen] == [search["chosen"]["candidate"]]
        for trial in search["candidates"]:
            run = by_name[trial["candidate"]]
            assert run.info.status == "FINISHED"
            assert run.data.tags["status"] == trial["status"]
            assert run.data.tags["family"] == trial["family"]
            assert run.data.tags["data_version"] == key
            assert run.data.params["estimator"] == trial["estimator"]
            for name, value in trial["params"].items():
                assert run.data.params[f"model.{name}"] == str(value)
            assert run.data.metrics["fit_seconds"] == pytest.approx(trial["fit_seconds"])
            if trial["cv_score"] is not None:
                assert run.data.metrics["cv_score"] == pytest.approx(trial["cv_score"])
        # The parent run names the chosen model, not the (unset) fixed estimator.
        assert parent.data.tags["chosen_estimator"] == search["chosen"]["estimator"]
        assert parent.data.params["estimator"] == search["chosen"]["estimator"]
        assert parent.data.params["candidate"] == search["chosen"]["candidate"]


def test_version_tags_name_the_paired_comparison_that_decided(two_versions):
    project, (first, second), metadata, _, _ = two_versions
    client = project.registry().client()
    search = json.loads((project.store.version_dir(second) / "model_search.json").read_text())
    report = stored_report(project, second)
    comparison = report["paired_comparison"]
    tags = client.get_model_version("bc", "2").tags

    assert tags["chosen_estimator"] == search["chosen"]["estimator"]
    assert tags["promotion_method"] == comparison["method"]
    assert float(tags["promotion_difference"]) == pytest.approx(comparison["difference"], rel=1e-5)
    low, high = format_metric(comparison["ci_low"]), format_metric(comparison["ci_high"])
    assert tags["promotion_ci"] == f"[{low}, {high}] at 95%"
    assert tags["promotion_verdict"] == comparison["verdict"]
    assert tags["promotion_reason"] == report["decision"]["reason"]
    # The first version had no champion to be compared with: no comparison tags.
    first_tags = client.get_model_version("bc", "1").tags
    assert first_tags["chosen_estimator"]
    assert not {"promotion_method", "promotion_ci", "promotion_verdict"} & set(first_tags)
    # The card's decision section shows the same comparison.
    assert f"interval {tags['promotion_ci']}, verdict {comparison['verdict']}" in \
        metadata[second]["model_card"].value


def test_the_promotion_notification_carries_the_decision_reason(two_versions):
    project, (first, second), metadata, texts, _ = two_versions
    # New patients from the same distribution: not different from the champion, within the
    # promotion tolerance, so promoted too.
    assert [key for key in (first, second) if metadata[key]["promoted"].value] == [first, second]
    for key in (first, second):
        reason = stored_report(project, key)["decision"]["reason"]
        [text] = [t for t in texts if f"data version {key}" in t]
        assert text.startswith("[ml_assets] promoted: pipeline bc") and reason in text
    comparison = stored_report(project, second)["paired_comparison"]
    [text] = [t for t in texts if f"data version {second}" in t]
    low, high = format_metric(comparison["ci_low"]), format_metric(comparison["ci_high"])
    assert f"95% interval [{low}, {high}] ({comparison['method']}" in text


def test_a_resumed_run_gets_no_second_set_of_child_runs(two_versions):
    """A retried registration step resumes the version's MLflow run and logs the candidates
    again: those already under it are not repeated."""
    import mlflow

    from ml_assets.registry.registration import log_candidate_runs

    project, (first, _), _, _, _ = two_versions
    client = project.registry().client()
    run_id = client.get_model_version("bc", "1").run_id
    experiment = client.get_experiment_by_name("bc").experiment_id
    report = {**stored_report(project, first),
              "model_search": json.loads(
                  (project.store.version_dir(first) / "model_search.json").read_text())}
    children = f"tags.mlflow.parentRunId = '{run_id}'"
    before = len(client.search_runs([experiment], children))

    mlflow.set_tracking_uri(project.env.tracking_uri)
    with mlflow.start_run(run_id=run_id):
        started = log_candidate_runs(report, key=first, experiment_id=experiment,
                                     parent_run_id=run_id, tracking_uri=project.env.tracking_uri)

    assert started == 0
    assert len(client.search_runs([experiment], children)) == before == len(
        report["model_search"]["candidates"])
    assert client.get_run(run_id).info.status == "FINISHED"
