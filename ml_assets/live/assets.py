"""`live_performance` (per scoring batch) and the job that materialises it, with what it reads:
the predictions files of the batches scored so far, and the labels files, each checked once
and its verdict recorded beside it in the labels store."""

from collections.abc import Callable
from datetime import UTC, datetime

import dagster as dg

from ml_assets.graph import LIVE_PERFORMANCE, PREDICTIONS
from ml_assets.metadata import markdown_table, settings_version
from ml_assets.pipelines import Pipeline
from ml_assets.registry.mlflow_wiring import MLFLOW_RETRY, ModelIntegrityError, ModelRegistry
from ml_assets.storage import VersionedStore, labels_store, read_json, scoring_store, write_json

CODE_VERSION = "1"
PREDICTIONS_FILE = PREDICTIONS  # scoring_store(...).artifact_path(batch, "predictions", "parquet")
LABELS_CHECK = "check"  # labels_store(...).artifact_path(key, "check", "json"): the file's verdict
LIVE_WINDOW = "live_window"  # the window's rows beside the batch, for the decay sensor
LABELS_TRIGGER = "labels"


def champion_classes(model, champion: dict | None, settings) -> list[str] | None:
    """The classes the champion knows, as labels are compared (None: a regressor, no champion,
    or a champion whose files do not load: then labels are checked without them)."""
    from ml_assets.core.live import class_names

    if settings.task != "classification" or champion is None:
        return None
    try:
        return class_names(model.load_version(champion["version"]).classes_)
    except (ModelIntegrityError, AttributeError, OSError) as exc:
        import logging

        logging.getLogger(__name__).warning(
            f"pipeline {settings.name}: the champion's classes are unknown ({exc}); labels files "
            "are checked without them")
        return None


def labels_check(store: VersionedStore, key: str) -> dict | None:
    return read_json(store.artifact_path(key, LABELS_CHECK, "json"))


def check_labels_version(store: VersionedStore, key: str, settings,
                         classes: Callable[[], list[str] | None]) -> dict:
    """Check a registered labels file once and record the verdict beside it: {file, valid,
    reason, rows}. A file refused stays refused (its bytes never change) and is reported by
    every measurement after. `classes` is called only when a file is checked."""
    from ml_assets.core.live import LabelsError, read_labels

    recorded = labels_check(store, key)
    if recorded is not None:
        return recorded
    record = store.version(key)
    try:
        frame = read_labels(store.verify_snapshot(key), settings, classes())
        verdict = {"valid": True, "reason": None, "rows": int(len(frame))}
    except LabelsError as exc:
        verdict = {"valid": False, "reason": str(exc), "rows": None}
    verdict = {"file": record.source_name, "key": key, **verdict,
               "checked_at": datetime.now(UTC).isoformat(timespec="seconds")}
    write_json(store.artifact_path(key, LABELS_CHECK, "json"), verdict)
    return verdict


def ordered(store: VersionedStore) -> list:
    """The store's versions, oldest registration first."""
    return sorted(store.versions().values(), key=lambda r: (r.registered_at, r.key))


def labels_so_far(store: VersionedStore, settings, classes: Callable[[], list[str] | None]):
    """Every valid labels file read and checked, one frame (join columns + target, oldest file
    first), and the verdict of each file."""
    import pandas as pd

    from ml_assets.core.live import LabelsError, read_labels

    frames, verdicts = [], []
    for record in ordered(store):
        verdict = check_labels_version(store, record.key, settings, classes)
        if verdict["valid"]:
            try:
                # checked already: the classes are not asked again
                frames.append(read_labels(store.verify_snapshot(record.key), settings))
            except LabelsError as exc:
                verdict = {**verdict, "valid": False, "reason": str(exc)}
        verdicts.append(verdict)
    columns = [*settings.join_columns, settings.target]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    return frame, verdicts


def scored_predictions(store: VersionedStore, batch: str, slug: str):
    """The predictions of every batch scored up to and including `batch` (by scored_at), one
    frame, and the batches in it. dg.Failure when `batch` has no predictions."""
    import pandas as pd

    from ml_assets.core.live import SCORED_AT

    frames = {}
    for record in ordered(store):
        path = store.artifact_path(record.key, PREDICTIONS_FILE, "parquet")
        if path.exists():
            frames[record.key] = pd.read_parquet(path)
    if batch not in frames:
        raise dg.Failure(
            description=f"scoring batch {batch} has no predictions yet "
            f"({store.artifact_path(batch, PREDICTIONS_FILE, 'parquet')}): materialise "
            f"{slug}/{PREDICTIONS} for it first", allow_retries=False)
    cutoff = frames[batch][SCORED_AT].max()
    kept = {key: f for key, f in frames.items() if len(f) and f[SCORED_AT].max() <= cutoff}
    return pd.concat(list(kept.values()), ignore_index=True), list(kept)


def label_problems(report: dict, verdicts: list[dict]) -> list[dict]:
    """One row per kind of label problem, each counted (zero included: nothing dropped unseen)."""
    ids = ", ".join(str(r if len(r) > 1 else next(iter(r.values())))
                    for r in report["conflicting_id_list"])
    if report["conflicting_ids"] > len(report["conflicting_id_list"]):
        ids += f" and {report['conflicting_ids'] - len(report['conflicting_id_list'])} more"
    refused = [v for v in verdicts if not v["valid"]]
    return [
        {"problem": "duplicate labels (same id, same value: one kept)",
         "count": report["duplicate_labels"], "detail": ""},
        {"problem": "conflicting labels (same id, different values: left out of the metric)",
         "count": report["conflicting_ids"],
         "detail": f"ids {ids}; {report['conflicting_predictions']} predictions" if ids else ""},
        {"problem": "labels without an id", "count": report["labels_without_id"], "detail": ""},
        {"problem": "labels without a value", "count": report["labels_without_value"], "detail": ""},
        {"problem": "labels for ids never scored", "count": report["labels_never_scored"], "detail": ""},
        {"problem": "labels files refused", "count": len(refused),
         "detail": "; ".join(f"{v['file']}: {v['reason']}" for v in refused)},
    ]


def build_live_performance_asset(pipeline: Pipeline) -> dg.AssetsDefinition:
    settings, env, names = pipeline.settings, pipeline.env, pipeline.names
    metric = settings.primary_metric

    @dg.asset(
        **{**pipeline.asset_args(LIVE_PERFORMANCE), "partitions_def": pipeline.scoring_partitions},
        deps=[dg.AssetDep(names.key(PREDICTIONS))],
        code_version=f"{CODE_VERSION}-{settings_version(settings, 'target', 'task', 'id_columns', 'positive_label', 'live', 'gates', 'retrain')}",
        retry_policy=MLFLOW_RETRY,
        kinds={"pandas"},
        description="The champion's primary metric on its newest labelled predictions (late "
        "labels joined to the predictions of the batches scored up to this one), the metric of "
        "every model version, the label problems counted, and whether the champion decayed.",
    )
    def live_performance(context: dg.AssetExecutionContext, registry: ModelRegistry) -> dg.MaterializeResult:
        from ml_assets.core.live import join_labels, measure, unlabelled

        batch = context.partition_key
        scoring = scoring_store(env.store_root, settings.name)
        predictions, batches = scored_predictions(scoring, batch, pipeline.slug)
        model = registry.model(settings.name)
        champion = model.champion()
        labels, verdicts = labels_so_far(labels_store(env.store_root, settings.name), settings,
                                         lambda: champion_classes(model, champion, settings))
        for verdict in verdicts:
            if not verdict["valid"]:
                context.log.warning(f"labels file {verdict['file']} refused: {verdict['reason']}")
        if settings.join_columns:
            joined = join_labels(predictions, labels, settings.join_columns, settings.target)
        else:
            joined = unlabelled(predictions)
        measured_at = datetime.now(UTC)
        report, window = measure(joined, settings, champion, now=measured_at)
        report.update(batch=batch, batches=batches, measured_at=measured_at.isoformat(timespec="seconds"),
                      labels_files=verdicts)
        path = scoring.artifact_path(batch, LIVE_PERFORMANCE, "json")
        write_json(path, report)
        window_path = scoring.artifact_path(batch, LIVE_WINDOW, "parquet")
        from ml_assets.storage import save_frame

        save_frame(window_path, window[_window_columns(window, settings)])
        context.log.info(report["reason"])
        return dg.MaterializeResult(metadata=_metadata(report, verdicts, path, window_path))

    def _metadata(report: dict, verdicts: list[dict], path, window_path) -> dict:
        live = report.get(f"live_{metric}")
        return {
            "metric": metric,
            f"live_{metric}": dg.MetadataValue.float(float(live)) if live is not None else None,
            "labelled_rows": dg.MetadataValue.int(report["labelled_rows"]),
            "unlabelled_rows": dg.MetadataValue.int(report["unlabelled_predictions"]),
            "champion_version": report["champion_version"],
            "at_evaluation": report["at_evaluation"],
            "decayed": bool(report["decayed"]),
            "judged": bool(report["judged"]),
            "reason": report["reason"],
            "label_problems": markdown_table(label_problems(report, verdicts), ["problem", "count", "detail"]),
            "per_model_version": markdown_table(
                report["per_version"], ["model_version", "labelled_rows", metric, "first_scored", "last_scored"]),
            "batches": dg.MetadataValue.int(len(report["batches"])),
            "report": dg.MetadataValue.path(str(path)),
            "window": dg.MetadataValue.path(str(window_path)),
        }

    return live_performance


def _window_columns(window, settings) -> list[str]:
    from ml_assets.core.live import LABEL, MODEL_VERSION, ROW, SCORED_AT, SCORING_BATCH

    ids = [c for c in settings.join_columns if c in window.columns]
    return [*ids, SCORING_BATCH, ROW, SCORED_AT, MODEL_VERSION, LABEL]


def build_live_job(pipeline: Pipeline, live_asset):
    return dg.define_asset_job(
        pipeline.names.live_job,
        selection=dg.AssetSelection.assets(live_asset),
        partitions_def=pipeline.scoring_partitions,
        description=f"Measure the champion of pipeline {pipeline.name!r} on its labelled "
        "predictions of the batches scored up to one batch.",
        tags={"ml_assets/pipeline": pipeline.name},
    )
