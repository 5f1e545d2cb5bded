"""The model step's search through Dagster: it sees only the training rows, reports every
candidate in the model's metadata and the store, `ml-assets status --json` names the choice, and
editing the candidates or the search settings makes exactly the model and what follows stale."""

import dagster as dg
import pandas as pd

from ml_assets.core import search
from ml_assets.core.modeling import SPLIT_COLUMN
from ml_assets.graph import FEATURES, MODEL
from ml_assets.storage import read_json
from ml_assets_tests.conftest import DATASETS, breast_cancer, make_project


def latest(project, instance, asset, key):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=project.names.key(asset), asset_partitions=[key]), limit=1
    ).records
    return records[0].event_log_entry.asset_materialization.metadata


def test_the_search_sees_only_training_rows_and_reports_every_candidate(tmp_path, instance,
                                                                         monkeypatch):
    seen: list[pd.Index] = []
    real_score = search._score

    def recording_score(trial, pipeline, X, y, *args):
        seen.append(X.index)
        real_score(trial, pipeline, X, y, *args)

    monkeypatch.setattr(search, "_score", recording_score)
    project = make_project(tmp_path, "bc", **DATASETS["breast_cancer"][1])
    project.drop("bc.csv", breast_cancer())
    [key] = project.register_new(instance)
    assert project.run_version(instance, key).success

    features = pd.read_parquet(project.store.artifact_path(key, FEATURES, "parquet"))
    held_out = set(features.index[features[SPLIT_COLUMN] == "test"])
    training = set(features.index[features[SPLIT_COLUMN] == "train"])
    searched = set().union(*seen)
    assert searched and not searched & held_out
    assert searched == training  # the last round scores on every training row (fewer than max_rows)

    stored = read_json(project.store.version_dir(key) / "model_search.json")
    metadata = latest(project, instance, MODEL, key)
    chosen = stored["chosen"]
    assert metadata["candidate"].value == chosen["candidate"]
    assert metadata["estimator"].value == chosen["estimator"]
    assert metadata["chosen_because"].value == chosen["reason"]
    assert metadata["params"].value == chosen["params"]
    table = metadata["candidates"].value
    for trial in stored["candidates"]:
        assert f"| {trial['candidate']} | {trial['estimator']} |" in table
    assert len(stored["candidates"]) == 10 and stored["search_rows"] == len(training)
    assert "data:image/png;base64," in metadata["search_plot"].value
    assert metadata["search_seconds"].value <= metadata["search_budget_seconds"].value == 120

    from ml_assets.cli.status import collect_status, render_status

    status = collect_status(project.env, project.settings, instance)
    [version] = status["versions"]
    assert version["model"] == {"estimator": chosen["estimator"], "candidate": chosen["candidate"],
                                "params": chosen["params"], "chosen_because": chosen["reason"]}
    assert "champion   accuracy=" in render_status(status)
    assert f"model v1 ({chosen['candidate']})" in render_status(status)


def code_versions(tmp_path, name, **pipeline):
    (tmp_path / name).mkdir()
    project = make_project(tmp_path / name, "bc", **DATASETS["breast_cancer"][1], **pipeline)
    graph = project.defs().resolve_asset_graph()
    return {key.path[-1]: graph.get(key).code_version for key in graph.get_all_asset_keys()}


def test_editing_the_candidates_or_the_search_makes_the_model_stale(tmp_path):
    default = code_versions(tmp_path, "default")
    for name, model in {
        "budget": {"search": {"budget_seconds": 30}},
        "candidates": {"candidates": [{"estimator": "linear", "params": {"C": [0.1, 1.0]}}]},
        "fixed": {"estimator": "random_forest"},
    }.items():
        edited = code_versions(tmp_path, name, model=model)
        changed = {asset for asset in default if edited[asset] != default[asset]}
        # evaluation_report and registration follow as its downstream (see test_changed.py).
        assert changed == {"model"}, (name, changed)
