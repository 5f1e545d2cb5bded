"""Logging a trained model to the active MLflow run, registering it, and promoting it.

Called by the registration asset inside the MLflow run that dagster-mlflow started; kept free
of Dagster so it reads as the sequence of MLflow calls it is.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any

from ml_assets.config import PipelineSettings
from ml_assets.private_apis import no_site_packages_scan  # MLflow internals, see there

_log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"  # the logged model's name in its MLflow run
CHAMPION_ALIAS = "champion"  # the registered model alias that serving and drift follow


def pip_requirements() -> list[str]:
    # Given explicitly: MLflow's own inference loads the model in a subprocess (~8 s).
    from importlib.metadata import version

    return [
        f"{dist}=={version(dist)}"
        for dist in ("mlflow", "scikit-learn", "skops", "pandas", "numpy", "scipy")
    ]


def _flat_params(settings: PipelineSettings, key: str) -> dict[str, Any]:
    params = {
        "data_version": key,
        "task": settings.task,
        "target": settings.target,
        "estimator": settings.model.estimator,
        "seed": settings.seed,
        "test_size": settings.test_size,
    }
    params.update({f"model.{k}": v for k, v in settings.model.params.items()})
    return params


def _links(tracking_uri: str, experiment_id: str, run_id: str, name: str, version: int) -> dict:
    if not tracking_uri.startswith(("http://", "https://")):
        return {}
    base = tracking_uri.rstrip("/")
    return {
        "mlflow_run": f"{base}/#/experiments/{experiment_id}/runs/{run_id}",
        "mlflow_model_version": f"{base}/#/models/{name}/versions/{version}",
    }


def model_checksum(model_id: str, tracking_uri: str) -> str:
    """sha256 over the files of a logged MLflow model, in path order."""
    import tempfile

    import mlflow.artifacts
    from mlflow import MlflowClient

    # The logged model's artifact location, asked of this tracking URI (a models:/ URI would
    # be resolved through the process-global one).
    location = MlflowClient(tracking_uri=tracking_uri).get_logged_model(model_id).artifact_location
    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=tmp, tracking_uri=tracking_uri
        )
        return directory_sha256(Path(local))


def directory_sha256(folder: Path) -> str:
    import hashlib

    from ml_assets.core.hashing import sha256_file

    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def register(
    *,
    registry,
    settings: PipelineSettings,
    key: str,
    dagster_run_id: str,
    model,
    model_file: Path | None = None,
    report: dict,
    plot_dir: Path,
    contract_file: Path,
    tracking_uri: str,
) -> dict:
    import mlflow as mlflow_module
    import mlflow.sklearn
    import pandas as pd
    import skops.io as sio
    from mlflow.models import infer_signature

    run = mlflow_module.active_run()
    run_id = run.info.run_id
    metrics = report["metrics"]

    mlflow_module.set_tags({"data_version": key, "pipeline": settings.name})
    mlflow_module.log_params(_flat_params(settings, key))
    mlflow_module.log_metrics({k: float(v) for k, v in metrics.items()})
    mlflow_module.log_dict(report, "evaluation_report.json")
    for png in sorted(plot_dir.glob("*.png")):
        mlflow_module.log_artifact(str(png), artifact_path="plots")
    if contract_file.exists():
        mlflow_module.log_artifact(str(contract_file), artifact_path="data_contract")

    example = pd.DataFrame(report["input_example"])
    output = model.predict_proba(example) if hasattr(model, "predict_proba") else model.predict(example)
    # Types skops does not trust by default but that this pipeline itself contains
    # (e.g. HistGradientBoosting's TreePredictor): we built the object, so we vouch for them.
    # Read from the skops file the store already holds (checked against its checksum when
    # the model was loaded) rather than serialising the model once more.
    if model_file is not None and model_file.exists():
        trusted = sio.get_untrusted_types(file=model_file)
    else:
        trusted = sio.get_untrusted_types(data=sio.dumps(model))
    with no_site_packages_scan():
        info = mlflow.sklearn.log_model(
            model,
            name=MODEL_ARTIFACT,
            signature=infer_signature(example, output),
            input_example=example,
            pip_requirements=pip_requirements(),
            skops_trusted_types=trusted,
        )

    client = registry.client()
    tags = {
        "data_version": key,
        "dagster_run_id": dagster_run_id,
        # Verified by ModelRegistry.load_version before the model is ever used.
        "model_sha256": model_checksum(info.model_id, tracking_uri),
        **{f"metric.{k}": f"{float(v):.6g}" for k, v in metrics.items()},
    }
    # MLflow prints "Successfully registered model ..." and "Created version ..." on stderr,
    # in the middle of `ml-assets run`'s step lines; the step's metadata says the same.
    with contextlib.redirect_stderr(io.StringIO()) as printed:
        version = mlflow_module.register_model(info.model_uri, settings.name, tags=tags)
    for line in printed.getvalue().splitlines():
        _log.info(line)
    number = int(version.version)

    # Promote only against the champion the evaluation compared with: if another run
    # promoted a model in between, this one was never compared with it.
    decision = dict(report["decision"])
    evaluated_against = (report.get("champion") or {}).get("version")
    current = registry.champion()
    current_version = current["version"] if current else None
    if decision["promote"] and current_version != evaluated_against:
        decision = {
            "promote": False,
            "reason": f"the champion changed from {_champion_name(evaluated_against)} to "
            f"{_champion_name(current_version)} after this model was evaluated; "
            "re-materialise evaluation_report to compare again",
        }
    client.set_model_version_tag(settings.name, str(number), "promotion", "champion" if decision["promote"] else "not promoted")
    client.set_model_version_tag(settings.name, str(number), "promotion_reason", decision["reason"])
    if decision["promote"]:
        client.set_registered_model_alias(settings.name, CHAMPION_ALIAS, str(number))
    mlflow_module.set_tags(
        {"registered_version": str(number), "promoted": str(decision["promote"]).lower()}
    )
    return {
        "model_name": settings.name,
        "version": number,
        "promoted": decision["promote"],
        "reason": decision["reason"],
        "run_id": run_id,
        "model_uri": f"models:/{settings.name}/{number}",
        "previous_champion": current_version,
        "links": _links(tracking_uri, run.info.experiment_id, run_id, settings.name, number),
    }


def _champion_name(version: int | None) -> str:
    """A champion's model version in a reason: its number, or "none" when there was none."""
    return "none" if version is None else str(version)
