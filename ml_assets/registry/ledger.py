"""The promotion ledger of a pipeline: one JSON line per promotion, refusal, wait, approval,
rejection or rollback, appended atomically to `<store>/<pipeline>/ledger.jsonl`.

No Dagster import: the CLI, the registration step and the decision job all write through here.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock

LEDGER_FILE = "ledger.jsonl"
ACTIONS = ("promoted", "refused", "waiting", "approved", "rejected", "rolled_back")
# The actions after which the version is the champion.
CHAMPION_ACTIONS = ("promoted", "approved", "rolled_back")
LOCK_SECONDS = 120
# MLflow keeps model-version tag values up to 5000 characters; a summary stays well below.
TAG_LIMIT = 500


class LedgerError(RuntimeError):
    """The ledger cannot be written; str() names the file and the reason."""


@dataclass(frozen=True)
class LedgerRead:
    """What reading the ledger found: its valid records, oldest first, and what it could not
    read (a torn last line, a line that is not a record), each named with its line number."""

    records: list[dict]
    problems: list[str] = field(default_factory=list)


class Ledger:
    """An append-only JSONL file. Each append is one `os.write` of one whole line on an
    O_APPEND descriptor, flushed to disk, under a file lock: a reader never sees a record
    half-written unless the writer was killed in the middle, and then only as a torn last line,
    which the next append cuts off before writing."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def _lock(self) -> FileLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerError(f"cannot create {self.path.parent}: {exc.strerror or exc}") from None
        return FileLock(f"{self.path}.lock", timeout=LOCK_SECONDS)

    def append(self, record: Mapping) -> dict:
        """Write `record` with the next `seq` and the current UTC `time`; returns it as written."""
        with self._lock():
            last = self._repair_torn_tail()
            written = {"seq": last + 1, "time": utc_now(), **_without(record, "seq", "time")}
            line = (json.dumps(written, ensure_ascii=False, default=str) + "\n").encode()
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    if os.write(fd, line) != len(line):
                        raise OSError("short write")
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise LedgerError(f"cannot append to the ledger {self.path}: {exc.strerror or exc}") from None
            return written

    def _repair_torn_tail(self) -> int:
        """Cut a torn last line off (held under the lock); the last record's seq, 0 if none."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return 0
        end = data.rfind(b"\n") + 1
        if end < len(data):
            with open(self.path, "r+b") as handle:
                handle.truncate(end)
                handle.flush()
                os.fsync(handle.fileno())
        records, _ = _parse(data[:end])
        return max((int(r.get("seq") or 0) for r in records), default=0)

    def read(self) -> LedgerRead:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return LedgerRead([])
        except OSError as exc:
            return LedgerRead([], [f"{self.path}: cannot be read: {exc.strerror or exc}"])
        records, problems = _parse(data)
        return LedgerRead(records, [f"{self.path}: {problem}" for problem in problems])

    def records(self) -> list[dict]:
        return self.read().records


def _parse(data: bytes) -> tuple[list[dict], list[str]]:
    records, problems = [], []
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        torn = number == len(lines)  # after the last newline: the writer never finished it
        try:
            record = json.loads(raw)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError:
            what = "a torn last line (a write was interrupted; the next append removes it)" if torn \
                else "not a ledger record"
            problems.append(f"line {number}: {what}: {raw[:80].decode(errors='replace')!r}")
            continue
        if torn:
            problems.append(f"line {number}: a torn last line (no line end; the next append removes it)")
            continue
        records.append(record)
    return records, problems


def _without(record: Mapping, *keys: str) -> dict:
    return {k: v for k, v in record.items() if k not in keys}


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def ledger_of(store_root: Path, pipeline: str) -> Ledger:
    """The ledger of one pipeline: `<store>/<pipeline>/ledger.jsonl`."""
    return Ledger(Path(store_root) / pipeline / LEDGER_FILE)


def decision_lock(store_root: Path, pipeline: str) -> FileLock:
    """Held around every read-check-write of a pipeline's aliases (register, approve, reject,
    rollback): two decisions at once take turns, and the second sees what the first did."""
    folder = Path(store_root) / pipeline
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder / ".decision.lock"), timeout=LOCK_SECONDS)


def record(*, pipeline: str, action: str, model_version: int | None, data_version: str | None,
           champion_before: int | None, champion_after: int | None, metrics: Mapping | None,
           comparison: Mapping | None, reason: str, actor: str) -> dict:
    """A ledger record without its seq and time (the append gives those)."""
    if action not in ACTIONS:
        raise ValueError(f"ledger action {action!r}: expected one of {', '.join(ACTIONS)}")
    return {
        "pipeline": pipeline,
        "action": action,
        "model_version": model_version,
        "data_version": data_version,
        "champion_before": champion_before,
        "champion_after": champion_after,
        "metrics": dict(metrics or {}),
        "comparison": dict(comparison) if comparison else None,
        "reason": reason,
        "actor": actor,
    }


def comparison_of(report: Mapping) -> dict | None:
    """The paired comparison of an evaluation report, as a ledger record keeps it."""
    paired = report.get("paired_comparison")
    if not paired:
        return None
    low, high = paired.get("ci_low"), paired.get("ci_high")
    return {
        "method": paired.get("method"),
        "difference": paired.get("difference"),
        "ci": None if low is None and high is None else [low, high],
        "verdict": paired.get("verdict"),
    }


def user_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        return os.environ.get("USER") or "unknown"


def cli_actor(command: str) -> str:
    """"ml-assets approve (alice)": a decision made from the command line."""
    return f"ml-assets {command} ({user_name()})"


def actor_of_run(tags: Mapping[str, str], run_id: str) -> str:
    """Who or what started a Dagster run, from its tags."""
    if tags.get("dagster/sensor_name"):
        return f"sensor {tags['dagster/sensor_name']}"
    if tags.get("dagster/schedule_name"):
        return f"schedule {tags['dagster/schedule_name']}"
    # `ml-assets run` tags every run it starts "cli", `ml-assets changed` "changed"
    command = {"cli": "run", "changed": "changed"}.get(tags.get("ml_assets/trigger", ""))
    if command:
        return f"ml-assets {command} ({tags.get('dagster/user') or user_name()})"
    if tags.get("dagster/backfill"):
        return f"backfill {tags['dagster/backfill']} ({tags.get('dagster/user') or 'unknown'})"
    return f"dagster UI (run {run_id}, {tags.get('dagster/user') or 'unknown'})"


def summary(entry: Mapping) -> str:
    """One line of a record, as an MLflow tag value and in messages."""
    text = (f"#{entry.get('seq')} {entry.get('time')} {entry.get('action')} by {entry.get('actor')}"
            f" (champion {_version(entry.get('champion_before'))} -> "
            f"{_version(entry.get('champion_after'))}): {entry.get('reason') or ''}")
    return text if len(text) <= TAG_LIMIT else text[: TAG_LIMIT - 3] + "..."


def _version(number) -> str:
    return "none" if number is None else f"v{number}"


def mirror_to_mlflow(client, model_name: str, entry: Mapping) -> str | None:
    """Set the record as tags of its model version (`ledger.<seq>`, `last_decision`). Best
    effort, after the file, which is the record: returns why it failed, or None."""
    version = entry.get("model_version")
    if version is None:
        return None
    try:
        text = summary(entry)
        client.set_model_version_tag(model_name, str(version), f"ledger.{entry['seq']}", text)
        client.set_model_version_tag(model_name, str(version), "last_decision", text)
    except Exception as exc:  # the registry being down must not undo a recorded decision
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


def markdown_table(records: list[Mapping], primary_metric: str | None = None, limit: int = 30) -> str:
    """The newest `limit` records as a markdown table (the UI's metadata)."""
    header = ["seq", "time", "action", "version", "data version", "champion",
              primary_metric or "metric", "by", "reason"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for entry in records[-limit:]:
        metric = (entry.get("metrics") or {}).get(primary_metric) if primary_metric else None
        cells = [entry.get("seq"), entry.get("time"), entry.get("action"),
                 _version(entry.get("model_version")), entry.get("data_version") or "",
                 f"{_version(entry.get('champion_before'))} → {_version(entry.get('champion_after'))}",
                 "" if metric is None else f"{float(metric):.4f}", entry.get("actor") or "",
                 entry.get("reason") or ""]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if len(rows) == 2:
        rows.append("| " + " | ".join([""] * len(header)) + " |")
    return "\n".join(rows)


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")
