"""drift_report: per-column drift of a version against the champion's training data."""


import dagster as dg

from ml_assets.core.retraining import assess_decay, change_columns, retrain_triggers
from ml_assets.graph import DATA_CHANGES, DRIFT_REPORT, FEATURES
from ml_assets.ingestion.assets import contract_path
from ml_assets.metadata import json_meta, markdown_table, png_markdown, settings_version
from ml_assets.registry.mlflow_wiring import MLFLOW_RETRY, ModelRegistry
from ml_assets.pipelines import Pipeline
from ml_assets.resources import StoreResource
from ml_assets.selections import latest_check_metadata

CODE_VERSION = "2"


def build_monitoring_assets(pipeline: Pipeline) -> list:
    settings, env = pipeline.settings, pipeline.env
    target = settings.target
    @dg.asset(
        **pipeline.asset_args(DRIFT_REPORT),
        ins=pipeline.ins(FEATURES),
        code_version=f"{CODE_VERSION}-{settings_version(settings, 'drift', 'retrain', 'gates')}",
        retry_policy=MLFLOW_RETRY,
        kinds={"pandas"},
        description="Per-column drift of this version's features against the training rows of "
        "the current champion (KS / Wasserstein for numbers, chi-square / Jensen-Shannon for "
        "categories, as Evidently's defaults), and the columns that moved: drifted, or "
        "reported changed by the data contract (check data_changes), each with a picture.",
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
        champion = registry.model(settings.name).champion()
        reference, label = None, None
        if champion is None:
            label = None
        elif champion["data_version"] == key:
            label = None
            context.log.info("this version is itself the champion's training data: no reference")
        else:
            path = store.of(settings.name).artifact_path(champion["data_version"], FEATURES, "parquet")
            if path.exists():
                table = load_frame(path)
                reference = table[table[SPLIT_COLUMN] == "train"]
                label = f"champion version {champion['version']} ({champion['data_version']})"
            else:
                context.log.warning(f"the champion's features are not in the store: {path}")
        report = drift.drift_report(
            reference, features, roles, settings, reference_label=label,
            contract_changes=contract_changes(context.instance, key, pipeline.slug),
        )
        report["data_version"] = key
        report["performance"] = _champion_performance(champion, key, features, registry, store)
        report["change_columns"] = change_columns(report)
        report["retrain_triggers"] = retrain_triggers(
            has_champion=champion is not None,
            dataset_drift=bool(report["dataset_drift"]),
            decay=report["performance"],
            change_columns=report["change_columns"],
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
            "moved_columns": json_meta(report["moved_columns"]),
            "change_columns": json_meta(report["change_columns"]),
            "contract_changes": json_meta(report["contract_changes"]),
        }
        if report["moved"]:
            metadata["moved_columns_table"] = moved_columns_table(report)
            metadata["moved_column_pictures"] = moved_column_pictures(report)
        if report["columns"]:
            metadata["columns"] = markdown_table(
                report["columns"], ["column", "kind", "method", "statistic", "threshold", "drifted"]
            )
        image = drift.drift_plot(report)
        if image:
            metadata["plot"] = png_markdown({"drift by column": image})
        return dg.Output(report, metadata=metadata)

    def _champion_performance(champion, key, features, registry, store) -> dict | None:
        """The champion scored on this version's labelled rows that it was not trained on
        (concept drift shows here; on its own training rows it would look better than it is)."""
        if champion is None or champion["data_version"] == key or target not in features:
            return None
        from ml_assets.core.evaluation import score
        from ml_assets.core.modeling import feature_columns
        from ml_assets.core.overlap import read_champion_training_rows, unseen_rows

        path = store.of(settings.name).artifact_path(champion["data_version"], FEATURES, "parquet")
        unseen = unseen_rows(
            features, target, read_champion_training_rows(path, features),
            unknown_reason=f"the champion's feature table (data version "
            f"{champion['data_version']}) is not in the store ({path})",
        )
        counts = {**unseen.to_metadata(), "champion_version": champion["version"]}
        metric, min_rows = settings.primary_metric, settings.gates.min_comparison_rows
        if unseen.too_few(min_rows):
            return {**counts, "metric": metric, "decayed": False, "reason": (
                f"no decay verdict: only {unseen.compared} labelled rows of this version were "
                f"not seen by the champion in training (gates.min_comparison_rows is "
                f"{min_rows}): too few to judge; {unseen.excluded_text()}")}
        labelled = features[features[target].notna()][unseen.keep]
        X, y = labelled[feature_columns(labelled, target)], labelled[target]
        now = score(registry.model(settings.name).load_version_or_fail(champion["version"]), X, y, settings.task, settings.positive_label)
        decay = assess_decay(now.get(metric), champion["metrics"].get(metric), settings)
        return {**decay, **counts, "reason": f"{decay['reason']}; {unseen.summary('scored on')}"}

    return [drift_report]


def contract_changes(instance, key: str, slug: str) -> list[dict]:
    """The data contract's change findings for one version (check data_changes on
    validated_data, latest evaluation); none when the check has no record there."""
    metadata = latest_check_metadata(instance, DATA_CHANGES, key, slug) or {}
    changes = metadata.get("changes")
    if isinstance(changes, list):
        return [c for c in changes if isinstance(c, dict)]
    # Only the column names: each still counts as changed, with a generic summary.
    return [{"column": str(c)} for c in metadata.get("changed_columns") or []]


def moved_columns_table(report: dict) -> dg.MetadataValue:
    """One row per moved column: the evidence, the statistic, what moved, the contract's words."""
    evidence = {(True, True): "drift + contract", (True, False): "drift", (False, True): "contract"}
    rows = [
        {
            "column": m["column"],
            "evidence": evidence.get((bool(m["drifted"]), bool(m["contract_change"])), ""),
            "kind": m["kind"],
            "method": m["method"],
            "statistic": m["statistic"],
            "threshold": m["threshold"],
            "reference -> current": m["reference_to_current"],
            "contract change": m["contract_change"],
        }
        for m in report["moved"]
    ]
    return markdown_table(rows, list(rows[0]) if rows else [])


def _category_markdown(categories: list[dict]) -> str:
    lines = ["| category | reference | this version |", "|---|---|---|"]
    for row in categories:
        name = row["category"].replace("|", "/")
        lines.append(f"| {name} | {100 * row['reference_share']:.1f}% "
                     f"| {100 * row['current_share']:.1f}% |")
    return "\n".join(lines)


def moved_column_pictures(report: dict) -> dg.MetadataValue:
    """Per moved column: its evidence, then a histogram (numbers) or a table of shares."""
    import base64

    from ml_assets.core.drift import describe_statistic, histogram_png

    sections = []
    for moved in report["moved"]:
        if not (moved.get("histogram") or moved.get("categories")):
            continue  # beyond the pictured ones, or not comparable: the table has it
        lines = [f"**{moved['column']}** ({moved['kind']}): {describe_statistic(moved)}"]
        if moved["contract_change"]:
            lines.append(f"data contract: {moved['contract_change']}")
        png = histogram_png(moved, reference_name="champion's training rows")
        if png:
            data = base64.b64encode(png).decode()
            lines.append(f"![{moved['column']}](data:image/png;base64,{data})")
        else:
            lines.append(_category_markdown(moved["categories"]))
        sections.append("\n\n".join(lines))
    rest = len(report["moved"]) - len(sections)
    if rest:
        sections.append(f"{rest} more moved column(s) without a picture: see moved_columns_table")
    return dg.MetadataValue.md("\n\n".join(sections))
