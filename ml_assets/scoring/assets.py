"""`<slug>/predictions`: one scoring batch scored by the champion of that moment, and the job
`<slug>__score_batch` that materialises it."""


import dagster as dg

from ml_assets.graph import PREDICTIONS, REGISTERED_MODEL_VERSION
from ml_assets.pipelines import Pipeline
from ml_assets.registry.mlflow_wiring import MLFLOW_RETRY, ModelRegistry
from ml_assets.resources import StoreResource

CODE_VERSION = "1"
PREVIEW_ROWS = 5


def build_predictions_asset(pipeline: Pipeline) -> dg.AssetsDefinition:
    settings, env, names = pipeline.settings, pipeline.env, pipeline.names

    @dg.asset(
        **{**pipeline.asset_args(PREDICTIONS), "partitions_def": pipeline.scoring_partitions},
        # Lineage to whichever version is champion when a batch is scored: every partition of
        # registered_model_version (a data version), since the two assets are partitioned
        # differently. The version that scored is in the metadata.
        deps=[dg.AssetDep(names.key(REGISTERED_MODEL_VERSION), partition_mapping=dg.AllPartitionMapping())],
        code_version=CODE_VERSION,
        kinds={"pandas", "mlflow"},
        # Nothing to output when there is no champion: the batch waits for a later request.
        output_required=False,
        retry_policy=MLFLOW_RETRY,
        description="A scoring batch (a file dropped under scoring_glob) scored by the champion "
        "of that moment: one row per row of the file with its id columns, the prediction, "
        "class probabilities, the model version and data version; written as "
        "predictions.parquet beside the batch in the scoring store.",
    )
    def predictions(context: dg.AssetExecutionContext, registry: ModelRegistry, store: StoreResource):
        from ml_assets.storage import StoreError, save_frame, scoring_store

        batch = context.partition_key
        registered = registry.model(settings.name)
        champion = registered.champion()
        if champion is None:
            context.log.warning(
                f"no champion yet for {settings.name}: scoring batch {batch} is not scored; it "
                "waits for a later request"
            )
            return
        batches = scoring_store(store.root, settings.name)
        try:
            snapshot = batches.verify_snapshot(batch)
        except StoreError as exc:
            raise dg.Failure(description=f"scoring batch {batch}: {exc}", allow_retries=False) from None
        record = batches.version(batch)
        scored = _score(context, f"{record.source_name} (scoring batch {batch})", snapshot,
                        champion, registered)
        path = batches.artifact_path(batch, PREDICTIONS, "parquet")
        save_frame(path, scored)
        context.log.info(
            f"scored {len(scored)} rows of {record.source_name} with {settings.name} version "
            f"{champion['version']} (data version {champion['data_version']}) -> {path}"
        )
        yield dg.MaterializeResult(metadata=_metadata(scored, champion, record, path))

    def _score(context, label: str, snapshot, champion: dict, registered):
        import pandas as pd

        from ml_assets.core.contract import ContractFileError
        from ml_assets.core.scoring import Scorer, ScoringFileError, score_file, with_batch_columns

        try:
            contract = _contract(context)
            fitted = registered.load_version_or_fail(champion["version"])
            scorer = Scorer(fitted, settings.task, champion["version"], champion["data_version"])
            scored = score_file(snapshot, label, scorer, settings.join_columns,
                                settings.live.max_file_mb, contract)
        except (ScoringFileError, ContractFileError) as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        return with_batch_columns(scored, context.partition_key, pd.Timestamp.now(tz="UTC"))

    def _contract(context) -> dict | None:
        from ml_assets.ingestion.contract_file import contract_file_path, read_contract_json

        path = contract_file_path(env.contracts_dir, settings.name)
        if not path.exists():
            context.log.warning(
                f"no data contract at {path}: the batch is scored without the feature checks"
            )
            return None
        return read_contract_json(path)

    def _metadata(scored, champion: dict, record, path) -> dict:
        from ml_assets.core.scoring import BATCH_COLUMNS, prediction_summary
        from ml_assets.metadata import json_meta, markdown_table
        from ml_assets.registry.mlflow_ui import model_version_url

        summary = prediction_summary(scored, settings.task)
        preview = scored.drop(columns=list(BATCH_COLUMNS)).head(PREVIEW_ROWS)
        return {
            "rows": len(scored),
            "dagster/row_count": len(scored),
            "file": record.source_name,
            "sha256": record.sha256,
            "predictions_file": dg.MetadataValue.path(str(path)),
            "model_version": champion["version"],
            "model_data_version": str(champion["data_version"]),
            "mlflow_model_version": dg.MetadataValue.url(
                model_version_url(env.mlflow_ui_url, settings.name, champion["version"])
            ),
            ("class_shares" if settings.task == "classification" else "prediction_quantiles"):
                json_meta(summary),
            "preview": markdown_table(preview.to_dict(orient="records"), [str(c) for c in preview.columns]),
        }

    return predictions


def build_score_job(pipeline: Pipeline, predictions: dg.AssetsDefinition):
    return dg.define_asset_job(
        pipeline.names.score_job,
        selection=dg.AssetSelection.assets(predictions),
        partitions_def=pipeline.scoring_partitions,
        description=f"Score one scoring batch of pipeline {pipeline.name!r} with its champion.",
    )
