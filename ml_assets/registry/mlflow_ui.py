"""Addresses of MLflow UI pages that the assets' metadata links to: the run that logged a
model, a registered model version, and the MLflow run of a Dagster run found by its tag."""

from __future__ import annotations

from urllib.parse import quote


def run_url(ui_url: str, experiment_id: str, run_id: str) -> str:
    return f"{ui_url}/#/experiments/{experiment_id}/runs/{run_id}"


def model_version_url(ui_url: str, model_name: str, version: int | str) -> str:
    return f"{ui_url}/#/models/{quote(model_name)}/versions/{version}"


def dagster_run_search_url(ui_url: str, experiment_id: str, dagster_run_id: str) -> str:
    """The experiment's runs filtered to the one dagster-mlflow tagged with this Dagster run
    (its `dagster_run_id` tag). Used before that run exists: the registration step starts it."""
    search = quote(f"tags.dagster_run_id = '{dagster_run_id}'", safe="")
    return f"{ui_url}/#/experiments/{experiment_id}/runs?searchFilter={search}"
