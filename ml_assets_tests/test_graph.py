"""ml_assets.graph against the Definitions it names: the same assets, the same checks (and which
block), the stage order a lineage order, the selections runnable on their own, and every Dagster
name of a pipeline made from its slug."""

import subprocess
import sys

import dagster as dg

from ml_assets.graph import (
    ALL_ASSETS,
    CHECKS,
    DATA_CONTRACT,
    INGEST_ASSETS,
    RAW_DATA,
    SCORING_ASSETS,
    TRAIN_ASSETS,
    DagsterNames,
    asset_key,
    check_key,
    slug_of,
)
from ml_assets_tests.conftest import DATASETS, make_project


def project(tmp_path):
    return make_project(tmp_path, "bc", **DATASETS["breast_cancer"][1])


def test_every_asset_and_check_of_the_definitions_is_named_there_and_the_reverse(tmp_path):
    bc = project(tmp_path)
    defs = bc.defs()
    defined_assets = {key for assets_def in defs.assets for key in assets_def.keys}
    assert defined_assets == set(bc.names.keys(ALL_ASSETS + SCORING_ASSETS))
    assert len(ALL_ASSETS + SCORING_ASSETS) == len(set(ALL_ASSETS + SCORING_ASSETS))
    defined_checks = {
        spec.key: spec.blocking for assets_def in defs.assets for spec in assets_def.check_specs
    }
    assert defined_checks == {bc.names.check_key(check): check.blocking for check in CHECKS}


def test_the_stage_order_is_a_lineage_order_and_the_selections_stand_alone(tmp_path):
    bc = project(tmp_path)
    graph = bc.defs().resolve_asset_graph()
    position = {key: i for i, key in enumerate(bc.names.keys(ALL_ASSETS))}
    for key, i in position.items():
        assert all(position[parent] < i for parent in graph.get(key).parent_keys), key
    # new_data_sensor's ingest-only run reads nothing it does not make itself
    ingest = set(bc.names.keys(INGEST_ASSETS))
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


def test_a_slug_keeps_letters_digits_and_underscores_and_turns_anything_else_into_one():
    assert slug_of("breast_cancer") == "breast_cancer"
    assert slug_of("house-prices.v2") == "house_prices_v2"
    assert slug_of("churn v2/eu") == "churn_v2_eu"
    assert slug_of("prix-été") == "prix__t_"  # one underscore per character, none merged
    assert slug_of("2024") == "2024"


def test_every_dagster_name_of_a_pipeline_is_made_from_its_slug():
    names = DagsterNames.of("house-prices.v2")
    assert names == DagsterNames("house_prices_v2")
    assert names.group == "house_prices_v2"
    assert names.partitions == "house_prices_v2__data_version"
    assert names.job == "house_prices_v2__train_version"
    assert names.new_data_sensor == "house_prices_v2__new_data_sensor"
    assert names.drift_sensor == "house_prices_v2__drift_sensor"
    assert names.run_failure_notifier == "house_prices_v2__run_failure_notifier"
    assert names.weekly_retrain == "house_prices_v2__weekly_retrain"
    assert names.key(RAW_DATA) == dg.AssetKey(["house_prices_v2", "raw_data"])
    assert names.keys(INGEST_ASSETS) == [dg.AssetKey(["house_prices_v2", a]) for a in INGEST_ASSETS]
    assert names.check_key(DATA_CONTRACT) == dg.AssetCheckKey(
        dg.AssetKey(["house_prices_v2", "validated_data"]), "data_contract"
    )


def test_the_definitions_of_a_pipeline_use_exactly_the_names_of_its_slug(tmp_path):
    # A name with characters Dagster refuses in job and sensor names still loads, under its slug.
    prices = make_project(tmp_path, "house-prices.v2", **DATASETS["diabetes"][1])
    names = prices.names
    defs = prices.defs()
    assert names.slug == "house_prices_v2"
    assert sorted(job.name for job in defs.jobs) == sorted(names.jobs) == sorted([
        "house_prices_v2__train_version", "house_prices_v2__decide_version",
        "house_prices_v2__score_batch", "house_prices_v2__measure_live_performance"])
    assert {sensor.name for sensor in defs.sensors} == set(names.sensors) == {
        f"house_prices_v2__{sensor}" for sensor in (
            "new_data_sensor", "drift_sensor", "run_failure_notifier", "scoring_sensor",
            "labels_sensor", "decay_sensor")}
    assert {schedule.name for schedule in defs.schedules} == {names.weekly_retrain}
    assert defs.resolve_job_def(names.job).partitions_def.name == names.partitions
    for assets_def in defs.assets:
        for key in assets_def.keys:
            assert key.path[0] == names.slug, key
            assert assets_def.group_names_by_key[key] == names.group
            # the production loop's assets are partitioned by scoring batch
            scoring = key.path[-1] in SCORING_ASSETS
            assert assets_def.partitions_def.name == (
                names.scoring_partitions if scoring else names.partitions), key
