"""`ml-assets history` over a folder of two pipelines: one line per record oldest first, JSON for
one pipeline or for all, a torn last line reported on stderr while the rest is printed, and the
usage errors of the decision commands (which pipeline, unknown name, nothing registered yet).

No model is trained: the ledgers are written as registration and the decisions write them.
"""

import json
import re

import pytest
import yaml

from ml_assets.registry.ledger import ledger_of, record
from ml_assets_tests.conftest import DATASETS
from ml_assets_tests.test_cli import cli

STORE = (".ml_assets", "store")  # the store of a home found from the working folder


def entry(action: str, version: int, before, after, reason: str, actor: str, roc_auc=0.98765) -> dict:
    return record(
        pipeline="breast_cancer", action=action, model_version=version,
        data_version=f"v{version}-0123456789ab", champion_before=before, champion_after=after,
        metrics={"roc_auc": roc_auc, "accuracy": 0.95}, reason=reason, actor=actor,
        comparison={"method": "bootstrap", "difference": 0.004, "ci": [-0.001, 0.009],
                    "verdict": "not worse"} if before else None,
    )


@pytest.fixture
def team(tmp_path):
    folder = tmp_path / "pipelines"
    folder.mkdir()
    for name in ("breast_cancer", "wine"):
        (folder / f"{name}.yaml").write_text(yaml.safe_dump({"name": name, **DATASETS[name][1]}))
    ledger = ledger_of(tmp_path.joinpath(*STORE), "breast_cancer")
    ledger.append(entry("promoted", 1, None, 1, "promoted: no champion yet",
                        "sensor breast_cancer__new_data_sensor"))
    ledger.append(entry("refused", 2, 1, 1, "not promoted: roc_auc 0.912 is worse than the champion's",
                        "ml-assets run (ann)", roc_auc=0.912))
    ledger.append(entry("rolled_back", 1, 2, 1, "rolled back from version 2 to version 1",
                        "dagster UI (run 1b2c, bob)"))
    return tmp_path


def test_history_prints_one_line_per_record_oldest_first(team):
    result = cli(team, "history", "--pipeline", "breast_cancer")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"

    assert re.fullmatch(stamp + r"  promoted    v1  data 'v1-0123456789ab'  roc_auc 0\.988  by sensor "
                        r"breast_cancer__new_data_sensor: promoted: no champion yet", lines[0]), lines[0]
    assert lines[1].endswith("  refused     v2  data 'v2-0123456789ab'  roc_auc 0.912  by ml-assets run (ann): "
                             "not promoted: roc_auc 0.912 is worse than the champion's")
    assert lines[2].endswith("  rolled_back v1  data 'v1-0123456789ab'  roc_auc 0.988  by dagster UI "
                             "(run 1b2c, bob): rolled back from version 2 to version 1")
    assert len(lines) == 3


def test_history_json_and_the_pipeline_named_when_there_are_several(team):
    one = cli(team, "history", "--json", "--pipeline", "breast_cancer")
    assert one.returncode == 0, one.stderr
    told = json.loads(one.stdout)
    assert told["pipeline"] == "breast_cancer"
    assert [(r["seq"], r["action"], r["model_version"]) for r in told["records"]] == [
        (1, "promoted", 1), (2, "refused", 2), (3, "rolled_back", 1)]
    assert told["records"][1]["comparison"]["verdict"] == "not worse"
    assert told["records"][2]["time"].endswith("+00:00")

    unnamed = cli(team, "history", "--json")
    assert unnamed.returncode == 2 and "name one with --pipeline NAME" in unnamed.stderr

    text = cli(team, "history", "--pipeline", "wine")
    assert text.returncode == 0 and text.stdout == "no promotion recorded yet for wine\n"


def test_a_torn_last_line_is_reported_on_stderr_and_the_rest_printed(team):
    ledger = ledger_of(team.joinpath(*STORE), "breast_cancer")
    with open(ledger.path, "ab") as handle:  # what a writer killed in the middle leaves
        handle.write(b'{"seq": 4, "time": "2026-12-04T10:0')
    result = cli(team, "history", "--json", "--pipeline", "breast_cancer")
    assert result.returncode == 0
    assert [r["seq"] for r in json.loads(result.stdout)["records"]] == [1, 2, 3]
    assert result.stderr.startswith(f"warning: {ledger.path}: line 4: a torn last line")


def test_decisions_need_the_pipeline_named_and_something_to_decide_on(team):
    unnamed = cli(team, "approve", "3")
    assert unnamed.returncode == 2
    assert "2 pipelines in the pipelines folder" in unnamed.stderr
    assert "name one with --pipeline NAME" in unnamed.stderr
    unknown = cli(team, "history", "--pipeline", "nope")
    assert unknown.returncode == 2 and "no pipeline named 'nope'" in unknown.stderr
    nothing = cli(team, "rollback", "--pipeline", "wine")
    assert nothing.returncode == 1
    assert nothing.stderr == "refused: model wine has no registered version yet\n"
