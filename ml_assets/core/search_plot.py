"""A PNG of the model search: each candidate's cross-validated score in the last round it
reached, the chosen one highlighted. matplotlib is imported inside the function."""

from __future__ import annotations

from ml_assets.core.evaluation.plotting import _figure, _png
from ml_assets.core.search import SearchResult, display_score


def search_png(result: SearchResult) -> bytes:
    fig = _figure()
    ax = fig.add_subplot()
    trials = [t for t in result.candidates if t.cv_score is not None]
    trials.sort(key=lambda t: (t.round, t.cv_score))
    labels = [f"{t.candidate} ({t.rows} rows)" for t in trials]
    scores = [display_score(t, result.scoring) for t in trials]
    errors = [t.cv_std or 0.0 for t in trials]
    colours = ["tab:green" if t.status == "chosen" else "tab:blue" if t.status == "kept"
               else "tab:gray" for t in trials]
    ax.barh(range(len(trials)), scores, xerr=errors, color=colours)
    ax.set_yticks(range(len(trials)), labels, fontsize=7)
    ax.set_xlabel(f"mean {result.cv_folds}-fold cross-validated {result.metric}")
    ax.set_title("Model search (green: chosen; grey: eliminated)")
    if scores:
        low, high = min(scores), max(scores)
        pad = max((high - low) * 0.5, 1e-3)
        ax.set_xlim(low - pad - max(errors), high + pad + max(errors))
    return _png(fig)
