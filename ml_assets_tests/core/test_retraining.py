"""When to retrain: the performance-decay rule and the triggers, without Dagster.

The trigger rule is tried on drift reports of real data (breast cancer, from scikit-learn's
wheel): a champion trained on one half of the patients, new versions made of the other half.
"""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from ml_assets.config import parse_settings
from ml_assets.core.columns import ColumnRoles
from ml_assets.core.drift import drift_report
from ml_assets.core.retraining import (
    assess_decay,
    change_columns,
    describe_triggers,
    performance_floor,
    retrain_triggers,
)


def settings(**extra):
    return parse_settings({"name": "t", "target": "y", "task": "classification", **extra}, "t.yaml")


def cancer_settings(**extra):
    return parse_settings(
        {"name": "t", "target": "diagnosis", "task": "classification", **extra}, "t.yaml"
    )


RAISED = ["mean radius", "worst area", "mean smoothness"]  # 3 of 30 columns: below drift.share


@pytest.fixture(scope="module")
def halves():
    """The champion's training rows and a new version of other patients, same population."""
    data = load_breast_cancer(as_frame=True)
    df = data.data.copy()
    df["diagnosis"] = data.target.map({0: "malignant", 1: "benign"})
    order = np.random.default_rng(0).permutation(len(df))
    half = len(df) // 2
    roles = ColumnRoles(target="diagnosis", numeric=tuple(data.feature_names))
    return df.iloc[order[:half]], df.iloc[order[half:]].reset_index(drop=True), roles


def range_changes(columns):
    """What the data contract's data_changes check reports for values beyond its ranges."""
    return [{"column": c, "expectation": "expect_column_values_to_be_between",
             "summary": f"{c}: 6.2% of values outside [0, 30] (allowed: 1.0%)"} for c in columns]


def raised(frame, factor=1.6, columns=RAISED):
    out = frame.copy()
    out[columns] = out[columns] * factor
    return out


def triggers_for(reference, current, roles, changes=(), decay=None, **drift_settings):
    s = cancer_settings(drift=drift_settings) if drift_settings else cancer_settings()
    report = drift_report(reference, current, roles, s, contract_changes=list(changes))
    return retrain_triggers(reference is not None, report["dataset_drift"], decay,
                            change_columns(report)), report


def test_floor_defaults_to_the_gate_of_the_primary_metric():
    assert performance_floor(settings()) == 0.7
    assert performance_floor(settings(retrain={"performance_floor": 0.9})) == 0.9
    regression = parse_settings({"name": "t", "target": "y", "task": "regression",
                                 "gates": {"primary_metric": "rmse", "max": {"rmse": 10}}}, "t.yaml")
    assert performance_floor(regression) == 10


def test_decay_by_margin_and_by_floor():
    s = settings()
    steady = assess_decay(0.97, 0.99, s)
    assert not steady["decayed"]
    assert steady["reason"] == "champion roc_auc 0.970 on this version, within the margin"
    dropped = assess_decay(0.90, 0.99, s)
    assert dropped["decayed"]
    assert dropped["reason"] == "roc_auc fell from 0.990 at its evaluation to 0.900 (more than the margin 0.05)"
    below = assess_decay(0.65, 0.68, s)  # a drop of 0.03 is within the margin: the floor decides
    assert below["decayed"] and below["reason"] == "roc_auc 0.650 is past the floor 0.700"


def test_error_metrics_decay_upward():
    s = parse_settings({"name": "t", "target": "y", "task": "regression",
                        "gates": {"primary_metric": "rmse"}, "retrain": {"decay_margin": 1.0}}, "t.yaml")
    assert assess_decay(15.0, 10.0, s)["decayed"]
    assert not assess_decay(9.0, 10.0, s)["decayed"]


def test_triggers():
    assert retrain_triggers(False, False, None) == ["no_champion"]
    assert retrain_triggers(False, True, {"decayed": True}, ["a"]) == ["no_champion"]
    assert retrain_triggers(True, False, {"decayed": False}) == []
    assert retrain_triggers(True, True, {"decayed": True}) == ["drift", "decay"]
    assert retrain_triggers(True, False, None, ["tenure"]) == ["change"]
    assert retrain_triggers(True, True, {"decayed": True}, ["tenure"]) == ["drift", "change", "decay"]


def test_no_champion_trains_whatever_the_data(halves):
    _, current, roles = halves
    triggers, _ = triggers_for(None, raised(current), roles, range_changes(RAISED))
    assert triggers == ["no_champion"]


def test_a_few_columns_changed_and_drifted_trigger_change(halves):
    reference, current, roles = halves
    triggers, report = triggers_for(reference, raised(current), roles, range_changes(RAISED))
    assert not report["dataset_drift"]  # the dataset rule alone would never retrain
    assert triggers == ["change"]
    assert set(change_columns(report)) == set(RAISED)


def test_most_columns_drifted_trigger_drift_with_or_without_the_contract(halves):
    reference, current, roles = halves
    most = list(roles.numeric[:20])
    triggers, report = triggers_for(reference, raised(current, columns=most), roles)
    assert report["dataset_drift"] and triggers == ["drift"]
    triggers, _ = triggers_for(reference, raised(current, columns=most), roles, range_changes(most))
    assert triggers == ["drift", "change"]


def test_a_contract_change_alone_does_not_retrain_an_already_learnt_regime(halves):
    reference, current, roles = halves
    # the champion was trained on the new regime; the contract, inferred earlier, still warns
    triggers, report = triggers_for(raised(reference), raised(current), roles, range_changes(RAISED))
    assert triggers == []
    moved = {m["column"]: m for m in report["moved"]}
    assert set(moved) >= set(RAISED)  # still named, as the contract's changes...
    assert not any(moved[c]["drifted"] for c in RAISED)  # ...with no drift from the champion


def test_a_small_significant_drift_of_the_same_population_does_not_retrain(halves):
    reference, current, roles = halves
    nudged = current.copy()
    for column in ("mean texture", "worst texture"):
        nudged[column] = nudged[column] + 0.35 * reference[column].std()
    triggers, report = triggers_for(reference, nudged, roles)
    drifted = {c["column"] for c in report["columns"] if c["drifted"]}
    assert {"mean texture", "worst texture"} <= drifted  # significant...
    assert triggers == []  # ...but no contract change, and far below drift.share


def test_change_evidence_on_different_columns_is_not_change(halves):
    reference, current, roles = halves
    # the contract reports one column, another one drifted: no column has both
    triggers, _ = triggers_for(reference, raised(current, columns=["worst area"]), roles,
                               range_changes(["mean texture"]))
    assert triggers == []


def test_decay_alone_triggers_decay(halves):
    reference, current, roles = halves
    triggers, _ = triggers_for(reference, current, roles, decay={"decayed": True})
    assert triggers == ["decay"]


def test_the_rule_follows_the_drift_settings(halves):
    reference, current, roles = halves
    slightly = raised(current, factor=1.12)
    changes = range_changes(RAISED)
    triggers, report = triggers_for(reference, slightly, roles, changes)
    assert triggers == ["change"]
    strongest = min(m["statistic"] for m in report["moved"] if m["column"] in RAISED)
    # a stricter p-value: the changed columns no longer drift, and the contract alone is not
    # enough
    triggers, _ = triggers_for(reference, slightly, roles, changes, p_value=strongest / 10)
    assert triggers == []
    # a lower drift.share: a few drifted columns are dataset drift
    triggers, report = triggers_for(reference, slightly, roles, share=0.05)
    assert report["share_drifted"] >= 0.05 and triggers == ["drift"]


def test_triggers_in_words_name_the_columns():
    text = describe_triggers(
        ["drift", "change", "decay"], reference="champion version 1",
        change_columns=["monthly_charges", "tenure", "contract"],
        drifted_columns=[f"c{i}" for i in range(12)], share_drifted=0.6, share_threshold=0.5,
        decay_reason="roc_auc fell from 0.900 at its evaluation to 0.700",
    )
    assert text == (
        "drift in c0, c1, c2, c3, c4, c5, c6, c7 and 4 more (dataset drift against champion "
        "version 1, 60% of the feature columns >= drift.share 50%); "
        "change in monthly_charges, tenure, contract (contract + drift against champion version 1); "
        "decay: roc_auc fell from 0.900 at its evaluation to 0.700"
    )


def test_bad_schedule_settings_are_named():
    import pytest

    from ml_assets.config import PipelineFileError

    with pytest.raises(PipelineFileError) as cron:
        settings(retrain={"cron": "every monday"})
    assert str(cron.value) == ("t.yaml: key 'retrain.cron': expected a cron expression such as "
                               "'0 3 * * 1', got 'every monday'")
    with pytest.raises(PipelineFileError) as zone:
        settings(retrain={"timezone": "Mars/Olympus"})
    assert str(zone.value) == ("t.yaml: key 'retrain.timezone': expected an IANA time zone such as "
                               "UTC or Europe/Paris, got 'Mars/Olympus'")
