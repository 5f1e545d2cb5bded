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
# With `promotion: manual`: the version that passed everything and waits for `ml-assets approve`.
CHALLENGER_ALIAS = "challenger"
MODEL_CARD = "model_card.md"  # the version's card, an artifact of its run


def pip_requirements() -> list[str]:
    # Given explicitly: MLflow's own inference loads the model in a subprocess (~8 s).
    from importlib.metadata import version

    return [
        f"{dist}=={version(dist)}"
        for dist in ("mlflow", "scikit-learn", "skops", "pandas", "numpy", "scipy")
    ]


def _flat_params(settings: PipelineSettings, key: str, chosen: dict | None) -> dict[str, Any]:
    """The run's parameters: the data, the split and the model the search chose (the pipeline
    file's fixed estimator when the report records no search)."""
    params = {
        "data_version": key,
        "task": settings.task,
        "target": settings.target,
        "seed": settings.seed,
        "test_size": settings.test_size,
    }
    if chosen is not None:
        params.update({"estimator": chosen.get("estimator"), "candidate": chosen.get("candidate")})
        params.update({f"model.{k}": v for k, v in (chosen.get("params") or {}).items()})
    else:
        params["estimator"] = settings.model.estimator
        params.update({f"model.{k}": v for k, v in settings.model.params.items()})
    return params


def chosen_estimator(report: dict, settings: PipelineSettings) -> str | None:
    """The chosen estimator's name (LogisticRegression, ...), else the pipeline file's."""
    from ml_assets.core.model_card import chosen_model

    chosen = chosen_model(report)
    return chosen.get("estimator") if chosen else settings.model.estimator


def log_candidate_runs(report: dict, *, key: str, experiment_id: str, parent_run_id: str,
                       tracking_uri: str) -> int:
    """One nested MLflow run per candidate of the model search, under the active run: its
    params, cross-validated score (in the metric's own sign) and fit time, its fate. A retried
    step resumes the same parent run, so candidates already logged under it are not repeated.
    Returns how many runs it started."""
    import mlflow
    from mlflow import MlflowClient

    from ml_assets.core.model_card import cv_score_shown

    search = report.get("model_search") or {}
    trials = search.get("candidates") or []
    if not trials:
        return 0
    scoring = search.get("scoring") or ""
    logged = {
        r.data.tags.get("mlflow.runName")
        for r in MlflowClient(tracking_uri=tracking_uri).search_runs(
            [experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'"
        )
    }
    started = 0
    for trial in trials:
        name = str(trial.get("candidate"))
        if name in logged:
            continue
        tags = {"status": str(trial.get("status")), "family": str(trial.get("family")),
                "data_version": key, "estimator": str(trial.get("estimator"))}
        if trial.get("status") == "chosen":
            tags["chosen"] = "true"
        metrics = {"fit_seconds": trial.get("fit_seconds"), "rows": trial.get("rows"),
                   "cv_score": cv_score_shown(trial.get("cv_score"), scoring),
                   "cv_std": trial.get("cv_std")}
        with mlflow.start_run(experiment_id=experiment_id, run_name=name, nested=True, tags=tags):
            mlflow.log_params({"estimator": trial.get("estimator"),
                               **{f"model.{k}": v for k, v in (trial.get("params") or {}).items()}})
            mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None})
        started += 1
    return started


def promotion_tags(report: dict, decision: dict, estimator: str | None) -> dict[str, str]:
    """The model version's tags of the paired comparison that decided, and the estimator."""
    from ml_assets.core.model_card import interval_text

    tags = {"promotion": "champion" if decision["promote"] else "not promoted",
            "promotion_reason": decision["reason"]}
    if estimator:
        tags["chosen_estimator"] = estimator
    comparison = report.get("paired_comparison")
    if comparison:
        difference = comparison.get("difference")
        tags.update({
            "promotion_method": str(comparison.get("method")),
            "promotion_difference": "n/a" if difference is None else f"{float(difference):.6g}",
            "promotion_ci": interval_text(comparison.get("ci_low"), comparison.get("ci_high"),
                                          comparison.get("confidence")),
            "promotion_verdict": str(comparison.get("verdict")),
        })
    return tags


def data_shape(report: dict, model) -> tuple[int | None, int | None]:
    """Rows (training + held out) and feature columns of the version the model learnt from."""
    train, test = report.get("train_rows"), report.get("test_rows")
    rows = None if train is None or test is None else int(train) + int(test)
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return rows, len(names)
    example = report.get("input_example") or []
    return rows, (len(example[0]) if example else None)


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


# MLflow writes this file into a local model folder whenever the model is loaded by its
# registered name (`models:/<name>@champion`) without a `dst_path`: it records how the model was
# found, not what it is, and must not make a stored model fail its checksum.
NOT_MODEL_FILES = frozenset({"registered_model_meta"})


def directory_sha256(folder: Path) -> str:
    """sha256 over the model's files (name and content), in path order."""
    import hashlib

    from ml_assets.core.hashing import sha256_file

    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in NOT_MODEL_FILES):
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
    decisions=None,
    actor: str = "",
) -> dict:
    """Log and register the model; promote it (or, with `promotion: manual`, offer it as
    `challenger`). With `decisions` (a DecisionHome), the read-check-write of the aliases holds
    the pipeline's decision lock and the outcome is recorded in its ledger, by `actor`."""
    import mlflow as mlflow_module
    import mlflow.sklearn
    import pandas as pd
    import skops.io as sio
    from mlflow.models import infer_signature

    from ml_assets.core.model_card import chosen_model, model_card

    run = mlflow_module.active_run()
    run_id = run.info.run_id
    metrics = report["metrics"]

    estimator = chosen_estimator(report, settings)
    run_tags = {"data_version": key, "pipeline": settings.name}
    if estimator:
        run_tags["chosen_estimator"] = estimator
    mlflow_module.set_tags(run_tags)
    mlflow_module.log_params(_flat_params(settings, key, chosen_model(report)))
    log_candidate_runs(report, key=key, experiment_id=run.info.experiment_id,
                       parent_run_id=run_id, tracking_uri=tracking_uri)
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

    lock = decisions.lock() if decisions is not None else contextlib.nullcontext()
    with lock:
        decided = _decide(registry, client, settings, report, number, key, metrics, estimator)
        if decisions is not None:
            from ml_assets.registry.decisions import registration_records, write_records

            entries = registration_records({**decided, "version": number, "data_version": key},
                                           report, pipeline=settings.name, actor=actor,
                                           champion_before=decided["previous_champion"])
            decided["ledger"], decided["ledger_warnings"] = write_records(decisions, client, entries)
    decision = decided["decision"]
    rows, columns = data_shape(report, model)
    card = model_card({**report, "decision": decision}, pipeline_name=settings.name,
                      model_version=number, data_rows=rows, data_columns=columns)
    mlflow_module.log_text(card, MODEL_CARD)
    mlflow_module.set_tags(
        {"registered_version": str(number), "promoted": str(decided["promoted"]).lower()}
    )
    current_version = decided["previous_champion"]
    return {
        "model_name": settings.name,
        "version": number,
        "promoted": decided["promoted"],
        "waiting": decided["waiting"],
        "alias": decided["alias"],
        "superseded": decided["superseded"],
        "ledger": decided.get("ledger", []),
        "ledger_warnings": decided.get("ledger_warnings", []),
        "reason": decision["reason"],
        "run_id": run_id,
        "model_uri": f"models:/{settings.name}/{number}",
        "previous_champion": current_version,
        "links": _links(tracking_uri, run.info.experiment_id, run_id, settings.name, number),
        "model_card": card,
    }


def _decide(registry, client, settings: PipelineSettings, report: dict, number: int, key: str,
            metrics: dict, estimator: str | None) -> dict:
    """Read the aliases, decide, tag the version and move the alias it gets (champion, or
    challenger with `promotion: manual`). What was decided, for the outcome and the ledger."""
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
    waiting = decision["promote"] and settings.promotion == "manual"
    tags = promotion_tags(report, decision, estimator)
    # Checked again by `ml-assets approve`: the comparison holds only against this champion.
    tags["evaluated_against"] = _champion_name(evaluated_against)
    if waiting:
        decision["reason"] = ("waiting for approval (alias challenger): "
                              + decision["reason"].removeprefix("promoted: "))
        tags.update({"promotion": "waiting for approval", "promotion_reason": decision["reason"]})
    for tag, value in tags.items():
        client.set_model_version_tag(settings.name, str(number), tag, value)
    superseded = None
    if waiting:
        superseded = _supersede_challenger(client, settings.name, number)
        client.set_registered_model_alias(settings.name, CHALLENGER_ALIAS, str(number))
    elif decision["promote"]:
        client.set_registered_model_alias(settings.name, CHAMPION_ALIAS, str(number))
    return {
        "decision": decision,
        "promoted": decision["promote"] and not waiting,
        "waiting": waiting,
        "alias": CHALLENGER_ALIAS if waiting else CHAMPION_ALIAS if decision["promote"] else "none",
        "previous_champion": current_version,
        "superseded": superseded,
        "metrics": metrics,
        "reason": decision["reason"],
    }


def _supersede_challenger(client, model_name: str, number: int) -> dict | None:
    """The version waiting under `challenger`, if any, marked as replaced by `number`."""
    aliases = client.get_registered_model(model_name).aliases or {}
    older = aliases.get(CHALLENGER_ALIAS)
    if older is None or int(older) == number:
        return None
    version = client.get_model_version(model_name, str(older))
    reason = f"superseded by version {number} while waiting for approval"
    client.set_model_version_tag(model_name, str(older), "promotion", "not promoted")
    client.set_model_version_tag(model_name, str(older), "promotion_reason", reason)
    return {
        "version": int(older),
        "data_version": version.tags.get("data_version"),
        "metrics": {k.removeprefix("metric."): float(v) for k, v in version.tags.items()
                    if k.startswith("metric.")},
    }


def _champion_name(version: int | None) -> str:
    """A champion's model version in a reason: its number, or "none" when there was none."""
    return "none" if version is None else str(version)
