"""The promotion ledger file: appends and reads, a torn last line left by a process killed in
the middle of appending (a real SIGKILL, and a cut-off line), concurrent appends from two
processes, and who a run's actor is."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ml_assets.registry.ledger import (
    Ledger,
    actor_of_run,
    comparison_of,
    ledger_of,
    markdown_table,
    record,
)

APPEND_LOOP = """
import sys, time
from ml_assets.registry.ledger import Ledger, record
ledger, name, count, pause = Ledger(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
for i in range(count):
    time.sleep(pause)  # lets the other writer take the lock in between
    ledger.append(record(pipeline="bc", action="refused", model_version=i, data_version=name,
                         champion_before=None, champion_after=None, metrics={"roc_auc": 0.9},
                         comparison=None, reason="x" * 2000, actor=name))
"""


def entry(version: int, action: str = "promoted", **fields) -> dict:
    given = {"pipeline": "bc", "action": action, "model_version": version,
             "data_version": f"v{version}-abc", "champion_before": None, "champion_after": version,
             "metrics": {"roc_auc": 0.99}, "comparison": None, "reason": "passed every gate",
             "actor": "sensor bc__new_data_sensor"}
    return record(**{**given, **fields})


def appender(path, name: str, count: int, pause: float = 0.0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", APPEND_LOOP, str(path), name, str(count), str(pause)])


def lines_of(path) -> list[dict]:
    """Every line of the file parsed: fails on anything that is not a whole JSON record."""
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.decode().splitlines()]


def test_append_numbers_and_timestamps_records_one_json_line_each(tmp_path):
    ledger = ledger_of(tmp_path / "store", "bc")
    assert ledger.path == tmp_path / "store" / "bc" / "ledger.jsonl"
    assert ledger.records() == []
    first = ledger.append(entry(1))
    second = ledger.append(entry(2, action="refused"))
    assert (first["seq"], second["seq"]) == (1, 2)
    assert first["time"].endswith("+00:00") and first["time"][10] == "T"
    assert list(first)[:4] == ["seq", "time", "pipeline", "action"]
    assert ledger.records() == [first, second] == lines_of(ledger.path)
    assert ledger.read().problems == []


def test_a_record_with_an_unknown_action_is_refused():
    with pytest.raises(ValueError, match="ledger action 'promote': expected one of promoted, refused"):
        entry(1, action="promote")


def test_a_torn_last_line_is_reported_and_cut_off_by_the_next_append(tmp_path):
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.append(entry(1))
    ledger.append(entry(2))
    whole = ledger.path.read_bytes()
    ledger.path.write_bytes(whole + b'{"seq": 3, "time": "2026-')  # a writer killed mid-line
    read = ledger.read()
    assert [r["seq"] for r in read.records] == [1, 2]
    [problem] = read.problems
    assert f"{ledger.path}: line 3: a torn last line" in problem
    third = ledger.append(entry(3))
    assert third["seq"] == 3
    assert [r["seq"] for r in lines_of(ledger.path)] == [1, 2, 3]
    assert ledger.read().problems == []


def test_a_line_that_is_not_a_record_is_reported_with_its_number(tmp_path):
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.append(entry(1))
    with open(ledger.path, "ab") as handle:
        handle.write(b"not json\n")
    ledger.append(entry(2))
    read = ledger.read()
    assert [r["seq"] for r in read.records] == [1, 2]
    assert read.problems == [f"{ledger.path}: line 2: not a ledger record: 'not json'"]


def test_a_process_killed_while_appending_leaves_a_readable_ledger(tmp_path):
    ledger = Ledger(tmp_path / "ledger.jsonl")
    process = appender(ledger.path, "killed", 100_000)
    try:
        deadline = time.monotonic() + 60
        while (not ledger.path.exists() or ledger.path.stat().st_size < 200_000) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    read = ledger.read()
    assert len(read.records) >= 50
    assert [r["seq"] for r in read.records] == list(range(1, len(read.records) + 1))
    assert all(p.split(": ", 2)[1] == f"line {len(read.records) + 1}" for p in read.problems)
    after = ledger.append(entry(7))
    assert after["seq"] == len(read.records) + 1
    assert [r["seq"] for r in lines_of(ledger.path)] == list(range(1, after["seq"] + 1))


def test_two_processes_appending_at_once_keep_every_record(tmp_path):
    ledger = Ledger(tmp_path / "ledger.jsonl")
    both = [appender(ledger.path, name, 300, pause=0.002) for name in ("first", "second")]
    for process in both:
        assert process.wait(timeout=120) == 0
    records = lines_of(ledger.path)
    assert [r["seq"] for r in records] == list(range(1, 601))
    for name in ("first", "second"):
        assert [r["model_version"] for r in records if r["actor"] == name] == list(range(300))
    # they did write at the same time: the two writers' records interleave
    changes = sum(a["actor"] != b["actor"] for a, b in zip(records, records[1:], strict=False))
    assert changes > 1


def test_the_actor_of_a_run_comes_from_its_tags():
    assert actor_of_run({"dagster/sensor_name": "bc__new_data_sensor"}, "r1") == "sensor bc__new_data_sensor"
    assert actor_of_run({"dagster/schedule_name": "bc__weekly_retrain"}, "r1") == "schedule bc__weekly_retrain"
    assert actor_of_run({"ml_assets/trigger": "cli", "dagster/user": "ann"}, "r1") == "ml-assets run (ann)"
    assert actor_of_run({"ml_assets/trigger": "changed", "dagster/user": "ann"}, "r1") == "ml-assets changed (ann)"
    assert actor_of_run({"dagster/user": "ann@example.com"}, "r1") == "dagster UI (run r1, ann@example.com)"
    assert actor_of_run({}, "r2") == "dagster UI (run r2, unknown)"


def test_comparison_and_markdown_table():
    report = {"paired_comparison": {"method": "bootstrap", "difference": 0.01, "ci_low": -0.002,
                                    "ci_high": 0.02, "confidence": 0.95, "verdict": "not worse"}}
    assert comparison_of(report) == {"method": "bootstrap", "difference": 0.01,
                                     "ci": [-0.002, 0.02], "verdict": "not worse"}
    assert comparison_of({}) is None
    table = markdown_table([{"seq": 1, **entry(2, reason="a | b")}], "roc_auc")
    assert table.splitlines()[0].startswith("| seq | time | action | version |")
    assert "| promoted | v2 | v2-abc | none → v2 | 0.9900 | sensor bc__new_data_sensor | a \\| b |" in table
