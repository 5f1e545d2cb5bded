"""The code location assembled from pipeline files and a defs folder of `defs.yaml`
components: both load side by side, a name is never loaded twice, the demo steps aside, and a
broken defs.yaml stops only the defs folder's pipelines."""

import sys
import uuid

import dagster as dg
import pytest
import yaml

from ml_assets.definitions import build_definitions
from ml_assets.environment import load_environment
from ml_assets.invalid_pipelines import GROUP
from ml_assets.pipelines import load_catalog
from ml_assets_tests.conftest import DATASETS


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A package of its own with a defs folder, importable in this process."""
    package = f"team_{uuid.uuid4().hex[:8]}"
    (tmp_path / package / "defs").mkdir(parents=True)
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "defs" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("ML_ASSETS_HOME", str(tmp_path / "home"))
    yield tmp_path, package
    for name in [m for m in sys.modules if m.startswith(package)]:
        del sys.modules[name]


def declare(root, package, folder: str, attributes: dict):
    path = root / package / "defs" / folder / "defs.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump({"type": "ml_assets.component.PipelineComponent",
                                    "attributes": attributes}))
    return path


def pipeline_file(root, name: str):
    folder = root / "pipelines"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.yaml").write_text(yaml.safe_dump({"name": name, **DATASETS[name][1]}))


def load(root, package, **environ):
    env = load_environment({"ML_ASSETS_HOME": str(root / "home"), **environ}, cwd=root)
    repo = build_definitions(env, load_catalog(env), f"{package}.defs").get_repository_def()
    return repo, {k.path[0] for k in repo.asset_graph.get_all_asset_keys()}


def test_pipeline_files_and_defs_yaml_components_load_side_by_side(project):
    root, package = project
    declare(root, package, "wine", {"name": "wine", **DATASETS["wine"][1]})
    pipeline_file(root, "breast_cancer")
    repo, prefixes = load(root, package)
    assert prefixes == {"wine", "breast_cancer"}
    assert {j.name for j in repo.get_all_jobs()} >= {"wine__train_version", "breast_cancer__train_version"}


def test_a_name_declared_twice_loads_the_defs_yaml_and_names_the_file(project):
    root, package = project
    declared = declare(root, package, "bc", {"name": "breast_cancer", **DATASETS["breast_cancer"][1]})
    pipeline_file(root, "breast_cancer")
    repo, prefixes = load(root, package)
    assert prefixes == {"breast_cancer", GROUP}
    description = repo.asset_graph.get(dg.AssetKey([GROUP, "breast_cancer"])).description
    assert "breast_cancer.yaml: key 'name'" in description and str(declared) in description


def test_the_bundled_demo_steps_aside_for_declared_pipelines(project):
    root, package = project
    declare(root, package, "wine", {"name": "wine", **DATASETS["wine"][1]})
    _, prefixes = load(root, package)
    assert prefixes == {"wine"}


def test_a_broken_defs_yaml_stops_only_the_defs_folder(project):
    root, package = project
    declare(root, package, "churn", {"name": "churn", "target": "churned", "task": "clasification"})
    pipeline_file(root, "breast_cancer")
    repo, prefixes = load(root, package)
    assert prefixes == {"breast_cancer", GROUP}
    [problem] = [k for k in repo.asset_graph.get_all_asset_keys() if k.path[0] == GROUP]
    description = repo.asset_graph.get(problem).description
    assert "the defs folder's pipelines are not loaded" in description
    assert "defs.yaml: key 'task'" in description
