"""Held-out metrics, baseline, plots, quality gate and promotion, on scikit-learn's real data sets."""

from __future__ import annotations

import json
import struct

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ml_assets.config import parse_settings
from ml_assets.core.evaluation.gate import format_metric, format_metric_pair
from ml_assets.core.evaluation import (
    GateResult,
    baseline_scores,
    confusion,
    decide_promotion,
    plots,
    predict,
    quality_gate,
    score,
)

CLASSIFICATION_KEYS = {"roc_auc", "accuracy", "f1", "log_loss"}
REGRESSION_KEYS = {"r2", "rmse", "mae"}


def classifier():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def settings_for(task: str = "classification", **extra):
    target = {"classification": "diagnosis", "regression": "progression"}[task]
    data = {"name": "t", "target": target, "task": task, **extra}
    if task == "classification" and "positive_label" not in extra:
        data["positive_label"] = "malignant"
    return parse_settings(data, "test.yaml")


@pytest.fixture(scope="module")
def cancer():
    """Binary, string labels; sklearn's target 0 is malignant."""
    data = load_breast_cancer(as_frame=True)
    y = data.target.map({0: "malignant", 1: "benign"}).rename("diagnosis")
    X_tr, X_te, y_tr, y_te = train_test_split(
        data.data, y, test_size=0.2, random_state=0, stratify=y
    )
    return X_tr, X_te, y_tr, y_te, classifier().fit(X_tr, y_tr)


@pytest.fixture(scope="module")
def wine():
    data = load_wine(as_frame=True)
    y = data.target.map(dict(enumerate(data.target_names))).rename("cultivar")
    X_tr, X_te, y_tr, y_te = train_test_split(
        data.data, y, test_size=0.3, random_state=0, stratify=y
    )
    return X_tr, X_te, y_tr, y_te, classifier().fit(X_tr, y_tr)


@pytest.fixture(scope="module")
def diabetes():
    data = load_diabetes(as_frame=True)
    y = data.target.rename("progression")
    X_tr, X_te, y_tr, y_te = train_test_split(data.data, y, test_size=0.2, random_state=0)
    return X_tr, X_te, y_tr, y_te, make_pipeline(StandardScaler(), Ridge()).fit(X_tr, y_tr)


def _json_roundtrip(value):
    return json.loads(json.dumps(value, allow_nan=False))


# --------------------------------------------------------------------------- score


def test_binary_scores_match_sklearn_for_the_positive_class(cancer):
    _, X_te, _, y_te, model = cancer
    got = score(model, X_te, y_te, "classification", positive_label="malignant")

    assert set(got) == CLASSIFICATION_KEYS
    assert all(type(v) is float for v in got.values())
    assert _json_roundtrip(got) == got
    proba = model.predict_proba(X_te)[:, list(model.classes_).index("malignant")]
    pred = model.predict(X_te)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y_te == "malignant", proba))
    assert got["f1"] == pytest.approx(skm.f1_score(y_te, pred, pos_label="malignant"))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y_te, pred))
    assert got["log_loss"] == pytest.approx(
        skm.log_loss(y_te, model.predict_proba(X_te), labels=model.classes_)
    )
    assert got["roc_auc"] > 0.95 and got["accuracy"] > 0.9


def test_positive_label_decides_which_class_roc_auc_and_f1_are_about(cancer):
    _, X_te, _, y_te, model = cancer
    malignant = score(model, X_te, y_te, "classification", positive_label="malignant")
    benign = score(model, X_te, y_te, "classification", positive_label="benign")
    default = score(model, X_te, y_te, "classification")

    # The AUC of "benign" must be computed from P(benign), not from predict_proba[:, 1]
    # (P(malignant)): pairing the benign labels with the wrong column gives 1 - AUC.
    proba = dict(zip(model.classes_, model.predict_proba(X_te).T, strict=True))
    assert benign["roc_auc"] == pytest.approx(skm.roc_auc_score(y_te == "benign", proba["benign"]))
    wrong_column = skm.roc_auc_score(y_te == "benign", proba["malignant"])
    assert wrong_column == pytest.approx(1 - malignant["roc_auc"])
    assert benign["roc_auc"] > 0.95 > wrong_column
    assert benign["f1"] == pytest.approx(
        skm.f1_score(y_te, model.predict(X_te), pos_label="benign")
    )
    assert benign["f1"] != pytest.approx(malignant["f1"])
    # without positive_label, sklearn's convention: classes_[1] ("malignant" sorts second)
    assert default == malignant
    # accuracy and log loss do not depend on which class is positive
    assert benign["accuracy"] == malignant["accuracy"]
    assert benign["log_loss"] == malignant["log_loss"]


def test_unknown_positive_label_is_a_clear_error(cancer):
    _, X_te, _, y_te, model = cancer
    with pytest.raises(ValueError, match="positive_label 'cancer' is not one of"):
        score(model, X_te, y_te, "classification", positive_label="cancer")


def test_multiclass_scores_are_macro_one_vs_rest(wine):
    _, X_te, _, y_te, model = wine
    got = score(model, X_te, y_te, "classification")

    assert set(got) == CLASSIFICATION_KEYS
    proba = model.predict_proba(X_te)
    assert got["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y_te, proba, multi_class="ovr", average="macro")
    )
    assert got["f1"] == pytest.approx(skm.f1_score(y_te, model.predict(X_te), average="macro"))
    assert 0.9 <= got["accuracy"] <= 1.0


def test_regression_scores_match_sklearn(diabetes):
    _, X_te, _, y_te, model = diabetes
    got = score(model, X_te, y_te, "regression")

    assert set(got) == REGRESSION_KEYS
    pred = model.predict(X_te)
    assert got["r2"] == pytest.approx(skm.r2_score(y_te, pred))
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y_te, pred)))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y_te, pred))
    assert 0.2 < got["r2"] < 1 and got["rmse"] > got["mae"] > 0


def test_undefined_metrics_are_left_out_not_nan(cancer, diabetes):
    _, X_te, _, y_te, model = cancer
    benign_only = y_te == "benign"
    got = score(model, X_te[benign_only], y_te[benign_only], "classification", "malignant")
    assert "roc_auc" not in got  # one class present: AUC is undefined
    assert {"accuracy", "log_loss"} <= set(got)
    assert _json_roundtrip(got) == got

    _, X_te, _, y_te, reg = diabetes
    one_row = score(reg, X_te.iloc[:1], y_te.iloc[:1], "regression")
    assert "r2" not in one_row and set(one_row) == {"rmse", "mae"}


def test_rows_without_a_label_are_not_scored(cancer):
    _, X_te, _, y_te, model = cancer
    y_missing = y_te.astype(object).copy()
    y_missing.iloc[:10] = None
    got = score(model, X_te, y_missing, "classification", "malignant")
    assert got == score(model, X_te.iloc[10:], y_te.iloc[10:], "classification", "malignant")


# --------------------------------------------------------------------------- baseline


def test_baseline_is_a_no_skill_model_and_a_good_model_beats_it(cancer, wine, diabetes):
    _, X_te, y_tr, y_te, model = cancer
    base = baseline_scores(y_tr, X_te, y_te, "classification", "malignant")
    assert base["roc_auc"] == pytest.approx(0.5)
    majority = y_tr.value_counts().idxmax()
    assert base["accuracy"] == pytest.approx((y_te == majority).mean())
    got = score(model, X_te, y_te, "classification", "malignant")
    assert got["roc_auc"] > base["roc_auc"] and got["accuracy"] > base["accuracy"]
    assert got["log_loss"] < base["log_loss"]

    _, X_te, y_tr, y_te, model = wine
    base = baseline_scores(y_tr, X_te, y_te, "classification")
    assert set(base) == CLASSIFICATION_KEYS and base["roc_auc"] == pytest.approx(0.5)
    assert score(model, X_te, y_te, "classification")["f1"] > base["f1"]

    _, X_te, y_tr, y_te, model = diabetes
    base = baseline_scores(y_tr, X_te, y_te, "regression")
    assert base["r2"] <= 0.0 < score(model, X_te, y_te, "regression")["r2"]
    assert base["rmse"] == pytest.approx(np.sqrt(((y_te - y_tr.mean()) ** 2).mean()))


def test_baseline_is_the_prior_of_every_training_row(cancer, wine):
    from sklearn.dummy import DummyClassifier

    for data, pos in ((cancer, "malignant"), (wine, None)):
        _, X_te, y_tr, y_te, _ = data
        dummy = DummyClassifier(strategy="prior").fit(np.zeros((len(y_tr), 1)), y_tr)
        assert baseline_scores(y_tr, X_te, y_te, "classification", pos) == score(
            dummy, np.zeros((len(y_te), 1)), y_te, "classification", pos)


@pytest.mark.parametrize("estimator", ["hist_gradient_boosting", "random_forest", "linear"])
def test_one_pass_predictions_are_the_models_own(estimator):
    from ml_assets.core.columns import infer_roles
    from ml_assets.core.modeling import build_pipeline, fit_pipeline

    data = load_wine(as_frame=True)
    df = data.data.assign(cultivar=data.target.map(dict(enumerate(data.target_names))))
    df["soil"] = np.where(df["alcohol"] > 13, "chalk", "clay")  # a text feature too
    roles = infer_roles(df, "cultivar", [])
    model = fit_pipeline(build_pipeline(roles, "classification", estimator, {}, 0),
                         df[list(roles.features)], df["cultivar"])
    got = predict(model, df[list(roles.features)])
    assert (got.pred == model.predict(df[list(roles.features)])).all()
    assert np.array_equal(got.proba, model.predict_proba(df[list(roles.features)]))
    assert got.classes == list(model.classes_)


def test_metrics_on_labels_the_model_never_saw_match_sklearn(cancer):
    _, X_te, _, y_te, model = cancer
    y = y_te.copy()
    y.iloc[:3] = "unknown"  # a label outside the model's classes
    pred = model.predict(X_te)
    got = score(model, X_te, y, "classification", "malignant")
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    is_pos = (y == "malignant").to_numpy()
    assert got["f1"] == pytest.approx(skm.f1_score(is_pos, pred == "malignant"))
    assert "log_loss" not in got  # undefined with a label the model has no column for
    cm = confusion(model, X_te, y)
    assert cm["labels"] == ["benign", "malignant", "unknown"]
    assert cm["matrix"] == skm.confusion_matrix(y, pred, labels=cm["labels"]).tolist()


# --------------------------------------------------------------------------- confusion + plots


def test_confusion_matrix_counts_every_held_out_row(cancer):
    _, X_te, _, y_te, model = cancer
    cm = confusion(model, X_te, y_te)

    assert cm["labels"] == ["benign", "malignant"]
    assert np.asarray(cm["matrix"]).sum() == len(y_te)
    expected = skm.confusion_matrix(y_te, model.predict(X_te), labels=cm["labels"])
    assert cm["matrix"] == expected.tolist()
    assert _json_roundtrip(cm) == cm


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize(
    "dataset, task, keys",
    [
        ("cancer", "classification", {"confusion_matrix", "roc_curve", "pr_curve"}),
        ("wine", "classification", {"confusion_matrix", "roc_curve", "pr_curve"}),
        ("diabetes", "regression", {"residuals", "predicted_vs_actual"}),
    ],
)
def test_plots_are_readable_pngs_per_task(request, dataset, task, keys):
    import matplotlib.pyplot as plt

    _, X_te, _, y_te, model = request.getfixturevalue(dataset)
    open_before = plt.get_fignums()
    positive = "malignant" if dataset == "cancer" else None
    got = plots(model, X_te, y_te, task, positive_label=positive)

    assert set(got) == keys
    for name, png in got.items():
        width, height = _png_size(png)
        assert 400 <= width <= 600 and 300 <= height <= 500, name
        assert len(png) > 5_000, name  # a drawn chart, not an empty canvas
    assert plt.get_fignums() == open_before  # no figure left open


def test_curves_are_still_drawn_when_the_held_out_rows_hold_one_class(cancer):
    _, X_te, _, y_te, model = cancer
    keep = y_te == "benign"
    got = plots(model, X_te[keep], y_te[keep], "classification", "malignant")
    assert all(png.startswith(b"\x89PNG") for png in got.values())


# --------------------------------------------------------------------------- quality gate


def test_gate_passes_a_good_model(cancer):
    _, X_te, y_tr, y_te, model = cancer
    metrics = score(model, X_te, y_te, "classification", "malignant")
    base = baseline_scores(y_tr, X_te, y_te, "classification", "malignant")
    gate = quality_gate(metrics, settings_for(), base)

    assert gate.passed and gate.failures == []
    assert gate.checked["gates.min.roc_auc"] == {
        "value": metrics["roc_auc"],
        "threshold": 0.7,
        "op": ">=",
        "passed": True,
        "source": "gates.min.roc_auc",
    }
    assert gate.checked["baseline.roc_auc"]["passed"]
    assert _json_roundtrip(gate.to_metadata()) == gate.to_metadata()


def test_gate_fails_naming_the_metric_and_the_floor(cancer):
    _, X_te, _, y_te, model = cancer
    metrics = score(model, X_te, y_te, "classification", "malignant")
    settings = settings_for(gates={"min": {"roc_auc": 0.999, "accuracy": 0.5}})
    gate = quality_gate(metrics, settings)

    assert not gate.passed
    assert gate.failures == [
        f"roc_auc {metrics['roc_auc']:.3f} is below the floor 0.999 set in gates.min.roc_auc"
    ]
    assert gate.checked["gates.min.accuracy"]["passed"]
    assert not gate.checked["gates.min.roc_auc"]["passed"]


def test_gate_ceiling_and_missing_metric(cancer):
    _, X_te, _, y_te, model = cancer
    metrics = score(model, X_te, y_te, "classification", "malignant")
    settings = settings_for(gates={"max": {"log_loss": 0.01}})
    gate = quality_gate(metrics, settings)
    assert not gate.passed
    assert gate.failures == [
        f"log_loss {format_metric(metrics['log_loss'])} is above the ceiling 0.010 set in gates.max.log_loss"
    ]

    without_auc = {k: v for k, v in metrics.items() if k != "roc_auc"}
    gate = quality_gate(without_auc, settings_for())
    assert not gate.passed
    assert gate.failures == [
        "roc_auc could not be computed on the held-out rows (undefined there, e.g. only one class "
        "present), so the floor 0.700 (the default for gates.min.roc_auc) cannot be checked"
    ]
    assert gate.checked["gates.min.roc_auc"]["value"] is None


def test_gate_fails_a_model_trained_on_shuffled_labels(cancer):
    X_tr, X_te, y_tr, y_te, _ = cancer
    settings = settings_for()
    base = baseline_scores(y_tr, X_te, y_te, "classification", "malignant")
    for seed in range(3):
        shuffled = pd.Series(
            np.random.default_rng(seed).permutation(y_tr.to_numpy()), index=y_tr.index
        )
        noise = classifier().fit(X_tr, shuffled)
        gate = quality_gate(score(noise, X_te, y_te, "classification", "malignant"), settings, base)
        assert not gate.passed, seed
        auc = format_metric(gate.checked["gates.min.roc_auc"]["value"])
        assert f"roc_auc {auc} is below the floor 0.700 (the default for gates.min.roc_auc)" in gate.failures


def test_gate_fails_a_model_no_better_than_the_baseline(diabetes):
    X_tr, X_te, y_tr, y_te, _ = diabetes
    base = baseline_scores(y_tr, X_te, y_te, "regression")
    no_floor = settings_for("regression", gates={"min": {}})

    # the baseline itself, scored as a model: equal is not better
    gate = quality_gate(dict(base), no_floor, base)
    assert not gate.passed
    assert gate.failures == [
        f"r2 {base['r2']:.3f} is no better than the baseline's {base['r2']:.3f} (a model that ignores "
        "the features; higher is better); gates.beat_baseline requires the model to beat it"
    ]

    # a model that learned noise does worse than predicting the mean
    shuffled = pd.Series(np.random.default_rng(1).permutation(y_tr.to_numpy()), index=y_tr.index)
    noise = make_pipeline(StandardScaler(), Ridge()).fit(X_tr, shuffled)
    noisy = score(noise, X_te, y_te, "regression")
    gate = quality_gate(noisy, no_floor, base)
    learned, ignored = format_metric_pair(noisy["r2"], base["r2"])
    assert gate.failures == [
        f"r2 {learned} is no better than the baseline's {ignored} (a model that ignores "
        "the features; higher is better); gates.beat_baseline requires the model to beat it"
    ]

    # switched off, only the (empty) floors apply
    off = settings_for("regression", gates={"min": {}, "beat_baseline": False})
    assert quality_gate(dict(base), off, base).passed


def test_gate_direction_for_lower_is_better_primary_metric(diabetes):
    _, X_te, y_tr, y_te, model = diabetes
    base = baseline_scores(y_tr, X_te, y_te, "regression")
    settings = settings_for("regression", gates={"primary_metric": "rmse"})
    good = score(model, X_te, y_te, "regression")
    assert quality_gate(good, settings, base).passed
    worse = {**good, "rmse": base["rmse"] + 1}
    gate = quality_gate(worse, settings, base)
    rmse, baseline_rmse = format_metric_pair(worse["rmse"], base["rmse"])
    assert gate.failures == [
        f"rmse {rmse} is no better than the baseline's {baseline_rmse} (a model that ignores "
        "the features; lower is better); gates.beat_baseline requires the model to beat it"
    ]


# --------------------------------------------------------------------------- promotion


def _passed() -> GateResult:
    return GateResult(passed=True, failures=[], checked={})


def test_first_model_is_promoted_when_there_is_no_champion():
    decision = decide_promotion({"roc_auc": 0.9}, None, _passed(), settings_for())
    assert decision.promote
    assert decision.reason == "promoted: no champion yet, and the challenger with roc_auc 0.900 passed every gate."
    assert decision.challenger == 0.9 and decision.champion is None
    assert decision.metric == "roc_auc"


def test_worse_challenger_is_not_promoted_and_the_champion_stays():
    decision = decide_promotion(
        {"roc_auc": 0.950}, {"roc_auc": 0.975}, _passed(), settings_for(), n_rows=114
    )
    assert not decision.promote
    assert decision.reason == (
        "challenger roc_auc 0.950 < champion 0.975 on the same 114 held-out rows by more than "
        "the promotion tolerance 0.010: not promoted; the champion stays."
    )


def test_better_or_equal_challenger_is_promoted():
    settings = settings_for()
    better = decide_promotion(
        {"roc_auc": 0.981}, {"roc_auc": 0.975}, _passed(), settings, n_rows=114
    )
    assert better.promote
    assert better.reason == "challenger roc_auc 0.981 >= champion 0.975 on the same 114 held-out rows: promoted."
    equal = decide_promotion({"roc_auc": 0.975}, {"roc_auc": 0.975}, _passed(), settings)
    assert equal.promote
    assert equal.reason == "challenger roc_auc 0.975 >= champion 0.975 on the same held-out rows: promoted."


def test_close_values_are_printed_so_they_differ():
    decision = decide_promotion(
        {"roc_auc": 0.97491}, {"roc_auc": 0.97512}, _passed(),
        settings_for(gates={"promotion_tolerance": 0}),
    )
    assert not decision.promote
    assert decision.reason == (
        "challenger roc_auc 0.9749 < champion 0.9751 on the same held-out rows: not promoted; "
        "the champion stays."
    )


def test_failed_gate_never_promotes_even_without_a_champion():
    failed = GateResult(
        passed=False,
        failures=["roc_auc 0.612 is below the floor 0.700 set in gates.min.roc_auc"],
        checked={},
    )
    decision = decide_promotion({"roc_auc": 0.612}, None, failed, settings_for())
    assert not decision.promote
    assert decision.reason == (
        "not promoted: the quality gate failed (roc_auc 0.612 is below the floor 0.700 set in "
        "gates.min.roc_auc); there is still no champion."
    )
    better_than_champion = decide_promotion(
        {"roc_auc": 0.99}, {"roc_auc": 0.5}, failed, settings_for()
    )
    assert not better_than_champion.promote
    assert better_than_champion.reason == (
        "not promoted: the quality gate failed (roc_auc 0.612 is below the floor 0.700 set in "
        "gates.min.roc_auc); the champion stays."
    )


def test_promotion_tolerance_is_honoured_in_the_metric_direction():
    tolerant = settings_for(gates={"promotion_tolerance": 0.01})
    within = decide_promotion({"roc_auc": 0.968}, {"roc_auc": 0.975}, _passed(), tolerant)
    assert within.promote
    assert within.reason == (
        "challenger roc_auc 0.968 is worse than champion 0.975 on the same held-out rows, but within "
        "the promotion tolerance 0.010 (gates.promotion_tolerance): promoted."
    )
    beyond = decide_promotion({"roc_auc": 0.960}, {"roc_auc": 0.975}, _passed(), tolerant)
    assert not beyond.promote
    assert beyond.reason == (
        "challenger roc_auc 0.960 < champion 0.975 on the same held-out rows by more than the "
        "promotion tolerance 0.010: not promoted; the champion stays."
    )

    # rmse: lower is better, so the tolerance is added to the champion's value
    rmse = settings_for("regression", gates={"primary_metric": "rmse", "promotion_tolerance": 2})
    assert decide_promotion({"rmse": 51.5}, {"rmse": 50.0}, _passed(), rmse).promote
    assert not decide_promotion({"rmse": 52.5}, {"rmse": 50.0}, _passed(), rmse).promote
    lower = decide_promotion({"rmse": 48.0}, {"rmse": 50.0}, _passed(), rmse)
    assert lower.promote
    assert lower.reason == "challenger rmse 48.000 <= champion 50.000 on the same held-out rows: promoted."


def test_promotion_decision_is_json_able():
    decision = decide_promotion(
        {"roc_auc": 0.9}, {"roc_auc": 0.8}, _passed(), settings_for(), n_rows=10
    )
    assert _json_roundtrip(decision.to_metadata()) == decision.to_metadata()


def test_noisy_labels_cannot_win_a_coin_toss_against_the_champion():
    """On rows with noisy labels both models score badly; the challenger beating the champion
    there must not make it champion when it is far below what the champion achieved."""
    from ml_assets.core.evaluation import GateResult, decide_promotion

    settings = parse_settings({"name": "t", "target": "y", "task": "classification"}, "t.yaml")
    passed = GateResult(True, [], {})
    noisy = decide_promotion({"roc_auc": 0.74}, {"roc_auc": 0.72}, passed, settings,
                             n_rows=100, champion_evaluated=0.99)
    assert not noisy.promote
    assert noisy.reason == (
        "not promoted: challenger roc_auc 0.740 on its own held-out rows is more than 10% worse than "
        "the champion's 0.990 at its evaluation (gates.max_drop_from_champion_evaluation): the new "
        "labels look noisier or less consistent; the champion stays."
    )
    steady = decide_promotion({"roc_auc": 0.97}, {"roc_auc": 0.95}, passed, settings,
                              n_rows=100, champion_evaluated=0.99)
    assert steady.promote


def test_a_threshold_is_printed_as_set_not_rounded():
    from ml_assets.core.evaluation.gate import format_threshold

    assert [format_threshold(t) for t in (0.7, 0.9999, 0.25, 1e-05, 12.5)] == \
        ["0.700", "0.9999", "0.250", "1e-05", "12.500"]
