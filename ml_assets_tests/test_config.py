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
    # No estimator named: the model step searches the default candidates within its budget.
    assert settings.model.searched and settings.model.candidates is None
    assert (settings.model.search.budget_seconds, settings.model.search.cv_folds) == (120, 3)
    assert settings.primary_metric == "roc_auc"
    assert settings.min_gates == {"roc_auc": 0.7}
    assert settings.retrain.policy == "every_version"


@pytest.mark.parametrize(
    ("model", "key", "expected"),
    [
        ("{estimator: linear, candidates: [{estimator: linear}]}", "model.candidates",
         "either model.estimator (one fixed model) or model.candidates (a search), not both"),
        ("{params: {C: 1}, candidates: [{estimator: linear}]}", "model.params",
         "model.estimator beside it"),
        ("{candidates: []}", "model.candidates", "at least 1 item"),
        ("{candidates: [{estimator: svm}]}", "model.candidates.0.estimator",
         "one of 'hist_gradient_boosting', 'random_forest' or 'linear', got 'svm'"),
        ("{search: {budget_seconds: 0}}", "model.search.budget_seconds", "greater than 0"),
        ("{search: {cv_folds: 1}}", "model.search.cv_folds", "greater than or equal to 2"),
    ],
)
def test_model_choice_errors_name_the_key(tmp_path, model, key, expected):
    message = error_of(write(tmp_path, f"name: a\ntarget: y\ntask: classification\nmodel: {model}\n"))
    assert f"key '{key}': expected" in message and expected in message, message


def test_params_alone_keep_tuning_gradient_boosting(tmp_path):
    """A file written before the search existed: `model.params` tuned the one default model."""
    text = "name: a\ntarget: y\ntask: classification\nmodel: {params: {max_iter: 50}}\n"
    model = load_settings(write(tmp_path, text)).model
    assert (model.estimator, model.params, model.searched) == ("hist_gradient_boosting", {"max_iter": 50}, False)


def test_slice_columns_must_be_features(tmp_path):
    text = "name: a\ntarget: y\ntask: classification\nid_columns: [id]\nslices: {columns: [id]}\n"
    assert error_of(write(tmp_path, text)).endswith(
        "key 'slices.columns': expected feature columns, not the target or an id column ('id')"
    )


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


KNOWN_KEYS = ("['name', 'target', 'task', 'landing_glob', 'landing_dir', 'id_columns', "
              "'positive_label', 'seed', 'test_size', 'model', 'contract', 'gates', 'slices', 'drift', 'retrain', "
              "'promotion', 'scoring_glob', 'labels_glob', 'live']")


@pytest.mark.parametrize(
    "text, key, expected",
    [
        ("target: y\ntask: classification\n", "name", "expected a value (this key is required)"),
        ("name: a\ntarget: y\ntask: clasification\n", "task",
         "expected one of 'classification' or 'regression', got 'clasification'"),
        ("name: a\ntarget: y\ntask: regression\nlearning_rate: 0.1\n", "learning_rate",
         f"expected one of the known keys {KNOWN_KEYS} (this key is unknown)"),
        ("name: a\ntarget: y\ntask: regression\nid_columns: id\n", "id_columns",
         "expected a valid list, got 'id'"),
        ("name: a\ntarget: y\ntask: regression\ntest_size: 2\n", "test_size", "expected less than 1, got 2"),
        ("name: a\ntarget: y\ntask: regression\nmodel: {estimator: xgb}\n", "model.estimator",
         "expected one of 'hist_gradient_boosting', 'random_forest' or 'linear', got 'xgb'"),
        ("name: a\ntarget: y\ntask: regression\ngates: {min: {roc_auc: 0.8}}\n", "gates.min.roc_auc",
         "expected a regression metric, one of ['mae', 'r2', 'rmse']"),
        ("name: a\ntarget: y\ntask: regression\npositive_label: yes\n", "positive_label",
         "expected only for task: classification"),
        ("name: 'bad name!'\ntarget: y\ntask: regression\n", "name",
         "expected letters, digits, '_', '.' or '-' (starting with a letter or digit), got 'bad name!'"),
    ],
)
def test_errors_name_file_key_and_expectation(tmp_path, text, key, expected):
    path = write(tmp_path, text)
    assert error_of(path) == f"{path}: key '{key}': {expected}"


def test_yaml_syntax_error_gives_line(tmp_path):
    path = write(tmp_path, "name: a\ntarget: [y\ntask: regression\n")
    # The flow list opened on line 2 runs into line 3's "task:"; the parser's words follow.
    assert error_of(path) == f"{path}: not valid YAML at line 3, column 5: expected ',' or ']', but got ':'"


def test_empty_and_non_mapping_files(tmp_path):
    empty = write(tmp_path, "")
    assert error_of(empty) == f"{empty}: the file is empty; expected keys name, target, task"
    listed = write(tmp_path, "- a\n- b\n")
    assert error_of(listed) == f"{listed}: expected a mapping of keys (name, target, task, ...), got list"


def test_missing_file(tmp_path):
    assert error_of(tmp_path / "nope.yaml") == f"{tmp_path / 'nope.yaml'}: pipeline file not found"


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
    with pytest.raises(EnvironmentError_) as raised:
        load_environment({"ML_ASSETS_SENSOR_INTERVAL": "soon"}, cwd=tmp_path)
    assert str(raised.value) == "ML_ASSETS_SENSOR_INTERVAL: expected a whole number of seconds >= 1, got 'soon'"
