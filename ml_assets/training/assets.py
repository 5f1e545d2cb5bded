"""features, model and evaluation_report, with the blocking model-quality gate."""


import time

import dagster as dg

from ml_assets.graph import (
    CHAMPION_COMPARISON,
    DATA_CONTRACT,
    EVALUATION_REPORT,
    FEATURES,
    MODEL,
    QUALITY_GATE,
    VALIDATED_DATA,
    check_spec,
)
from ml_assets.ingestion.assets import contract_path
from ml_assets.metadata import json_meta, markdown_table, png_markdown, settings_version
from ml_assets.registry.mlflow_wiring import MLFLOW_RETRY, ModelRegistry
from ml_assets.pipelines import Pipeline
from ml_assets.resources import StoreResource
from ml_assets.selections import latest_check_passed

# 2: native categorical gradient boosting, categorical feature table, categories counted once
# 3: row identities in the feature table; the champion compared only on rows it never saw
CODE_VERSION = "3"


def refuse_if_contract_failed(context: dg.AssetExecutionContext) -> None:
    """Blocking checks stop downstream steps only within their own run. A later run that
    selects only the steps after validation (a retrain by sensor, schedule or click) must not
    use a version whose data contract failed, so features and model look the verdict up."""
    slug = context.asset_key.path[0]
    if latest_check_passed(context.instance, DATA_CONTRACT, context.partition_key, slug) is False:
        raise dg.Failure(
            description=f"refusing to train on data version {context.partition_key}: its data "
            f"contract ({DATA_CONTRACT.label}) failed",
            allow_retries=False,
        )


def build_training_assets(pipeline: Pipeline) -> list:
    settings, env = pipeline.settings, pipeline.env
    target = settings.target

    @dg.asset(
        **pipeline.asset_args(FEATURES),
        ins=pipeline.ins(VALIDATED_DATA),
        code_version=f"{CODE_VERSION}-{settings_version(settings, 'target', 'task', 'seed', 'test_size', 'id_columns')}",
        kinds={"pandas"},
        description="The feature table ready for training: feature columns (ids dropped), the "
        "target, the recorded train/test split and each row's identity (from the id columns, "
        "else the feature and label values), which keeps the champion from being judged on "
        "rows it was trained on.",
    )
    def features(context: dg.AssetExecutionContext, validated_data):
        import pandas as pd

        from ml_assets.core.columns import as_categories
        from ml_assets.core.modeling import SPLIT_COLUMN, split_rows
        from ml_assets.core.overlap import add_row_keys, identity_columns
        from ml_assets.ingestion.contract_file import load_roles

        refuse_if_contract_failed(context)
        roles = load_roles(contract_path(env, settings))
        # Text features as categoricals (validated_data stores them so already; a table
        # stored by an earlier code version may not). The model sees the same values.
        # A new frame of the columns we keep (the input stays as it was), renumbered from 0:
        # what reset_index(drop=True) gives, without copying a million rows once more.
        table = validated_data[[*roles.features, target]].copy(deep=False)
        table.index = pd.RangeIndex(len(table))
        table = as_categories(table, roles.categorical)
        table[SPLIT_COLUMN] = split_rows(
            table[target], settings.task, settings.test_size, settings.seed
        ).astype("category")
        # From validated_data, which still has the id columns the feature table drops.
        key_method, key_columns = identity_columns(
            settings.id_columns, validated_data.columns, [*roles.features, target]
        )
        add_row_keys(table, validated_data, key_method, key_columns)
        sizes = table[SPLIT_COLUMN].value_counts()
        metadata = {
            "dagster/row_count": len(table),
            "train_rows": int(sizes.get("train", 0)),
            "test_rows": int(sizes.get("test", 0)),
            "numeric_features": json_meta(list(roles.numeric)),
            "categorical_features": json_meta(list(roles.categorical)),
            "id_columns_dropped": json_meta(list(roles.ids)),
            "row_identity": key_method,
        }
        if settings.task == "classification":
            balance = table.groupby(SPLIT_COLUMN, observed=True)[target].value_counts().unstack(fill_value=0)
            metadata["class_balance_by_split"] = json_meta(
                {split: {str(k): int(v) for k, v in row.items()} for split, row in balance.iterrows()}
            )
        return dg.Output(table, metadata=metadata)

    @dg.asset(
        **pipeline.asset_args(MODEL),
        ins=pipeline.ins(FEATURES),
        code_version=f"{CODE_VERSION}-{settings_version(settings, 'task', 'seed', 'model')}",
        kinds={"scikitlearn"},
        description="The fitted scikit-learn Pipeline, preprocessing (imputation, encoding, "
        "scaling) included.",
    )
    def model(context: dg.AssetExecutionContext, features):
        from ml_assets.core.modeling import build_pipeline, fit_pipeline, train_test
        from ml_assets.ingestion.contract_file import load_roles

        refuse_if_contract_failed(context)
        roles = load_roles(contract_path(env, settings))
        X_train, y_train, _, _ = train_test(features, target)
        pipeline = build_pipeline(
            roles, settings.task, settings.model.estimator, settings.model.params, settings.seed
        )
        started = time.perf_counter()
        fit_pipeline(pipeline, X_train, y_train)
        fit_seconds = time.perf_counter() - started
        estimator = pipeline.named_steps["estimator"]
        return dg.Output(
            pipeline,
            metadata={
                "estimator": type(estimator).__name__,
                "params": json_meta(settings.model.params),
                "train_rows": len(X_train),
                "features": len(roles.features),
                "fit_seconds": round(fit_seconds, 3),
            },
        )

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

    return [features, model, evaluation_report]
