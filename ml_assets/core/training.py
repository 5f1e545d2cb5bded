"""The model step's core: the candidates the pipeline file asks for, the search among them on
the training rows, and the chosen one fitted on every training row."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ml_assets.core import search
from ml_assets.core.columns import ColumnRoles
from ml_assets.core.modeling import build_pipeline, fit_pipeline, make_estimator, prepare_pipeline


def candidates_of(model_settings, task: str, train_rows: int) -> list[search.Candidate]:
    """The candidates of a pipeline file's `model` section: its fixed estimator, its
    `candidates`, or the default set for the task."""
    if not model_settings.searched:
        family = model_settings.estimator
        return [search.Candidate(f"{family} #1", family, dict(model_settings.params), "model.params")]
    if model_settings.candidates is not None:
        specs = [c.model_dump() for c in model_settings.candidates]
        return search.expand(specs, "model.candidates")
    return search.expand(search.default_candidates(task, train_rows), "the default candidates")


def check_candidates(model_settings, task: str, seed: int) -> None:
    """Make every candidate's estimator once, so a bad parameter is reported (with its key)
    before any data is read. Raises ModelSettingsError."""
    for candidate in candidates_of(model_settings, task, train_rows=0):
        make_estimator(candidate.family, task, candidate.params, seed, _params_key(candidate))


def train_model(
    roles: ColumnRoles,
    X: pd.DataFrame,
    y: pd.Series,
    *,
    task: str,
    model_settings,
    metric: str,
    positive_label: Any,
    seed: int,
    n_jobs: int | None = None,
    clock=None,
):
    """(the fitted pipeline, the SearchResult): the search on X, y (the training rows only),
    then the chosen candidate fitted on all of them."""

    def build(candidate: search.Candidate):
        pipeline = build_pipeline(roles, task, candidate.family, candidate.params, seed,
                                  _params_key(candidate))
        # Categories from the training rows, set once before cross-validation clones it.
        return prepare_pipeline(pipeline, X)

    candidates = candidates_of(model_settings, task, len(y))
    for candidate in candidates:
        build(candidate)  # a bad parameter fails here, named, before the search spends time
    if not model_settings.searched:
        result = search.fixed(candidates[0], task, metric)
    else:
        s = model_settings.search
        result = search.search(
            candidates, build, X, y, task=task, metric=metric, positive_label=positive_label,
            seed=seed, budget_seconds=s.budget_seconds, cv_folds=s.cv_folds,
            max_rows=s.max_rows, factor=s.factor, n_jobs=n_jobs,
            **({"clock": clock} if clock is not None else {}),
        )
    chosen = result.chosen_candidate
    pipeline = build_pipeline(roles, task, chosen.family, chosen.params, seed)
    return fit_pipeline(pipeline, X, y), result


def _params_key(candidate: search.Candidate) -> str:
    return candidate.key if candidate.key == "model.params" else f"{candidate.key}.params"
