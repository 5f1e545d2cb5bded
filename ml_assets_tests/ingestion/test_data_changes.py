"""Through Dagster: a drifted version is validated with a warning and trains on; a units slip is
blocked at the data contract. What `ml-assets run` and `ml-assets status` make of both."""

import dagster as dg

from ml_assets.cli.execute import step_note
from ml_assets.cli.run_summary import summarize_run
from ml_assets.cli.status import collect_status, render_status
from ml_assets.graph import FEATURES, TRAIN_ASSETS
from ml_assets_tests.conftest import DATASETS, breast_cancer, make_project

# The ten "mean ..." measurements of the breast cancer table.
MOVED = [
    "mean_radius", "mean_texture", "mean_perimeter", "mean_area", "mean_smoothness",
    "mean_compactness", "mean_concavity", "mean_concave_points", "mean_symmetry",
    "mean_fractal_dimension",
]
DOWNSTREAM = [FEATURES, *TRAIN_ASSETS]


def _checks(result) -> dict:
    return {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    }


def _materialization(project, instance, asset, key):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=project.names.key(asset), asset_partitions=[key]), limit=1
    ).records
    return records[0].event_log_entry.asset_materialization if records else None


def _version(project, instance, name, df):
    project.drop(name, df)
    [key] = project.register_new(instance)
    return key, project.run_version(instance, key)


def test_change_is_reported_and_trains_on_breakage_blocks(tmp_path, instance):
    project = make_project(tmp_path, "bc", **DATASETS["breast_cancer"][1])
    base = breast_cancer()
    first, result = _version(project, instance, "first.csv", base)
    assert result.success
    unchanged = _checks(result)["data_changes"]
    assert unchanged.passed and unchanged.description == f"data version {first}: no change from the contract"

    # the same patients, measurements 60 % higher (a recalibrated scanner)
    drifted = base.copy()
    drifted[MOVED] = drifted[MOVED] * 1.6
    moved, result = _version(project, instance, "drifted.csv", drifted)

    assert result.success, [e.message for e in result.all_events if e.is_failure]
    checks = _checks(result)
    assert checks["data_contract"].passed
    changes = checks["data_changes"]
    assert not changes.passed and not changes.blocking
    assert changes.severity == dg.AssetCheckSeverity.WARN
    lines = changes.description.splitlines()
    assert lines[0].startswith(f"data version {moved}: ")
    assert lines[0].endswith(" changes from the contract (reported, not blocking):")
    assert any(line.startswith("- mean_radius: ") and "of values outside" in line for line in lines)
    changed = changes.metadata["changed_columns"].value
    assert "mean_radius" in changed and set(changed) <= set(MOVED)
    assert [c["column"] for c in changes.metadata["changes"].value] == changed
    assert {"column", "expectation", "summary", "observed", "expected"} == set(
        changes.metadata["changes"].value[0]
    )
    assert "| `expect_column_values_to_be_between` | mean_radius |" in (
        changes.metadata["changes_table"].value
    )
    validated = _materialization(project, instance, "validated_data", moved)
    assert validated.metadata["changed_columns"].value == changed
    for asset in DOWNSTREAM:  # not blocking: the version went on to train
        assert _materialization(project, instance, asset, moved) is not None, asset

    # `ml-assets run`'s step line and `ml-assets status`: a warning, not a block
    [step] = [s for s in summarize_run(instance, result.run_id).steps if s.step == "validated_data"]
    assert step.status == "ok"
    assert step_note(step).endswith("data_contract passed; data_changes warned")

    # a units slip of the same columns: breakage, blocked at the data contract
    slipped = base.copy()
    slipped[MOVED] = slipped[MOVED] * 1e9
    slip, result = _version(project, instance, "slip.csv", slipped)

    assert not result.success
    contract = _checks(result)["data_contract"]
    assert not contract.passed and contract.blocking
    assert contract.description.startswith(f"data version {slip}: 10 of ")
    assert "- mean_radius: 100.0% of values outside [0, " in contract.description
    for asset in DOWNSTREAM:
        assert _materialization(project, instance, asset, slip) is None, asset

    status = collect_status(project.env, project.settings, instance)
    by_key = {v["data_version"]: v for v in status["versions"]}
    assert by_key[moved]["status"] in ("registered", "champion")
    assert by_key[moved]["blocked_by"] == []
    assert by_key[moved]["checks"]["data_changes"]["passed"] is False
    assert by_key[moved]["checks"]["data_changes"]["blocking"] is False
    assert by_key[first]["checks"]["data_changes"]["passed"] is True
    assert by_key[slip]["status"] == "blocked"
    assert by_key[slip]["blocked_by"] == ["validated_data:data_contract"]
    text = render_status(status).splitlines()
    [moved_line] = [line for line in text if line.lstrip().startswith(moved)]
    assert "data changes reported" in moved_line and "blocked" not in moved_line
    [slip_line] = [line for line in text if line.lstrip().startswith(slip)]
    assert "blocked by validated_data:data_contract" in slip_line
