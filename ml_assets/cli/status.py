"""`ml-assets status`: for every pipeline (or those named with `--pipeline`), every data version
with its checks, metrics and decision, and the champion; pipeline files that could not be
loaded, with their error.

Read from the Dagster instance (the audit trail: runs, check evaluations, materialisations) and
from the MLflow registry (the champion alias).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ml_assets.cli.common import EXIT_OK, load_pipelines, open_instance
from ml_assets.graph import (
    CHECKS,
    DATA_CHANGES,
    DRIFT_REPORT,
    EVALUATION_REPORT,
    MODEL,
    REGISTERED_MODEL_VERSION,
    DagsterNames,
)

if TYPE_CHECKING:
    from ml_assets.config import PipelineSettings
    from ml_assets.environment import Environment


def cmd_status(args) -> int:
    """One pipeline (named, or the only file there is): its status object, as before there
    were several. Otherwise {"pipelines": [...], "invalid": [...]}."""
    catalog, pipelines = load_pipelines(args.pipeline)
    instance = open_instance()
    statuses = [collect_status(p.env, p.settings, instance) for p in pipelines]
    invalid = [] if args.pipeline else [
        {"file": str(problem.path), "name": problem.name, "error": problem.error}
        for problem in catalog.invalid
    ]
    if len(statuses) == 1 and not invalid and (args.pipeline or len(catalog.pipelines) == 1):
        status: dict = statuses[0]
        text = render_status(status)
    else:
        status = {"pipelines": statuses, "invalid": invalid}
        text = "\n\n".join([render_status(s) for s in statuses]
                           + [f"NOT LOADED {i['file']}:\n  {i['error']}" for i in invalid])
    print(json.dumps(status, indent=2, default=str) if args.json else text)
    return EXIT_OK


def _latest_metadata(instance, names: DagsterNames, asset: str, key: str) -> dict | None:
    import dagster as dg

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=names.key(asset), asset_partitions=[key]), limit=1
    ).records
    if not records:
        return None
    entry = records[0].event_log_entry
    metadata = entry.asset_materialization.metadata
    out = {"run_id": entry.run_id}
    for name, value in metadata.items():
        inner = getattr(value, "value", value)
        if isinstance(inner, (str, int, float, bool, dict, list)) or inner is None:
            out[name] = inner
    return out


def _checks(instance, names: DagsterNames, key: str) -> dict:
    from ml_assets.selections import execution_data, latest_check_executions

    out = {}
    for check_key, record in latest_check_executions(instance, CHECKS, key, names.slug).items():
        data = execution_data(record)
        if data is None or not hasattr(data, "passed"):
            continue
        out[check_key.name] = {
            "asset": check_key.asset_key.path[-1],
            "passed": data.passed,
            "blocking": bool(data.blocking),
            "description": data.description or "",
            "run_id": record.run_id,
        }
    return out


def _latest_run(instance, pipeline: str, names: DagsterNames, key: str):
    """The latest run of this pipeline on this data version. Another pipeline may have a
    version of the same key (the same file, read by both), so runs are told apart by their
    job's pipeline tag, or (a run launched from the UI) by what they materialise."""
    import dagster as dg

    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": key}), limit=20)
    return next((run for run in runs if _of_pipeline(run, pipeline, names)), None)


def _of_pipeline(run, pipeline: str, names: DagsterNames) -> bool:
    if run.tags.get("ml_assets/pipeline") == pipeline:
        return True
    return any(len(k.path) == 2 and k.path[0] == names.slug for k in run.asset_selection or ())


def collect_status(env: Environment, settings: PipelineSettings, instance) -> dict:
    from ml_assets.registry.mlflow_wiring import RegisteredModel
    from ml_assets.migration import legacy_versions
    from ml_assets.storage import VersionedStore

    names = DagsterNames.of(settings.name)
    store = VersionedStore(env.store_root, settings.name)
    champion, challenger, registry_error = None, None, None
    try:
        champion = RegisteredModel(env.tracking_uri, settings.name).champion()
        challenger = _challenger(RegisteredModel(env.tracking_uri, settings.name))
    except Exception as exc:  # the registry being down must not hide the rest of the status
        registry_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"

    versions = []
    records = sorted(store.versions().values(), key=lambda r: (r.registered_at, r.key))
    for record in records:
        key = record.key
        checks = _checks(instance, names, key)
        report = _latest_metadata(instance, names, EVALUATION_REPORT, key) or {}
        registered = _latest_metadata(instance, names, REGISTERED_MODEL_VERSION, key)
        drift = _latest_metadata(instance, names, DRIFT_REPORT, key) or {}
        model = _latest_metadata(instance, names, MODEL, key) or {}
        run = _latest_run(instance, settings.name, names, key)
        metrics = {k.split("/", 1)[1]: v for k, v in report.items() if k.startswith("metric/")}
        blocked = [f"{c['asset']}:{name}" for name, c in checks.items() if c["blocking"] and not c["passed"]]
        if run is None:
            state = "pending"
        elif not run.is_finished:
            state = "running"
        elif blocked:
            state = "blocked"
        elif registered is not None:
            is_champion = champion is not None and champion["version"] == registered.get("version")
            waiting = challenger is not None and challenger["version"] == registered.get("version")
            state = "champion" if is_champion else "challenger" if waiting else "registered"
        elif run.is_failure:
            state = "failed"
        else:
            state = "validated"
        versions.append(
            {
                "data_version": key,
                "file": record.source_name,
                "sha256": record.sha256,
                "registered_at": record.registered_at,
                "status": state,
                "blocked_by": blocked,
                "checks": checks,
                "metrics": metrics,
                # The estimator the model step chose (or the one the pipeline file fixed).
                "model": {
                    "estimator": model.get("estimator"),
                    "candidate": model.get("candidate"),
                    "params": model.get("params"),
                    "chosen_because": model.get("chosen_because"),
                } if model else None,
                "drift": {
                    "share_drifted": drift.get("share_drifted"),
                    "dataset_drift": drift.get("dataset_drift"),
                    "summary": drift.get("summary"),
                },
                "run_id": run.run_id if run else None,
                "trigger": run.tags.get("ml_assets/trigger") if run else None,
                "run_status": run.status.value if run else None,
                "model_version": registered.get("version") if registered else None,
                "decision": registered.get("decision") if registered else report.get("decision"),
            }
        )
    return {
        "name": settings.name,
        "pipeline": settings.name,
        "file": str(env.config_path),
        "landing_dir": str(env.landing_dir),
        "tracking_uri": env.tracking_uri,
        "versions": versions,
        "champion": champion,
        # with `promotion: manual`: the version waiting for `ml-assets approve`
        "challenger": challenger,
        "registry_error": registry_error,
        "waiting_for_migration": len(legacy_versions(instance, store, names)),
    }


def _challenger(registry) -> dict | None:
    """{version, data_version} of the version waiting under the alias challenger, or None."""
    from mlflow.exceptions import MlflowException

    from ml_assets.registry.registration import CHALLENGER_ALIAS

    client = registry.client()
    try:
        aliases = client.get_registered_model(registry.model_name).aliases or {}
    except MlflowException:  # nothing registered yet
        return None
    if CHALLENGER_ALIAS not in aliases:
        return None
    version = client.get_model_version(registry.model_name, str(aliases[CHALLENGER_ALIAS]))
    return {"version": int(version.version), "data_version": version.tags.get("data_version")}


def render_status(status: dict) -> str:
    lines = [f"pipeline {status['pipeline']}: {len(status['versions'])} data version(s)"]
    if status.get("waiting_for_migration"):
        from ml_assets.migration import waiting_message

        lines.append("  " + waiting_message(status["pipeline"], status["waiting_for_migration"]))
    for v in status["versions"]:
        metric = ", ".join(f"{k}={val:.4f}" for k, val in list(v["metrics"].items())[:3])
        extra = f"model v{v['model_version']}" if v["model_version"] else ""
        if extra and (v.get("model") or {}).get("candidate"):
            extra += f" ({v['model']['candidate']})"
        if v["blocked_by"]:
            extra = "blocked by " + ", ".join(v["blocked_by"])
        elif v["checks"].get(DATA_CHANGES.name, {}).get("passed") is False:
            # a warning, not a block: the version went on; its changes are in the check
            extra = f"{extra}; data changes reported" if extra else "data changes reported"
        lines.append(f"  {v['data_version']:<40} {v['status']:<10} {metric}  {extra}".rstrip())
    champion = status["champion"]
    if champion:
        lines.append(
            f"champion: {status['pipeline']} version {champion['version']} "
            f"(data version {champion['data_version']})"
        )
    elif status["registry_error"]:
        lines.append(f"champion: unknown, the registry did not answer ({status['registry_error']})")
    else:
        lines.append("champion: none yet")
    challenger = status.get("challenger")
    if challenger:
        lines.append(
            f"waiting for approval: {status['pipeline']} version {challenger['version']} (data "
            f"version {challenger['data_version']}): ml-assets approve {challenger['version']} "
            f"--pipeline {status['pipeline']}"
        )
    return "\n".join(lines)
