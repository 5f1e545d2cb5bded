"""The pipeline file: typed settings, and errors that name the file, the key and the expectation."""

from pathlib import Path

import pytest

from ml_assets.config import PipelineFileError, load_settings
from ml_assets.environment import BUNDLED_PIPELINES, EnvironmentError_, load_environment


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ml_assets.yaml"
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(PipelineFileError) as info:
        load_settings(path)
    return str(info.value)


def test_minimal_file_gets_documented_defaults(tmp_path):
    settings = load_settings(write(tmp_path, "name: churn\ntarget: churn\ntask: classification\n"))
    assert settings.landing_glob == "*.csv"
    assert settings.id_columns == []
    assert settings.model.estimator == "hist_gradient_boosting"
    assert settings.primary_metric == "roc_auc"
    assert settings.min_gates == {"roc_auc": 0.7}
    assert settings.retrain.policy == "every_version"


def test_regression_defaults(tmp_path):
    settings = load_settings(write(tmp_path, "name: house\ntarget: price\ntask: regression\n"))
    assert settings.primary_metric == "r2"
    assert settings.min_gates == {"r2": 0.0}


def test_bundled_demo_pipelines_load():
    settings = load_settings(BUNDLED_PIPELINES / "breast_cancer.yaml")
    assert settings.name == "breast_cancer"
    assert settings.positive_label == "malignant"
    regressor = load_settings(BUNDLED_PIPELINES / "diabetes.yaml")
    assert (regressor.task, regressor.target, regressor.id_columns) == ("regression", "progression", ["visit_id"])


@pytest.mark.parametrize(
    "text, key, expected",
    [
        ("target: y\ntask: classification\n", "name", "required"),
        ("name: a\ntarget: y\ntask: clasification\n", "task", "'classification' or 'regression'"),
        ("name: a\ntarget: y\ntask: regression\nlearning_rate: 0.1\n", "learning_rate", "this key is unknown"),
        ("name: a\ntarget: y\ntask: regression\nid_columns: id\n", "id_columns", "valid list"),
        ("name: a\ntarget: y\ntask: regression\ntest_size: 2\n", "test_size", "less than 1"),
        ("name: a\ntarget: y\ntask: regression\nmodel: {estimator: xgb}\n", "model.estimator", "hist_gradient_boosting"),
        ("name: a\ntarget: y\ntask: regression\ngates: {min: {roc_auc: 0.8}}\n", "gates.min.roc_auc", "regression metric"),
        ("name: a\ntarget: y\ntask: regression\npositive_label: yes\n", "positive_label", "classification"),
        ("name: 'bad name!'\ntarget: y\ntask: regression\n", "name", "letters, digits"),
    ],
)
def test_errors_name_file_key_and_expectation(tmp_path, text, key, expected):
    path = write(tmp_path, text)
    message = error_of(path)
    assert str(path) in message
    assert f"key '{key}'" in message
    assert expected in message
    assert "Traceback" not in message


def test_yaml_syntax_error_gives_line(tmp_path):
    message = error_of(write(tmp_path, "name: a\ntarget: [y\ntask: regression\n"))
    assert "not valid YAML" in message and "line" in message


def test_empty_and_non_mapping_files(tmp_path):
    assert "empty" in error_of(write(tmp_path, ""))
    assert "expected a mapping" in error_of(write(tmp_path, "- a\n- b\n"))


def test_missing_file(tmp_path):
    assert "not found" in error_of(tmp_path / "nope.yaml")


def test_environment_defaults(tmp_path):
    env = load_environment({}, cwd=tmp_path)
    assert env.home == tmp_path / ".ml_assets"
    assert env.landing_dir == tmp_path / ".ml_assets" / "landing"
    assert env.tracking_uri == f"sqlite:///{tmp_path / '.ml_assets' / 'mlflow.db'}"
    assert env.config_path is None and env.pipelines_dir == BUNDLED_PIPELINES
    assert env.sensor_interval == 30
    (tmp_path / "ml_assets.yaml").write_text("name: a\n")
    assert load_environment({}, cwd=tmp_path).config_path == tmp_path / "ml_assets.yaml"


def test_environment_overrides_and_bad_interval(tmp_path):
    env = load_environment(
        {"ML_ASSETS_HOME": "h", "ML_ASSETS_LANDING_DIR": "/data/in", "ML_ASSETS_SENSOR_INTERVAL": "2"},
        cwd=tmp_path,
    )
    assert env.home == tmp_path / "h" and env.landing_dir == Path("/data/in")
    assert env.sensor_interval == 2
    with pytest.raises(EnvironmentError_, match="ML_ASSETS_SENSOR_INTERVAL"):
        load_environment({"ML_ASSETS_SENSOR_INTERVAL": "soon"}, cwd=tmp_path)
