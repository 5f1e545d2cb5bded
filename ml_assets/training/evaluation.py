"""evaluation_report: held-out metrics and plots, the blocking quality gate and the comparison
with the champion on rows it was not trained on."""

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
from ml_assets.training.assets import CODE_VERSION


def build_evaluation_asset(pipeline: Pipeline):
    settings, env = pipeline.settings, pipeline.env
    target = settings.target

    @dg.asset(
        **pipeline.asset_args(EVALUATION_REPORT),
        ins=pipeline.ins(MODEL, FEATURES),
        code_version=f"{CODE_VERSION}-{settings_version(settings, 'task', 'positive_label', 'gates')}",
        retry_policy=MLFLOW_RETRY,
        kinds={"scikitlearn"},
        description="Held-out metrics and plots, and the comparison with the current champion "
        "on the same held-out rows, those the champion was not trained on.",
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
                "leaving out rows the champion was trained on (decides promotion; a worse "
                "model may be registered but not promoted).",
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
        pos, task = settings.positive_label, settings.task
        # The model goes over the held-out rows once; metrics, confusion and plots share it.
        X_eval, y_eval = evaluation.labelled(X_test, y_test)
        predictions = evaluation.predict(model, X_eval, task)
        metrics = evaluation.score_predictions(predictions, y_eval, task, pos)
        baseline = evaluation.baseline_scores(y_train, X_test, y_test, task, pos)
        gate = evaluation.quality_gate(metrics, settings, baseline)

        champion = registry.model(settings.name).champion()
        champion_metrics, comparison, compared_metrics = None, None, metrics
        if champion is not None:
            comparison = fair_comparison_rows(features, champion, store)
            keep = comparison.keep
            X_cmp = X_eval if keep.all() else X_eval[keep]
            y_cmp = y_eval if keep.all() else y_eval[keep].reset_index(drop=True)
            compared_metrics = evaluation.score_predictions(predictions.rows(keep), y_cmp, task, pos)
            champion_metrics = {}
            if comparison.compared:
                champion_model = registry.model(settings.name).load_version_or_fail(champion["version"])
                champion_metrics = evaluation.score_predictions(
                    evaluation.predict(champion_model, X_cmp, task), y_cmp, task, pos
                )
            champion = {**champion, "metrics_on_these_rows": champion_metrics,
                        "challenger_metrics_on_these_rows": compared_metrics}
        evaluated = (champion or {}).get("metrics", {}).get(settings.primary_metric)
        compare = dict(
            champion_evaluated=evaluated, comparison=comparison,
            challenger_evaluated=metrics.get(settings.primary_metric), n_rows=len(y_eval),
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
        }
        if matrix is not None:
            report["confusion"] = matrix

        rows = [
            {
                "metric": m,
                "model": v,
                "baseline": baseline.get(m),
                "champion": (champion_metrics or {}).get(m),
            }
            for m, v in metrics.items()
        ]
        columns = ["metric", "model", "baseline", "champion"]
        if comparison is not None:
            # The champion's figures are on the compared rows: the challenger's beside them.
            columns.insert(3, "model (compared rows)")
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
            },
        )

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
