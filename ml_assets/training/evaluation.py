"""evaluation_report: held-out metrics with their intervals, plots, slices and feature
importance, the blocking quality gate and the paired comparison with the champion on rows it
was not trained on."""

import dagster as dg

from ml_assets.graph import (
    CHAMPION_COMPARISON,
    EVALUATION_REPORT,
    FEATURES,
    MODEL,
    QUALITY_GATE,
    check_spec,
)
from ml_assets.metadata import json_meta, markdown_table, png_markdown, settings_version
from ml_assets.pipelines import Pipeline
from ml_assets.registry.mlflow_wiring import MLFLOW_RETRY, ModelRegistry
from ml_assets.resources import StoreResource
from ml_assets.storage import read_json
from ml_assets.training.assets import CODE_VERSION, SEARCH_FILE

# The confidence of the intervals shown beside each held-out metric.
METRIC_CONFIDENCE = 0.95
INTERVAL_COLUMN = f"{METRIC_CONFIDENCE:.0%} interval"


def build_evaluation_asset(pipeline: Pipeline):
    settings, env = pipeline.settings, pipeline.env
    target = settings.target

    @dg.asset(
        **pipeline.asset_args(EVALUATION_REPORT),
        ins=pipeline.ins(MODEL, FEATURES),
        code_version=f"{CODE_VERSION}-{settings_version(settings, 'task', 'positive_label', 'gates', 'slices')}",
        retry_policy=MLFLOW_RETRY,
        kinds={"scikitlearn"},
        description="Held-out metrics with confidence intervals, plots, slices and feature "
        "importance, and the paired comparison with the current champion on the same held-out "
        "rows, those the champion was not trained on.",
        check_specs=[
            check_spec(
                QUALITY_GATE,
                prefix=pipeline.slug, partitions_def=pipeline.partitions,
                description="Metric thresholds from the pipeline file (gates.*), and better than "
                "a trivial baseline.",
            ),
            check_spec(
                CHAMPION_COMPARISON,
                prefix=pipeline.slug, partitions_def=pipeline.partitions,
                description="Not worse than the current champion on the same held-out rows, "
                "leaving out rows the champion was trained on, beyond gates.promotion_tolerance "
                "at gates.promotion_confidence (paired comparison), and on no slice worse than "
                "slices.max_drop (decides promotion; a worse model may be registered but not "
                "promoted).",
            ),
        ],
    )
    def evaluation_report(
        context: dg.AssetExecutionContext,
        model,
        features,
        registry: ModelRegistry,
        store: StoreResource,
    ):
        from ml_assets.core import evaluation
        from ml_assets.core.modeling import held_out

        key = context.partition_key
        y_train, X_test, y_test = held_out(features, target)
        check_slice_columns(X_test.columns)
        pos, task = settings.positive_label, settings.task
        # The model goes over the held-out rows once; metrics, confusion and plots share it.
        X_eval, y_eval = evaluation.labelled(X_test, y_test)
        predictions = evaluation.predict(model, X_eval, task)
        metrics = evaluation.score_predictions(predictions, y_eval, task, pos)
        baseline = evaluation.baseline_scores(y_train, X_test, y_test, task, pos)
        gate = evaluation.quality_gate(metrics, settings, baseline)
        intervals = evaluation.metric_intervals(
            y_eval, predictions, task=task, positive_label=pos, confidence=METRIC_CONFIDENCE,
            resamples=settings.gates.bootstrap_resamples, seed=settings.seed,
        )

        champion = registry.model(settings.name).champion()
        champion_metrics, comparison, compared_metrics = None, None, metrics
        # The rows both models are scored on (all held-out rows without a champion).
        X_cmp, y_cmp, challenger_cmp, champion_cmp = X_eval, y_eval, predictions, None
        if champion is not None:
            comparison = fair_comparison_rows(features, champion, store)
            keep = comparison.keep
            X_cmp = X_eval if keep.all() else X_eval[keep]
            y_cmp = y_eval if keep.all() else y_eval[keep].reset_index(drop=True)
            challenger_cmp = predictions if keep.all() else predictions.rows(keep)
            compared_metrics = evaluation.score_predictions(challenger_cmp, y_cmp, task, pos)
            champion_metrics = {}
            if comparison.compared:
                champion_model = registry.model(settings.name).load_version_or_fail(champion["version"])
                champion_cmp = evaluation.predict(champion_model, X_cmp, task)
                champion_metrics = evaluation.score_predictions(champion_cmp, y_cmp, task, pos)
            champion = {**champion, "metrics_on_these_rows": champion_metrics,
                        "challenger_metrics_on_these_rows": compared_metrics}
        paired = None if champion_cmp is None else compare_paired(
            y_cmp, challenger_cmp, champion_cmp)
        slices = slice_report(X_cmp, y_cmp, challenger_cmp, champion_cmp)
        evaluated = (champion or {}).get("metrics", {}).get(settings.primary_metric)
        compare = dict(
            champion_evaluated=evaluated, comparison=comparison,
            challenger_evaluated=metrics.get(settings.primary_metric), n_rows=len(y_eval),
            paired=paired, slice_failures=(slices or {}).get("failures") or (),
        )
        decision = evaluation.decide_promotion(
            compared_metrics, champion_metrics, gate, settings, **compare
        )
        not_worse = evaluation.decide_promotion(
            compared_metrics, champion_metrics, evaluation.GateResult(True, [], {}), settings,
            **compare,
        )

        matrix = (evaluation.confusion_predictions(predictions, y_eval)
                  if task == "classification" else None)
        images = evaluation.plot_predictions(predictions, y_eval, task, pos, matrix)
        plot_dir = store.of(settings.name).version_dir(key) / "evaluation_plots"
        plot_dir.mkdir(parents=True, exist_ok=True)
        for name, png in images.items():
            (plot_dir / f"{name}.png").write_bytes(png)

        report = {
            "data_version": key,
            "task": task,
            "primary_metric": settings.primary_metric,
            "train_rows": len(y_train),
            "test_rows": len(X_test),
            "metrics": metrics,
            "baseline": baseline,
            "champion": champion,
            "gate": gate.to_metadata(),
            "decision": {"promote": decision.promote, "reason": decision.reason},
            "comparison": None if comparison is None else {
                **comparison.to_metadata(), "summary": comparison.summary(),
            },
            "plots": sorted(images),
            "input_example": X_test.head(5).to_dict(orient="records"),
            "paired_comparison": None if paired is None else paired.to_metadata(),
            "metric_intervals": intervals,
            "slices": slices,
            "feature_importance": feature_importance(model, X_eval, y_eval),
            "model_search": read_json(
                store.of(settings.name).version_dir(key) / SEARCH_FILE, None),
        }
        if matrix is not None:
            report["confusion"] = matrix

        rows = [
            {
                "metric": m,
                "model": v,
                "baseline": baseline.get(m),
                "champion": (champion_metrics or {}).get(m),
                INTERVAL_COLUMN: interval_text(intervals.get(m)),
            }
            for m, v in metrics.items()
        ]
        columns = ["metric", "model", INTERVAL_COLUMN, "baseline", "champion"]
        if comparison is not None:
            # The champion's figures are on the compared rows: the challenger's beside them.
            columns.insert(4, "model (compared rows)")
            for row in rows:
                row["model (compared rows)"] = compared_metrics.get(row["metric"])
        comparison_meta = {} if comparison is None else {
            "compared_rows": comparison.compared,
            "excluded_rows": comparison.excluded,
            "match_method": comparison.method or "none",
            "comparison": comparison.summary(),
        }
        yield dg.Output(
            report,
            metadata={
                **{f"metric/{m}": dg.MetadataValue.float(float(v)) for m, v in metrics.items()},
                "metrics": markdown_table(rows, columns),
                "champion_version": champion["version"] if champion else "none",
                "decision": decision.reason,
                "test_rows": len(X_test),
                **comparison_meta,
                "plots": png_markdown(images),
                **insight_metadata(report),
                **mlflow_links(registry, context.run_id, champion),
            },
        )
        yield dg.AssetCheckResult(
            check_name=QUALITY_GATE.name,
            passed=gate.passed,
            description=(
                "all gates passed"
                if gate.passed
                else f"data version {key}: " + "; ".join(gate.failures)
            ),
            metadata={"gates": json_meta(gate.to_metadata())},
        )
        yield dg.AssetCheckResult(
            check_name=CHAMPION_COMPARISON.name,
            passed=not_worse.promote,
            severity=dg.AssetCheckSeverity.WARN,
            description=not_worse.reason,
            metadata={
                "champion_version": champion["version"] if champion else "none",
                "metric": settings.primary_metric,
                **{k: v for k, v in comparison_meta.items() if k != "comparison"},
                **paired_metadata(paired, not_worse.reason),
            },
        )

    def check_slice_columns(columns) -> None:
        """Every slices.columns entry must be a column of the feature table."""
        present = set(map(str, columns))
        for column in settings.slices.columns:
            if column not in present:
                raise dg.Failure(
                    description=f"slices.columns: {column!r} is not a column of the feature "
                    f"table of pipeline {settings.name} (its columns: "
                    f"{', '.join(sorted(present))})",
                    allow_retries=False,
                )

    def compare_paired(y, challenger, champion):
        """The paired comparison of the primary metric; at 95 % for the report when
        gates.promotion_confidence is null (the point comparison then decides)."""
        from ml_assets.core import evaluation

        gates = settings.gates
        metric = settings.primary_metric
        return evaluation.compare_paired(
            y, challenger, champion, task=settings.task, positive_label=settings.positive_label,
            metric=metric, direction=settings.metric_directions[metric],
            confidence=gates.promotion_confidence or METRIC_CONFIDENCE,
            tolerance=gates.promotion_tolerance, resamples=gates.bootstrap_resamples,
            seed=settings.seed, min_rows=gates.min_comparison_rows,
        )

    def slice_report(X, y, challenger, champion) -> dict | None:
        """The slices table on the compared rows; None without slices.columns."""
        from ml_assets.core.evaluation.slices import slice_table

        cfg = settings.slices
        if not cfg.columns:
            return None
        metric = settings.primary_metric
        columns = {c: X[c].reset_index(drop=True) for c in cfg.columns}
        return slice_table(
            columns, y, challenger, champion, task=settings.task,
            positive_label=settings.positive_label, metric=metric,
            direction=settings.metric_directions[metric], min_rows=cfg.min_rows, bins=cfg.bins,
            max_drop=cfg.max_drop,
        )

    def feature_importance(model, X, y) -> list[dict]:
        from ml_assets.core.evaluation.importance import permutation_importances

        return permutation_importances(
            model, X, y, task=settings.task, metric=settings.primary_metric,
            positive_label=settings.positive_label, seed=settings.seed,
        )

    def insight_metadata(report: dict) -> dict:
        """The slice table and the feature importances as markdown tables."""
        from ml_assets.core.evaluation.slices import slice_markdown

        meta = {}
        if report["slices"] is not None:
            meta["slices"] = dg.MetadataValue.md(slice_markdown(report["slices"]))
        meta["feature_importance"] = markdown_table(report["feature_importance"],
                                                    ["feature", "importance", "std"])
        return meta

    def mlflow_links(registry: ModelRegistry, dagster_run_id: str, champion: dict | None) -> dict:
        """Links to the MLflow UI: the MLflow run of this Dagster run, which the registration
        step starts and logs this report, its plots and the model to (no run when the gate
        failed), and the champion's version page when there was one to compare with."""
        from ml_assets.registry.mlflow_ui import dagster_run_search_url, model_version_url
        from ml_assets.registry.mlflow_wiring import ensure_experiment, reaching

        ui = env.mlflow_ui_url
        # The experiment the registration step logs to (created here if this is the first).
        with reaching(registry.tracking_uri):
            experiment_id = ensure_experiment(
                registry.tracking_uri, settings.name, str(env.mlflow_artifacts_dir)
            )
        links = {"mlflow_run_search": dagster_run_search_url(ui, experiment_id, dagster_run_id)}
        if champion is not None:
            links["mlflow_champion_version"] = model_version_url(ui, settings.name, champion["version"])
        return {name: dg.MetadataValue.url(url) for name, url in links.items()}

    def fair_comparison_rows(features, champion: dict, store: StoreResource):
        """The held-out rows the challenger and the champion are compared on: those the
        champion was not trained on, read from its data version's feature table."""
        from ml_assets.core.overlap import comparison_rows, read_champion_training_rows

        path = store.of(settings.name).artifact_path(champion["data_version"], FEATURES, "parquet")
        training = read_champion_training_rows(path, features)
        unknown = (f"the champion's feature table (data version {champion['data_version']}) "
                   f"is not in the store ({path})")
        return comparison_rows(features, target, training, unknown_reason=unknown)

    return evaluation_report


def interval_text(interval: dict | None) -> str | None:
    """"0.912 to 0.951" for a metric's interval; None where it has none."""
    from ml_assets.core.evaluation.gate import format_metric

    if not interval or interval.get("ci_low") is None or interval.get("ci_high") is None:
        return None
    return f"{format_metric(interval['ci_low'])} to {format_metric(interval['ci_high'])}"


def paired_metadata(paired, decision: str) -> dict:
    """The champion_comparison check's metadata of the paired comparison."""
    meta = {"decision": dg.MetadataValue.text(decision)}
    if paired is None:
        return meta
    meta["method"] = dg.MetadataValue.text(paired.method)
    meta["verdict"] = dg.MetadataValue.text(paired.verdict)
    meta["confidence"] = dg.MetadataValue.float(float(paired.confidence))
    for name in ("difference", "ci_low", "ci_high"):
        value = getattr(paired, name)
        if value is not None:
            meta[name] = dg.MetadataValue.float(float(value))
    return meta
