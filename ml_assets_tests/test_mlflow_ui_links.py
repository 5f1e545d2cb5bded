"""The links from Dagster to the MLflow UI: `registered_model_version` to the MLflow run that
made the model and to its registered version's page, `evaluation_report` to the MLflow run of
its Dagster run and to the champion it was compared with, on a real MLflow sqlite store."""

from __future__ import annotations

from urllib.parse import unquote

import dagster as dg

from ml_assets_tests.conftest import DATASETS, breast_cancer, make_project

UI = "http://127.0.0.1:3001"  # the default: `make dev` starts the MLflow UI there


def latest_metadata(project, instance, asset: str, key: str) -> dict:
    [record] = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=project.names.key(asset), asset_partitions=[key]), limit=1
    ).records
    return record.event_log_entry.asset_materialization.metadata


def url(metadata: dict, name: str) -> str:
    value = metadata[name]
    assert isinstance(value, dg.UrlMetadataValue), f"{name} is {type(value).__name__}, not a URL"
    return value.url


def test_the_metadata_links_to_the_run_and_the_version_in_the_mlflow_ui(tmp_path, instance):
    _, pipeline = DATASETS["breast_cancer"]
    project = make_project(tmp_path, "bc", **pipeline)
    project.drop("first.csv", breast_cancer())
    [first] = project.register_new(instance)
    result = project.run_version(instance, first)
    assert result.success

    client = project.registry().client()
    model_version = client.get_model_version("bc", "1")
    mlflow_run = client.get_run(model_version.run_id)
    experiment_id = mlflow_run.info.experiment_id

    registered = latest_metadata(project, instance, "registered_model_version", first)
    assert url(registered, "mlflow_run") == f"{UI}/#/experiments/{experiment_id}/runs/{model_version.run_id}"
    assert url(registered, "mlflow_model_version") == f"{UI}/#/models/bc/versions/1"
    assert registered["mlflow_run_id"].value == model_version.run_id  # the keys kept beside them

    # evaluation_report's link finds, in the MLflow UI's search, exactly the run that logged
    # this report with the model
    report = latest_metadata(project, instance, "evaluation_report", first)
    search = url(report, "mlflow_run_search")
    prefix = f"{UI}/#/experiments/{experiment_id}/runs?searchFilter="
    assert search.startswith(prefix)
    found = client.search_runs([experiment_id], filter_string=unquote(search.removeprefix(prefix)))
    assert [r.info.run_id for r in found] == [model_version.run_id]
    assert "evaluation_report.json" in {a.path for a in client.list_artifacts(model_version.run_id)}
    assert "mlflow_champion_version" not in report  # nothing to compare with yet

    # a second version is evaluated against the champion: a link to the champion's version
    project.drop("second.csv", breast_cancer().sample(frac=1.0, random_state=7))
    [second] = project.register_new(instance)
    assert project.run_version(instance, second).success
    report = latest_metadata(project, instance, "evaluation_report", second)
    assert url(report, "mlflow_champion_version") == f"{UI}/#/models/bc/versions/1"
    registered = latest_metadata(project, instance, "registered_model_version", second)
    assert url(registered, "mlflow_model_version") == f"{UI}/#/models/bc/versions/2"
