"""registered_model_version: log the run to MLflow, register the model, decide promotion."""


import dagster as dg

from ml_assets.graph import EVALUATION_REPORT, MODEL, REGISTERED_MODEL_VERSION
from ml_assets.ingestion.assets import contract_path
from ml_assets.metadata import settings_version
from ml_assets.registry.mlflow_ui import model_version_url, run_url
from ml_assets.registry.mlflow_wiring import (
    MLFLOW_RETRY,
    ModelRegistry,
    finish_mlflow_run,
)
from ml_assets.pipelines import Pipeline
from ml_assets.resources import StoreResource

CODE_VERSION = "1"



def build_registry_assets(pipeline: Pipeline) -> list:
    settings, env = pipeline.settings, pipeline.env
    @dg.asset(
        **pipeline.asset_args(REGISTERED_MODEL_VERSION),
        ins=pipeline.ins(MODEL, EVALUATION_REPORT),
        code_version=f"{CODE_VERSION}-{settings_version(settings, 'name', 'gates')}",
        kinds={"mlflow"},
        # The legacy dagster-mlflow resource cannot be a typed argument, and Dagster does not
        # mix the two styles in one asset: all its resources come through the context.
        required_resource_keys={"mlflow", "registry", "store", "notifier"},
        retry_policy=MLFLOW_RETRY,
        description="The MLflow registered model version of this data version, and the "
        "promotion decision (alias `champion`, or `challenger` with `promotion: manual`).",
    )
    def registered_model_version(
        context: dg.AssetExecutionContext,
        model,
        evaluation_report: dict,
    ):
        key = context.partition_key
        # Blocking checks already stop this step in the same run; refusing here as well keeps
        # a run that skipped or re-executed around the gate from registering a failed model.
        if not evaluation_report["gate"]["passed"]:
            raise dg.Failure(
                description=f"refusing to register data version {key}: its quality gate failed: "
                + "; ".join(evaluation_report["gate"]["failures"]),
                allow_retries=False,
            )
        registry: ModelRegistry = context.resources.registry
        store: StoreResource = context.resources.store
        with finish_mlflow_run(context.resources.mlflow, experiment=settings.name):
            import mlflow

            from ml_assets.registry.decisions import DecisionHome
            from ml_assets.registry.ledger import actor_of_run
            from ml_assets.registry.registration import register

            decisions = DecisionHome(settings.name, registry.tracking_uri, env.store_root)
            outcome = register(
                registry=registry.model(settings.name),
                settings=settings,
                key=key,
                dagster_run_id=context.run_id,
                model=model,
                model_file=store.of(settings.name).artifact_path(key, MODEL, "skops"),
                report=with_model_search(evaluation_report, store, key),
                plot_dir=store.of(settings.name).version_dir(key) / "evaluation_plots",
                contract_file=contract_path(env, settings),
                tracking_uri=registry.tracking_uri,
                decisions=decisions,
                actor=actor_of_run(context.run.tags, context.run_id),
            )
            experiment_id = mlflow.active_run().info.experiment_id
        card = outcome.pop("model_card")
        written = outcome.pop("ledger", None) or []
        for warning in outcome.pop("ledger_warnings", None) or []:
            context.log.warning(warning)
        context.log.info(
            f"{settings.name} version {outcome['version']}: "
            + ("promoted to champion" if outcome["promoted"] else "waiting for approval as "
               "challenger" if outcome["waiting"] else "registered, champion kept")
            + f" ({outcome['reason']})"
        )
        from ml_assets.monitoring.notifications import retrain_note

        retrained = retrain_note(context.run.tags)
        if outcome["promoted"]:
            context.resources.notifier.send(
                "promoted", version=key, step=REGISTERED_MODEL_VERSION,
                reason=f"{settings.name} version {outcome['version']} is the new champion: "
                f"{outcome['reason']}{retrained}",
                run_id=context.run_id, logger=context.log, pipeline=settings.name,
            )
        elif outcome["waiting"]:
            context.resources.notifier.send(
                "waiting for approval", version=key, step=REGISTERED_MODEL_VERSION,
                reason=f"{settings.name} version {outcome['version']} waits for approval: "
                f"ml-assets approve {outcome['version']} --pipeline {settings.name}{retrained}",
                run_id=context.run_id, logger=context.log, pipeline=settings.name,
            )
        elif retrained:  # drift_sensor announced this retraining: say how it ended
            context.resources.notifier.send(
                "retrained, champion kept", version=key, step=REGISTERED_MODEL_VERSION,
                reason=f"{settings.name} version {outcome['version']} is registered, not "
                f"promoted: {outcome['reason']}{retrained}",
                run_id=context.run_id, logger=context.log, pipeline=settings.name,
            )
        metadata = {
            "model_name": settings.name,
            "version": outcome["version"],
            "promoted": outcome["promoted"],
            "decision": outcome["reason"],
            "alias": outcome["alias"],
            "waiting_for_approval": outcome["waiting"],
            "mlflow_run_id": outcome["run_id"],
            "model_card": dg.MetadataValue.md(card),
        }
        if written:
            from ml_assets.registry.ledger import ledger_of, markdown_table

            records = ledger_of(env.store_root, settings.name).records()
            metadata["ledger"] = dg.MetadataValue.md(markdown_table(records, settings.primary_metric))
        # To the MLflow UI (ML_ASSETS_MLFLOW_UI_URL, or `make dev`'s beside a local store).
        ui = env.mlflow_ui_url
        links = {
            "mlflow_run": run_url(ui, experiment_id, outcome["run_id"]),
            "mlflow_model_version": model_version_url(ui, settings.name, outcome["version"]),
        }
        for name, url in links.items():
            metadata[name] = dg.MetadataValue.url(url)
        return dg.Output(outcome, metadata=metadata)

    def with_model_search(report: dict, store: StoreResource, key: str) -> dict:
        """The report with the model step's search record: a report written before the
        evaluation carried it is completed from the file the model step stored beside it."""
        if report.get("model_search") is not None:
            return report
        from ml_assets.storage import read_json
        from ml_assets.training.assets import SEARCH_FILE

        search = read_json(store.of(settings.name).version_dir(key) / SEARCH_FILE, None)
        return report if search is None else {**report, "model_search": search}

    return [registered_model_version]
