"""`ml-assets rollback`: back to the previous champion or to one named, the refusals (unknown,
never passed its gates, already champion, no earlier champion), the ledger records and the
observation the Dagster UI shows; and a version refused at registration because the champion
changed after it was evaluated.

One home for the module (three linear models on breast cancer variants, trained in-process
on a real Dagster instance the CLI subprocesses share through DAGSTER_HOME).
"""

import re

import dagster as dg
import pytest

from ml_assets.demo.simulator import make_version
from ml_assets.graph import ALL_ASSETS, REGISTERED_MODEL_VERSION
from ml_assets.registry.ledger import ledger_of
from ml_assets_tests.conftest import DATASETS, breast_cancer, make_project, run_selection
from ml_assets_tests.test_cli import cli

PIPELINE = {**DATASETS["breast_cancer"][1], "model": {"estimator": "linear"}}


class Home:
    def __init__(self, project, instance, keys):
        self.project, self.instance, self.keys = project, instance, keys

    def cli(self, *args):
        return cli(self.project.root, *args, env={"DAGSTER_HOME": str(self.project.root / "dagster_home"),
                                                  "ML_ASSETS_HOME": str(self.project.env.home)})

    def champion(self) -> int:
        return self.project.registry().champion()["version"]

    def ledger(self) -> list[dict]:
        return ledger_of(self.project.env.store_root, self.project.settings.name).records()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """Versions 1 and 2 promoted; version 3 evaluated against 2, then the champion rolled back
    to 1 by `ml-assets rollback`, then version 3 registered: refused, the champion changed."""
    root = tmp_path_factory.mktemp("rollback")
    project = make_project(root, "bc", **PIPELINE)
    (root / "dagster_home").mkdir()
    (root / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    instance = dg.DagsterInstance.from_config(str(root / "dagster_home"))
    base = breast_cancer()
    keys = []
    for number, frame in enumerate([base, make_version(base, seed=2, drift=False),
                                    make_version(base, seed=3, drift=False)], start=1):
        project.drop(f"v{number}.csv", frame)
        [key] = project.register_new(instance)
        keys.append(key)
        before_registration = [a for a in ALL_ASSETS if a != REGISTERED_MODEL_VERSION]
        assert run_selection(project, instance, key, before_registration).success
        if number < 3:
            assert run_selection(project, instance, key, [REGISTERED_MODEL_VERSION]).success
            assert project.registry().champion()["version"] == number
    state = Home(project, instance, keys)
    back = state.cli("rollback", "--reason", "version 2 misbehaves")
    assert back.returncode == 0, back.stderr
    assert run_selection(project, instance, keys[2], [REGISTERED_MODEL_VERSION]).success
    yield state
    instance.dispose()


def test_registration_records_promotions_and_a_refusal_because_the_champion_changed(home):
    records = home.ledger()
    assert [(r["seq"], r["action"], r["model_version"]) for r in records] == [
        (1, "promoted", 1), (2, "promoted", 2), (3, "rolled_back", 1), (4, "refused", 3)]
    first, second, back, refused = records
    assert (first["champion_before"], first["champion_after"]) == (None, 1)
    assert (second["champion_before"], second["champion_after"]) == (1, 2)
    assert second["comparison"]["verdict"] and second["comparison"]["method"]
    assert second["metrics"]["roc_auc"] > 0.9 and second["data_version"] == home.keys[1]
    assert first["actor"] == "dagster UI (run {}, unknown)".format(
        home.instance.get_runs(dg.RunsFilter(tags={"dagster/partition": home.keys[0]}))[0].run_id)
    assert (back["champion_before"], back["champion_after"], back["reason"]) == (2, 1, "version 2 misbehaves")
    assert re.fullmatch(r"ml-assets rollback \(.+\)", back["actor"])
    assert refused["reason"].startswith("the champion changed from 2 to 1 after this model was evaluated")
    assert (refused["champion_before"], refused["champion_after"]) == (1, 1)
    assert home.champion() == 1
    # mirrored on the model versions in MLflow
    client = home.project.registry().client()
    tags = client.get_model_version("bc", "3").tags
    assert tags["last_decision"] == tags["ledger.4"]
    assert tags["ledger.4"].startswith("#4 ") and "refused" in tags["ledger.4"]


@pytest.mark.parametrize("args, reason", [
    (("--to", "9"), "version 9 is unknown: model bc has the versions 1, 2, 3"),
    (("--to", "1"), "version 1 is already the champion"),
    (("--to", "3"), "version 3 never passed its gates: not promoted: the champion changed from 2 "
                    "to 1 after this model was evaluated"),
    ((), "no earlier champion to roll back to: version 1 is the first champion of bc"),
])
def test_refused_rollbacks_name_the_reason_and_change_nothing(home, args, reason):
    result = home.cli("rollback", *args)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith(f"refused: {reason}"), result.stderr
    assert "Traceback" not in result.stderr
    assert home.champion() == 1 and len(home.ledger()) == 4


@pytest.mark.parametrize("args, message", [
    (("rollback", "--to", "two"), "expected a model version number such as 3, got 'two'"),
    (("rollback", "--to", "0"), "expected a model version number such as 3, got '0'"),
    (("approve",), "the following arguments are required: VERSION"),
    (("approve", "x"), "expected a model version number such as 3, got 'x'"),
    (("reject", "3"), "the following arguments are required: --reason"),
])
def test_usage_errors_exit_2_naming_what(args, message, capsys):
    # argparse answers these before anything is read: the parser alone, no process needed
    from ml_assets.cli import build_parser

    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(list(args))
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_rollback_to_a_named_champion_is_recorded_notified_and_observed(home, webhook):
    result = cli(home.project.root, "rollback", "--to", "2",
                 env={"DAGSTER_HOME": str(home.project.root / "dagster_home"),
                      "ML_ASSETS_HOME": str(home.project.env.home), "ML_ASSETS_WEBHOOK_URL": webhook.url})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ("bc rolled back: version 2 is the champion again (was version 1), "
                                     f"by {home.ledger()[-1]['actor']}")
    assert home.champion() == 2
    last = home.ledger()[-1]
    assert (last["seq"], last["action"], last["model_version"], last["champion_before"]) == (5, "rolled_back", 2, 1)
    assert last["data_version"] == home.keys[1]
    [text] = webhook.texts()
    assert text.startswith(f"[ml_assets] rolled back: pipeline bc, data version {home.keys[1]}: "
                           "bc rolled back: version 2 is the champion again (was version 1)")
    # the UI: an observation on the version's registered_model_version partition
    records = home.instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=home.project.names.key(REGISTERED_MODEL_VERSION),
                              asset_partitions=[home.keys[1]]), limit=1).records
    metadata = records[0].event_log_entry.asset_observation.metadata
    assert metadata["action"].value == "rolled_back" and metadata["version"].value == 2
    table = metadata["ledger"].value
    assert table.count("\n| ") == 5 and "| rolled_back | v2 |" in table

    # by default now: the champion before 2 on the stack of promotions (1, 2)
    again = home.cli("rollback")
    assert again.returncode == 0, again.stderr
    assert home.champion() == 1 and home.ledger()[-1]["champion_before"] == 2


def test_a_home_older_than_the_ledger_rolls_back_by_the_promotion_tags(home):
    """Without ledger records, the previous champion is the newest earlier version MLflow tags
    `promotion = champion`."""
    from ml_assets.registry.decisions import DecisionHome, rollback

    ledger = ledger_of(home.project.env.store_root, "bc")
    kept = ledger.path.read_bytes()
    client = home.project.registry().client()
    client.set_registered_model_alias("bc", "champion", "2")
    ledger.path.unlink()
    try:
        decision = rollback(DecisionHome("bc", home.project.env.tracking_uri, home.project.env.store_root),
                            actor="test")
        assert home.champion() == 1
        assert [(r["seq"], r["action"], r["champion_before"], r["champion_after"])
                for r in ledger.records()] == [(1, "rolled_back", 2, 1)]
        assert decision.message.startswith("bc rolled back: version 1 is the champion again (was version 2)")
    finally:
        ledger.path.write_bytes(kept)
        client.set_registered_model_alias("bc", "champion", "1")


def test_approval_reads_the_evaluated_champion_from_the_run_report_without_the_tag(home):
    """A version registered before the `evaluated_against` tag existed: its run's
    evaluation_report.json names the champion it was compared with (2; the champion is 1)."""
    from ml_assets.registry.decisions import DecisionHome, DecisionRefused, approve

    client = home.project.registry().client()
    tag = client.get_model_version("bc", "3").tags["evaluated_against"]
    assert tag == "2"
    client.delete_model_version_tag("bc", "3", "evaluated_against")
    client.set_registered_model_alias("bc", "challenger", "3")
    try:
        with pytest.raises(DecisionRefused, match="^the champion changed from 2 to 1 since version 3 "
                                                  "was evaluated; re-run its evaluation$"):
            approve(DecisionHome("bc", home.project.env.tracking_uri, home.project.env.store_root), 3,
                    actor="test")
    finally:
        client.delete_registered_model_alias("bc", "challenger")
        client.set_model_version_tag("bc", "3", "evaluated_against", tag)
    assert home.champion() == 1


def test_champion_stack_follows_promotions_and_rollbacks():
    from ml_assets.registry.decisions import champion_stack, previous_champion

    def r(action, version):
        return {"action": action, "model_version": version}

    records = [r("promoted", 1), r("promoted", 2), r("refused", 3), r("approved", 4)]
    assert champion_stack(records) == [1, 2, 4] and previous_champion(records, 4) == 2
    records.append(r("rolled_back", 2))
    assert champion_stack(records) == [1, 2] and previous_champion(records, 2) == 1
    records.append(r("rolled_back", 4))  # --to a version rolled back from: it is back on top
    assert champion_stack(records) == [1, 2, 4]
    assert previous_champion(records, 3) is None  # not how the ledger saw it: no answer
