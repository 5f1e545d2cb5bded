"""`ml-assets`: run the pipeline headless, show its status, write demo data, evolve the data
contract.

Exit codes: 0 all passed; 1 a version was blocked (a gate failed, or its file could not be
read as a table) or its run failed, or a command refused what it was asked (the reason named);
2 usage or pipeline-file error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import NamedTuple

EXIT_OK, EXIT_BLOCKED, EXIT_USAGE = 0, 1, 2


class RunOutcome(NamedTuple):
    run_id: str
    success: bool


class UsageError(Exception):
    pass


class Refused(Exception):
    """A command that refuses what it was asked (exit 1); str() names what and why."""


def _quiet_libraries() -> None:
    # No telemetry, progress bars or long HTTP retries: ml_assets/library_settings.py, applied
    # when the package was imported. Beyond those, a command-line tool's output stays short.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    warnings.filterwarnings("ignore")
    for name in ("mlflow", "alembic", "great_expectations", "dagster", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _load():
    from ml_assets.config import PipelineFileError, load_settings
    from ml_assets.environment import EnvironmentError_, load_environment

    try:
        env = load_environment()
        settings = load_settings(env.config_path)
    except (PipelineFileError, EnvironmentError_) as exc:
        raise UsageError(str(exc)) from None
    return env, settings


def _instance():
    from dagster import DagsterInstance

    home = os.environ.get("DAGSTER_HOME")
    if not home:
        # Same default as `make dev`, so the UI started there shows these runs.
        home = str(Path.cwd() / ".dagster_home")
        os.environ["DAGSTER_HOME"] = home
    Path(home).mkdir(parents=True, exist_ok=True)
    config = Path(home) / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")
    return DagsterInstance.get()


def _fmt_seconds(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:6.2f}s"


def _step_note(step) -> str:
    if step.status == "failed":
        return step.error or ""
    notes = [
        f"{c.name} passed" if c.passed else f"{c.name} {'failed' if c.blocking else 'warned'}"
        for c in step.checks
    ]
    if step.status == "blocked":
        return "; ".join(notes)
    meta = step.metadata
    if step.step == "evaluation_report":
        metrics = {k.split("/", 1)[1]: v for k, v in meta.items() if k.startswith("metric/")}
        notes.append(" ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    elif step.step == "registered_model_version" and "version" in meta:
        notes.append(f"version {meta['version']}: {meta.get('decision', '')}")
    elif step.step == "drift_report" and "summary" in meta:
        notes.append(str(meta["summary"]))
    elif step.step in ("validated_data", "features") and "dagster/row_count" in meta:
        notes.insert(0, f"{meta['dagster/row_count']} rows")
    return "; ".join(n for n in notes if n)


def _execute(instance, key: str, trigger: str, asset_selection=None, tags=None,
             reexecution_options=None):
    """Run the train job for one data version in this process, as the code location defines it.

    Through dg.execute_job on the reconstructable job rather than execute_in_process: the
    latter keeps every step's output in memory for the result object (on a million rows,
    several copies of the table), while execute_job hands outputs to the IO manager only.
    The result is not opened as a context manager: that would set the resources up once
    more (an MLflow look-up among them) only to read outputs, and the run id and its success
    are there without it. Returns (run_id, success).
    """
    import dagster as dg

    from ml_assets import definitions

    result = dg.execute_job(
        dg.reconstructable(definitions.train_job),
        instance=instance,
        asset_selection=asset_selection,
        reexecution_options=reexecution_options,
        tags={"dagster/partition": key, "ml_assets/trigger": trigger, **(tags or {})},
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
    )
    return RunOutcome(result.run_id, result.success)


def _check_model_settings(env, settings, store) -> None:
    """model.params are checked against the estimator, which needs scikit-learn (1-2 s to
    import); settings already found good are remembered in the store, so a no-op run stays fast."""
    import hashlib
    import json as _json

    digest = hashlib.sha256(
        _json.dumps([settings.task, settings.model.model_dump(mode="json")], sort_keys=True).encode()
    ).hexdigest()
    stamp = store.base / ".model_settings_ok"
    if stamp.exists() and stamp.read_text().strip() == digest:
        return
    from ml_assets.core.modeling import ModelSettingsError, make_estimator

    try:
        make_estimator(settings.model.estimator, settings.task, settings.model.params, settings.seed)
    except ModelSettingsError as exc:
        raise UsageError(f"{env.config_path}: {exc}") from None
    try:
        store.base.mkdir(parents=True, exist_ok=True)
        stamp.write_text(digest + "\n")
    except OSError:
        pass  # only a cache


def cmd_run(args) -> int:
    env, settings = _load()
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
        if not args.changed and _nothing_to_do(env, settings, store):
            return EXIT_OK
        with heap.importing():  # Dagster and its storage
            instance = _instance()
        if args.changed:
            return _run_changed(env, settings, instance, store)
        in_progress = store.base / ".cli_run_in_progress"
        in_progress.touch()
        code = _run_locked(env, settings, instance, store)
        # Kept when killed or on an error: the next run then looks for runs to resume.
        in_progress.unlink(missing_ok=True)
        return code
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BLOCKED
    finally:
        lock.release()


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


def _run_changed(env, settings, instance, store) -> int:
    """Rematerialise exactly the stale assets of every run version, and say which and why."""
    import dagster as dg

    from ml_assets.definitions import defs
    from ml_assets.monitoring.notifications import Notifier
    from ml_assets.partitions import DATA_VERSION
    from ml_assets.staleness import stale_assets

    notifier = Notifier(webhook_url=env.webhook_url, pipeline=settings.name)
    partitions = set(instance.get_dynamic_partitions(DATA_VERSION))
    exit_code, fresh, redone = EXIT_OK, 0, 0
    for record in sorted(store.versions().values(), key=lambda r: (r.registered_at, r.key)):
        if record.key not in partitions:
            continue
        stale = stale_assets(instance, defs, record.key)
        if not stale:
            fresh += 1
            continue
        redone += 1
        print(f"\n{record.key}  ({record.source_name}): {len(stale)} stale asset(s)")
        for asset in stale:
            print(f"  {asset.asset:<26} stale: {'; '.join(asset.reasons)}")
        result = _execute(instance, record.key, "changed",
                          asset_selection=[dg.AssetKey(a.asset) for a in stale])
        exit_code = max(exit_code, _report(instance, result, record.key, record, settings, notifier))
    if redone:
        print(f"{redone} data version(s) rematerialised, {fresh} up to date")
    else:
        print(f"nothing stale: {fresh} data version(s) up to date")
    return exit_code


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
    from ml_assets.ingestion.sensors import unrequested_versions
    from ml_assets.partitions import DATA_VERSION

    # A StoreError (unreadable landing folder, full disk, ...) goes up to cmd_run's handler.
    duplicates, refused = _scan_until_settled(env, settings, store)
    for skipped in duplicates:
        print(f"  skipped {Path(skipped.path).name}: {skipped.reason}")
    for skipped in refused:
        print(f"  refused {Path(skipped.path).name}: {skipped.reason}")

    exit_code = _resume_interrupted(env, settings, instance, store)
    partitions = set(instance.get_dynamic_partitions(DATA_VERSION))
    store.mark_claimed([key for key in store.unclaimed() if key in partitions])
    keys = unrequested_versions(store, partitions)
    # A version asked to run again whose first run is about to start needs no second one.
    reruns = [r for r in store.take_run_requests("ml-assets run")
              if r.get("data_version") not in keys and store.version(r.get("data_version", ""))]
    if not keys and not reruns and exit_code is None:
        print(f"nothing new: {len(store.versions())} data version(s) registered, all already run")
        return EXIT_OK
    if keys:
        instance.add_dynamic_partitions(DATA_VERSION, keys)
    store.mark_claimed(keys)

    from ml_assets.monitoring.notifications import Notifier

    # Runs started here are not watched by the daemon's failure sensor: notify from here.
    notifier = Notifier(webhook_url=env.webhook_url, pipeline=settings.name)
    exit_code = exit_code or EXIT_OK
    for request in reruns:  # older versions than the new ones: first
        exit_code = max(exit_code, _rerun(instance, store, request, settings, notifier))
    for key in keys:
        record = store.version(key)
        print(f"\n{key}  ({record.source_name})")
        result = _execute(instance, key, "cli")
        exit_code = max(exit_code, _report(instance, result, key, record, settings, notifier))
    return exit_code


def _rerun(instance, store, request, settings, notifier) -> int:
    """Run a version again as `ml-assets contract accept` asked, reported like a new one.

    Tagged trigger "cli" like every run started here, so that an interrupted one is resumed
    by the next `ml-assets run`; the request and the contract revision are tags of their own.
    """
    from ml_assets.partitions import DATA_VERSION

    key = request["data_version"]
    if not instance.has_dynamic_partition(DATA_VERSION, key):
        instance.add_dynamic_partitions(DATA_VERSION, [key])
    record = store.version(key)
    revision = request.get("contract_revision")
    print(f"\n{key}  ({record.source_name}): run again: data contract revision {revision} "
          f"accepted it ({request['run_key']})")
    tags = {"ml_assets/request": request["run_key"]}
    if revision is not None:
        tags["ml_assets/contract_revision"] = str(revision)
    result = _execute(instance, key, "cli", tags=tags)
    return _report(instance, result, key, record, settings, notifier)


def _report(instance, result, key, record, settings, notifier) -> int:
    """Print one line per step and the verdict of one run; notify when it did not pass."""
    from ml_assets.run_summary import summarize_run

    summary = summarize_run(instance, result.run_id)
    for step in summary.steps:
        label = {"ok": "ok", "blocked": "BLOCKED", "failed": "FAILED", "skipped": "skipped"}[step.status]
        print(f"  {step.step:<26} {label:<8} {_fmt_seconds(step.seconds):>8}  {_step_note(step)}".rstrip())
    blocked = summary.blocked_by
    if blocked is not None:
        reason = blocked.description.removeprefix(f"data version {key}: ")
        reason = reason.removeprefix(f"{record.source_name} (data version {key}) ")
        print(
            f"  => blocked: {record.source_name} (data version {key}) by check "
            f"{blocked.asset}:{blocked.name}: " + reason.replace("\n", "\n     ")
        )
        notifier.send("gate blocked", version=key, step=blocked.asset,
                      reason=f"{record.source_name}: check {blocked.name} failed: {reason}",
                      run_id=result.run_id)
        return EXIT_BLOCKED
    if not result.success:
        failed = summary.failed_step
        where = failed.step if failed else "the run"
        error = failed.error if failed else "see the Dagster UI"
        print(f"  => failed: {record.source_name} (data version {key}) in {where}: {error} "
              f"(run {result.run_id})")
        notifier.send("run failed", version=key, step=where, reason=error, run_id=result.run_id)
        return EXIT_BLOCKED
    meta = next((s.metadata for s in summary.steps if s.step == "registered_model_version"), {})
    if "version" in meta:
        print(
            f"  => registered {settings.name} version {meta.get('version')}"
            + (" and promoted to champion" if meta.get("promoted") else "; champion unchanged")
        )
    else:
        print(f"  => done: {', '.join(s.step for s in summary.steps if s.status == 'ok')}")
    return EXIT_OK


def _resume_interrupted(env, settings, instance, store) -> int | None:
    """Re-execute, from where they stopped, runs of this pipeline that an earlier `ml-assets
    run` left unfinished (the process was killed). Holding the run lock proves that no other
    `ml-assets run` is alive, so a run still marked as started here is an orphan."""
    import dagster as dg

    from ml_assets.definitions import TRAIN_JOB
    from ml_assets.monitoring.notifications import Notifier

    orphans = instance.get_runs(
        filters=dg.RunsFilter(
            job_name=TRAIN_JOB,
            statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING],
            tags={"ml_assets/trigger": "cli", "ml_assets/pipeline": settings.name},
        )
    )
    if not orphans:
        return None
    notifier = Notifier(webhook_url=env.webhook_url, pipeline=settings.name)
    exit_code = EXIT_OK
    for run in orphans:
        key = run.tags.get("dagster/partition")
        record = store.version(key)
        instance.report_run_failed(run, "the `ml-assets run` process running it stopped")
        print(f"\n{key}  ({record.source_name if record else '?'}): resuming run {run.run_id} "
              "from where it stopped")
        result = _execute(
            instance, key, "cli", tags={"ml_assets/resumed_from": run.run_id},
            reexecution_options=dg.ReexecutionOptions.from_failure(run.run_id, instance),
        )
        exit_code = max(exit_code, _report(instance, result, key, record, settings, notifier))
    return exit_code


def cmd_status(args) -> int:
    env, settings = _load()
    from ml_assets.status import collect_status, render_status

    status = collect_status(env, settings, _instance())
    if args.json:
        print(json.dumps(status, indent=2, default=str))
    else:
        print(render_status(status))
    return EXIT_OK


def cmd_demo(args) -> int:
    env, settings = _load()
    from ml_assets.demo import simulator

    if args.if_empty and simulator.landing_has_data(env.landing_dir, settings.landing_glob):
        print(f"nothing written: {env.landing_dir} already holds data")
        return EXIT_OK
    written = []
    base = simulator.write_base(env.landing_dir)
    if base:
        written.append(base)
    if args.versions:
        written += simulator.write_versions(env.landing_dir, args.versions, args.drift)
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"nothing written: {env.landing_dir} already holds the demo table")
    return EXIT_OK


def _contract_file(env, settings) -> Path:
    from ml_assets.ingestion.contract_file import contract_file_path

    path = contract_file_path(env.contracts_dir, settings.name)
    if not path.exists():
        raise Refused(
            f"no data contract yet for pipeline {settings.name!r} ({path}): it is inferred from "
            "the first data version that passes; run `ml-assets run` first"
        )
    return path


def cmd_contract_show(args) -> int:
    env, settings = _load()
    from ml_assets.core.contract import ContractFileError
    from ml_assets.core.contract.evolve import describe_contract
    from ml_assets.ingestion.contract_file import read_contract_json

    path = _contract_file(env, settings)
    try:
        contract = read_contract_json(path)
    except ContractFileError as exc:
        raise Refused(str(exc)) from None
    if args.json:
        print(json.dumps(contract, indent=2, ensure_ascii=False))
    else:
        print(describe_contract(contract, str(path)))
    return EXIT_OK


def cmd_contract_diff(args) -> int:
    env, settings = _load()
    from ml_assets.core.contract import ContractFileError
    from ml_assets.core.contract.evolve import diff_contracts, history_of
    from ml_assets.ingestion.contract_file import UnknownRevision, load_revision

    path = _contract_file(env, settings)
    try:
        old, new = load_revision(path, args.rev1), load_revision(path, args.rev2)
    except (UnknownRevision, ContractFileError) as exc:
        raise Refused(str(exc)) from None
    print(f"data contract {settings.name!r}: revision {args.rev1} -> {args.rev2}")
    low, high = sorted((args.rev1, args.rev2))
    for entry in history_of(new if args.rev2 >= args.rev1 else old):
        if low < (entry.get("revision") or 0) <= high:
            reason = entry.get("reason") or "no reason given"
            print(f"  revision {entry.get('revision')}: {entry.get('data_version')} accepted by "
                  f"{entry.get('by')} at {entry.get('at')}: {reason}")
    lines = diff_contracts(old, new)
    for line in lines:
        print(f"  {line}")
    if not lines:
        print("  no expectation changed")
    return EXIT_OK


def cmd_contract_accept(args) -> int:
    env, settings = _load()
    from filelock import Timeout

    from ml_assets.core.contract import ContractFileError
    from ml_assets.core.contract.evolve import CannotWiden
    from ml_assets.core.tables import TableReadError, read_table
    from ml_assets.ingestion.contract_file import accept_version, request_rerun
    from ml_assets.storage import StoreError, VersionedStore

    path = _contract_file(env, settings)
    store = VersionedStore(env.store_root, settings.name)
    key = args.version
    record = store.version(key)
    if record is None:
        known = list(store.versions())
        listed = ", ".join(known[-10:]) + (f" (and {len(known) - 10} more)" if len(known) > 10 else "")
        raise Refused(f"data version {key!r} is not in the store of pipeline {settings.name!r}; "
                      + (f"data versions: {listed}" if known else "it holds no data version yet"))
    try:
        df = read_table(store.verify_snapshot(key))
    except StoreError as exc:
        raise Refused(str(exc)) from None
    except TableReadError as exc:
        raise Refused(f"{record.source_name} (data version {key}) cannot be read as a table: {exc}") from None
    try:
        outcome = accept_version(path, df, settings, key, args.reason)
    except (ContractFileError, CannotWiden) as exc:
        raise Refused(str(exc)) from None
    except Timeout:
        raise Refused(f"{path} is locked by another process (a run inferring it, or another "
                      "accept); try again") from None
    if outcome.already_passes:
        print(f"data version {key} already passes contract revision {outcome.revision}: "
              "nothing to widen")
        return EXIT_OK
    print(f"data contract {settings.name!r} widened from {key} to revision {outcome.revision}:")
    for line in outcome.widened:
        print(f"  {line}")
    print(f"revision {outcome.revision - 1} kept as {outcome.previous}")
    try:
        run_key = request_rerun(store, key, outcome.revision, args.reason)
    except StoreError as exc:
        raise Refused(f"contract revision {outcome.revision} was saved, but the run of {key} "
                      f"could not be requested: {exc}; run it from the Dagster UI (materialise "
                      "its partition)") from None
    print(f"run of {key} requested ({run_key}): new_data_sensor starts it, or `ml-assets run`")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ml-assets",
        description="Automated ML training pipeline (a Dagster code location).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="register new landing files and materialise the graph for each")
    run.add_argument("--changed", action="store_true",
                     help="instead: rematerialise exactly the assets made stale by a change of "
                     "code or pipeline file (e.g. model.params), for every version, and say why")
    run.set_defaults(func=cmd_run)
    status = sub.add_parser("status", help="data versions, their checks and metrics, and the champion")
    status.add_argument("--json", action="store_true", help="one JSON object on stdout")
    status.set_defaults(func=cmd_status)
    demo = sub.add_parser("demo", help="write demo data versions into the landing folder")
    demo.add_argument("--versions", type=_non_negative, default=0, metavar="N",
                      help="write N further versions (default: only the bundled table)")
    demo.add_argument("--drift", action="store_true", help="shift the new versions' size measurements")
    demo.add_argument("--if-empty", action="store_true",
                      help="write nothing if the landing folder already holds data (used by make dev)")
    demo.set_defaults(func=cmd_demo)
    _add_contract_parser(sub)
    return parser


def _add_contract_parser(sub) -> None:
    contract = sub.add_parser(
        "contract", help="the data contract: show it, compare revisions, widen it from a version"
    )
    actions = contract.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="the current contract, readable, with its history")
    show.add_argument("--json", action="store_true", help="the contract file's JSON")
    show.set_defaults(func=cmd_contract_show)
    diff = actions.add_parser("diff", help="what changed between two revisions")
    diff.add_argument("rev1", type=_revision, metavar="REV1")
    diff.add_argument("rev2", type=_revision, metavar="REV2")
    diff.set_defaults(func=cmd_contract_diff)
    accept = actions.add_parser(
        "accept", help="widen the contract from a blocked data version and run that version again"
    )
    accept.add_argument("version", metavar="VERSION", help="the data version (partition key)")
    accept.add_argument("--reason", default="", metavar="TEXT",
                        help="why the version is right (kept in the contract's history)")
    accept.set_defaults(func=cmd_contract_accept)


def _revision(text: str) -> int:
    digits = text[1:] if text[:1] in ("r", "R") else text
    if not digits.isdigit() or int(digits) < 1:
        raise argparse.ArgumentTypeError(f"expected a revision number such as 2 (or r2), got {text!r}")
    return int(digits)


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    from ml_assets.heap import freeze_at_exit

    freeze_at_exit()  # exit without the interpreter's last collections walking the heap
    _quiet_libraries()
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse exits 2 on usage errors, as the contract says
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return EXIT_BLOCKED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: a message, not a traceback
        if os.environ.get("ML_ASSETS_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"error: {type(exc).__name__}: {first} (set ML_ASSETS_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return EXIT_BLOCKED


if __name__ == "__main__":
    sys.exit(main())
