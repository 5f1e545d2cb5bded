"""ml_assets.graph against the Definitions it names: the same assets, the same checks (and which
block), the stage order a lineage order, the selections runnable on their own."""

import subprocess
import sys

import dagster as dg

from ml_assets.graph import (
    ALL_ASSETS,
    CHECKS,
    DATA_CONTRACT,
    INGEST_ASSETS,
    RAW_DATA,
    TRAIN_ASSETS,
    asset_key,
    asset_keys,
    check_key,
)
from ml_assets_tests.conftest import DATASETS, make_project


def definitions(tmp_path) -> dg.Definitions:
    return make_project(tmp_path, "bc", **DATASETS["breast_cancer"][1]).defs()


def test_every_asset_and_check_of_the_definitions_is_named_there_and_the_reverse(tmp_path):
    defs = definitions(tmp_path)
    defined_assets = {key for assets_def in defs.assets for key in assets_def.keys}
    assert defined_assets == set(asset_keys(ALL_ASSETS))
    assert len(ALL_ASSETS) == len(set(ALL_ASSETS))
    defined_checks = {
        spec.key: spec.blocking for assets_def in defs.assets for spec in assets_def.check_specs
    }
    assert defined_checks == {check_key(check): check.blocking for check in CHECKS}


def test_the_stage_order_is_a_lineage_order_and_the_selections_stand_alone(tmp_path):
    graph = definitions(tmp_path).resolve_asset_graph()
    position = {key: i for i, key in enumerate(asset_keys(ALL_ASSETS))}
    for key, i in position.items():
        assert all(position[parent] < i for parent in graph.get(key).parent_keys), key
    # new_data_sensor's ingest-only run reads nothing it does not make itself
    ingest = set(asset_keys(INGEST_ASSETS))
    for key in ingest:
        assert graph.get(key).parent_keys <= ingest, key
    assert set(INGEST_ASSETS).isdisjoint(TRAIN_ASSETS)


def test_keys_take_an_optional_prefix():
    assert asset_key(RAW_DATA) == dg.AssetKey("raw_data")
    assert asset_key(RAW_DATA, "churn") == dg.AssetKey(["churn", "raw_data"])
    assert check_key(DATA_CONTRACT, "churn") == dg.AssetCheckKey(
        dg.AssetKey(["churn", "validated_data"]), "data_contract"
    )
    assert DATA_CONTRACT.label == "validated_data:data_contract"


def test_the_names_and_the_cli_load_without_dagster():
    # A no-op `ml-assets run` answers without loading Dagster: the names must not load it.
    code = "import sys, ml_assets.graph, ml_assets.cli; print('dagster' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
