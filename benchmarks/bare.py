"""Case (a): the bare script — the same work as the pipeline, with no orchestration around it.

Run as its own process (`python benchmarks/bare.py <table.csv> <pipeline.yaml>`), timed from
process start to end by the caller, so its imports count just as the pipeline's do:

    read      ml_assets.core.tables.read_table
    validate  infer_roles + build_contract + validate_table (what validated_data does for
              the first version of a pipeline), then drop rows without a label
    fit       split_rows + train_test + build_pipeline + fit_pipeline (the pipeline's defaults)
    evaluate  what ml_assets.core.evaluation.score does on the held-out rows (one prediction
              pass, kept for the plots of (a+))

With `--mlflow TRACKING_URI` it is case (a+): the same script, then what a careful script
would do to keep its model (phase "track"): the evaluation plots, one MLflow run with the
parameters, metrics and plots, the model logged with mlflow.sklearn.log_model (skops, a
signature and an input example, the same pinned requirements) and registered with the
`champion` alias. That is the work `registered_model_version` and the plots of
`evaluation_report` do, so (b) - (a+) is what the orchestration itself costs.

It does not load the settings through `ml_assets.config.load_settings`: that validates the
retrain cron with Dagster's helper and so imports dagster, which a bare script would not.
The defaults come from the same pydantic models instead. Prints one JSON line of phase
timings (seconds since the interpreter started) for the report.
"""

from __future__ import annotations

import json
import sys
import time

STARTED = time.perf_counter()


def track(tracking_uri: str, settings, pipeline, metrics: dict, predictions, X_test,
          y_test, estimator: str) -> None:
    """Plots, an MLflow run, log_model and registration: what (b) does beyond (a). The plots
    reuse the evaluation's predictions, as (b) does: on a million rows a second pass through
    the model would cost the script seconds that (b) does not spend."""
    import tempfile
    from pathlib import Path

    import mlflow
    import mlflow.sklearn
    import skops.io as sio
    from mlflow.models import infer_signature

    from ml_assets.core.evaluation import plot_predictions
    from ml_assets.registry.registration import no_site_packages_scan, pip_requirements

    images = plot_predictions(predictions, y_test, settings.task, settings.positive_label)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(settings.name)
    with mlflow.start_run(), tempfile.TemporaryDirectory() as tmp:
        mlflow.log_params({"estimator": estimator, "seed": settings.seed,
                           "test_size": settings.test_size})
        mlflow.log_metrics(metrics)
        for name, png in images.items():
            (Path(tmp) / f"{name}.png").write_bytes(png)
            mlflow.log_artifact(str(Path(tmp) / f"{name}.png"), artifact_path="plots")
        example = X_test.head(5)
        with no_site_packages_scan():
            info = mlflow.sklearn.log_model(
                pipeline, name="model", input_example=example,
                signature=infer_signature(example, pipeline.predict_proba(example)),
                pip_requirements=pip_requirements(),
                skops_trusted_types=sio.get_untrusted_types(data=sio.dumps(pipeline)),
            )
        version = mlflow.register_model(info.model_uri, settings.name)
        mlflow.MlflowClient().set_registered_model_alias(settings.name, "champion",
                                                         version.version)


def main(table: str, pipeline_file: str, tracking_uri: str | None = None) -> dict:
    from types import SimpleNamespace

    import yaml

    from ml_assets.config import ContractSettings, ModelSettings

    with open(pipeline_file, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    settings = SimpleNamespace(
        name=raw["name"],
        target=raw["target"],
        task=raw["task"],
        id_columns=list(raw.get("id_columns", [])),
        positive_label=raw.get("positive_label"),
        seed=42,
        test_size=0.2,
        model=ModelSettings(),
        contract=ContractSettings(),
    )
    phases: dict[str, float] = {}

    def mark(name: str, since: float) -> float:
        now = time.perf_counter()
        phases[name] = round(now - since, 3)
        return now

    t = time.perf_counter()
    phases["startup_to_main"] = round(t - STARTED, 3)
    from ml_assets.core.tables import read_table

    df = read_table(table)
    t = mark("read", t)

    from ml_assets.core.columns import infer_roles
    from ml_assets.core.contract import build_contract, validate_table

    roles = infer_roles(df, settings.target, settings.id_columns,
                        max_categories=settings.contract.max_categories)
    contract = build_contract(df, settings, roles)
    result = validate_table(df, contract)
    if not result.success:
        raise SystemExit(f"contract failed: {result.describe()}")
    df = df[df[settings.target].notna()]
    t = mark("validate", t)

    from ml_assets.core.modeling import SPLIT_COLUMN, split_rows, train_test
    from ml_assets.core.training import train_model

    table_ = df[[*roles.features, settings.target]].reset_index(drop=True)
    table_[SPLIT_COLUMN] = split_rows(table_[settings.target], settings.task,
                                      settings.test_size, settings.seed)
    X_train, y_train, X_test, y_test = train_test(table_, settings.target)
    # The same work as the model step: the search (unless the file fixes the estimator), then
    # the chosen model fitted on every training row.
    pipeline, chosen = train_model(
        roles, X_train, y_train, task=settings.task, model_settings=settings.model,
        metric=settings.primary_metric, positive_label=settings.positive_label, seed=settings.seed)
    t = mark("fit", t)

    from ml_assets.core.evaluation import labelled, predict, score_predictions

    # = core.evaluation.score, keeping the predictions for the plots of (a+)
    X_test, y_test = labelled(X_test, y_test)
    predictions = predict(pipeline, X_test, settings.task)
    metrics = score_predictions(predictions, y_test, settings.task, settings.positive_label)
    t = mark("evaluate", t)
    if tracking_uri:
        track(tracking_uri, settings, pipeline, metrics, predictions, X_test, y_test,
              chosen.chosen["estimator"])
        mark("track", t)
    return {
        "rows": len(df),
        "phases": phases,
        "metrics": metrics,
        "expectations": result.evaluated,
        "imported_dagster": "dagster" in sys.modules,
        "imported_mlflow": "mlflow" in sys.modules,
    }


if __name__ == "__main__":
    args = sys.argv[1:]
    uri = None
    if "--mlflow" in args:
        at = args.index("--mlflow")
        uri = args[at + 1]
        del args[at:at + 2]
    out = main(args[0], args[1], uri)
    out["seconds_in_process"] = round(time.perf_counter() - STARTED, 3)
    print("BARE_RESULT " + json.dumps(out))
