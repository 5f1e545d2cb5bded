"""The model card: one markdown page per registered model version, built from its evaluation
report (data, chosen model and search, held-out metrics with intervals, slices, top features,
promotion decision). Reports stored by earlier code lack some keys: those sections say so."""

from __future__ import annotations

from typing import Any

from ml_assets.core.evaluation.gate import format_metric
from ml_assets.core.evaluation.slices import slice_markdown

NOT_RECORDED = "not recorded"


def model_card(report: dict, *, pipeline_name: str, model_version: int | str,
               data_rows: int | None, data_columns: int | None) -> str:
    """The card of `pipeline_name` version `model_version` as markdown; `data_rows` and
    `data_columns` describe the data version it was trained and evaluated on."""
    sections = [
        f"# Model card: {pipeline_name} version {model_version}",
        _data_section(report, data_rows, data_columns),
        _model_section(report),
        _metrics_section(report),
        _slices_section(report),
        _features_section(report),
        _decision_section(report),
    ]
    return "\n\n".join(sections) + "\n"


def chosen_model(report: dict) -> dict | None:
    """The search's chosen candidate ({candidate, estimator, params, cv_score, reason}), or
    None when the report does not record the search."""
    search = report.get("model_search") or {}
    chosen = search.get("chosen")
    return chosen if isinstance(chosen, dict) else None


def interval_text(low: float | None, high: float | None, confidence: float | None) -> str:
    """"[0.981, 0.998] at 95%", or "n/a" when either bound is missing."""
    if low is None or high is None:
        return "n/a"
    shown = f"[{format_metric(low)}, {format_metric(high)}]"
    return shown if confidence is None else f"{shown} at {confidence:.0%}"


# --------------------------------------------------------------------------- sections


def _data_section(report: dict, rows: int | None, columns: int | None) -> str:
    train, test = report.get("train_rows"), report.get("test_rows")
    lines = [
        "## Data",
        "",
        f"- data version: `{report.get('data_version', NOT_RECORDED)}`",
        f"- task: {report.get('task', NOT_RECORDED)}",
        f"- rows: {_or_not_recorded(rows)} (training {_or_not_recorded(train)}, "
        f"held out {_or_not_recorded(test)})",
        f"- feature columns: {_or_not_recorded(columns)}",
    ]
    return "\n".join(lines)


def _model_section(report: dict) -> str:
    search = report.get("model_search")
    lines = ["## Model", ""]
    chosen = chosen_model(report)
    if chosen is None:
        lines.append(f"Chosen estimator and search: {NOT_RECORDED}.")
        return "\n".join(lines)
    lines += [
        f"- chosen: {chosen.get('candidate', '?')} ({chosen.get('estimator', '?')})",
        f"- params: {_params_text(chosen.get('params'))}",
        f"- why: {chosen.get('reason') or NOT_RECORDED}",
    ]
    if not search.get("searched"):
        lines.append("- search: none (the pipeline file fixes `model.estimator`)")
    else:
        lines.append(
            f"- search: {search.get('cv_folds')}-fold cross-validated {search.get('metric')} "
            f"on {search.get('search_rows')} training rows in {_seconds(search.get('seconds'))} "
            f"(budget {_seconds(search.get('budget_seconds'))}"
            + ("; stopped by the budget" if search.get("stopped_by_budget") else "") + ")"
        )
    candidates = search.get("candidates") or []
    if candidates:
        scoring = search.get("scoring") or ""
        lines += ["", "### Candidates", "",
                  f"| candidate | estimator | cv {search.get('metric', 'score')} | fit seconds | status |",
                  "|---|---|---:|---:|---|"]
        for trial in candidates:
            lines.append(
                f"| {_cell(trial.get('candidate'))} | {_cell(trial.get('estimator'))} "
                f"| {format_metric(cv_score_shown(trial.get('cv_score'), scoring))} "
                f"| {_number(trial.get('fit_seconds'))} | {_cell(trial.get('status'))} |"
            )
    return "\n".join(lines)


def _metrics_section(report: dict) -> str:
    lines = ["## Held-out metrics", ""]
    metrics = report.get("metrics") or {}
    intervals = report.get("metric_intervals") or {}
    if not metrics and not intervals:
        lines.append(f"Metrics: {NOT_RECORDED}.")
        return "\n".join(lines)
    lines += ["| metric | value | 95% interval |", "|---|---:|---|"]
    for name in list(metrics) + [m for m in intervals if m not in metrics]:
        interval = intervals.get(name) or {}
        value = interval.get("value", metrics.get(name))
        shown = (interval_text(interval.get("ci_low"), interval.get("ci_high"), None)
                 if interval else NOT_RECORDED)
        lines.append(f"| {_cell(name)} | {format_metric(_float(value))} | {shown} |")
    confidence = next((i.get("confidence") for i in intervals.values()
                       if isinstance(i, dict) and i.get("confidence") is not None), None)
    if confidence is not None and abs(confidence - 0.95) > 1e-9:
        lines += ["", f"Intervals at {confidence:.0%} confidence."]
    lines += ["", f"On {_or_not_recorded(report.get('test_rows'))} held-out rows the model "
              "never saw in training."]
    return "\n".join(lines)


def _slices_section(report: dict) -> str:
    slices = report.get("slices")
    if "slices" not in report:
        return f"## Slices\n\nSlices: {NOT_RECORDED}."
    if not slices:
        return "## Slices\n\nNo slices: `slices.columns` names no column."
    return "## Slices\n\n" + slice_markdown(slices)


def _features_section(report: dict) -> str:
    importances = report.get("feature_importance")
    lines = ["## Top features", ""]
    if importances is None:
        lines.append(f"Permutation importance: {NOT_RECORDED}.")
        return "\n".join(lines)
    if not importances:
        lines.append("Permutation importance could not be computed: the primary metric is "
                     "undefined on the held-out rows.")
        return "\n".join(lines)
    metric = report.get("primary_metric") or "the primary metric"
    lines += [f"How much {metric} worsens when a feature's held-out values are shuffled "
              "(permutation importance).", "",
              "| feature | importance | ± std |", "|---|---:|---:|"]
    for row in importances:
        lines.append(f"| {_cell(row.get('feature'))} | {_number(row.get('importance'))} "
                     f"| {_number(row.get('std'))} |")
    return "\n".join(lines)


def _decision_section(report: dict) -> str:
    decision = report.get("decision") or {}
    lines = ["## Promotion decision", ""]
    if "promote" not in decision:
        lines.append(f"Decision: {NOT_RECORDED}.")
    else:
        lines += [f"- decision: {'promoted to champion' if decision['promote'] else 'not promoted'}",
                  f"- reason: {decision.get('reason') or NOT_RECORDED}"]
    comparison = report.get("paired_comparison")
    if not comparison:
        # Recorded as null when there was no champion; absent from reports of earlier code.
        lines.append("- paired comparison with the champion: "
                     + ("none (there was no champion)" if "paired_comparison" in report
                        else NOT_RECORDED))
        return "\n".join(lines)
    lines += [
        f"- paired comparison ({comparison.get('method', '?')}, {comparison.get('metric', '?')}): "
        f"difference challenger - champion {_signed(comparison.get('difference'))}, "
        f"interval {interval_text(comparison.get('ci_low'), comparison.get('ci_high'), comparison.get('confidence'))}, "
        f"verdict {comparison.get('verdict', '?')}",
        f"- on {_or_not_recorded(comparison.get('n_rows'))} held-out rows neither model was "
        f"trained on{_resampling(comparison)}; tolerance "
        f"{_or_not_recorded(comparison.get('tolerance'))}",
    ]
    if comparison.get("summary"):
        lines.append(f"- {comparison['summary']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- formatting


def cv_score_shown(score: float | None, scoring: str) -> float | None:
    """A cross-validated score in the metric's own sign: scikit-learn's "neg_" scorers are
    negated so that higher is better; a card shows rmse 3.2, not -3.2."""
    if score is None:
        return None
    return -float(score) if scoring.startswith("neg_") else float(score)


def _resampling(comparison: dict) -> str:
    """", 1000 resamples, seed 42" for a bootstrap; "" for DeLong's test, which draws none."""
    if comparison.get("resamples") is None:
        return ""
    return f", {comparison['resamples']} resamples, seed {_or_not_recorded(comparison.get('seed'))}"


def _params_text(params: Any) -> str:
    if not params:
        return "defaults"
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _or_not_recorded(value: Any) -> str:
    return NOT_RECORDED if value is None else str(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.3g}"


def _seconds(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):g} s"


def _signed(value: Any) -> str:
    if value is None:
        return "n/a"
    return ("+" if value > 0 else "") + format_metric(float(value))


def _cell(value: Any) -> str:
    """Text safe inside a markdown table cell."""
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")
