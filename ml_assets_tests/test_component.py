"""A pipeline declared the Dagster way: a `defs.yaml` of type PipelineComponent in a dg project of
one's own, driven by the real `dg` commands (scaffold, list, check) and run on real data."""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import yaml
from pydantic import BaseModel

from ml_assets.component import (
    PipelineComponent,
    definitions_for_project,
    load_defs_folder,
)
from ml_assets.config import PipelineSettings, load_settings
from ml_assets.environment import BUNDLED_PIPELINES
from ml_assets.graph import ALL_ASSETS, CHECKS, SCORING_ASSETS, DagsterNames
from ml_assets.registry.mlflow_wiring import RegisteredModel
from ml_assets.storage import VersionedStore
from ml_assets_tests.conftest import breast_cancer, run_new_version

# The dg installed beside this interpreter: the one `make install` puts into .venv, running
# in that same environment (dg loads a project's code with the Python that runs dg itself).
DG = str(Path(sys.executable).parent / "dg")
PACKAGE = "team_pipelines"
TYPE = "ml_assets.component.PipelineComponent"
BREAST_CANCER = f"""\
type: {TYPE}

attributes:
  name: breast-cancer
  target: diagnosis
  task: classification
  id_columns: [patient_id]
  positive_label: malignant
"""


@dataclass
class DgProject:
    """A dg project of one's own: pyproject.toml with [tool.dg], a package, its defs folder."""

    root: Path
    home: Path

    @property
    def package(self) -> Path:
        return self.root / PACKAGE

    @property
    def defs(self) -> Path:
        return self.package / "defs"

    def declare(self, folder: str, text: str) -> Path:
        path = self.defs / folder / "defs.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def dg(self, *args: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ML_ASSETS_", "MLFLOW_", "DAGSTER_HOME"))}
        # No DAGSTER_HOME: dg uses a temporary instance, never a developer's own.
        env.update(ML_ASSETS_HOME=str(self.home), NO_COLOR="1", COLUMNS="200")
        return subprocess.run([DG, *args], cwd=self.root, env=env, capture_output=True,
                              text=True, timeout=300)


@pytest.fixture
def project(tmp_path, monkeypatch) -> DgProject:
    root = tmp_path / "project"
    (root / PACKAGE / "defs").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "{PACKAGE}"\nversion = "0.1.0"\n\n'
        f'[tool.dg]\ndirectory_type = "project"\n\n[tool.dg.project]\nroot_module = "{PACKAGE}"\n'
    )
    (root / PACKAGE / "__init__.py").write_text("")
    (root / PACKAGE / "defs" / "__init__.py").write_text("")
    (root / PACKAGE / "definitions.py").write_text(
        "from pathlib import Path\n\n"
        "from ml_assets.component import definitions_for_project\n\n"
        "defs = definitions_for_project(Path(__file__).parent)\n"
    )
    home = tmp_path / "home"
    # For the tests that load the project in this process, as dg loads it.
    monkeypatch.syspath_prepend(str(root))
    for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.chdir(root)
    for name in [k for k in os.environ if k.startswith("ML_ASSETS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ML_ASSETS_HOME", str(home))
    monkeypatch.setenv("ML_ASSETS_SETTLE_SECONDS", "0")
    yield DgProject(root, home)
    for name in [m for m in sys.modules if m.split(".")[0] == PACKAGE]:
        del sys.modules[name]


def test_its_attributes_are_the_keys_and_defaults_of_a_pipeline_file(tmp_path):
    assert set(PipelineComponent.model_fields) == set(PipelineSettings.model_fields)
    for key, field in PipelineSettings.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            attributes = PipelineComponent.model_fields[key].annotation
            assert set(attributes.model_fields) == set(section.model_fields), key
    source = tmp_path / "defs.yaml"
    required = {"name": "churn", "target": "churned", "task": "classification"}
    assert PipelineComponent(**required).settings(source) == PipelineSettings(**required)
    # A pipeline file's text, as the attributes of a defs.yaml, gives the same settings.
    for path in sorted(BUNDLED_PIPELINES.glob("*.yaml")):
        component = PipelineComponent.resolve_from_yaml(path.read_text())
        assert component.settings(source) == load_settings(path), path.name


def test_dg_lists_the_component_and_scaffolds_a_defs_yaml_that_loads(project):
    listed = project.dg("list", "components", "--json")
    assert listed.returncode == 0, listed.stderr
    assert TYPE in {c["key"] for c in json.loads(listed.stdout)["items"]}

    project.declare("breast_cancer", BREAST_CANCER)
    scaffold = project.dg("scaffold", "defs", TYPE, "churn", "--target", "churned",
                          "--task", "regression")
    assert scaffold.returncode == 0, scaffold.stderr
    written = yaml.safe_load((project.defs / "churn" / "defs.yaml").read_text())
    assert written == {"type": TYPE, "attributes": {
        "name": "churn", "target": "churned", "task": "regression"}}

    listing = project.dg("list", "defs", "--json")
    assert listing.returncode == 0, listing.stderr
    defs = json.loads(listing.stdout)
    groups = {a["asset_key"]: a["group_name"] for a in defs["assets"]}
    for slug in ("breast_cancer", "churn"):
        assert {f"{slug}/{asset}": slug for asset in ALL_ASSETS}.items() <= groups.items()
        assert {f"{slug}/{c.asset}:{c.name}" for c in CHECKS} <= {
            c["key"] for c in defs["asset_checks"]}
    assert {f"{slug}/{asset}": slug for slug in ("breast_cancer", "churn")
            for asset in SCORING_ASSETS}.items() <= groups.items()
    assert len(groups) == 2 * len(ALL_ASSETS + SCORING_ASSETS)
    assert {j["name"] for j in defs["jobs"]} >= {"breast_cancer__train_version",
                                                "churn__train_version"}
    assert {s["name"] for s in defs["sensors"]} == {
        f"{slug}__{sensor}" for slug in ("breast_cancer", "churn")
        for sensor in ("new_data_sensor", "drift_sensor", "run_failure_notifier", "scoring_sensor",
                       "labels_sensor", "decay_sensor")}
    assert {(s["name"], s["source"]) for s in defs["schedules"]} == {
        ("breast_cancer__weekly_retrain", f"{PACKAGE}/defs/breast_cancer/defs.yaml:1"),
        ("churn__weekly_retrain", f"{PACKAGE}/defs/churn/defs.yaml:1")}

    check = project.dg("check", "defs")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "All definitions loaded successfully." in check.stdout


@pytest.mark.parametrize("line, expected", [
    ("  tagret: diagnosis\n",
     ["defs.yaml:9", "attributes.tagret", "'tagret' was unexpected"]),
    ("  retrain: {policy: sometimes}\n",
     ["defs.yaml: key 'retrain.policy': expected one of 'every_version', 'on_drift_or_decay' "
      "or 'never', got 'sometimes'"]),
], ids=["an unknown key", "a wrong value in a section"])
def test_dg_check_defs_names_the_file_and_the_key(project, line, expected):
    path = project.declare("breast_cancer", BREAST_CANCER + line)
    check = project.dg("check", "defs")
    output = check.stdout + check.stderr
    assert check.returncode == 1, output
    assert str(path.relative_to(project.root)) in output or str(path) in output
    for fragment in expected:
        assert fragment in output
    assert "pydantic_core" not in output  # said in the pipeline file's words, not pydantic's


def test_a_bad_task_is_reported_in_the_pipeline_files_words(project):
    path = project.declare("breast_cancer", BREAST_CANCER.replace(
        "task: classification", "task: clasification"))
    # Dagster's own loading, as a definitions.py that does not use ml_assets' helpers has it.
    with pytest.raises(Exception) as raised:  # Dagster's error about the component tree
        dg.load_from_defs_folder(path_within_project=project.package)
    assert (f"{path}: key 'task': expected one of 'classification' or 'regression', "
            f"got 'clasification'") in _messages(raised.value)
    assert "PipelineComponent\ntask" not in _messages(raised.value)  # not pydantic's words


def test_a_check_across_keys_names_the_file_and_the_key(project):
    path = project.declare("breast_cancer", BREAST_CANCER.replace(
        "task: classification", "task: regression"))
    with pytest.raises(Exception) as raised:  # Dagster's error about the component tree
        dg.load_from_defs_folder(path_within_project=project.package)
    assert (f"{path}: key 'positive_label': expected only for task: classification"
            in _messages(raised.value))


def test_every_broken_declaration_is_named_at_once(project):
    typo = project.declare("breast_cancer", BREAST_CANCER.replace("target:", "tagret:"))
    first = project.declare("churn", BREAST_CANCER.replace("breast-cancer", "churn"))
    second = project.declare("churn_again", BREAST_CANCER.replace("breast-cancer", "churn"))
    with pytest.raises(dg.DagsterInvalidDefinitionError) as raised:
        load_defs_folder(f"{PACKAGE}.defs")
    message = str(raised.value)
    assert f"{typo}: key 'tagret': expected one of the known keys" in message
    assert f"{typo}: key 'target': expected a value (this key is required)" in message
    assert (f"{first} (name 'churn') and {second} (name 'churn') both make the Dagster names "
            f"churn/...: rename all but one") in message


def test_two_names_of_one_slug_are_one_dagster_name(project):
    first = project.declare("breast_cancer", BREAST_CANCER)
    second = project.declare("dashed", BREAST_CANCER.replace("breast-cancer", "breast_cancer"))
    with pytest.raises(dg.DagsterInvalidDefinitionError) as raised:
        load_defs_folder(f"{PACKAGE}.defs")
    assert (f"{first} (name 'breast-cancer') and {second} (name 'breast_cancer') both make "
            f"the Dagster names breast_cancer/...") in str(raised.value)


def test_values_may_be_dagster_templates(project, monkeypatch):
    templated = BREAST_CANCER.replace("target: diagnosis", 'target: "{{ env.LABEL }}"')
    path = project.declare("breast_cancer",
                           templated + '  model: {estimator: "{{ env.ESTIMATOR }}"}\n')
    monkeypatch.setenv("LABEL", "diagnosis")
    monkeypatch.setenv("ESTIMATOR", "random_forest")
    definitions_for_project(project.package)  # checked once rendered, not as written
    tree = dg.ComponentTree.for_project(project.package)
    settings = tree.load_context.load_component(path.parent).settings(path)
    assert (settings.target, settings.model.estimator) == ("diagnosis", "random_forest")


def test_the_defs_folder_gives_pipelines_without_resources(project):
    assert load_defs_folder() is None  # this repository's own defs folder declares none
    assert load_defs_folder(f"{PACKAGE}.defs") is None  # nothing but its __init__.py yet
    project.declare("breast_cancer", BREAST_CANCER)
    defs = load_defs_folder(f"{PACKAGE}.defs")
    keys = {key.to_user_string() for assets in defs.assets for key in assets.keys}
    assert keys == {f"breast_cancer/{asset}" for asset in ALL_ASSETS + SCORING_ASSETS}
    assert not defs.resources  # the code location's shared ones are bound by it, once


def test_a_file_dropped_into_its_landing_folder_is_trained_and_registered(project, instance):
    project.declare("breast_cancer", BREAST_CANCER)
    defs = definitions_for_project(project.package)
    # Its own landing folder, named after the pipeline, as for a pipeline of a folder.
    landing = project.home / "landing" / "breast-cancer"
    landing.mkdir(parents=True)
    breast_cancer().to_csv(landing / "first.csv", index=False)

    sensor = defs.get_sensor_def("breast_cancer__new_data_sensor")
    tick = sensor.evaluate_tick(dg.build_sensor_context(
        instance=instance, instance_ref=instance.get_ref(), definitions=defs))
    for request in tick.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    (request,) = tick.run_requests
    run_new_version(defs, instance, DagsterNames.of("breast_cancer"), request)

    champion = RegisteredModel(f"sqlite:///{project.home / 'mlflow.db'}", "breast-cancer").champion()
    assert champion is not None and champion["version"] == 1
    assert champion["data_version"] in VersionedStore(project.home / "store",
                                                      "breast-cancer").versions()


def _messages(error: BaseException) -> str:
    """Every message of an error and of the errors a traceback shows with it (Dagster wraps a
    component's error in its own)."""
    messages = []
    while error is not None:
        messages.append(str(error))
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    return "\n".join(messages)
