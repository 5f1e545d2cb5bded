"""Realistic drift under the real daemon, with `retrain.policy: on_drift_or_decay`.

`dagster dev` on 127.0.0.1 in a temporary home; files dropped into the landing folder over time,
nobody clicks: a first version becomes champion; a same-population version is validated and
drift-checked but not trained; a version whose measurements moved by 60 % (the kind of drift a
market or a new instrument brings, labels following the features) is validated with change
warnings and retrained by `drift_sensor`, whose run says why; a units slip (x1e9) is blocked."""

import re
import urllib.request

import dagster as dg
import pytest
import yaml

from ml_assets.demo.simulator import make_version
from ml_assets.graph import (
    DATA_CHANGES,
    DATA_CONTRACT,
    DRIFT_REPORT,
    MODEL,
    REGISTERED_MODEL_VERSION,
    DagsterNames,
)
from ml_assets.registry.mlflow_wiring import RegisteredModel
from ml_assets.selections import latest_check_passed
from ml_assets.storage import VersionedStore
from ml_assets_tests.conftest import breast_cancer
from ml_assets_tests.e2e.conftest import wait_for

pytestmark = pytest.mark.e2e

NAME = "cancer_drift"
NAMES = DagsterNames.of(NAME)
# The "mean ..." measurements: ten of thirty features, so the share of drifted columns stays
# under drift.share (0.5) and only the contract's change evidence can request the retrain.
MOVED = [
    "mean_radius", "mean_texture", "mean_perimeter", "mean_area", "mean_smoothness",
    "mean_compactness", "mean_concavity", "mean_concave_points", "mean_symmetry",
    "mean_fractal_dimension",
]


def _runs(instance, key):
    return instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": key}))


def _materialized(instance, asset, key) -> bool:
    return bool(instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=NAMES.key(asset), asset_partitions=[key]), limit=1
    ).records)


def _check(instance, key, check):
    return latest_check_passed(instance, check, key, NAMES.slug)


def test_realistic_drift_is_retrained_and_a_units_slip_is_blocked(tmp_path, dagster_dev_factory):
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump({
        "name": NAME, "target": "diagnosis", "task": "classification",
        "id_columns": ["patient_id"], "positive_label": "malignant",
        "retrain": {"policy": "on_drift_or_decay"},
    }))
    dev = dagster_dev_factory({"ML_ASSETS_CONFIG": str(config)})
    home = tmp_path / "home"
    landing = home / "landing"
    landing.mkdir(parents=True)
    store = VersionedStore(home / "store", NAME)
    registry = RegisteredModel(f"sqlite:///{home / 'mlflow.db'}", NAME)
    wait_for(lambda: urllib.request.urlopen(f"{dev.url}/server_info", timeout=2).status == 200,
             120, "the Dagster webserver")
    instance = dev.instance()

    def key_of(prefix):
        return wait_for(lambda: next((k for k in store.versions() if k.startswith(prefix)), None),
                        60, f"{prefix} to be registered")

    def finished(key, count=1):
        return wait_for(lambda: len([r for r in _runs(instance, key) if r.is_finished]) >= count
                        and all(r.is_finished for r in _runs(instance, key)),
                        240, f"{count} finished run(s) of {key}", interval=2)

    # 1. the first version: validated, then trained by drift_sensor (no champion yet)
    base = breast_cancer()
    (landing / "first.csv").write_text(base.to_csv(index=False))
    first = key_of("first-")
    champion = wait_for(registry.champion, 240, "the first champion", interval=2)
    assert champion["data_version"] == first
    finished(first, count=3)  # validation, then features and drift_report, then training
    assert sorted(r.tags["ml_assets/trigger"] for r in _runs(instance, first)) == \
        ["new_data", "new_data", "no_champion"]

    # 2. new patients of the same population: validated and drift-checked, never trained
    (landing / "same.csv").write_text(make_version(base, seed=3, drift=False).to_csv(index=False))
    same = key_of("same-")
    finished(same, count=2)
    assert _check(instance, same, DATA_CONTRACT) is True
    assert _check(instance, same, DATA_CHANGES) is True
    assert _materialized(instance, DRIFT_REPORT, same)

    # 3. the same patients, measurements 60 % higher: change warnings, retrained with the reason
    drifted = base.copy()
    drifted[MOVED] = drifted[MOVED] * 1.6
    (landing / "drifted.csv").write_text(drifted.to_csv(index=False))
    moved = key_of("drifted-")
    [retrain] = wait_for(
        lambda: [r for r in _runs(instance, moved)
                 if r.tags.get("ml_assets/trigger") != "new_data" and r.is_finished],
        240, "drift_sensor's retraining run of the drifted version", interval=2)
    assert _check(instance, moved, DATA_CONTRACT) is True  # change is not breakage
    assert _check(instance, moved, DATA_CHANGES) is False  # ... but it is reported
    assert "change" in retrain.tags["ml_assets/trigger"].split("+")
    named = retrain.tags["ml_assets/moved_columns"].split(",")
    assert set(named) <= set(MOVED) and "mean_radius" in named
    assert retrain.status == dg.DagsterRunStatus.SUCCESS
    [registered] = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=NAMES.key(REGISTERED_MODEL_VERSION),
                              asset_partitions=[moved]), limit=1).records
    decision = registered.asset_materialization.metadata["decision"].value
    now = registry.champion()
    if registered.asset_materialization.metadata["promoted"].value:
        assert now["data_version"] == moved
        assert re.match(r"challenger roc_auc [0-9.]+ vs champion [0-9.]+ on the same \d+ held-out rows: "
                        r"difference .*\(DeLong; .*\): promoted\.( |$)", decision), decision
    else:
        assert now["data_version"] == first
        assert re.match(r"(not promoted: )?challenger roc_auc [0-9.]+ vs champion [0-9.]+ on the same "
                        r"\d+ held-out rows[:,] .*not promoted; the champion stays\.( |$)|"
                        r"not promoted: .*[Tt]he champion stays\.( |$)", decision), decision

    # 4. a units slip of the same columns: breakage, blocked at the data contract
    slipped = base.copy()
    slipped[MOVED] = slipped[MOVED] * 1e9
    (landing / "slip.csv").write_text(slipped.to_csv(index=False))
    slip = key_of("slip-")
    [run] = finished(slip) and _runs(instance, slip)
    assert run.status == dg.DagsterRunStatus.FAILURE
    assert _check(instance, slip, DATA_CONTRACT) is False
    assert registry.champion()["data_version"] == now["data_version"]

    # the same-population version was never trained, by any run
    assert not _materialized(instance, MODEL, same)
    assert sorted((r.tags["ml_assets/trigger"], r.tags["ml_assets/stage"]) for r in _runs(instance, same)) \
        == [("new_data", "train"), ("new_data", "validate")]
