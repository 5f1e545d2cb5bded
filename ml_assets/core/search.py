"""Choosing the model: candidates from several estimator families, scored by cross-validation on
the training rows only, by successive halving within a time budget.

Successive halving (Jamieson & Talwalkar; scikit-learn's `HalvingGridSearchCV` follows the same
rule) scores every candidate on a small sample of rows, keeps the best 1/factor of them, and
scores those on factor times the rows, until one round on the whole search sample. Most of the
work is spent on the few candidates that deserve it. scikit-learn's own halving searches cannot
stop at a deadline, so this loop applies their rule with a check before each fit: a candidate
whose fit would overrun the budget (predicted from its previous round) is not started, and the
best of the last complete round is chosen.

Deterministic for a seed and a table: rows, folds and candidates are drawn from the seed, and
the order of fits never changes the scores. Only a search stopped by its budget depends on the
machine's speed, and says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml_assets.core.evaluation.predictions import positive_index

# Above this many training rows the default set leaves random forests out: their fit grows
# faster with the rows than boosting's, and on large tables boosting wins anyway.
FOREST_MAX_ROWS = 200_000
# A round never scores candidates on fewer rows than this (nor fewer than a few per class and
# fold): below it the scores are noise and the ranking would be a lottery.
MIN_ROUND_ROWS = 100

ESTIMATOR_NAMES = {
    ("linear", "classification"): "LogisticRegression",
    ("linear", "regression"): "Ridge",
    ("hist_gradient_boosting", "classification"): "HistGradientBoostingClassifier",
    ("hist_gradient_boosting", "regression"): "HistGradientBoostingRegressor",
    ("random_forest", "classification"): "RandomForestClassifier",
    ("random_forest", "regression"): "RandomForestRegressor",
}


@dataclass(frozen=True)
class Candidate:
    name: str  # "linear #2": family and its number in the family, stable for a settings file
    family: str
    params: dict[str, Any]
    key: str = "model.candidates"  # where its settings came from, for error messages


@dataclass
class Trial:
    """One candidate's scores in the search."""

    candidate: str
    family: str
    estimator: str
    params: dict[str, Any]
    cv_score: float | None = None  # mean over folds, higher is better (sklearn's sign)
    cv_std: float | None = None
    fit_seconds: float = 0.0  # mean fit time per fold in its last round
    rows: int = 0  # rows of its last round
    round: int = 0
    status: str = "eliminated in round 0"
    round_scores: dict[int, float | None] = field(default_factory=dict)


@dataclass
class SearchResult:
    metric: str
    scoring: str
    cv_folds: int
    search_rows: int
    budget_seconds: float
    seconds: float
    stopped_by_budget: bool
    searched: bool
    chosen: dict[str, Any]
    candidates: list[Trial] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["candidates"] = [asdict(t) for t in self.candidates]
        return data

    @property
    def chosen_candidate(self) -> Candidate:
        chosen = next(t for t in self.candidates if t.status == "chosen")
        return Candidate(chosen.candidate, chosen.family, dict(chosen.params))


# --------------------------------------------------------------------------- candidates


def default_candidates(task: str, train_rows: int) -> list[dict[str, Any]]:
    """The families tried when the pipeline file names none, each with a small grid.

    A regularised linear model on scaled, one-hot-encoded columns (the strength of its
    regularisation searched: on many tabular tables, churn and credit among them, it matches or
    beats boosted trees), histogram gradient boosting (tree size and L2 regularisation; early
    stopping picks the number of trees, so the learning rate stays at its default) and, up to
    FOREST_MAX_ROWS, a random forest (leaf size).
    """
    if task == "classification":
        linear = {"estimator": "linear", "params": {"C": [0.01, 0.1, 1.0, 10.0]}}
    else:
        linear = {"estimator": "linear", "params": {"alpha": [0.1, 1.0, 10.0, 100.0]}}
    boosting = {
        "estimator": "hist_gradient_boosting",
        "params": {"max_leaf_nodes": [15, 31], "l2_regularization": [0.0, 1.0], "early_stopping": True},
    }
    candidates = [linear, boosting]
    if train_rows <= FOREST_MAX_ROWS:
        candidates.append(
            {"estimator": "random_forest", "params": {"min_samples_leaf": [1, 5]}}
        )
    return candidates


def expand(candidates: Sequence[dict[str, Any]], key: str = "model.candidates") -> list[Candidate]:
    """Every combination of each family's listed values, numbered within the family in
    settings order (a list value is searched over, a scalar is fixed)."""
    from sklearn.model_selection import ParameterGrid

    out: list[Candidate] = []
    numbers: dict[str, int] = {}
    for i, spec in enumerate(candidates):
        family = spec["estimator"]
        params = spec.get("params") or {}
        grid = {k: v if isinstance(v, list) else [v] for k, v in params.items()}
        for combination in ParameterGrid(grid) if grid else [{}]:
            numbers[family] = numbers.get(family, 0) + 1
            # ParameterGrid orders keys alphabetically; keep the file's order for display.
            ordered = {k: combination[k] for k in params}
            out.append(Candidate(f"{family} #{numbers[family]}", family, ordered, f"{key}.{i}"))
    return out


# --------------------------------------------------------------------------- scoring


def scorer_for(metric: str, task: str, classes: Sequence[Any], positive_label: Any):
    """(scorer, its name): the primary metric as sklearn scores it, higher is better."""
    from sklearn.metrics import f1_score, get_scorer, make_scorer

    if task == "regression":
        names = {"r2": "r2", "rmse": "neg_root_mean_squared_error",
                 "mae": "neg_mean_absolute_error"}
        return get_scorer(names[metric]), names[metric]
    binary = len(classes) == 2
    if metric == "roc_auc":
        name = "roc_auc" if binary else "roc_auc_ovr"
        return get_scorer(name), name
    if metric == "log_loss":
        return get_scorer("neg_log_loss"), "neg_log_loss"
    if metric == "accuracy":
        return get_scorer("accuracy"), "accuracy"
    if binary:
        # The class the evaluation treats as positive (positive_label, else sklearn's classes_[1]).
        positive = classes[positive_index(list(classes), positive_label)]
        return make_scorer(f1_score, pos_label=positive), f"f1 (positive class {positive!r})"
    return get_scorer("f1_macro"), "f1_macro"


# --------------------------------------------------------------------------- the search


def round_sizes(rows: int, n_candidates: int, factor: int, floor: int) -> list[int]:
    """Rows per round, smallest first: the last round uses every search row, each earlier one
    1/factor of the next, as many rounds as halving `n_candidates` (the largest family) down to
    one needs, and none below `floor` rows."""
    rounds = 1 + (math.ceil(math.log(n_candidates, factor) - 1e-9) if n_candidates > 1 else 0)
    sizes = [rows]
    while len(sizes) < rounds and sizes[-1] // factor >= floor:
        sizes.append(sizes[-1] // factor)
    return sizes[::-1]


def search(
    candidates: list[Candidate],
    build,
    X: pd.DataFrame,
    y: pd.Series,
    *,
    task: str,
    metric: str,
    positive_label: Any,
    seed: int,
    budget_seconds: float,
    cv_folds: int,
    max_rows: int,
    factor: int,
    n_jobs: int | None = None,
    clock=time.perf_counter,
) -> SearchResult:
    """Choose among `candidates` by successive halving over cross-validated scores on (a
    seeded sample of at most `max_rows` of) the training rows X, y.

    `build(candidate)` returns an unfitted pipeline (preprocessing included) for a candidate.
    Only X and y are seen: the caller passes the training side of the split, never its
    held-out rows.
    """
    started = clock()
    deadline = started + budget_seconds
    order = np.random.default_rng(seed).permutation(len(y))[: min(max_rows, len(y))]
    # A sample of the training rows, nested: every round's rows are the first of the next's.
    X_search, y_search = X.iloc[order], y.iloc[order]
    # Sorted as scikit-learn sorts a model's classes_.
    classes = np.unique(y_search.dropna().to_numpy()).tolist() if task == "classification" else []
    scoring, scoring_name = scorer_for(metric, task, classes, positive_label)
    floor = max(MIN_ROUND_ROWS, 2 * cv_folds * max(len(classes), 1))
    largest_family = max(sum(c.family == f for c in candidates) for f in {c.family for c in candidates})
    sizes = round_sizes(len(y_search), largest_family, factor, floor)
    trials = {c.name: Trial(c.name, c.family, ESTIMATOR_NAMES.get((c.family, task), c.family),
                            dict(c.params)) for c in candidates}
    alive = list(candidates)
    complete = -1  # the last round every candidate still in the search finished
    stopped = False
    for number, rows in enumerate(sizes):
        for candidate in alive:
            trial = trials[candidate.name]
            if number > 0 and clock() + _predicted_seconds(trial, rows, cv_folds, n_jobs) > deadline:
                stopped = True
                break
            _score(trial, build(candidate), X_search.iloc[:rows], y_search.iloc[:rows],
                   scoring, task, cv_folds, seed, n_jobs)
            trial.round, trial.rows = number, rows
            trial.round_scores[number] = trial.cv_score
            if clock() > deadline:
                stopped = True
                break
        if stopped:
            for candidate in alive:
                if number not in trials[candidate.name].round_scores:
                    trials[candidate.name].status = f"skipped in round {number}: budget"
            break
        complete = number
        if number < len(sizes) - 1:
            alive = _survivors(alive, trials, factor, number)
    # Scores are compared only within one round (same rows): the last complete one, or what
    # the first round scored before the budget ran out.
    judged = max(complete, 0)
    contenders = [c for c in alive if judged in trials[c.name].round_scores] or [
        c for c in candidates if judged in trials[c.name].round_scores] or candidates[:1]
    best = min(contenders, key=lambda c: _rank_key(trials[c.name], judged))
    for candidate in contenders:
        if not trials[candidate.name].status.startswith("skipped"):
            trials[candidate.name].status = "kept"
    trials[best.name].status = "chosen"
    chosen = trials[best.name]
    result = SearchResult(
        metric=metric, scoring=scoring_name, cv_folds=cv_folds, search_rows=len(y_search),
        budget_seconds=budget_seconds, seconds=round(clock() - started, 3),
        stopped_by_budget=stopped, searched=True,
        chosen={"candidate": chosen.candidate, "estimator": chosen.estimator,
                "params": chosen.params, "cv_score": chosen.cv_score},
        candidates=[trials[c.name] for c in candidates],
    )
    result.chosen["reason"] = choice_reason(result)
    return result


def fixed(candidate: Candidate, task: str, metric: str) -> SearchResult:
    """The record of a model the pipeline file fixed (model.estimator): no search."""
    trial = Trial(candidate.name, candidate.family,
                  ESTIMATOR_NAMES.get((candidate.family, task), candidate.family),
                  dict(candidate.params), status="chosen")
    return SearchResult(
        metric=metric, scoring=metric, cv_folds=0, search_rows=0, budget_seconds=0.0,
        seconds=0.0, stopped_by_budget=False, searched=False,
        chosen={"candidate": trial.candidate, "estimator": trial.estimator,
                "params": trial.params, "cv_score": None,
                "reason": "fixed by model.estimator in the pipeline file (no search)"},
        candidates=[trial],
    )


def choice_reason(result: SearchResult) -> str:
    """'best mean 3-fold cross-validated roc_auc (0.9934) of 10 candidates, on 455 training
    rows, in 2 rounds of successive halving'."""
    chosen = next(t for t in result.candidates if t.status == "chosen")
    shown = "n/a" if chosen.cv_score is None else f"{_display(chosen.cv_score, result.scoring):.4g}"
    text = (f"best mean {result.cv_folds}-fold cross-validated {result.metric} ({shown}) of "
            f"{len(result.candidates)} candidates, on {chosen.rows} of the training rows")
    rounds = max(t.round for t in result.candidates) + 1
    if rounds > 1:
        text += f", after {rounds} rounds of successive halving"
    if result.stopped_by_budget:
        text += (f"; the search stopped at its budget of {result.budget_seconds:g} s "
                 "(model.search.budget_seconds), so the choice depends on this machine's speed")
    return text


def display_score(trial: Trial, scoring: str) -> float | None:
    """A cross-validated score in the metric's own sign (rmse 3.2, not -3.2)."""
    return None if trial.cv_score is None else _display(trial.cv_score, scoring)


def _display(score: float, scoring: str) -> float:
    return -score if scoring.startswith("neg_") else score


def _survivors(finished: list[Candidate], trials: dict[str, Trial], factor: int,
               number: int) -> list[Candidate]:
    """The best 1/factor of each family go on to the next round, at least one per family.

    Halving within families: on the small samples of the first rounds linear models look
    better than trees, which need rows; each family's best meets the others on the whole
    search sample in the last round."""
    survivors: list[Candidate] = []
    for family in dict.fromkeys(c.family for c in finished):
        ranked = sorted((c for c in finished if c.family == family),
                        key=lambda c: _rank_key(trials[c.name], number))
        keep = max(1, math.ceil(len(ranked) / factor))
        for candidate in ranked[keep:]:
            trials[candidate.name].status = f"eliminated in round {number}"
        survivors.extend(ranked[:keep])
    return survivors


def _rank_key(trial: Trial, number: int | None = None) -> tuple:
    # Best score (of round `number`, default the last) first; a failed candidate (no score)
    # last; ties by name, so the order is stable.
    score = trial.cv_score if number is None else trial.round_scores.get(number)
    return (score is None or not math.isfinite(score), -(score or 0.0), trial.candidate)


def _predicted_seconds(trial: Trial, rows: int, folds: int, n_jobs: int | None) -> float:
    """The wall time of scoring `trial` on `rows` rows, from its previous round (fit time grows
    about linearly with the rows for these families)."""
    if not trial.rows:
        return 0.0
    waves = math.ceil(folds / max(1, _workers(n_jobs, folds)))
    return trial.fit_seconds * rows / trial.rows * waves


def _workers(n_jobs: int | None, folds: int) -> int:
    # By default one thread per fold, even beyond the cores: the folds of a candidate then end
    # together instead of a last fold running alone.
    return folds if n_jobs in (None, -1) else max(1, min(folds, n_jobs))


def _score(trial: Trial, pipeline, X: pd.DataFrame, y: pd.Series, scoring, task: str,
           folds: int, seed: int, n_jobs: int | None) -> None:
    """Cross-validate one candidate on these rows; its mean, spread and fit time into `trial`."""
    import warnings

    from joblib import parallel_config
    from sklearn.model_selection import KFold, StratifiedKFold, cross_validate
    from threadpoolctl import threadpool_limits

    if task == "classification" and y.value_counts().min() >= folds:
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    else:
        splitter = KFold(folds, shuffle=True, random_state=seed)
    # Threads: the folds share the rows instead of copying them into worker processes, and
    # the estimators release the GIL while they fit. One OpenMP/BLAS thread per fold: the
    # folds already keep the cores busy, and more threads than cores only wait on each other.
    workers = _workers(n_jobs, folds)
    with (warnings.catch_warnings(), parallel_config(backend="threading"),
          threadpool_limits(1 if workers > 1 else None)):
        warnings.simplefilter("ignore")
        scores = cross_validate(pipeline, X, y, cv=splitter, scoring=scoring,
                                n_jobs=workers, error_score=np.nan)
    values = np.asarray(scores["test_score"], dtype=float)
    finite = values[np.isfinite(values)]
    trial.cv_score = float(finite.mean()) if len(finite) == len(values) else None
    trial.cv_std = float(finite.std()) if len(finite) == len(values) else None
    trial.fit_seconds = round(float(np.mean(scores["fit_time"])), 4)

