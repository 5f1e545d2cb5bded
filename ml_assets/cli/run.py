"""`ml-assets run`: for every pipeline (or those named with `--pipeline`), register new landing
files, resume runs an earlier `ml-assets run` left unfinished, run versions asked to run
again, then run each new version; `--changed` is in changed.py."""

from __future__ import annotations

import sys
from pathlib import Path

from ml_assets.cli.changed import run_changed
from ml_assets.cli.common import (
    EXIT_BLOCKED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    load_pipelines,
    open_instance,
    report_invalid,
)
from ml_assets.cli.execute import execute, report_run, run_version

VERDICTS = {EXIT_OK: "ok", EXIT_BLOCKED: "blocked or failed (see above)", EXIT_USAGE: "not run: pipeline-file error"}


def cmd_run(args) -> int:
    """Each pipeline in turn; one pipeline's failure never stops or hides the next one's run.
    Exit: the worst of them, and 2 when a pipeline file could not be loaded."""
    catalog, pipelines = load_pipelines(args.pipeline)
    if not args.pipeline:
        report_invalid(catalog)
    outcomes = {}
    for pipeline in pipelines:
        if len(pipelines) > 1:
            print(f"\n=== {pipeline.name} ===" if outcomes else f"=== {pipeline.name} ===")
        try:
            outcomes[pipeline.name] = run_pipeline(pipeline.env, pipeline.settings, args.changed)
        except UsageError as exc:  # this pipeline's file (model.params), not the others'
            print(f"error: {exc}", file=sys.stderr)
            outcomes[pipeline.name] = EXIT_USAGE
    if len(pipelines) > 1 or (catalog.invalid and not args.pipeline):
        print("\nsummary:")
        for name, code in outcomes.items():
            print(f"  {name:<30} {VERDICTS[code]}")
        if not args.pipeline:
            for problem in catalog.invalid:
                print(f"  {problem.path.name:<30} not loaded: invalid pipeline file")
    worst = max(outcomes.values(), default=EXIT_OK)
    return max(worst, EXIT_USAGE) if catalog.invalid and not args.pipeline else worst


def run_pipeline(env, settings, changed: bool = False) -> int:
    from filelock import Timeout

    from ml_assets import heap
    from ml_assets.storage import StoreError, VersionedStore

    store = VersionedStore(env.store_root, settings.name)
    with heap.importing():  # scikit-learn
        _check_model_settings(env, settings, store)
    print(f"pipeline {settings.name!r} ({env.config_path}); landing folder {env.landing_dir}")
    lock = store.run_lock()
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print("  waiting for another `ml-assets run` on this store to finish")
        lock.acquire()
    try:
        if not changed and _nothing_to_do(env, settings, store):
            return EXIT_OK
        with heap.importing():  # Dagster and its storage
            instance = open_instance()
        if changed:
            return run_changed(env, settings, instance, store)
        in_progress = store.base / ".cli_run_in_progress"
        in_progress.touch()
        code = _run_locked(env, settings, instance, store)
        # Kept when killed, on an error, or when a run failed for a reason other than a gate:
        # the next `ml-assets run` then looks for runs to resume.
        if code == EXIT_OK or not failed_runs(instance, settings):
            in_progress.unlink(missing_ok=True)
        return code
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BLOCKED
    finally:
        lock.release()


def _check_model_settings(env, settings, store) -> None:
    """model.params and every candidate's params are checked against their estimators, which
    needs scikit-learn (1-2 s to import); settings already found good are remembered in the
    store, so a no-op run stays fast."""
    import hashlib
    import json

    digest = hashlib.sha256(
        json.dumps([settings.task, settings.model.model_dump(mode="json")], sort_keys=True).encode()
    ).hexdigest()
    stamp = store.base / ".model_settings_ok"
    if stamp.exists() and stamp.read_text().strip() == digest:
        return
    from ml_assets.core.modeling import ModelSettingsError
    from ml_assets.core.training import check_candidates

    try:
        check_candidates(settings.model, settings.task, settings.seed)
    except ModelSettingsError as exc:
        raise UsageError(f"{env.config_path}: {exc}") from None
    try:
        store.base.mkdir(parents=True, exist_ok=True)
        stamp.write_text(digest + "\n")
    except OSError:
        pass  # only a cache


def _nothing_to_do(env, settings, store) -> bool:
    """The no-op answer without loading Dagster (about a second): nothing new landed, every
    version was handed to Dagster, and no earlier run was interrupted."""
    if (store.base / ".cli_run_in_progress").exists():
        return False
    scan = store.scan_landing(env.landing_dir, settings.landing_glob, env.settle_seconds)
    for skipped in scan.duplicates:
        print(f"  skipped {Path(skipped.path).name}: {skipped.reason}")
    if scan.new or scan.unsettled or store.unclaimed() or store.pending_run_requests():
        return False
    for skipped in scan.refused:
        print(f"  refused {Path(skipped.path).name}: {skipped.reason}")
    print(f"nothing new: {len(store.versions())} data version(s) registered, all already run")
    return True


def _scan_until_settled(env, settings, store, rounds: int = 30):
    """Scan the landing folder, waiting for files that are still being written."""
    import time

    scan = store.scan_landing(env.landing_dir, settings.landing_glob, env.settle_seconds)
    duplicates, refused = list(scan.duplicates), list(scan.refused)
    for _ in range(rounds):
        if not scan.unsettled:
            break
        for waiting in scan.unsettled:
            print(f"  waiting for {Path(waiting.path).name}: {waiting.reason}")
        time.sleep(max(env.settle_seconds, 0.5))
        scan = store.scan_landing(env.landing_dir, settings.landing_glob, env.settle_seconds)
        duplicates += scan.duplicates
        refused += scan.refused
    for waiting in scan.unsettled:
        print(f"  left for later {Path(waiting.path).name}: {waiting.reason}")
    return duplicates, refused


def _run_locked(env, settings, instance, store) -> int:
    """Under the run lock: register what landed, resume orphans, then run reruns and new
    versions, one line per step each; the worst exit code of them all."""
    from ml_assets.graph import DagsterNames
    from ml_assets.ingestion.sensors import unrequested_versions

    names = DagsterNames.of(settings.name)
    from ml_assets.migration import legacy_versions, waiting_message

    waiting = legacy_versions(instance, store, names)
    if waiting:
        raise UsageError(waiting_message(settings.name, len(waiting)))
    # A StoreError (unreadable landing folder, full disk, ...) goes up to cmd_run's handler.
    duplicates, refused = _scan_until_settled(env, settings, store)
    for skipped in duplicates:
        print(f"  skipped {Path(skipped.path).name}: {skipped.reason}")
    for skipped in refused:
        print(f"  refused {Path(skipped.path).name}: {skipped.reason}")

    exit_code = _resume_interrupted(env, settings, instance, store)
    partitions = set(instance.get_dynamic_partitions(names.partitions))
    store.mark_claimed([key for key in store.unclaimed() if key in partitions])
    keys = unrequested_versions(store, partitions)
    # A version asked to run again whose first run is about to start needs no second one.
    reruns = [r for r in store.take_run_requests("ml-assets run")
              if r.get("data_version") not in keys and store.version(r.get("data_version", ""))]
    if not keys and not reruns and exit_code is None:
        print(f"nothing new: {len(store.versions())} data version(s) registered, all already run")
        return EXIT_OK
    if keys:
        instance.add_dynamic_partitions(names.partitions, keys)
    store.mark_claimed(keys)

    from ml_assets.monitoring.notifications import Notifier

    # Runs started here are not watched by the daemon's failure sensor: notify from here.
    notifier = Notifier(webhook_url=env.webhook_url, pipeline=settings.name)
    exit_code = exit_code or EXIT_OK
    for request in reruns:  # older versions than the new ones: first
        exit_code = max(exit_code, _rerun(instance, store, request, settings, notifier, names))
    for key in keys:
        record = store.version(key)
        print(f"\n{key}  ({record.source_name})")
        exit_code = max(exit_code, run_version(instance, names, key, record, settings, notifier))
    return exit_code


def _rerun(instance, store, request, settings, notifier, names) -> int:
    """Run a version again as `ml-assets contract accept` asked, reported like a new one.

    Tagged trigger "cli" like every run started here, so that an interrupted one is resumed
    by the next `ml-assets run`; the request and the contract revision are tags of their own.
    """
    key = request["data_version"]
    if not instance.has_dynamic_partition(names.partitions, key):
        instance.add_dynamic_partitions(names.partitions, [key])
    record = store.version(key)
    revision = request.get("contract_revision")
    print(f"\n{key}  ({record.source_name}): run again: data contract revision {revision} "
          f"accepted it ({request['run_key']})")
    tags = {"ml_assets/request": request["run_key"]}
    if revision is not None:
        tags["ml_assets/contract_revision"] = str(revision)
    return run_version(instance, names, key, record, settings, notifier, tags=tags)


def _resume_interrupted(env, settings, instance, store) -> int | None:
    """Re-execute, from where they stopped, runs of this pipeline that an earlier `ml-assets
    run` left unfinished (the process was killed) or that failed for a reason other than a
    gate (a service down, a full disk). Holding the run lock proves that no other `ml-assets
    run` is alive, so a run still marked as started here is an orphan. A version its gate
    blocked stays blocked: only a new file or `ml-assets contract accept` runs it again."""
    import dagster as dg

    from ml_assets.graph import STAGE_TAG, VALIDATE_STAGE, DagsterNames
    from ml_assets.monitoring.notifications import Notifier

    names = DagsterNames.of(settings.name)
    job_name = names.job
    ours = {"ml_assets/trigger": "cli", "ml_assets/pipeline": settings.name}
    orphans = instance.get_runs(filters=dg.RunsFilter(
        job_name=job_name, statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING], tags=ours))
    failed = failed_runs(instance, settings)
    if not orphans and not failed:
        return None
    notifier = Notifier(webhook_url=env.webhook_url, pipeline=settings.name)
    exit_code = EXIT_OK
    for run in sorted([*orphans, *failed], key=lambda r: r.tags.get("dagster/partition", "")):
        key = run.tags.get("dagster/partition")
        record = store.version(key)
        if run in orphans:
            instance.report_run_failed(run, "the `ml-assets run` process running it stopped")
            why = "from where it stopped"
        else:
            why = "from the step that failed"
        print(f"\n{key}  ({record.source_name if record else '?'}): resuming run {run.run_id} {why}")
        stage = run.tags.get(STAGE_TAG)
        result = execute(
            instance, job_name, key, "cli",
            tags={"ml_assets/resumed_from": run.run_id, **({STAGE_TAG: stage} if stage else {})},
            reexecution_options=dg.ReexecutionOptions.from_failure(run.run_id, instance),
        )
        if stage == VALIDATE_STAGE:  # then the rest of the version, as a new one gets
            code = run_version(instance, names, key, record, settings, notifier, validation=result)
        else:
            code = report_run(instance, result, key, record, settings, notifier)
        exit_code = max(exit_code, code)
    return exit_code


# Set on a failed run once it is known that a gate blocked it, so that no later `ml-assets
# run` reads its events again to find out; the UI shows it among the run's tags.
BLOCKED_TAG = "ml_assets/blocked_by"


def failed_runs(instance, settings) -> list:
    """Runs `ml-assets run` started for this pipeline that failed for a reason other than a
    gate, and were not re-executed since."""
    import dagster as dg

    from ml_assets.cli.run_summary import summarize_run
    from ml_assets.graph import DagsterNames

    tags = {"ml_assets/trigger": "cli", "ml_assets/pipeline": settings.name}
    runs = instance.get_runs(filters=dg.RunsFilter(
        job_name=DagsterNames.of(settings.name).job, statuses=[dg.DagsterRunStatus.FAILURE], tags=tags))
    found = []
    for run in runs:
        if BLOCKED_TAG in run.tags:
            continue
        if instance.get_run_ids(dg.RunsFilter(tags={"dagster/parent_run_id": run.run_id}), limit=1):
            continue
        blocked = summarize_run(instance, run.run_id).blocked_by
        if blocked is not None:
            instance.add_run_tags(run.run_id, {BLOCKED_TAG: f"{blocked.asset}:{blocked.name}"})
            continue
        found.append(run)
    return found
