"""Second versions of a regressor and of a three-class classifier, compared with their champion
on the same held-out rows: a better one promoted, a worse one (trained on partly corrupted
labels, still passing the quality gate) registered but refused by the rule that refused it;
and the registration step refusing a promotion when another model became champion after the
challenger was evaluated.

Each version runs the pipeline's graph in-process on a real Dagster instance against a real
MLflow sqlite store; new versions are new rows (ml_assets.demo.simulator), so the champion is
judged on rows it never saw.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from ml_assets.core.evaluation.gate import format_metric, format_metric_pair
from ml_assets.demo.simulator import DEMO_TABLES, DemoTable, make_version, shuffle_labels
from ml_assets_tests.conftest import DATASETS, diabetes, make_project, run_selection, wine

CULTIVARS = ["barbera", "barolo", "grignolino"]
UP_TO_EVALUATION = ["raw_data", "validated_data", "features", "drift_report", "model",
                    "evaluation_report"]


# --------------------------------------------------------------------------- the tables


def wine_with_ids() -> pd.DataFrame:
    df = wine()
    df.insert(0, "wine_id", np.arange(len(df)) + 1)
    return df


WINE_TABLE = DemoTable("wine", Path("wine.csv"), "cultivar", "classification", "wine_id",
                       re.compile(r"^$"))


def new_wines(seed: int) -> pd.DataFrame:
    return make_version(wine_with_ids(), seed=seed, drift=False, target="cultivar", table=WINE_TABLE)


def new_visits(seed: int) -> pd.DataFrame:
    return make_version(diabetes(), seed=seed, drift=False, target="progression",
                        table=DEMO_TABLES["diabetes"])


def relabelled_share(df: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """`share` of the wines given a cultivar drawn at random (fixed seed)."""
    out = df.copy()
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(out), size=int(share * len(out)), replace=False)
    out.loc[rows, "cultivar"] = rng.choice(CULTIVARS, size=len(rows))
    return out


# --------------------------------------------------------------------------- running and reading


def regressor(tmp_path):
    _, pipeline = DATASETS["diabetes"]
    # A linear model: on this small, noisy table, gradient boosting on a few hundred rows
    # stays under the gate's r2 floor, and a champion must pass it first. On 89 held-out visits
    # an r2 gain of 0.06 is not certain to 0.01 (its 95% bound is about -0.013): the scenario
    # accepts a challenger up to 0.05 of r2 worse, at 95% confidence.
    return make_project(tmp_path, "visits", **{**pipeline, "id_columns": ["visit_id"],
                                               "model": {"estimator": "linear"},
                                               "gates": {**pipeline["gates"],
                                                         "promotion_tolerance": 0.05}})


def multiclass(tmp_path):
    _, pipeline = DATASETS["wine"]
    # Gradient boosting, which learns the relabelled wines of the first version: a regularised
    # linear model (what the search picks here) shrugs a third of random labels off, and the
    # scenario needs a champion that is worse than the next version's model.
    return make_project(tmp_path, "wines", **{**pipeline, "id_columns": ["wine_id"],
                                              "model": {"estimator": "hist_gradient_boosting"}})


def land(project, instance, name: str, df: pd.DataFrame) -> str:
    project.drop(name, df)
    [key] = project.register_new(instance)
    return key


def run_new_version(project, instance, name: str, df: pd.DataFrame) -> str:
    key = land(project, instance, name, df)
    result = project.run_version(instance, key)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return key


def registration(project, instance, key: str) -> dict:
    """registered_model_version's metadata for a version, as the UI shows it."""
    [record] = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=project.names.key("registered_model_version"),
                              asset_partitions=[key]), limit=1,
    ).records
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def quality_gate_passed(project, instance, key: str) -> bool:
    from ml_assets.graph import QUALITY_GATE
    from ml_assets.selections import execution_data, latest_check_executions

    [record] = latest_check_executions(instance, [QUALITY_GATE], key, project.names.slug).values()
    return execution_data(record).passed


def saved_report(project, key: str) -> dict:
    """The evaluation report the store keeps for a version (also logged to MLflow)."""
    return json.loads(project.store.artifact_path(key, "evaluation_report", "json").read_text())


def model_version_tags(project, number: int) -> dict:
    return project.registry().client().get_model_version(project.settings.name, str(number)).tags


def compared_values(report: dict) -> tuple[float, float]:
    """(challenger, champion) primary metric on the rows the two were compared on."""
    metric = report["primary_metric"]
    champion = report["champion"]
    return champion["challenger_metrics_on_these_rows"][metric], champion["metrics_on_these_rows"][metric]


def summary_sentence(report: dict) -> str:
    summary = report["comparison"]["summary"]
    return summary[:1].upper() + summary[1:] + "."


def paired_words(report: dict) -> str:
    """promotion.py's words for the paired comparison on the same rows."""
    metric, paired = report["primary_metric"], report["paired_comparison"]
    challenger, champion = format_metric_pair(*compared_values(report))
    compared = report["comparison"]["compared_rows"]
    assert paired["n_rows"] == compared and paired["metric"] == metric
    difference = ("+" if paired["difference"] > 0 else "") + format_metric(paired["difference"])
    return (f"challenger {metric} {challenger} vs champion {champion} on the same {compared} "
            f"held-out rows: difference {difference}, 95% interval "
            f"[{format_metric(paired['ci_low'])}, {format_metric(paired['ci_high'])}] "
            f"({paired['method']}, {paired['resamples']} resamples, seed {paired['seed']}; "
            f"{paired['verdict']}); with 95% confidence the challenger ")


def tolerance_words(report: dict) -> str:
    tolerance = report["paired_comparison"]["tolerance"]
    return f"the promotion tolerance {format_metric(tolerance)} (gates.promotion_tolerance)"


def promoted_on_the_same_rows(report: dict) -> str:
    """promotion.py's words for a challenger not worse than the champion beyond the tolerance,
    at 95% confidence."""
    bound = report["paired_comparison"]["one_sided_bound"]
    assert bound >= -report["paired_comparison"]["tolerance"]
    at_most = (f"is better by at least {format_metric(bound)}" if bound >= 0
               else f"is worse by at most {format_metric(-bound)}")
    return (f"{paired_words(report)}{at_most}, within {tolerance_words(report)}: promoted. "
            f"{summary_sentence(report)}")


def refused_on_the_same_rows(report: dict) -> str:
    """promotion.py's words for a challenger that may be worse than the champion by more than
    the tolerance, at 95% confidence."""
    bound = report["paired_comparison"]["one_sided_bound"]
    assert bound < -report["paired_comparison"]["tolerance"]
    return (f"{paired_words(report)}may be worse by {format_metric(-bound)}, more than "
            f"{tolerance_words(report)}: not promoted; the champion stays. "
            f"{summary_sentence(report)}")


def refused_below_champion_evaluation(report: dict) -> str:
    """promotion.py's words for a challenger more than gates.max_drop_from_champion_evaluation
    (10%) below what the champion scored at its own evaluation."""
    metric = report["primary_metric"]
    return (f"not promoted: challenger {metric} {format_metric(report['metrics'][metric])} on "
            f"its own held-out rows is more than 10% worse than the champion's "
            f"{format_metric(report['champion']['metrics'][metric])} at its evaluation "
            "(gates.max_drop_from_champion_evaluation): the new labels look noisier or less "
            "consistent; the champion stays.")


def assert_champion(project, version: int, key: str) -> None:
    champion = project.registry().champion()
    assert (champion["version"], champion["data_version"]) == (version, key)


# --------------------------------------------------------------------------- the tests


def test_regressor_second_versions_better_promoted_worse_refused(tmp_path, instance):
    project = regressor(tmp_path)
    # The first champion learnt from visits nearly a third of whose progressions were shuffled.
    first = run_new_version(project, instance, "visits_1.csv",
                            shuffle_labels(diabetes(), "progression", seed=0, share=0.3))
    assert_champion(project, 1, first)

    better = run_new_version(project, instance, "visits_2.csv", new_visits(seed=2))
    report = saved_report(project, better)
    challenger, champion = compared_values(report)
    assert challenger > champion
    assert report["comparison"]["compared_rows"] == report["test_rows"]  # all new visits
    decision = registration(project, instance, better)
    assert decision["promoted"] is True and decision["alias"] == "champion"
    assert decision["decision"] == promoted_on_the_same_rows(report)
    assert_champion(project, 2, better)

    # New visits, a tenth of their progressions shuffled: a fair model still (the quality gate
    # passes), but worse than the champion on the same held-out rows.
    worse = run_new_version(project, instance, "visits_3.csv",
                            shuffle_labels(new_visits(seed=3), "progression", seed=1, share=0.1))
    report = saved_report(project, worse)
    assert report["gate"]["passed"] and quality_gate_passed(project, instance, worse)
    challenger, champion = compared_values(report)
    assert challenger < champion
    decision = registration(project, instance, worse)
    assert (decision["version"], decision["promoted"], decision["alias"]) == (3, False, "none")
    assert decision["decision"] == refused_on_the_same_rows(report)
    tags = model_version_tags(project, 3)
    assert tags["promotion"] == "not promoted"
    assert tags["promotion_reason"] == decision["decision"]
    assert_champion(project, 2, better)


def test_multiclass_second_versions_better_promoted_worse_refused(tmp_path, instance):
    project = multiclass(tmp_path)
    # The first champion learnt from wines nearly a third of which carry a random cultivar.
    first = run_new_version(project, instance, "wines_1.csv",
                            relabelled_share(wine_with_ids(), 0.3, seed=0))
    assert_champion(project, 1, first)

    better = run_new_version(project, instance, "wines_2.csv", new_wines(seed=2))
    report = saved_report(project, better)
    assert sorted(report["confusion"]["labels"]) == CULTIVARS
    challenger, champion = compared_values(report)
    assert challenger > champion
    decision = registration(project, instance, better)
    assert decision["promoted"] is True
    assert decision["decision"] == promoted_on_the_same_rows(report)
    assert_champion(project, 2, better)

    # New wines, nearly a third of them with a random cultivar: still past the gate (macro
    # ROC AUC above 0.7), but far below what the champion scored at its evaluation.
    worse = run_new_version(project, instance, "wines_3.csv",
                            relabelled_share(new_wines(seed=3), 0.3, seed=1))
    report = saved_report(project, worse)
    assert report["gate"]["passed"] and quality_gate_passed(project, instance, worse)
    metric = report["primary_metric"]
    assert report["metrics"][metric] < 0.9 * report["champion"]["metrics"][metric]
    decision = registration(project, instance, worse)
    assert (decision["version"], decision["promoted"], decision["alias"]) == (3, False, "none")
    assert decision["decision"] == refused_below_champion_evaluation(report)
    assert model_version_tags(project, 3)["promotion_reason"] == decision["decision"]
    assert_champion(project, 2, better)


@pytest.mark.parametrize("first_champion", [True, False], ids=["champion_replaced", "first_champion"])
def test_a_champion_promoted_after_the_evaluation_keeps_the_alias(tmp_path, instance, first_champion):
    """Two versions racing to the alias: B is evaluated against the champion of the moment
    (A, or none yet), C is trained and promoted meanwhile, then B is registered: B was never
    compared with C, so it is registered and not promoted, with the reason, and C stays
    champion."""
    project = regressor(tmp_path)
    if first_champion:
        run_new_version(project, instance, "visits_1.csv",
                        shuffle_labels(diabetes(), "progression", seed=0, share=0.3))
    before = 1 if first_champion else None
    b = land(project, instance, "visits_2.csv", new_visits(seed=2))
    assert run_selection(project, instance, b, UP_TO_EVALUATION).success
    evaluated = saved_report(project, b)
    assert (evaluated["champion"] or {}).get("version") == before
    assert evaluated["decision"]["promote"] is True  # B beats A (or is first): it would be promoted

    c = run_new_version(project, instance, "visits_3.csv", new_visits(seed=3))
    c_number = 2 if first_champion else 1
    assert_champion(project, c_number, c)

    assert run_selection(project, instance, b, ["registered_model_version"]).success
    decision = registration(project, instance, b)
    b_number = c_number + 1
    assert (decision["version"], decision["promoted"], decision["alias"]) == (b_number, False, "none")
    assert decision["decision"] == (
        f"the champion changed from {before or 'none'} to {c_number} after this model was "
        "evaluated; re-materialise evaluation_report to compare again")
    tags = model_version_tags(project, b_number)
    assert (tags["data_version"], tags["promotion"]) == (b, "not promoted")
    assert tags["promotion_reason"] == decision["decision"]
    assert_champion(project, c_number, c)
