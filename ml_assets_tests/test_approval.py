"""`promotion: manual` end to end through `ml-assets run`, `approve`, `reject` and the UI's
decide job: a version that passed waits under `challenger`, a newer one replaces it, two
approvals at once cannot both win, approval is refused once the champion changed, a rejected
version can never come back; the ledger and `ml-assets history` tell the story with its actors.

One home for the module: four linear models on breast cancer variants, trained by three runs
of `ml-assets run`; every decision is a real subprocess (two at once for the race).
"""

import json
import re
import subprocess
import sys

import dagster as dg
import pytest

from ml_assets.demo.simulator import make_version
from ml_assets.graph import REGISTERED_MODEL_VERSION
from ml_assets.registry.ledger import ledger_of
from ml_assets_tests.conftest import DATASETS, WebhookServer, breast_cancer, make_project
from ml_assets_tests.test_cli import cli

PIPELINE = {**DATASETS["breast_cancer"][1], "model": {"estimator": "linear"}, "promotion": "manual"}


class Story:
    """The home, and what each step of the story answered, by name."""

    def __init__(self, project, webhook):
        self.project, self.webhook = project, webhook
        self.steps: dict[str, subprocess.CompletedProcess] = {}
        self.aliases: dict[str, dict] = {}
        self.messages: dict[str, list[str]] = {}

    @property
    def environ(self) -> dict:
        return {"DAGSTER_HOME": str(self.project.root / "dagster_home"),
                "ML_ASSETS_HOME": str(self.project.env.home), "ML_ASSETS_WEBHOOK_URL": self.webhook.url}

    def step(self, name: str, *args: str):
        before = len(self.webhook.received)
        self.steps[name] = result = cli(self.project.root, *args, env=self.environ)
        self.aliases[name] = self.current_aliases()
        self.messages[name] = self.webhook.texts()[before:]
        return result

    def current_aliases(self) -> dict:
        client = self.project.registry().client()
        return {k: int(v) for k, v in client.get_registered_model("bc").aliases.items()}

    def approve_twice_at_once(self, version: str) -> list[subprocess.CompletedProcess]:
        command = [sys.executable, "-m", "ml_assets.cli", "approve", version]
        import os

        environ = {k: v for k, v in os.environ.items() if not k.startswith(("ML_ASSETS_", "MLFLOW_", "DAGSTER_"))}
        environ.update(self.environ)
        both = [subprocess.Popen(command, cwd=self.project.root, env=environ, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        done = []
        for process in both:
            out, err = process.communicate(timeout=300)
            done.append(subprocess.CompletedProcess(command, process.returncode, out, err))
        self.aliases["race"] = self.current_aliases()
        return done

    def ledger(self) -> list[dict]:
        return ledger_of(self.project.env.store_root, "bc").records()


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    root = tmp_path_factory.mktemp("approval")
    project = make_project(root, "bc", **PIPELINE)
    webhook = WebhookServer()
    story = Story(project, webhook)
    base = breast_cancer()
    try:
        project.drop("v1.csv", base)
        story.step("run v1", "run")                     # version 1 waits: there is no champion
        story.step("status", "status", "--json")
        story.step("approve 1", "approve", "1")
        project.drop("v2.csv", make_version(base, seed=2, drift=False))
        project.drop("v3.csv", make_version(base, seed=3, drift=False))
        story.step("run v2 v3", "run")                  # 2 waits, then 3 replaces it
        story.step("approve 2", "approve", "2")
        story.race = story.approve_twice_at_once("3")
        project.drop("v4.csv", make_version(base, seed=4, drift=False))
        story.step("run v4", "run")                     # 4 waits, evaluated against 3
        story.ui_rollback = decide_in_ui(project, {"action": "rollback"}, user="alice")
        story.aliases["ui rollback"] = story.current_aliases()
        story.step("approve 4", "approve", "4")         # the champion is 1 now, not 3
        story.step("reject 4", "reject", "4", "--reason", "slower than the champion on Mondays")
        story.step("approve 4 again", "approve", "4")
        story.step("rollback to 4", "rollback", "--to", "4")
        story.step("rollback to 2", "rollback", "--to", "2")
        story.ui_refused = decide_in_ui(project, {"action": "approve", "version": 4}, user="bob")
        story.step("history", "history")
        story.step("history json", "history", "--json")
        yield story
    finally:
        webhook.close()


def decide_in_ui(project, config: dict, user: str):
    """The decide job as the UI launches it, on the instance the CLI uses."""
    instance = dg.DagsterInstance.from_config(str(project.root / "dagster_home"))
    try:
        job = project.defs().resolve_job_def(project.names.decide_job)
        result = job.execute_in_process(
            run_config={"ops": {f"{project.names.slug}__decide": {"config": config}}},
            instance=instance, raise_on_error=False, tags={"dagster/user": user},
        )
        failure = next((e.event_specific_data.error.message for e in result.all_events
                        if e.event_type == dg.DagsterEventType.STEP_FAILURE), "")
        observations = [e.event_specific_data.asset_observation for e in result.all_events
                        if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION]
        return result.success, result.run_id, failure, observations
    finally:
        instance.dispose()


def test_a_version_that_passed_waits_as_challenger_and_is_announced(story):
    run = story.steps["run v1"]
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"registered_model_version +ok .* version 1: waiting for approval \(alias "
                     r"challenger\): no champion yet", run.stdout), run.stdout
    assert "=> registered bc version 1; it waits for approval: ml-assets approve 1\n" in run.stdout
    assert story.aliases["run v1"] == {"challenger": 1}
    assert any("bc version 1 waits for approval: ml-assets approve 1 --pipeline bc" in text
               and text.startswith("[ml_assets] waiting for approval: pipeline bc")
               for text in story.messages["run v1"]), story.messages["run v1"]
    status = json.loads(story.steps["status"].stdout)
    assert status["champion"] is None and status["challenger"]["version"] == 1
    assert [v["status"] for v in status["versions"]] == ["challenger"]
    client = story.project.registry().client()
    assert client.get_model_version("bc", "1").tags["evaluated_against"] == "none"


def test_approve_makes_the_challenger_champion(story):
    approve = story.steps["approve 1"]
    assert approve.returncode == 0, approve.stderr
    assert approve.stdout.startswith("bc version 1 is the new champion (was none), approved by ml-assets approve (")
    assert story.aliases["approve 1"] == {"champion": 1}
    [text] = story.messages["approve 1"]
    assert text.startswith("[ml_assets] promoted: pipeline bc, data version v1-") and "bc version 1 is the new champion" in text


def test_a_newer_challenger_replaces_the_older_and_only_the_challenger_can_be_approved(story):
    run = story.steps["run v2 v3"]
    assert run.returncode == 0, run.stdout + run.stderr
    assert story.aliases["run v2 v3"] == {"champion": 1, "challenger": 3}
    refused = story.steps["approve 2"]
    assert refused.returncode == 1
    assert refused.stderr.strip() == "refused: version 2 is not waiting for approval (challenger: 3)"
    assert story.aliases["approve 2"] == {"champion": 1, "challenger": 3}


def test_two_approvals_at_once_one_wins_the_other_is_refused(story):
    codes = sorted(result.returncode for result in story.race)
    assert codes == [0, 1], [r.stderr for r in story.race]
    loser = next(result for result in story.race if result.returncode == 1)
    assert loser.stderr.strip() == "refused: version 3 is not waiting for approval (challenger: none)"
    assert story.aliases["race"] == {"champion": 3}
    approvals = [r for r in story.ledger() if r["action"] == "approved" and r["model_version"] == 3]
    assert len(approvals) == 1 and approvals[0]["champion_before"] == 1


def test_approval_is_refused_when_the_champion_changed_since_the_evaluation(story):
    assert story.aliases["run v4"] == {"champion": 3, "challenger": 4}
    success, run_id, _, observations = story.ui_rollback
    assert success and story.aliases["ui rollback"] == {"champion": 1, "challenger": 4}
    back = next(r for r in story.ledger() if r["action"] == "rolled_back")
    assert back["actor"] == f"dagster UI (run {run_id}, alice)"
    assert (back["champion_before"], back["champion_after"]) == (3, 1)
    assert observations[0].metadata["action"].value == "rolled_back"
    refused = story.steps["approve 4"]
    assert refused.returncode == 1
    assert refused.stderr.strip() == ("refused: the champion changed from 3 to 1 since version 4 "
                                      "was evaluated; re-run its evaluation")
    assert story.aliases["approve 4"] == {"champion": 1, "challenger": 4}


def test_a_rejected_version_can_never_be_approved_nor_rolled_back_to(story):
    reject = story.steps["reject 4"]
    assert reject.returncode == 0, reject.stderr
    assert story.aliases["reject 4"] == {"champion": 1}
    assert story.messages["reject 4"][0].startswith("[ml_assets] rejected: pipeline bc")
    assert story.steps["approve 4 again"].stderr.startswith(
        "refused: version 4 was rejected (slower than the champion on Mondays): it can never be approved")
    assert story.steps["rollback to 4"].stderr.startswith("refused: version 4 was rejected")
    success, _, failure, _ = story.ui_refused
    assert not success and "refused: version 4 was rejected" in failure
    assert story.steps["rollback to 2"].stderr.strip() == (
        "refused: version 2 never passed its gates: not promoted: superseded by version 3 while "
        "waiting for approval")
    assert story.current_aliases() == {"champion": 1}


def test_the_ledger_and_history_tell_the_story_in_order_with_actors(story):
    records = json.loads(story.steps["history json"].stdout)
    assert records["pipeline"] == "bc"
    told = [(r["seq"], r["action"], r["model_version"], r["champion_before"], r["champion_after"])
            for r in records["records"]]
    assert told == [
        (1, "waiting", 1, None, None), (2, "approved", 1, None, 1),
        (3, "waiting", 2, 1, 1), (4, "refused", 2, 1, 1), (5, "waiting", 3, 1, 1),
        (6, "approved", 3, 1, 3), (7, "waiting", 4, 3, 3), (8, "rolled_back", 1, 3, 1),
        (9, "rejected", 4, 1, 1),
    ]
    actors = [r["actor"] for r in records["records"]]
    assert all(re.fullmatch(r"ml-assets run \(.+\)", actors[i]) for i in (0, 2, 3, 4, 6))
    assert re.fullmatch(r"ml-assets approve \(.+\)", actors[1]) and actors[8].startswith("ml-assets reject (")
    assert actors[7].startswith("dagster UI (run ")
    assert records["records"][8]["reason"] == "slower than the champion on Mondays"
    waiting = records["records"][4]
    assert waiting["comparison"]["method"] and waiting["comparison"]["verdict"]
    assert set(waiting["metrics"]) >= {"roc_auc", "accuracy"}

    lines = story.steps["history"].stdout.splitlines()
    assert len(lines) == 9
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  waiting     v1  data 'v1-[0-9a-f]{12}'  "
                        r"roc_auc 0\.\d{3}  by ml-assets run \(.+\): waiting for approval .*", lines[0]), lines[0]
    assert re.search(r"  rolled_back v1  data 'v1-[0-9a-f]{12}'  roc_auc 0\.\d{3}  by dagster UI "
                     r"\(run [0-9a-f-]+, alice\): rolled back from version 3 to version 1$", lines[7]), lines[7]
    # each record mirrored to its model version in MLflow
    tags = story.project.registry().client().get_model_version("bc", "4").tags
    assert tags["last_decision"].startswith("#9 ") and "rejected" in tags["last_decision"]
    assert tags["promotion"] == "rejected"


def test_the_registration_asset_shows_the_ledger(story):
    instance = dg.DagsterInstance.from_config(str(story.project.root / "dagster_home"))
    try:
        [record] = instance.fetch_materializations(
            story.project.names.key(REGISTERED_MODEL_VERSION), limit=1).records
    finally:
        instance.dispose()
    metadata = record.event_log_entry.asset_materialization.metadata
    assert metadata["alias"].value == "challenger" and metadata["waiting_for_approval"].value is True
    assert "| 7 |" in metadata["ledger"].value and "| waiting | v4 |" in metadata["ledger"].value
