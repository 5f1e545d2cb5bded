"""labels_sensor: late labels files registered, checked, and measured; decay_sensor: when the
champion decays on its live predictions, the labelled rows of its window become a new data
version, which new_data_sensor has validated and trained (once per decay episode)."""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from ml_assets.core.retraining import DECAY
from ml_assets.graph import LIVE_PERFORMANCE, PREDICTIONS
from ml_assets.live.assets import LABELS_TRIGGER, LIVE_WINDOW, champion_classes, check_labels_version
from ml_assets.monitoring.notifications import Notifier
from ml_assets.monitoring.sensors import TRIGGER_TAG, newest_valid_version
from ml_assets.pipelines import Pipeline
from ml_assets.registry.mlflow_wiring import ModelRegistry
from ml_assets.selections import materializations_of_finished_runs
from ml_assets.storage import VersionedStore, labels_store, scoring_store

BATCH = 200  # live_performance records read per tick


def _load_cursor(cursor: str | None) -> dict:
    try:
        data = json.loads(cursor) if cursor else {}
    except ValueError:
        data = {}  # a cursor of another release: start over (run keys and the store dedupe)
    return data if isinstance(data, dict) else {}


def _dump_cursor(data: dict) -> str:
    return json.dumps(data, sort_keys=True)


def newest_scored_batch(instance, names) -> str | None:
    """The batch of the newest materialisation of `<slug>/predictions`."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=names.key(PREDICTIONS)), limit=1, ascending=False
    ).records
    return records[0].partition_key if records else None


def build_labels_sensor(pipeline: Pipeline, live_job) -> dg.SensorDefinition:
    settings, env, names = pipeline.settings, pipeline.env, pipeline.names

    @dg.sensor(
        name=names.labels_sensor,
        job=live_job,
        minimum_interval_seconds=env.sensor_interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Registers late labels files matching {settings.labels_glob!r} in "
        f"{env.landing_dir}, checks each once (refusals logged and reported by live_performance) "
        "and requests live_performance of the newest scored batch; one run per labels file.",
    )
    def labels_sensor(context: dg.SensorEvaluationContext, registry: ModelRegistry):
        store = labels_store(env.store_root, settings.name)
        scan = store.scan_landing(env.landing_dir, settings.labels_glob, env.settle_seconds)
        for waiting in scan.unsettled:
            context.log.info(f"{waiting.path}: {waiting.reason}; next tick")
        for skipped in scan.duplicates:
            context.log.info(f"{skipped.path}: not registered again: {skipped.reason}")
        for refused in scan.refused:
            context.log.warning(f"{refused.path}: refused: {refused.reason}")
        state = _load_cursor(context.cursor)
        through = tuple(state.get("through") or ("", ""))
        pending = sorted((r for r in store.versions().values() if (r.registered_at, r.key) > through),
                         key=lambda r: (r.registered_at, r.key))
        if not pending:
            return dg.SkipReason(f"no new labels files matching {settings.labels_glob!r} in {env.landing_dir}")
        _check(context, store, pending, registry)
        batch = newest_scored_batch(context.instance, names)
        if batch is None:
            return dg.SkipReason(f"{len(pending)} labels file(s) wait: no batch has been scored yet")
        newest = pending[-1]
        context.log.info(f"requesting {names.key(LIVE_PERFORMANCE).to_user_string()} of batch {batch} "
                         f"for {len(pending)} new labels file(s)")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(
                run_key=f"labels:{newest.key}", partition_key=batch,
                tags={TRIGGER_TAG: LABELS_TRIGGER, "ml_assets/labels": newest.key},
            )],
            cursor=_dump_cursor({"through": [newest.registered_at, newest.key]}),
        )

    def _check(context, store: VersionedStore, records, registry: ModelRegistry) -> None:
        classes: list = []

        def champion_classes_once():
            if not classes:  # the champion's model is loaded for the first file only
                model = registry.model(settings.name)
                classes.append(champion_classes(model, model.champion(), settings))
            return classes[0]

        for record in records:
            verdict = check_labels_version(store, record.key, settings, champion_classes_once)
            if not verdict["valid"]:
                context.log.warning(f"labels file {verdict['file']} ({record.key}) refused: "
                                    f"{verdict['reason']}")

    return labels_sensor


def _plain(metadata) -> dict:
    return {key: getattr(value, "value", value) for key, value in metadata.items()}


def last_decay_retraining(store: VersionedStore) -> datetime | None:
    """When this pipeline last registered a data version to retrain on decay."""
    times = [r.registered_at for r in store.versions().values() if r.trigger == DECAY]
    return datetime.fromisoformat(max(times)) if times else None


def build_decay_sensor(pipeline: Pipeline) -> dg.SensorDefinition:
    settings, env, names = pipeline.settings, pipeline.env, pipeline.names

    @dg.sensor(
        name=names.decay_sensor,
        minimum_interval_seconds=env.sensor_interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="When live_performance finds the champion decayed, turns the labelled rows "
        "of its window into a new data version (new_data_sensor has it validated and trained) "
        "and notifies; once per decay episode of a champion, live.cooldown_hours apart.",
    )
    def decay_sensor(context: dg.SensorEvaluationContext, registry: ModelRegistry, notifier: Notifier):
        state = _load_cursor(context.cursor)
        notes: list[str] = []
        champion: list = []  # read once, when a measurement needs it
        for record, _ in materializations_of_finished_runs(
            context.instance, names.key(LIVE_PERFORMANCE), state.get("after"), BATCH
        ):
            state["after"] = str(record.storage_id)
            if not champion:
                champion.append(registry.model(settings.name).champion())
            note = _decide(context, state, record.partition_key,
                           _plain(record.asset_materialization.metadata), champion[0], notifier)
            if note:
                notes.append(note)
        cursor = _dump_cursor(state)
        if cursor == (context.cursor or _dump_cursor({})) and not notes:
            return dg.SkipReason("no new live_performance measurements")
        return dg.SensorResult(cursor=cursor, skip_reason="; ".join(notes) or "no decay")

    def _decide(context, state: dict, batch: str, measured: dict, champion: dict | None,
                notifier: Notifier) -> str | None:
        """What one measurement means for the episode; the note for the tick (None: nothing)."""
        version = measured.get("champion_version")
        episode = state.get("episode")
        if episode and episode["champion_version"] != version:
            state["episode"] = episode = None
        if not measured.get("decayed"):
            if episode and measured.get("judged"):
                state["episode"] = None
                return (f"the decay episode of champion version {version} is closed: "
                        f"{measured.get('reason')}")
            return None
        if champion is None or champion["version"] != version:
            return (f"batch {batch}: champion version {version} decayed, but it is no longer the "
                    "champion: nothing requested")
        if episode and episode.get("data_version"):
            return (f"champion version {version} decayed again; its decay episode is open since "
                    f"{episode['opened_at']} (retraining on {episode['data_version']} requested): "
                    "nothing requested")
        if settings.retrain.policy == "never":
            return f"champion version {version} decayed, but retrain.policy is never: nothing requested"
        now = datetime.now(UTC)
        store = VersionedStore(env.store_root, settings.name)
        last = last_decay_retraining(store)
        if last is not None and now < last + timedelta(hours=settings.live.cooldown_hours):
            ends = (last + timedelta(hours=settings.live.cooldown_hours)).isoformat(timespec="seconds")
            return (f"champion version {version} decayed ({measured.get('reason')}), but the "
                    f"cooldown after the last decay retraining ({last.isoformat(timespec='seconds')}, "
                    f"live.cooldown_hours {settings.live.cooldown_hours:g}) ends at {ends}: nothing requested")
        if not episode:
            episode = state["episode"] = {"champion_version": version, "batch": batch, "data_version": None,
                                          "opened_at": now.isoformat(timespec="seconds")}
        return _retrain_on_window(context, episode, batch, measured, store, notifier)

    def _retrain_on_window(context, episode: dict, batch: str, measured: dict, store: VersionedStore,
                           notifier: Notifier) -> str:
        from ml_assets.core.live import LiveError, rows_to_retrain
        from ml_assets.storage import StoreError, load_frame

        version, reason = episode["champion_version"], measured.get("reason")
        scoring = scoring_store(env.store_root, settings.name)
        window = load_frame(scoring.artifact_path(batch, LIVE_WINDOW, "parquet"))
        needed = rows_to_retrain(settings)
        if len(window) < needed:
            note = (f"champion version {version} decayed ({reason}), but its window holds "
                    f"{len(window)} labelled rows, fewer than the {needed} a retraining needs for "
                    f"its evaluation to compare (gates.min_comparison_rows "
                    f"{settings.gates.min_comparison_rows} / test_size {settings.test_size:g}): "
                    "nothing requested")
            if not episode.get("notified_too_few"):
                episode["notified_too_few"] = True
                notifier.send("retraining not requested", reason=note, logger=context.log,
                              pipeline=settings.name)
            return note
        try:
            record, new = _register_window(context, window, version, store, scoring)
        except (LiveError, StoreError) as exc:
            context.log.warning(f"champion version {version} decayed, but its labelled rows "
                                f"cannot become a data version: {exc}")
            return f"champion version {version} decayed; its labelled rows cannot become a data version: {exc}"
        episode["data_version"] = record.key
        if not new:
            return (f"champion version {version} decayed; its labelled rows are data version "
                    f"{record.key} already: nothing more requested")
        why = (f"decay: {reason}; the {len(window)} labelled rows of champion version {version} "
               f"became data version {record.key}")
        context.log.info(why)
        notifier.send("retraining requested", version=record.key, reason=why, logger=context.log,
                      pipeline=settings.name)
        return f"{why}; new_data_sensor requests its runs"

    def _register_window(context, window, version: int, store: VersionedStore, scoring: VersionedStore):
        from ml_assets.core.live import LiveError, labelled_table
        from ml_assets.core.tables import TableReadError, read_table

        base = newest_valid_version(context.instance, store, names)
        if base is None:
            raise LiveError("no data version has passed its data contract: the landing format is unknown")

        def read(key: str, versions: VersionedStore, what: str):
            try:
                return read_table(versions.verify_snapshot(key))
            except TableReadError as exc:
                raise LiveError(f"{what} {key} cannot be read: {exc}") from None

        landed = read(base, store, "data version")
        table = labelled_table(window, lambda b: read(b, scoring, "scoring batch"), list(landed.columns),
                               settings.target, landed[settings.target].dtype)
        parquet = store.version(base).source_name.lower().endswith(".parquet")
        name = f"live_labels_v{version}.{'parquet' if parquet else 'csv'}"

        def write(path):
            if parquet:
                table.to_parquet(path, index=False)
            else:
                table.to_csv(path, index=False)

        return store.register_generated(name, write, trigger=DECAY)

    return decay_sensor
