"""The slice gate through the real pipeline: a challenger better overall, by the paired
comparison, but worse than the champion by more than slices.max_drop on one slice with enough
rows, is registered and not promoted, the reason naming the slice; the report, the asset's
metadata and the champion_comparison check show the slices and the comparison.

The table is generated here so the difference is by construction. Customers are in group "a"
(three quarters) or "b". In group a the label is |x1| > 1, in group b it is x2 > 0, 5 % of labels
flipped. The champion is a logistic regression: it cannot see |x1|, so it ranks group a at
random, and ranks group b by x2. The challenger is gradient boosting on stumps (an additive
model): it learns |x1| (much better overall) but, without interactions, lets x1 scramble its
ranking of group b.
"""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd

from ml_assets.graph import CHAMPION_COMPARISON
from ml_assets_tests.conftest import make_project

PIPELINE = {"target": "bought", "task": "classification", "positive_label": "yes",
            # the champion ranks only group b well: its roc_auc is about 0.6
            "gates": {"min": {"roc_auc": 0.55}},
            "slices": {"columns": ["group", "x2"], "min_rows": 30, "bins": 4, "max_drop": 0.05}}
CHAMPION_MODEL = {"estimator": "linear"}
CHALLENGER_MODEL = {"estimator": "hist_gradient_boosting", "params": {"max_depth": 1}}


def customers(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    group = np.where(rng.random(rows) < 0.75, "a", "b")
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    signal = np.where(group == "a", np.abs(x1) > 1, x2 > 0)
    flipped = rng.random(rows) < 0.05
    return pd.DataFrame({"x1": x1, "x2": x2, "group": group,
                         "bought": np.where(signal ^ flipped, "yes", "no")})


def run_version(tmp_path, instance, name: str, table: pd.DataFrame, model: dict):
    """One data version, run with the pipeline file naming `model` (the same home: the
    champion of the previous version is in the registry)."""
    project = make_project(tmp_path, "customers", **PIPELINE, model=model)
    project.drop(name, table)
    [key] = project.register_new(instance)
    result = project.run_version(instance, key)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return project, key, result


def stored_report(project, key: str) -> dict:
    import json

    return json.loads(project.store.artifact_path(key, "evaluation_report", "json").read_text())


def check_evaluation(result, name: str):
    return next(e.asset_check_evaluation_data for e in result.all_events
                if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
                and e.asset_check_evaluation_data.check_name == name)


def asset_metadata(result, asset: str) -> dict:
    [materialization] = [m for m in result.asset_materializations_for_node(asset)]
    return materialization.metadata


def test_better_overall_but_worse_on_a_slice_is_not_promoted(tmp_path, instance):
    project, first, _ = run_version(tmp_path, instance, "customers_1.csv",
                                    customers(2000, seed=1), CHAMPION_MODEL)
    assert project.registry().champion()["data_version"] == first
    first_report = stored_report(project, first)
    # without a champion the slices are reported, and decide nothing
    assert first_report["paired_comparison"] is None
    assert first_report["slices"]["failures"] == []
    assert not any(row["decides"] for row in first_report["slices"]["rows"])

    project, second, result = run_version(tmp_path, instance, "customers_2.csv",
                                          customers(2000, seed=2), CHALLENGER_MODEL)
    report = stored_report(project, second)

    # Overall the challenger is clearly better: the paired comparison alone would promote it.
    paired = report["paired_comparison"]
    assert (paired["metric"], paired["method"], paired["verdict"]) == ("roc_auc", "DeLong",
                                                                       "better")
    assert paired["ci_low"] > 0.1 and paired["n_rows"] == report["test_rows"]

    # On group b it is worse by far more than slices.max_drop.
    rows = {(row["column"], row["slice"]): row for row in report["slices"]["rows"]}
    b = rows[("group", "b")]
    assert b["decides"] and b["rows"] >= 30
    assert b["difference"] < -0.05 and b["challenger"] < b["champion"]
    assert rows[("group", "a")]["difference"] > 0.2
    assert len([r for r in report["slices"]["rows"] if r["column"] == "x2"]) == 4  # quantile bins
    [failure] = report["slices"]["failures"]
    assert failure.startswith(f"slice group = b ({b['rows']} rows): roc_auc ")

    decision = report["decision"]
    assert decision["promote"] is False
    assert decision["reason"].startswith("not promoted: challenger roc_auc ")
    assert "worse than the champion on 1 slice(s): slice group = b (" in decision["reason"]
    assert "(more than slices.max_drop 0.05); the champion stays." in decision["reason"]
    champion = project.registry().champion()
    assert champion["data_version"] == first  # the champion stays

    check = check_evaluation(result, CHAMPION_COMPARISON.name)
    assert not check.passed
    assert "slice group = b" in check.description
    assert check.metadata["method"].value == "DeLong"
    assert check.metadata["verdict"].value == "better"
    assert check.metadata["difference"].value == paired["difference"]
    assert check.metadata["ci_low"].value == paired["ci_low"]
    assert check.metadata["ci_high"].value == paired["ci_high"]
    assert check.metadata["confidence"].value == 0.95
    assert check.metadata["decision"].value == check.description

    metadata = asset_metadata(result, "customers__evaluation_report")
    assert "| group | b |" in metadata["slices"].value
    assert "Failures:" in metadata["slices"].value
    assert metadata["metrics"].value.splitlines()[0].startswith("| metric | model | 95% interval |")
    top = report["feature_importance"][0]
    assert top["feature"] == "x1" and top["importance"] > 0
    assert "| x1 |" in metadata["feature_importance"].value


def test_a_slice_column_missing_from_the_table_fails_with_its_name(tmp_path, instance):
    project = make_project(tmp_path, "customers", **{**PIPELINE, "slices": {"columns": ["region"]}},
                           model=CHAMPION_MODEL)
    project.drop("customers_1.csv", customers(300, seed=1))
    [key] = project.register_new(instance)
    result = project.run_version(instance, key)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "slices.columns: 'region' is not a column of the feature table" in message
    assert project.registry().champion() is None
