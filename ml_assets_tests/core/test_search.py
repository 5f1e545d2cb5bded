"""The model search: the candidates a pipeline file gives, the winner on tables built so that
one family clearly wins, determinism, the budget, and what the search reports."""

import numpy as np
import pandas as pd
import pytest

from ml_assets.config import parse_settings
from ml_assets.core import search
from ml_assets.core.columns import ColumnRoles
from ml_assets.core.modeling import ModelSettingsError
from ml_assets.core.training import candidates_of, check_candidates, train_model


def linear_table(rows=600, columns=20, seed=0) -> pd.DataFrame:
    """Every feature moves the log-odds a little: a linear model's world, and few rows for trees."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, columns))
    logit = X @ rng.normal(size=columns) / 2
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(columns)])
    df["y"] = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return df


def additive_table(rows=3000, columns=8, seed=0) -> pd.DataFrame:
    """Waves, a V and a step in four features: no straight line fits them, boosted trees do."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-3, 3, size=(rows, columns))
    logit = (2 * np.sin(2 * X[:, 0]) + 2 * np.abs(X[:, 1]) - 3 + 2 * (X[:, 2] > 1)
             - 2 * np.cos(3 * X[:, 3]))
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(columns)])
    df["y"] = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return df


def settings(model=None, task="classification"):
    data = {"name": "t", "target": "y", "task": task}
    if model is not None:
        data["model"] = model
    return parse_settings(data, "test.yaml")


def choose(df, model=None, seed=42, **kwargs):
    s = settings(model)
    X, y = df.drop(columns="y"), df["y"]
    roles = ColumnRoles(target="y", numeric=tuple(X.columns))
    return train_model(roles, X, y, task=s.task, model_settings=s.model,
                       metric=s.primary_metric, positive_label=None, seed=seed, **kwargs)


@pytest.mark.parametrize(("table", "winner"), [(linear_table, "linear"),
                                               (additive_table, "hist_gradient_boosting")])
def test_the_default_search_picks_the_family_that_wins(table, winner):
    model, result = choose(table())
    chosen = next(t for t in result.candidates if t.status == "chosen")
    assert chosen.family == winner
    assert result.chosen["candidate"] == chosen.candidate
    # The winner beats every other family's best in the last round, on the same rows.
    finalists = [t for t in result.candidates if t.rows == chosen.rows]
    assert {t.family for t in finalists} == {"linear", "hist_gradient_boosting", "random_forest"}
    assert all(chosen.cv_score >= t.cv_score for t in finalists)
    assert type(model.named_steps["estimator"]).__name__ == chosen.estimator
    assert result.chosen["reason"].startswith(
        f"best mean 3-fold cross-validated roc_auc ({chosen.cv_score:.4g}) of 10 candidates")


def test_every_candidate_is_reported_with_its_score_and_fate():
    _, result = choose(linear_table())
    assert [t.candidate for t in result.candidates] == [
        *(f"linear #{i}" for i in range(1, 5)),
        *(f"hist_gradient_boosting #{i}" for i in range(1, 5)),
        "random_forest #1", "random_forest #2",
    ]
    assert [t.params["C"] for t in result.candidates[:4]] == [0.01, 0.1, 1.0, 10.0]
    statuses = [t.status for t in result.candidates]
    assert statuses.count("chosen") == 1
    assert set(statuses) <= {"chosen", "kept", "eliminated in round 0"}
    for trial in result.candidates:
        assert 0.5 < trial.cv_score <= 1 and trial.cv_std >= 0 and trial.fit_seconds > 0
    # 600 rows: a first round on a third of them, then each family's best on all of them.
    assert sorted({t.rows for t in result.candidates}) == [200, 600]
    assert result.to_dict()["candidates"][0]["candidate"] == "linear #1"


def test_same_seed_same_choice_and_same_model():
    import pickle

    first_model, first = choose(linear_table(), seed=7)
    second_model, second = choose(linear_table(), seed=7)
    assert [(t.candidate, t.cv_score, t.status) for t in first.candidates] == \
        [(t.candidate, t.cv_score, t.status) for t in second.candidates]
    assert pickle.dumps(first_model) == pickle.dumps(second_model)


def test_the_candidates_of_the_pipeline_file_are_searched_over_their_listed_values():
    model = {"candidates": [
        {"estimator": "linear", "params": {"C": [0.1, 1.0], "max_iter": 500}},
        {"estimator": "random_forest", "params": {"n_estimators": 50}},
    ]}
    names = [(c.name, c.params) for c in candidates_of(settings(model).model, "classification", 600)]
    assert names == [("linear #1", {"C": 0.1, "max_iter": 500}),
                     ("linear #2", {"C": 1.0, "max_iter": 500}),
                     ("random_forest #1", {"n_estimators": 50})]
    fitted, result = choose(linear_table(), model)
    assert len(result.candidates) == 3 and fitted.named_steps["estimator"].max_iter == 500 \
        if result.chosen["candidate"].startswith("linear") else len(result.candidates) == 3


def test_a_bad_candidate_parameter_is_named_by_its_key_before_any_fit():
    model = {"candidates": [{"estimator": "linear", "params": {"C": [1.0]}},
                            {"estimator": "random_forest", "params": {"depth": [3, 5]}}]}
    with pytest.raises(ModelSettingsError) as info:
        check_candidates(settings(model).model, "classification", seed=1)
    assert str(info.value).startswith(
        "key 'model.candidates.1.params.depth': expected a parameter of RandomForestClassifier")


def test_a_fixed_estimator_is_not_searched():
    model, result = choose(linear_table(), {"estimator": "linear", "params": {"C": 0.5}})
    assert not result.searched and result.seconds == 0
    assert [(t.candidate, t.status) for t in result.candidates] == [("linear #1", "chosen")]
    assert result.chosen["reason"] == "fixed by model.estimator in the pipeline file (no search)"
    assert model.named_steps["estimator"].C == 0.5


def test_a_search_stopped_by_its_budget_says_so_and_chooses_among_what_it_scored():
    """A clock that moves 10 s per reading: after the first fit the budget of 5 s is spent."""
    ticks = iter(range(0, 10_000, 10))
    model = {"search": {"budget_seconds": 5}}
    _, result = choose(linear_table(), model, clock=lambda: next(ticks))
    scored = [t for t in result.candidates if t.cv_score is not None]
    assert [t.candidate for t in scored] == ["linear #1"]
    assert {t.status for t in result.candidates[1:]} == {"skipped in round 0: budget"}
    assert result.chosen["candidate"] == "linear #1" and result.stopped_by_budget
    assert "the search stopped at its budget of 5 s (model.search.budget_seconds)" \
        in result.chosen["reason"]


def test_a_candidate_predicted_to_overrun_the_budget_is_not_started(monkeypatch):
    """On this clock a fold takes rows/600 s: round 0 (10 candidates on 200 rows, folds in
    parallel) takes 3.3 s, and each round-1 candidate on 600 rows is predicted at 1 s. With a
    budget of 5 s one finalist is scored, the next is not started."""
    now = [0.0]
    real_score = search._score

    def timed_score(trial, pipeline, X, y, *args):
        real_score(trial, pipeline, X, y, *args)
        trial.fit_seconds = len(y) / 600
        now[0] += trial.fit_seconds

    monkeypatch.setattr(search, "_score", timed_score)
    _, result = choose(linear_table(), {"search": {"budget_seconds": 5}}, clock=lambda: now[0])
    assert result.stopped_by_budget
    finalists = [t for t in result.candidates if t.rows == 600]
    # 2 linear, 2 boosting and 1 forest went on to round 1; the others were eliminated.
    went_on = [t for t in result.candidates if not t.status.startswith("eliminated")]
    assert len(finalists) == 1 and len(went_on) == 5
    assert sum(t.status == "skipped in round 1: budget" for t in went_on) >= 3
    assert now[0] <= 5
    # Judged on the round every one of them finished: the first, on 200 rows.
    best = max(went_on, key=lambda t: t.round_scores[0])
    assert result.chosen["candidate"] == best.candidate


def test_round_sizes_halve_down_to_the_floor():
    assert search.round_sizes(8000, 4, 3, 100) == [888, 2666, 8000]
    assert search.round_sizes(600, 4, 3, 100) == [200, 600]
    assert search.round_sizes(178, 4, 3, 100) == [178]
    assert search.round_sizes(10_000, 1, 3, 100) == [10_000]


def test_scorers_follow_the_primary_metric():
    assert search.scorer_for("rmse", "regression", [], None)[1] == "neg_root_mean_squared_error"
    assert search.scorer_for("roc_auc", "classification", ["a", "b", "c"], None)[1] == "roc_auc_ovr"
    assert search.scorer_for("f1", "classification", ["no", "yes"], "yes")[1] == \
        "f1 (positive class 'yes')"
