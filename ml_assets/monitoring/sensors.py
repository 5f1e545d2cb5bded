"""Retraining that runs itself: drift_sensor, weekly_retrain, and failure notifications."""

import dagster as dg

from ml_assets.config import PipelineSettings
from ml_assets.core.retraining import BOOTSTRAP, describe_triggers
from ml_assets.graph import DATA_CONTRACT, DRIFT_REPORT, MODEL, TRAIN_ASSETS, DagsterNames
from ml_assets.monitoring.notifications import Notifier
from ml_assets.pipelines import Pipeline
from ml_assets.selections import latest_check_passed, materializations_of_finished_runs
from ml_assets.storage import VersionedStore

BATCH = 200
TRIGGER_TAG = "ml_assets/trigger"
MOVED_COLUMNS_TAG = "ml_assets/moved_columns"
# Run tags are labels for filtering and reading in the UI, not documents: the moved columns'
# names stop at whole names within this many characters, the rest counted ("+3 more").
TAG_VALUE_LIMIT = 200


def build_drift_sensor(pipeline: Pipeline, job) -> dg.SensorDefinition:
    settings, env, names = pipeline.settings, pipeline.env, pipeline.names

    @dg.sensor(
        name=names.drift_sensor,
        job=job,
        minimum_interval_seconds=env.sensor_interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Requests training, evaluation and registration of a version whose "
        "drift_report found dataset drift, change (columns the data contract reports changed "
        "that also drifted from the champion's training rows), a decaying champion, or no "
        f"champion at all (retrain.policy: {settings.retrain.policy}); notifies why.",
    )
    def drift_sensor(context: dg.SensorEvaluationContext, notifier: Notifier):
        instance = context.instance
        requests, cursor = [], context.cursor
        # a version is decided once its run is over: that run may still train it
        for record, _ in materializations_of_finished_runs(
            instance, names.key(DRIFT_REPORT), context.cursor, BATCH
        ):
            cursor = str(record.storage_id)
            key = record.partition_key
            metadata = record.asset_materialization.metadata
            triggers = list(getattr(metadata.get("retrain_triggers"), "value", None) or [])
            if not triggers:
                continue
            if settings.retrain.policy == "never":
                context.log.info(f"{key}: {'+'.join(triggers)}, but retrain.policy is never")
                continue
            if _has_materialization(instance, names.key(MODEL), key):
                continue  # already trained (retrain.policy every_version trains every version)
            run_key = f"retrain:{key}"  # one request per version, ever
            if _has_run(instance, run_key, settings.name):
                continue  # a re-materialised drift_report of a version already requested
            reason = _why(triggers, metadata, settings)
            context.log.info(f"{key}: requesting retraining: {reason}")
            tags = {TRIGGER_TAG: "+".join(triggers)}
            moved = list(_value(metadata, "moved_columns") or [])
            if moved:
                tags[MOVED_COLUMNS_TAG] = columns_tag(moved)
            requests.append(
                dg.RunRequest(
                    run_key=run_key,
                    partition_key=key,
                    asset_selection=names.keys(TRAIN_ASSETS),
                    tags=tags,
                )
            )
            if triggers != [BOOTSTRAP]:  # a first model is news when it is promoted
                notifier.send("retraining requested", version=key, reason=reason,
                              logger=context.log, pipeline=settings.name)
        if cursor == context.cursor and not requests:
            return dg.SkipReason("no new drift reports")
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return drift_sensor


def _value(metadata, name: str):
    return getattr(metadata.get(name), "value", None)


def _why(triggers: list[str], metadata, settings: PipelineSettings) -> str:
    """The triggers in words, from the drift_report's metadata."""
    return describe_triggers(
        triggers,
        reference=_value(metadata, "reference"),
        change_columns=list(_value(metadata, "change_columns") or []),
        drifted_columns=list(_value(metadata, "drifted_columns") or []),
        share_drifted=_value(metadata, "share_drifted"),
        share_threshold=settings.drift.share,
        decay_reason=_value(metadata, "champion_performance"),
    )


def columns_tag(columns: list[str], limit: int = TAG_VALUE_LIMIT) -> str:
    """Column names, comma-separated, within `limit` characters; names that do not fit are
    left out whole and counted at the end: "tenure,monthly_charges,+3 more"."""
    text = ",".join(columns)
    if len(text) <= limit:
        return text
    kept: list[str] = []
    for name in columns:
        left_after = len(columns) - len(kept) - 1
        if len(",".join([*kept, name])) + len(f",+{left_after} more") > limit:
            break
        kept.append(name)
    return ",".join([*kept, f"+{len(columns) - len(kept)} more"])


def _has_run(instance, run_key: str, pipeline: str) -> bool:
    """A run of this pipeline's job with this run key (another pipeline may have a version of
    the same key: the same file read by both)."""
    tags = {"dagster/run_key": run_key, "ml_assets/pipeline": pipeline}
    return bool(instance.get_run_ids(dg.RunsFilter(tags=tags), limit=1))


def _has_materialization(instance, asset_key: dg.AssetKey, key: str) -> bool:
    return bool(
        instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[key]), limit=1
        ).records
    )


def newest_valid_version(instance, store: VersionedStore, names: DagsterNames) -> str | None:
    """The most recently registered version whose data contract passed."""
    versions = sorted(store.versions().values(), key=lambda r: (r.registered_at, r.key), reverse=True)
    for record in versions:
        if latest_check_passed(instance, DATA_CONTRACT, record.key, names.slug):
            return record.key
    return None


def build_weekly_retrain(pipeline: Pipeline, job) -> dg.ScheduleDefinition:
    settings, env, names = pipeline.settings, pipeline.env, pipeline.names

    @dg.schedule(
        name=names.weekly_retrain,
        job=job,
        cron_schedule=settings.retrain.cron,
        execution_timezone=settings.retrain.timezone,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Retrains on the newest valid data version (cron and time zone from "
        "retrain.cron / retrain.timezone).",
    )
    def weekly_retrain(context: dg.ScheduleEvaluationContext):
        key = newest_valid_version(context.instance, VersionedStore(env.store_root, settings.name), names)
        if key is None:
            return dg.SkipReason("no data version has passed its data contract yet")
        when = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "now"
        return dg.RunRequest(
            run_key=f"schedule:{key}:{when}",
            partition_key=key,
            asset_selection=names.keys(TRAIN_ASSETS),
            tags={"ml_assets/trigger": "schedule"},
        )

    return weekly_retrain


def build_failure_sensor(pipeline: Pipeline, jobs: list) -> dg.SensorDefinition:
    """Watches the pipeline's training, scoring and live-performance runs."""
    settings, env, names = pipeline.settings, pipeline.env, pipeline.names

    @dg.run_failure_sensor(
        name=names.run_failure_notifier,
        monitored_jobs=jobs,
        minimum_interval_seconds=env.sensor_interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Posts to ML_ASSETS_WEBHOOK_URL (Slack-compatible) when a run fails or a "
        "blocking gate stops it; logs the message when the variable is unset.",
    )
    def run_failure_notifier(context: dg.RunFailureSensorContext, notifier: Notifier):
        from ml_assets.cli.run_summary import summarize_run

        run = context.dagster_run
        summary = summarize_run(context.instance, run.run_id)
        key = run.tags.get("dagster/partition")
        blocked = summary.blocked_by
        if blocked is not None:
            notifier.send("gate blocked", version=key, step=blocked.asset,
                          reason=f"check {blocked.name} failed: {blocked.description}",
                          run_id=run.run_id, logger=context.log, pipeline=settings.name)
        else:
            failed = summary.failed_step
            notifier.send("run failed", version=key, step=failed.step if failed else None,
                          reason=(failed.error if failed else None) or context.failure_event.message or "failed",
                          run_id=run.run_id, logger=context.log, pipeline=settings.name)

    return run_failure_notifier
