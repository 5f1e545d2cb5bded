"""The runs of one data version, in this process, and what `ml-assets run` prints of them: a
line per step, the verdict, and a notification when it did not pass."""

from __future__ import annotations

from typing import NamedTuple

from ml_assets.cli.common import EXIT_BLOCKED, EXIT_OK
from ml_assets.graph import (
    ALL_ASSETS,
    DRIFT_REPORT,
    EVALUATION_REPORT,
    FEATURES,
    MODEL,
    REGISTERED_MODEL_VERSION,
    STAGE_TAG,
    TRAIN_STAGE,
    VALIDATE_ASSETS,
    VALIDATE_STAGE,
    VALIDATED_DATA,
    after_validation,
)


class RunOutcome(NamedTuple):
    run_id: str
    success: bool


def execute(instance, job_name: str, key: str, trigger: str, asset_selection=None, tags=None,
            reexecution_options=None) -> RunOutcome:
    """Run a pipeline's train job for one data version in this process, as the code location
    defines it.

    Through dg.execute_job on the reconstructable job rather than execute_in_process: the
    latter keeps every step's output in memory for the result object (on a million rows,
    several copies of the table), while execute_job hands outputs to the IO manager only.
    The result is not opened as a context manager: that would set the resources up once
    more (an MLflow look-up among them) only to read outputs, and the run id and its success
    are there without it. Returns (run_id, success).
    """
    import dagster as dg

    result = dg.execute_job(
        # ml_assets.definitions.job(job_name), rebuilt the same way by any process that needs it
        dg.build_reconstructable_job("ml_assets.definitions", "job", reconstructable_args=(job_name,)),
        instance=instance,
        asset_selection=asset_selection,
        reexecution_options=reexecution_options,
        tags={"dagster/partition": key, "ml_assets/trigger": trigger, **(tags or {})},
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
    )
    return RunOutcome(result.run_id, result.success)


def run_version(instance, names, key, record, settings, notifier, tags=None, validation=None) -> int:
    """A version as new_data_sensor runs it: its validation run (or `validation`, one already
    run), then, when that passed, the run of the rest of the graph. The steps of both are
    printed as one list, followed by one verdict. A version blocked by its file or its data
    contract plans nothing downstream, so the UI keeps the other assets' last good state."""
    tags = dict(tags or {})
    if validation is None:
        validation = execute(instance, names.job, key, "cli", asset_selection=names.keys(VALIDATE_ASSETS),
                             tags={**tags, STAGE_TAG: VALIDATE_STAGE})
    summary = print_steps(instance, validation.run_id)
    if not validation.success:
        return verdict(summary, validation, key, record, settings, notifier)
    rest = execute(instance, names.job, key, "cli", asset_selection=names.keys(after_validation(ALL_ASSETS)),
                   tags={**tags, STAGE_TAG: TRAIN_STAGE})
    return report_run(instance, rest, key, record, settings, notifier)


def report_run(instance, result, key, record, settings, notifier) -> int:
    """Print one line per step and the verdict of one run; notify when it did not pass."""
    return verdict(print_steps(instance, result.run_id), result, key, record, settings, notifier)


def print_steps(instance, run_id: str):
    """One line per step of a run: its status, duration and what it found; the run's summary."""
    from ml_assets.cli.run_summary import summarize_run

    summary = summarize_run(instance, run_id)
    for step in summary.steps:
        label = {"ok": "ok", "blocked": "BLOCKED", "failed": "FAILED", "skipped": "skipped"}[step.status]
        print(f"  {step.step:<26} {label:<8} {_fmt_seconds(step.seconds):>8}  {step_note(step)}".rstrip())
    return summary


def verdict(summary, result, key, record, settings, notifier) -> int:
    """The verdict line of a run, and a notification when it did not pass; the exit code."""
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
    meta = next((s.metadata for s in summary.steps if s.step == REGISTERED_MODEL_VERSION), {})
    if "version" in meta:
        print(
            f"  => registered {settings.name} version {meta.get('version')}"
            + (" and promoted to champion" if meta.get("promoted")
               else f"; it waits for approval: ml-assets approve {meta.get('version')}"
               if meta.get("waiting_for_approval") else "; champion unchanged")
        )
    else:
        print(f"  => done: {', '.join(s.step for s in summary.steps if s.status == 'ok')}")
    return EXIT_OK


def step_note(step) -> str:
    """What a step line says after the timing: its checks, then what the step made."""
    if step.status == "failed":
        return step.error or ""
    notes = [
        f"{c.name} passed" if c.passed else f"{c.name} {'failed' if c.blocking else 'warned'}"
        for c in step.checks
    ]
    if step.status == "blocked":
        return "; ".join(notes)
    meta = step.metadata
    if step.step == EVALUATION_REPORT:
        metrics = {k.split("/", 1)[1]: v for k, v in meta.items() if k.startswith("metric/")}
        notes.append(" ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    elif step.step == REGISTERED_MODEL_VERSION and "version" in meta:
        notes.append(f"version {meta['version']}: {meta.get('decision', '')}")
    elif step.step == DRIFT_REPORT and "summary" in meta:
        notes.append(str(meta["summary"]))
    elif step.step == MODEL and "candidate" in meta:
        tried = meta.get("candidates_tried")
        notes.append(f"{meta['candidate']} ({meta.get('estimator')}), "
                     + (f"best of {tried} candidates" if tried else "fixed by model.estimator"))
    elif step.step in (VALIDATED_DATA, FEATURES) and "dagster/row_count" in meta:
        notes.insert(0, f"{meta['dagster/row_count']} rows")
    return "; ".join(n for n in notes if n)


def _fmt_seconds(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:6.2f}s"
