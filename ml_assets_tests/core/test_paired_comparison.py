"""The paired comparison of a challenger with the champion on the same held-out rows, the
bootstrap intervals of one model's metrics, and the promotion decision they drive: identical
models are "not different", a clearly better model is promoted, a model better by less than
the noise on few rows is not (unless gates.promotion_confidence is null), too few rows is too
little evidence, and the same seed gives the same numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from ml_assets.config import parse_settings
from ml_assets.core.evaluation import (
    GateResult,
    Predictions,
    compare_paired,
    decide_promotion,
    metric_intervals,
    predict,
    score_predictions,
)
from ml_assets.core.evaluation.paired import DELONG, PAIRED_BOOTSTRAP, TOO_LITTLE_EVIDENCE

PASSED = GateResult(True, [], {})


def settings(task: str = "classification", **gates):
    target = {"classification": "diagnosis", "regression": "progression"}[task]
    return parse_settings({"name": "t", "target": target, "task": task, "gates": gates},
                          "test.yaml")


@pytest.fixture(scope="module")
def cancer():
    """Held-out rows of the breast cancer table and two fitted models: a logistic regression
    on every column, and one on the single weakest column."""
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.4, random_state=0,
                                                        stratify=y)
    good = LogisticRegression(max_iter=5000).fit(X_train, y_train)
    weak_column = ["symmetry error"]
    weak = LogisticRegression().fit(X_train[weak_column], y_train)
    return {
        "y": y_test.reset_index(drop=True),
        "good": predict(good, X_test),
        "weak": predict(weak, X_test[weak_column]),
    }


def paired(y, new, old, metric="roc_auc", direction=1, task="classification", **options):
    kwargs = dict(task=task, positive_label=None, metric=metric, direction=direction,
                  confidence=0.95, tolerance=0.01, resamples=1000, seed=42)
    return compare_paired(y, new, old, **{**kwargs, **options})


# --------------------------------------------------------------------------- identical models


@pytest.mark.parametrize("metric,direction", [("roc_auc", 1), ("accuracy", 1), ("log_loss", -1),
                                              ("f1", 1)])
def test_identical_models_are_not_different_and_promoted(cancer, metric, direction):
    result = paired(cancer["y"], cancer["good"], cancer["good"], metric, direction)
    assert result.verdict == "not different"
    assert (result.difference, result.ci_low, result.ci_high) == (0.0, 0.0, 0.0)
    assert result.method == (DELONG if metric == "roc_auc" else PAIRED_BOOTSTRAP)
    assert result.n_rows == len(cancer["y"])
    decision = decide_promotion({metric: 0.9}, {metric: 0.9}, PASSED,
                                settings(primary_metric=metric), n_rows=result.n_rows,
                                paired=result)
    assert decision.promote
    assert "difference 0.000, 95% interval [0.000, 0.000]" in decision.reason
    assert decision.reason.endswith("within the promotion tolerance 0.010 "
                                    "(gates.promotion_tolerance): promoted.")


# --------------------------------------------------------------------------- clearly better


def test_a_clearly_better_challenger_is_better_and_promoted(cancer):
    y, good, weak = cancer["y"], cancer["good"], cancer["weak"]
    result = paired(y, good, weak)
    auc_good = roc_auc_score(y, good.proba[:, 1])
    auc_weak = roc_auc_score(y, weak.proba[:, 1])
    assert result.difference == pytest.approx(auc_good - auc_weak)
    assert result.verdict == "better" and result.method == DELONG
    assert 0 < result.ci_low < result.difference < result.ci_high
    s = settings()
    decision = decide_promotion({"roc_auc": auc_good}, {"roc_auc": auc_weak}, PASSED, s,
                                n_rows=len(y), paired=result)
    assert decision.promote
    assert f"on the same {len(y)} held-out rows" in decision.reason
    assert "(DeLong; better)" in decision.reason
    assert "with 95% confidence the challenger is better by at least" in decision.reason
    # and the other way round: the weak model is worse, and not promoted
    reverse = paired(y, weak, good)
    assert reverse.verdict == "worse"
    assert reverse.difference == pytest.approx(-result.difference)
    refused = decide_promotion({"roc_auc": auc_weak}, {"roc_auc": auc_good}, PASSED, s,
                               n_rows=len(y), paired=reverse)
    assert not refused.promote and refused.reason.endswith("the champion stays.")


def test_a_resample_scores_as_scikit_learn_scores_the_drawn_rows(cancer):
    """The bootstrap weighs rows by how often they were drawn: each metric of a resample is
    exactly scikit-learn's metric on the drawn rows."""
    from ml_assets.core.evaluation import paired as paired_module

    y, good = cancer["y"], cancer["good"]
    drawn = np.random.default_rng(3).integers(0, len(y), len(y))
    weights = np.bincount(drawn, minlength=len(y)).astype(float)[None, :]
    rows = Predictions(good.pred[drawn], good.proba[drawn], None, good.classes)
    expected = score_predictions(rows, y[drawn].reset_index(drop=True), "classification")
    terms = paired_module._terms(good, y, "classification", None)
    for metric, value in expected.items():
        sums = paired_module._Sums(len(y))
        finish = paired_module._weighted_metric(metric, "classification", terms, sums)
        resampled = finish(weights @ sums.matrix(), weights)
        assert resampled[0] == pytest.approx(value, abs=1e-12), metric


# --------------------------------------------------------------------------- within the noise


def noisy_pair(rows: int = 60) -> tuple[pd.Series, Predictions, Predictions]:
    """Real labels (breast cancer), two classifiers built so that the challenger is right on
    one row more than the champion: they disagree on 9 rows, the challenger right on 5."""
    _, y = load_breast_cancer(return_X_y=True, as_frame=True)
    y = y.iloc[:rows].reset_index(drop=True)
    truth = y.to_numpy()
    champion = truth.copy()
    challenger = truth.copy()
    champion[:5] = 1 - truth[:5]  # wrong where the challenger is right
    challenger[5:9] = 1 - truth[5:9]  # and the other way round
    # probabilities that agree with the predictions
    def as_predictions(pred):
        p1 = np.where(pred == 1, 0.8, 0.2)
        return Predictions(pred, np.column_stack([1 - p1, p1]), None, [0, 1])

    return y, as_predictions(challenger), as_predictions(champion)


def test_better_by_less_than_the_noise_on_few_rows_is_not_promoted():
    y, new, old = noisy_pair()
    result = paired(y, new, old, "accuracy")
    assert result.difference == pytest.approx(1 / 60)
    assert result.verdict == "not different"
    assert result.ci_low < 0 < result.ci_high
    assert result.one_sided_bound < -0.01  # could be worse by more than the tolerance
    accuracy_new = score_predictions(new, y, "classification")["accuracy"]
    accuracy_old = score_predictions(old, y, "classification")["accuracy"]
    assert accuracy_new > accuracy_old

    s = settings(primary_metric="accuracy")
    decision = decide_promotion({"accuracy": accuracy_new}, {"accuracy": accuracy_old}, PASSED,
                                s, n_rows=60, paired=result)
    assert not decision.promote
    assert decision.reason.startswith("challenger accuracy 0.933 vs champion 0.917 on the "
                                      "same 60 held-out rows: difference +0.017, 95% interval [")
    assert "(paired bootstrap, 1000 resamples, seed 42; not different)" in decision.reason
    assert "with 95% confidence the challenger may be worse by" in decision.reason
    assert decision.reason.endswith("more than the promotion tolerance 0.010 "
                                    "(gates.promotion_tolerance): not promoted; the champion "
                                    "stays.")

    # The setting decides: without a confidence the point comparison promotes it.
    point = settings(primary_metric="accuracy", promotion_confidence=None)
    decision = decide_promotion({"accuracy": accuracy_new}, {"accuracy": accuracy_old}, PASSED,
                                point, n_rows=60, paired=result)
    assert decision.promote
    assert decision.reason == ("challenger accuracy 0.933 >= champion 0.917 on the same 60 "
                               "held-out rows: promoted.")


def test_the_same_difference_on_many_rows_is_promoted():
    """Ten times the rows with the same disagreement rate: the interval narrows to within the
    tolerance and the same small gain is promoted."""
    parts = [noisy_pair() for _ in range(10)]
    y = pd.concat([p[0] for p in parts], ignore_index=True)

    def stack(i):
        return Predictions(np.concatenate([p[i].pred for p in parts]),
                           np.concatenate([p[i].proba for p in parts]), None, [0, 1])

    result = paired(y, stack(1), stack(2), "accuracy")
    assert result.difference == pytest.approx(1 / 60)
    assert result.one_sided_bound >= -0.01
    s = settings(primary_metric="accuracy")
    assert decide_promotion({"accuracy": 0.9}, {"accuracy": 0.88}, PASSED, s, n_rows=600,
                            paired=result).promote


# --------------------------------------------------------------------------- too little evidence


def test_too_few_rows_is_too_little_evidence_and_the_champion_stays(cancer):
    y, good, weak = cancer["y"], cancer["good"], cancer["weak"]
    keep = np.zeros(len(y), dtype=bool)
    keep[:20] = True
    result = paired(y[keep], good.rows(keep), weak.rows(keep), min_rows=30)
    assert result.verdict == TOO_LITTLE_EVIDENCE
    assert result.ci_low is None and result.ci_high is None
    assert result.summary == ("too little evidence to compare roc_auc on 20 rows: fewer than "
                              "gates.min_comparison_rows (30).")
    decision = decide_promotion({"roc_auc": 0.99}, {"roc_auc": 0.6}, PASSED, settings(),
                                n_rows=20, paired=result)
    assert not decision.promote
    assert decision.reason == (
        "not promoted: challenger roc_auc 0.990 vs champion 0.600 on the same 20 held-out rows, "
        "but there is too little evidence to compare roc_auc on 20 rows: fewer than "
        "gates.min_comparison_rows (30). The champion stays."
    )


def test_a_metric_undefined_on_many_resamples_is_too_little_evidence():
    """Three classes, one of them on 2 of 40 rows: macro roc_auc is undefined whenever a
    resample draws neither of them, about 13 % of resamples, more than the 10 % allowed."""
    y = pd.Series(np.r_[np.full(2, "c"), np.tile(["a", "b"], 19)])
    rng = np.random.default_rng(0)

    def model(noise):
        truth = (y.to_numpy()[:, None] == np.array(["a", "b", "c"])).astype(float)
        scores = truth + rng.random((40, 3)) * noise
        proba = scores / scores.sum(axis=1, keepdims=True)
        return Predictions(np.array(["a", "b", "c"])[proba.argmax(axis=1)], proba, None,
                           ["a", "b", "c"])

    result = paired(y, model(0.5), model(2.0), min_rows=30)
    assert result.method == PAIRED_BOOTSTRAP
    assert result.verdict == TOO_LITTLE_EVIDENCE
    assert result.difference is not None  # defined on the rows, not on enough resamples
    assert "roc_auc was undefined on" in result.summary
    assert "of 1000 resamples (more than 10%)" in result.summary


# --------------------------------------------------------------------------- reproducible


def test_the_same_seed_gives_the_same_numbers_and_another_seed_others(cancer):
    y, new, old = cancer["y"], cancer["good"], cancer["weak"]
    first = paired(y, new, old, "log_loss", -1)
    again = paired(y, new, old, "log_loss", -1)
    assert first.to_metadata() == again.to_metadata()
    other = paired(y, new, old, "log_loss", -1, seed=7)
    assert other.difference == first.difference
    assert (other.ci_low, other.ci_high) != (first.ci_low, first.ci_high)
    assert first.seed == 42 and other.seed == 7


# --------------------------------------------------------------------------- other tasks


def test_regression_metrics_are_compared_in_their_direction():
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
    good = predict(Ridge(alpha=0.1).fit(X_train, y_train), X_test, "regression")
    flat = predict(Ridge(alpha=1e4).fit(X_train, y_train), X_test, "regression")
    y_test = y_test.reset_index(drop=True)
    for metric, direction in (("r2", 1), ("rmse", -1), ("mae", -1)):
        result = paired(y_test, good, flat, metric, direction, task="regression")
        expected = (score_predictions(good, y_test, "regression")[metric]
                    - score_predictions(flat, y_test, "regression")[metric])
        assert result.difference == pytest.approx(expected)
        assert result.verdict == "better", metric
        assert result.one_sided_bound > 0  # better in the metric's direction


def test_multiclass_metrics_are_bootstrapped():
    X, y = load_wine(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.4, random_state=0,
                                                        stratify=y)
    good = predict(LogisticRegression(max_iter=5000).fit(X_train, y_train), X_test)
    prior = predict(DummyClassifier(strategy="prior").fit(X_train, y_train), X_test)
    y_test = y_test.reset_index(drop=True)
    for metric in ("roc_auc", "f1", "accuracy"):
        result = paired(y_test, good, prior, metric)
        assert result.method == PAIRED_BOOTSTRAP
        assert result.verdict == "better", metric


# --------------------------------------------------------------------------- one model's intervals


def test_metric_intervals_cover_each_held_out_metric(cancer):
    y, good = cancer["y"], cancer["good"]
    intervals = metric_intervals(y, good, task="classification", positive_label=None,
                                 resamples=1000, seed=42)
    metrics = score_predictions(good, y, "classification")
    assert set(intervals) == set(metrics) == {"roc_auc", "accuracy", "f1", "log_loss"}
    for name, interval in intervals.items():
        assert interval["value"] == metrics[name]
        assert interval["ci_low"] < interval["value"] < interval["ci_high"], name
        assert interval["confidence"] == 0.95
    # same seed, same numbers
    assert metric_intervals(y, good, task="classification", positive_label=None,
                            resamples=1000, seed=42) == intervals
