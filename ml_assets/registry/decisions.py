"""Decisions on a pipeline's registered model versions after registration: approve or reject
the version waiting under `challenger`, roll `champion` back to an earlier champion; and the
ledger records of a registration. Each holds the pipeline's decision lock around reading the
aliases, checking and writing, records itself in the ledger and mirrors that to MLflow.

No Dagster import: used by `ml-assets approve|reject|rollback`, by the UI's decide job and by
the registration step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ml_assets.registry.ledger import (
    Ledger,
    comparison_of,
    decision_lock,
    ledger_of,
    mirror_to_mlflow,
    record,
)
from ml_assets.registry.registration import CHALLENGER_ALIAS, CHAMPION_ALIAS

WAITING_TAG_VALUE = "waiting for approval"
# Model-version tag `promotion`: what became of the version (set at registration, then here).
PROMOTED, NOT_PROMOTED, REJECTED = "champion", "not promoted", "rejected"


class DecisionRefused(Exception):
    """A decision that cannot be made; str() names the version and why."""


@dataclass(frozen=True)
class DecisionHome:
    """Where one pipeline's decisions are read and written: its MLflow registered model, its
    ledger and its decision lock in the store."""

    pipeline: str
    tracking_uri: str
    store_root: Path

    def client(self):
        from ml_assets.registry.mlflow_wiring import RegisteredModel

        return RegisteredModel(self.tracking_uri, self.pipeline).client()

    @property
    def ledger(self) -> Ledger:
        return ledger_of(self.store_root, self.pipeline)

    def lock(self):
        return decision_lock(self.store_root, self.pipeline)


@dataclass
class Decision:
    """A decision made: its ledger record (as written), what to announce, and any warning
    (the MLflow mirror of the record failed)."""

    record: dict
    event: str
    message: str
    warnings: list[str] = field(default_factory=list)


Notify = Callable[[str, str, "str | None"], None]  # (event, message, data version)


def aliases(client, pipeline: str) -> dict[str, int]:
    """{alias: version} of the pipeline's registered model; refused when it has none yet."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(pipeline)
    except MlflowException:
        raise DecisionRefused(f"model {pipeline} has no registered version yet") from None
    return {alias: int(version) for alias, version in (model.aliases or {}).items()}


def _model_version(client, pipeline: str, version: int):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(pipeline, str(version))
    except MlflowException:
        known = _known_versions(client, pipeline)
        listing = ", ".join(str(v) for v in known) if known else "none"
        raise DecisionRefused(
            f"version {version} is unknown: model {pipeline} has the versions {listing}"
        ) from None


def _known_versions(client, pipeline: str) -> list[int]:
    try:
        found = client.search_model_versions(f"name = '{pipeline}'")
    except Exception:
        return []
    return sorted(int(mv.version) for mv in found)


def _metrics(model_version) -> dict[str, float]:
    return {k.removeprefix("metric."): float(v) for k, v in model_version.tags.items()
            if k.startswith("metric.")}


def _last_record_of(records: list[dict], version: int, actions=None) -> dict | None:
    for entry in reversed(records):
        if entry.get("model_version") == version and (actions is None or entry.get("action") in actions):
            return entry
    return None


def _write(home: DecisionHome, client, entry: dict) -> tuple[dict, list[str]]:
    written = home.ledger.append(entry)
    problem = mirror_to_mlflow(client, home.pipeline, written)
    warnings = [] if problem is None else [
        f"recorded in {home.ledger.path}, but not mirrored to MLflow's tags: {problem}"]
    return written, warnings


def _rejection(records: list[dict], model_version) -> str | None:
    """Why the version was rejected, or None when it never was."""
    entry = _last_record_of(records, int(model_version.version), ("rejected",))
    if entry is not None:
        return entry.get("reason") or "no reason given"
    if model_version.tags.get("promotion") == REJECTED:
        return model_version.tags.get("promotion_reason") or "no reason given"
    return None


def approve(home: DecisionHome, version: int, *, actor: str, reason: str = "",
            notify: Notify | None = None) -> Decision:
    """Make the waiting `challenger` VERSION the champion, if the champion is still the one
    it was evaluated against."""
    client = home.client()
    with home.lock():
        current = aliases(client, home.pipeline)
        model_version = _model_version(client, home.pipeline, version)
        records = home.ledger.records()
        rejected = _rejection(records, model_version)
        if rejected is not None:
            raise DecisionRefused(f"version {version} was rejected ({rejected}): it can never be approved")
        challenger, champion = current.get(CHALLENGER_ALIAS), current.get(CHAMPION_ALIAS)
        if challenger != version:
            raise DecisionRefused(f"version {version} is not waiting for approval "
                                  f"(challenger: {_name(challenger)})")
        evaluated = _evaluated_against(client, model_version)
        if evaluated != champion:
            raise DecisionRefused(
                f"the champion changed from {_name(evaluated)} to {_name(champion)} since version "
                f"{version} was evaluated; re-run its evaluation"
            )
        client.set_registered_model_alias(home.pipeline, CHAMPION_ALIAS, str(version))
        client.delete_registered_model_alias(home.pipeline, CHALLENGER_ALIAS)
        client.set_model_version_tag(home.pipeline, str(version), "promotion", PROMOTED)
        waited = _last_record_of(records, version, ("waiting",)) or {}
        entry, warnings = _write(home, client, record(
            pipeline=home.pipeline, action="approved", model_version=version,
            data_version=model_version.tags.get("data_version"), champion_before=champion,
            champion_after=version, metrics=_metrics(model_version),
            comparison=waited.get("comparison"),
            reason=reason or f"approved; evaluated against champion {_name(champion)}",
            actor=actor,
        ))
    message = (f"{home.pipeline} version {version} is the new champion (was {_name(champion)}), "
               f"approved by {actor}")
    return _announce(Decision(entry, "promoted", message, warnings), notify)


def reject(home: DecisionHome, version: int, *, actor: str, reason: str,
           notify: Notify | None = None) -> Decision:
    """Remove the waiting `challenger` VERSION for good: it can never be approved or rolled
    back to."""
    if not reason.strip():
        raise DecisionRefused("a rejection needs a reason (--reason TEXT)")
    client = home.client()
    with home.lock():
        current = aliases(client, home.pipeline)
        model_version = _model_version(client, home.pipeline, version)
        challenger, champion = current.get(CHALLENGER_ALIAS), current.get(CHAMPION_ALIAS)
        if challenger != version:
            raise DecisionRefused(f"version {version} is not waiting for approval "
                                  f"(challenger: {_name(challenger)})")
        client.delete_registered_model_alias(home.pipeline, CHALLENGER_ALIAS)
        client.set_model_version_tag(home.pipeline, str(version), "promotion", REJECTED)
        client.set_model_version_tag(home.pipeline, str(version), "promotion_reason", f"rejected: {reason}")
        entry, warnings = _write(home, client, record(
            pipeline=home.pipeline, action="rejected", model_version=version,
            data_version=model_version.tags.get("data_version"), champion_before=champion,
            champion_after=champion, metrics=_metrics(model_version), comparison=None,
            reason=reason, actor=actor,
        ))
    message = f"{home.pipeline} version {version} was rejected by {actor}: {reason}"
    return _announce(Decision(entry, "rejected", message, warnings), notify)


def rollback(home: DecisionHome, to: int | None = None, *, actor: str, reason: str = "",
             notify: Notify | None = None) -> Decision:
    """Move `champion` back: to `to`, which must have been champion once, or by default to the
    champion before the current one."""
    client = home.client()
    with home.lock():
        champion = aliases(client, home.pipeline).get(CHAMPION_ALIAS)
        if champion is None:
            raise DecisionRefused(f"model {home.pipeline} has no champion to roll back from")
        records = home.ledger.records()
        if to is None:
            target = _default_target(records, client, home.pipeline, champion)
            if target is None:
                raise DecisionRefused(f"no earlier champion to roll back to: version {champion} "
                                      f"is the first champion of {home.pipeline}")
        else:
            target = to
        model_version = _model_version(client, home.pipeline, target)
        _check_rollback_target(records, model_version, champion)
        client.set_registered_model_alias(home.pipeline, CHAMPION_ALIAS, str(target))
        entry, warnings = _write(home, client, record(
            pipeline=home.pipeline, action="rolled_back", model_version=target,
            data_version=model_version.tags.get("data_version"), champion_before=champion,
            champion_after=target, metrics=_metrics(model_version), comparison=None,
            reason=reason or f"rolled back from version {champion} to version {target}",
            actor=actor,
        ))
    message = (f"{home.pipeline} rolled back: version {target} is the champion again "
               f"(was version {champion}), by {actor}"
               + (f": {reason}" if reason else ""))
    return _announce(Decision(entry, "rolled back", message, warnings), notify)


def _check_rollback_target(records: list[dict], model_version, champion: int) -> None:
    version = int(model_version.version)
    if version == champion:
        raise DecisionRefused(f"version {version} is already the champion")
    rejected = _rejection(records, model_version)
    if rejected is not None:
        raise DecisionRefused(f"version {version} was rejected ({rejected}): it can never be "
                              "rolled back to")
    if _was_champion(records, model_version):
        return
    last = _last_record_of(records, version)
    if (last or {}).get("action") == "waiting" or model_version.tags.get("promotion") == WAITING_TAG_VALUE:
        raise DecisionRefused(f"version {version} was never champion: it is waiting for approval "
                              f"(ml-assets approve {version})")
    recorded = (last or {}).get("reason") or model_version.tags.get("promotion_reason") or "no reason recorded"
    raise DecisionRefused(f"version {version} never passed its gates: not promoted: "
                          + recorded.removeprefix("not promoted: "))


def _was_champion(records: list[dict], model_version) -> bool:
    version = int(model_version.version)
    if _last_record_of(records, version, ("promoted", "approved")) is not None:
        return True
    # a version promoted before the ledger existed: its registration tag says so
    return model_version.tags.get("promotion") == PROMOTED


def champion_stack(records: list[dict]) -> list[int]:
    """The champions in the order they took over, replaying the ledger: a promotion or an
    approval pushes its version; a rollback to a version on the stack undoes everything after
    it, one to a version off the stack pushes it."""
    stack: list[int] = []
    for entry in records:
        version, action = entry.get("model_version"), entry.get("action")
        if version is None:
            continue
        if action in ("promoted", "approved"):
            stack.append(version)
        elif action == "rolled_back":
            if version in stack:
                del stack[stack.index(version) + 1:]
            else:
                stack.append(version)
    return stack


def previous_champion(records: list[dict], champion: int) -> int | None:
    """The champion before `champion` by the ledger, or None when the ledger knows none."""
    stack = champion_stack(records)
    if not stack or stack[-1] != champion:
        return None
    return stack[-2] if len(stack) > 1 else None


def _default_target(records: list[dict], client, pipeline: str, champion: int) -> int | None:
    stack = champion_stack(records)
    if stack and stack[-1] == champion:
        return previous_champion(records, champion)
    # the ledger does not know how this champion took over (a home older than the ledger)
    return _previous_by_tags(client, pipeline, champion)


def _previous_by_tags(client, pipeline: str, champion: int) -> int | None:
    """For a home without ledger records: the newest earlier version tagged as promoted."""
    try:
        found = client.search_model_versions(f"name = '{pipeline}'")
    except Exception:
        return None
    earlier = [int(mv.version) for mv in found
               if int(mv.version) < champion and mv.tags.get("promotion") == PROMOTED]
    return max(earlier, default=None)


def _evaluated_against(client, model_version) -> int | None:
    """The champion the version's evaluation compared with: its `evaluated_against` tag
    (written at registration), else its run's evaluation_report.json."""
    tag = model_version.tags.get("evaluated_against")
    if tag is not None:
        return None if tag in ("", "none") else int(tag)
    report = _run_report(client, model_version.run_id)
    return ((report or {}).get("champion") or {}).get("version")


def _run_report(client, run_id: str) -> dict | None:
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, "evaluation_report.json", tmp)
            return json.loads(Path(path).read_text())
        except Exception:  # no such artifact: the version predates the report
            return None


def _name(version: int | None) -> str:
    return "none" if version is None else str(version)


def _announce(decision: Decision, notify: Notify | None) -> Decision:
    if notify is not None:
        notify(decision.event, decision.message, decision.record.get("data_version"))
    return decision


def registration_records(outcome: Mapping, report: Mapping, *, pipeline: str, actor: str,
                         champion_before: int | None) -> list[dict]:
    """The ledger records of one registration (without seq and time): the older challenger a
    new one replaced, then the version's own: promoted, waiting or refused."""
    version, key = outcome["version"], outcome["data_version"]
    records = []
    superseded = outcome.get("superseded")
    if superseded is not None:
        records.append(record(
            pipeline=pipeline, action="refused", model_version=superseded["version"],
            data_version=superseded.get("data_version"), champion_before=champion_before,
            champion_after=champion_before, metrics=superseded.get("metrics"), comparison=None,
            reason=f"superseded by version {version} while waiting for approval", actor=actor,
        ))
    if outcome.get("waiting"):
        action, after = "waiting", champion_before
    elif outcome["promoted"]:
        action, after = "promoted", version
    else:
        action, after = "refused", champion_before
    records.append(record(
        pipeline=pipeline, action=action, model_version=version, data_version=key,
        champion_before=champion_before, champion_after=after, metrics=report.get("metrics"),
        comparison=comparison_of(report), reason=outcome["reason"], actor=actor,
    ))
    return records


def write_records(home: DecisionHome, client, entries: list[dict]) -> tuple[list[dict], list[str]]:
    """Append each record and mirror it to MLflow; (the records as written, warnings)."""
    written, warnings = [], []
    for entry in entries:
        done, problems = _write(home, client, entry)
        written.append(done)
        warnings.extend(problems)
    return written, warnings
