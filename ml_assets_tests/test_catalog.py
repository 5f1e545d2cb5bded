"""Which pipelines a code location holds: the order of the sources, a landing folder per
pipeline, and files that cannot be loaded reported without taking the others down."""

from pathlib import Path

import pytest
import yaml

from ml_assets.environment import BUNDLED_PIPELINES, EnvironmentError_, load_environment
from ml_assets.pipelines import load_catalog


def write(path: Path, **keys) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(keys))
    return path


CHURN = {"name": "churn", "target": "churned", "task": "classification"}
PRICES = {"name": "house-prices", "target": "price", "task": "regression"}


def catalog_of(tmp_path, **environ):
    env = load_environment({"ML_ASSETS_HOME": str(tmp_path / "home"), **environ}, cwd=tmp_path)
    return env, load_catalog(env)


def test_a_folder_is_one_pipeline_per_yaml_each_landing_in_its_own_subfolder(tmp_path):
    write(tmp_path / "pipelines" / "churn.yaml", **CHURN)
    write(tmp_path / "pipelines" / "prices.yaml", **PRICES)
    (tmp_path / "pipelines" / "notes.txt").write_text("not a pipeline")
    env, catalog = catalog_of(tmp_path)
    assert catalog.names == ["churn", "house-prices"] and not catalog.invalid
    churn, prices = catalog.pipelines
    assert churn.env.landing_dir == env.landing_dir / "churn"
    assert prices.env.landing_dir == env.landing_dir / "house-prices"
    assert prices.slug == "house_prices"
    assert prices.names.job == "house_prices__train_version"
    assert prices.names.partitions == "house_prices__data_version"
    assert prices.names.key("raw_data").path == ["house_prices", "raw_data"]
    # shared: one home, one store root, one MLflow
    assert churn.env.store_root == prices.env.store_root == env.store_root


def test_landing_dir_in_the_file_is_relative_to_the_file(tmp_path):
    write(tmp_path / "pipelines" / "churn.yaml", **CHURN, landing_dir="../incoming/churn")
    write(tmp_path / "pipelines" / "churn_v2.yaml", **{**CHURN, "name": "churn_v2"},
          landing_dir="../incoming/churn", landing_glob="*.parquet")
    _, catalog = catalog_of(tmp_path)
    first, second = catalog.pipelines
    # two pipelines may read one landing folder, with different globs
    assert first.env.landing_dir == second.env.landing_dir == (tmp_path / "incoming" / "churn")


def test_the_order_of_the_sources(tmp_path):
    single = write(tmp_path / "elsewhere" / "one.yaml", **CHURN)
    write(tmp_path / "ml_assets.yaml", **PRICES)
    # ./ml_assets.yaml alone: one pipeline, landing in $ML_ASSETS_LANDING_DIR itself
    env, catalog = catalog_of(tmp_path, ML_ASSETS_LANDING_DIR=str(tmp_path / "in"))
    assert catalog.names == ["house-prices"]
    assert catalog.pipelines[0].env.landing_dir == tmp_path / "in"
    # ./pipelines/ wins over ./ml_assets.yaml
    write(tmp_path / "pipelines" / "churn.yaml", **CHURN)
    assert catalog_of(tmp_path)[1].names == ["churn"]
    # ML_ASSETS_PIPELINES wins over ./pipelines/
    write(tmp_path / "team" / "a.yaml", **{**CHURN, "name": "a"})
    assert catalog_of(tmp_path, ML_ASSETS_PIPELINES="team")[1].names == ["a"]
    # ML_ASSETS_CONFIG wins over everything, and keeps the landing folder itself
    env, catalog = catalog_of(tmp_path, ML_ASSETS_CONFIG=str(single), ML_ASSETS_PIPELINES="team")
    assert catalog.names == ["churn"] and catalog.pipelines[0].env.landing_dir == env.landing_dir


def test_nothing_given_is_the_bundled_demo_a_classifier_and_a_regressor(tmp_path):
    env, catalog = catalog_of(tmp_path)
    assert env.pipelines_dir == BUNDLED_PIPELINES and not catalog.invalid
    tasks = {p.name: p.settings.task for p in catalog.pipelines}
    assert tasks == {"breast_cancer": "classification", "diabetes": "regression"}
    assert {p.env.landing_dir for p in catalog.pipelines} == {
        env.landing_dir / "breast_cancer", env.landing_dir / "diabetes"}


def test_a_broken_file_is_reported_and_the_others_load(tmp_path):
    write(tmp_path / "pipelines" / "churn.yaml", **CHURN)
    write(tmp_path / "pipelines" / "broken.yaml", **{**PRICES, "task": "regresion"})
    (tmp_path / "pipelines" / "garbage.yaml").write_text("name: [unclosed\n")
    _, catalog = catalog_of(tmp_path)
    assert catalog.names == ["churn"]
    errors = {p.path.name: p.error for p in catalog.invalid}
    assert set(errors) == {"broken.yaml", "garbage.yaml"}
    folder = tmp_path / "pipelines"
    assert errors["broken.yaml"] == (f"{folder / 'broken.yaml'}: key 'task': expected one of "
                                     "'classification' or 'regression', got 'regresion'")
    assert errors["garbage.yaml"] == (f"{folder / 'garbage.yaml'}: not valid YAML at line 2, column 1: "
                                      "expected ',' or ']', but got '<stream end>'")


def test_two_files_of_one_name_or_slug_are_both_refused(tmp_path):
    write(tmp_path / "pipelines" / "a.yaml", **PRICES)
    write(tmp_path / "pipelines" / "b.yaml", **{**PRICES, "name": "house_prices"})  # same slug
    write(tmp_path / "pipelines" / "c.yaml", **CHURN)
    _, catalog = catalog_of(tmp_path)
    assert catalog.names == ["churn"]
    errors = {p.path.name: p.error for p in catalog.invalid}
    assert set(errors) == {"a.yaml", "b.yaml"}
    a, b = tmp_path / "pipelines" / "a.yaml", tmp_path / "pipelines" / "b.yaml"
    assert errors["a.yaml"] == (
        f"{a}: key 'name': expected a pipeline name of its own, got 'house-prices', which {b} "
        "(name 'house_prices') also claims (Dagster names house_prices/...); neither is loaded "
        "until one is renamed"
    )
    assert errors["b.yaml"] == (
        f"{b}: key 'name': expected a pipeline name of its own, got 'house_prices', which {a} "
        "(name 'house-prices') also claims (Dagster names house_prices/...); neither is loaded "
        "until one is renamed"
    )


def test_an_empty_folder_and_a_missing_one_are_clear_errors(tmp_path):
    (tmp_path / "pipelines").mkdir()
    _, catalog = catalog_of(tmp_path)
    assert not catalog.pipelines
    assert "holds no pipeline file (expected one *.yaml per pipeline)" in catalog.invalid[0].error
    with pytest.raises(EnvironmentError_, match="ML_ASSETS_PIPELINES: .*nowhere is not a folder"):
        catalog_of(tmp_path, ML_ASSETS_PIPELINES="nowhere")


def test_selecting_pipelines_by_name(tmp_path):
    from ml_assets.config import PipelineFileError

    write(tmp_path / "pipelines" / "churn.yaml", **CHURN)
    write(tmp_path / "pipelines" / "prices.yaml", **PRICES)
    write(tmp_path / "pipelines" / "broken.yaml", name="broken", target="y", task="nope")
    _, catalog = catalog_of(tmp_path)
    assert [p.name for p in catalog.select(["house-prices"])] == ["house-prices"]
    assert [p.name for p in catalog.select(None)] == ["churn", "house-prices"]
    with pytest.raises(PipelineFileError, match="no pipeline named 'nope'.*known: churn, house-prices"):
        catalog.select(["nope"])
