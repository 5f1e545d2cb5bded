"""What happened in a run, read back from the Dagster event log: steps, durations, checks.

Shared by `ml-assets run` (one line per step) and run_failure_notifier (what its message says).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dagster import DagsterEventType, DagsterInstance

from ml_assets.graph import ALL_ASSETS


@dataclass
class CheckOutcome:
    asset: str
    name: str
    passed: bool
    blocking: bool
    description: str

    def to_dict(self) -> dict:
        return {
            "asset": self.asset,
            "check": self.name,
            "passed": self.passed,
            "blocking": self.blocking,
            "description": self.description,
        }


@dataclass
class StepOutcome:
    step: str
    status: str = "skipped"  # ok | blocked | failed | skipped
    seconds: float | None = None
    error: str | None = None
    checks: list[CheckOutcome] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    retry_error: str | None = None
    retries: int = 0


@dataclass
class RunSummary:
    run_id: str
    steps: list[StepOutcome]

    @property
    def blocked_by(self) -> CheckOutcome | None:
        for step in self.steps:
            for check in step.checks:
                if check.blocking and not check.passed:
                    return check
        return None

    @property
    def failed_step(self) -> StepOutcome | None:
        return next((s for s in self.steps if s.status == "failed"), None)

    @property
    def success(self) -> bool:
        return all(s.status == "ok" for s in self.steps)


def _plain(value) -> object:
    inner = getattr(value, "value", value)
    return inner if isinstance(inner, (str, int, float, bool, type(None))) else str(inner)


def asset_of_step(step_key: str) -> str:
    """The graph's asset a step materialises: step keys are `<slug>__<asset>`."""
    return next((a for a in ALL_ASSETS if step_key == a or step_key.endswith(f"__{a}")), step_key)


def summarize_run(instance: DagsterInstance, run_id: str) -> RunSummary:
    """Steps are named by their asset (`raw_data`, ...), in lineage order: every step the run
    selected, those that never started as "skipped"."""
    run = instance.get_run_by_id(run_id)
    selected = {key.path[-1] for key in (run.asset_selection or ())} if run is not None else set()
    steps: dict[str, StepOutcome] = {
        name: StepOutcome(name) for name in ALL_ASSETS if not selected or name in selected
    }
    started: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        name = asset_of_step(event.step_key)
        step = steps.setdefault(name, StepOutcome(name))
        kind = event.event_type
        if kind == DagsterEventType.STEP_START:
            started[name] = entry.timestamp
        elif kind == DagsterEventType.STEP_UP_FOR_RETRY:
            # After the last retry Dagster reports only "Exceeded max_retries": keep the
            # error that caused the retries, to say what actually went wrong.
            retry_error = getattr(event.event_specific_data, "error", None)
            if retry_error is not None:
                step.retry_error = _error_message(retry_error)
                step.retries += 1
        elif kind in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            if name in started:
                step.seconds = entry.timestamp - started[name]
            if kind == DagsterEventType.STEP_SUCCESS:
                step.status = "ok"
            else:
                error = event.step_failure_data.error
                step.error = _error_message(error)
                if step.retry_error and "max_retries" in (step.error or ""):
                    step.error = f"{step.retry_error} (after {step.retries} retries)"
                step.status = "failed"
        elif kind == DagsterEventType.ASSET_CHECK_EVALUATION:
            data = event.asset_check_evaluation_data
            step.checks.append(
                CheckOutcome(
                    asset=data.asset_key.path[-1],
                    name=data.check_name,
                    passed=data.passed,
                    blocking=bool(data.blocking),
                    description=data.description or "",
                )
            )
        elif kind == DagsterEventType.ASSET_MATERIALIZATION:
            metadata = event.step_materialization_data.materialization.metadata
            step.metadata.update({k: _plain(v) for k, v in metadata.items()})
    for step in steps.values():
        if step.status == "failed" and any(c.blocking and not c.passed for c in step.checks):
            step.status = "blocked"
    ordered = [steps[s] for s in ALL_ASSETS if s in steps] + [
        s for k, s in steps.items() if k not in ALL_ASSETS
    ]
    return RunSummary(run_id=run_id, steps=ordered)


def _error_message(error) -> str:
    """The user-facing line of a step error, without the traceback."""
    if error is None:
        return "unknown error"
    # Dagster wraps user exceptions; the innermost cause carries the message we wrote.
    while error.cause is not None and error.cls_name in (
        "DagsterExecutionStepExecutionError",
        "DagsterUserCodeExecutionError",
        "DagsterResourceFunctionError",
        "DagsterExecutionLoadInputError",  # e.g. a snapshot that no longer matches its sha256
        "DagsterExecutionHandleOutputError",  # e.g. a full store
    ):
        error = error.cause
    message = error.message.strip().splitlines()[0] if error.message else error.cls_name
    # "dagster._core.definitions.events.Failure: text" -> "text"
    return re.sub(rf"^[\w.]*{re.escape(error.cls_name)}: ", "", message)
