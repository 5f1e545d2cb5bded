"""drift_report: per-column drift of a version against the champion's training data."""


import dagster as dg

from ml_assets.config import PipelineSettings
from ml_assets.core.retraining import assess_decay, retrain_triggers
from ml_assets.environment import Environment
from ml_assets.ingestion.assets import contract_path
from ml_assets.metadata import json_meta, markdown_table, png_markdown, settings_version
from ml_assets.partitions import data_version_partitions
from ml_assets.registry.mlflow_wiring import MLFLOW_RETRY, ModelRegistry
from ml_assets.resources import StoreResource

CODE_VERSION = "1"


def build_monitoring_assets(settings: PipelineSettings, env: Environment, group: str) -> list:
    target = settings.target
    @dg.asset(
        name="drift_report",
        partitions_def=data_version_partitions,
        group_name=group,
        code_version=f"{CODE_VERSION}-{settings_version(settings, 'drift', 'retrain', 'gates')}",
        retry_policy=MLFLOW_RETRY,
        kinds={"pandas"},
        description="Per-column drift of this version's features against the training rows of "
        "the current champion (KS / Wasserstein for numbers, chi-square / Jensen-Shannon for "
        "categories, as Evidently's defaults).",
    )
    def drift_report(
        context: dg.AssetExecutionContext,
        features,
        registry: ModelRegistry,
        store: StoreResource,
    ):
        from ml_assets.core import drift
        from ml_assets.core.modeling import SPLIT_COLUMN
        from ml_assets.ingestion.contract_file import load_roles
        from ml_assets.storage import load_frame

        key = context.partition_key
        roles = load_roles(contract_path(env, settings))
        champion = registry.champion()
        reference, label = None, None
        if champion is None:
            label = None
        elif champion["data_version"] == key:
            label = None
            context.log.info("this version is itself the champion's training data: no reference")
        else:
            path = store.store.artifact_path(champion["data_version"], "features", "parquet")
            if path.exists():
                table = load_frame(path)
                reference = table[table[SPLIT_COLUMN] == "train"]
                label = f"champion version {champion['version']} ({champion['data_version']})"
            else:
                context.log.warning(f"the champion's features are not in the store: {path}")
        report = drift.drift_report(reference, features, roles, settings, reference_label=label)
        report["data_version"] = key
        report["performance"] = _champion_performance(champion, key, features, registry)
        report["retrain_triggers"] = retrain_triggers(
            has_champion=champion is not None,
            dataset_drift=bool(report["dataset_drift"]),
            decay=report["performance"],
        )
        metadata = {
            "summary": report["summary"],
            "reference": report.get("reference") or "no reference",
            "share_drifted": dg.MetadataValue.float(float(report.get("share_drifted", 0.0))),
            "dataset_drift": report["dataset_drift"],
            "retrain_triggers": json_meta(report["retrain_triggers"]),
            "champion_performance": (report["performance"] or {}).get("reason", "no champion"),
            "drifted_columns": json_meta(
                [c["column"] for c in report["columns"] if c.get("drifted")]
            ),
        }
        if report["columns"]:
            metadata["columns"] = markdown_table(
                report["columns"], ["column", "kind", "method", "statistic", "threshold", "drifted"]
            )
        image = drift.drift_plot(report)
        if image:
            metadata["plot"] = png_markdown({"drift by column": image})
        return dg.Output(report, metadata=metadata)

    def _champion_performance(champion, key, features, registry) -> dict | None:
        """The champion scored on this version's labelled rows (concept drift shows here)."""
        if champion is None or champion["data_version"] == key or target not in features:
            return None
        from ml_assets.core.evaluation import score
        from ml_assets.core.modeling import SPLIT_COLUMN

        labelled = features[features[target].notna()]
        X, y = labelled.drop(columns=[target, SPLIT_COLUMN]), labelled[target]
        now = score(registry.load_version_or_fail(champion["version"]), X, y, settings.task, settings.positive_label)
        metric = settings.primary_metric
        decay = assess_decay(now.get(metric), champion["metrics"].get(metric), settings)
        return {**decay, "champion_version": champion["version"]}

    return [drift_report]
