"""`ml-assets contract show | diff | accept` as a user runs them: a version blocked by the
contract is accepted, the contract gets revision 2 (revision 1 kept), `ml-assets run` runs the
version again and trains it; bad arguments get clear errors and the right exit codes."""

import json

import dagster as dg

from ml_assets.graph import VALIDATED_DATA, DagsterNames
from ml_assets_tests.conftest import breast_cancer
from ml_assets_tests.test_cli import STEP_LINE, cli
from ml_assets_tests.test_faults import PIPELINE_FILE, instance_at

ENV = {"ML_ASSETS_SETTLE_SECONDS": "0", "ML_ASSETS_USER": "ana"}
REASON = "scanner B reports mean_area in 0.001 units"


def _key(tmp_path, file_name: str) -> str:
    versions = json.loads((tmp_path / ".ml_assets" / "store" / "bc" / "versions.json").read_text())
    return next(key for key, record in versions.items() if record["source_name"] == file_name)


def _steps(stdout: str) -> dict:
    return {m.group(1): m.group(2) for line in stdout.splitlines() if (m := STEP_LINE.match(line))}


def test_a_blocked_version_is_accepted_rerun_and_trained(tmp_path):
    (tmp_path / "ml_assets.yaml").write_text(PIPELINE_FILE)
    landing = tmp_path / ".ml_assets" / "landing"
    landing.mkdir(parents=True)
    data = breast_cancer()
    data.head(350).to_csv(landing / "first.csv", index=False)
    assert cli(tmp_path, "run", env=ENV).returncode == 0

    scanner_b = data.tail(219).copy()
    scanner_b["mean_area"] = scanner_b["mean_area"] * 1000  # a units change, judged right
    scanner_b.to_csv(landing / "scanner_b.csv", index=False)
    (landing / "garbage.csv").write_bytes(bytes(range(256)) * 8)
    blocked = cli(tmp_path, "run", env=ENV)
    assert blocked.returncode == 1 and "mean_area" in blocked.stdout
    key, garbage = _key(tmp_path, "scanner_b.csv"), _key(tmp_path, "garbage.csv")

    unreadable = cli(tmp_path, "contract", "accept", garbage, env=ENV)
    assert unreadable.returncode == 1
    assert f"refused: garbage.csv (data version {garbage}) cannot be read as a table" in unreadable.stderr

    accepted = cli(tmp_path, "contract", "accept", key, "--reason", REASON, env=ENV)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    contracts = tmp_path / ".ml_assets" / "contracts"
    out = accepted.stdout
    assert f"data contract 'bc' widened from {key} to revision 2:" in out
    assert "  mean_area: breakage bound [0, " in out and "  mean_area: change range [" in out
    assert f"revision 1 kept as {contracts / 'bc.revisions' / '1.json'}" in out
    assert f"run of {key} requested (contract-r2:{key})" in out
    kept = json.loads((contracts / "bc.revisions" / "1.json").read_text())
    current = json.loads((contracts / "bc.json").read_text())
    assert kept["meta"]["ml_assets"]["revision"] == 1
    assert current["meta"]["ml_assets"]["revision"] == 2
    assert current["meta"]["ml_assets"]["history"][1]["by"] == "ana"

    rerun = cli(tmp_path, "run", env=ENV)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{key}  (scanner_b.csv): run again: data contract revision 2 accepted it" in rerun.stdout
    assert _steps(rerun.stdout)["validated_data"] == "ok"
    assert _steps(rerun.stdout)["registered_model_version"] == "ok"
    assert "=> registered bc version 2" in rerun.stdout
    assert garbage not in rerun.stdout  # nobody asked for it again
    status = json.loads(cli(tmp_path, "status", "--json", env=ENV).stdout)
    version = next(v for v in status["versions"] if v["data_version"] == key)
    assert version["model_version"] == 2 and version["checks"]["data_contract"]["passed"]

    instance = instance_at(tmp_path / "dagster_home")
    [validated] = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=DagsterNames.of("bc").key(VALIDATED_DATA), asset_partitions=[key]),
        limit=1,
    ).records
    assert validated.asset_materialization.metadata["contract_revision"].value == 2
    assert validated.asset_materialization.tags["dagster/code_version"].endswith("-r2")

    assert "nothing new" in cli(tmp_path, "run", env=ENV).stdout  # the request was consumed

    diff = cli(tmp_path, "contract", "diff", "1", "2", env=ENV)
    assert diff.returncode == 0
    assert f"revision 2: {key} accepted by ana at " in diff.stdout and REASON in diff.stdout
    assert "changed: mean_area: breakage bound [0, " in diff.stdout
    assert len([line for line in diff.stdout.splitlines() if "changed:" in line]) == 2

    again = cli(tmp_path, "contract", "accept", key, env=ENV)
    assert again.returncode == 0
    assert f"data version {key} already passes contract revision 2: nothing to widen" in again.stdout
    assert sorted(p.name for p in (contracts / "bc.revisions").iterdir()) == ["1.json"]

    show = cli(tmp_path, "contract", "show", env=ENV)
    assert show.returncode == 0
    assert show.stdout.startswith(f"data contract 'bc', revision 2: {contracts / 'bc.json'}")
    assert "mean_area (numeric feature)" in show.stdout
    assert f"ana  accepted {key}: {REASON}" in show.stdout
    shown = json.loads(cli(tmp_path, "contract", "show", "--json", env=ENV).stdout)
    assert shown == current

    unknown = cli(tmp_path, "contract", "accept", "nope-123456789012", env=ENV)
    assert unknown.returncode == 1
    assert "refused: data version 'nope-123456789012' is not in the store of pipeline 'bc'" in unknown.stderr
    assert key in unknown.stderr  # names the versions that exist
    no_revision = cli(tmp_path, "contract", "diff", "1", "5", env=ENV)
    assert no_revision.returncode == 1
    assert "contract revision 5 does not exist for bc.json; revisions: 1, 2" in no_revision.stderr


def test_contract_commands_before_any_contract_and_with_bad_arguments(tmp_path):
    (tmp_path / "ml_assets.yaml").write_text(PIPELINE_FILE)
    for args in (("show",), ("diff", "1", "2"), ("accept", "a-123456789012")):
        result = cli(tmp_path, "contract", *args, env=ENV)
        assert result.returncode == 1, args
        assert "refused: no data contract yet for pipeline 'bc'" in result.stderr
        assert "Traceback" not in result.stderr

    missing = cli(tmp_path, "contract", "accept", env=ENV)
    assert missing.returncode == 2 and "the following arguments are required: VERSION" in missing.stderr
    not_a_number = cli(tmp_path, "contract", "diff", "1", "latest", env=ENV)
    assert not_a_number.returncode == 2 and "expected a revision number" in not_a_number.stderr
    assert cli(tmp_path, "contract", env=ENV).returncode == 2
    assert cli(tmp_path, "contract", "widen", env=ENV).returncode == 2
