"""The private Dagster, Great Expectations and MLflow APIs ml_assets relies on are all in
ml_assets.private_apis, and all still where it expects them in the installed libraries: an
upgrade that moves one fails here, naming the library, its version and the name."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml_assets import private_apis
from ml_assets.private_apis import (
    MLFLOW_MODULES_TO_PACKAGES,
    PrivateApi,
    PrivateApiMoved,
    all_private_apis,
    installed_version,
    no_site_packages_scan,
)

ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = ("dagster", "great_expectations", "mlflow", "skops")


@pytest.mark.parametrize("entry", all_private_apis(), ids=lambda entry: entry.where)
def test_every_private_api_is_where_the_code_expects_it(entry: PrivateApi):
    problems = entry.problems()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def test_the_names_import_from_the_module():
    from ml_assets.private_apis import PartitionKeyFilter, Validator

    assert PartitionKeyFilter.__name__ == "PartitionKeyFilter"
    assert Validator.__module__ == "great_expectations.validator.v1_validator"
    with pytest.raises(AttributeError, match="no attribute 'NotAPrivateApi'"):
        private_apis.NotAPrivateApi  # noqa: B018 - the look-up is the test


def test_a_moved_name_fails_naming_the_library_its_version_and_the_name(monkeypatch):
    version = installed_version("dagster")
    gone_module = PrivateApi("dagster", "dagster._core.no_such_module", "Thing", "somewhere.py")
    gone_name = PrivateApi("dagster", "dagster._core.event_api", "NoSuchFilter", "somewhere.py")
    renamed = PrivateApi("dagster", "dagster._core.event_api", "PartitionKeyFilter",
                         "somewhere.py", params=("partition",), members=("no_such_method",))

    assert gone_module.problems() == [
        f"dagster {version}: dagster._core.no_such_module.Thing is gone (ModuleNotFoundError: "
        "No module named 'dagster._core.no_such_module'). ml_assets uses it in somewhere.py: "
        "find where this version keeps it and update ml_assets/private_apis.py"
    ]
    [missing] = gone_name.problems()
    assert missing.startswith(f"dagster {version}: dagster._core.event_api.NoSuchFilter is gone")
    attributes, keywords = renamed.problems()
    assert f"dagster {version}: dagster._core.event_api.PartitionKeyFilter" in attributes
    assert "attributes ['no_such_method']" in attributes
    assert "keyword parameters ['partition'] (it takes ['key'])" in keywords

    # Imported by name, it is an ImportError: the contract's validator falls back to GX's
    # public ValidationDefinition on one.
    monkeypatch.setitem(private_apis.NAMES, "NoSuchFilter", gone_name)
    with pytest.raises(PrivateApiMoved, match=r"dagster\._core\.event_api\.NoSuchFilter is gone"):
        from ml_assets.private_apis import NoSuchFilter  # noqa: F401
    assert issubclass(PrivateApiMoved, ImportError)


def _private_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of each import from a private module of the libraries (one with a
    segment that starts with "_"); (module, "") for `import module`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            pairs = [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            pairs = [(alias.name, "") for alias in node.names]
        else:
            continue
        for module, name in pairs:
            parts = module.split(".")
            library = parts[0] in LIBRARIES or parts[0].startswith("dagster_")
            if library and any(part.startswith("_") for part in parts[1:]):
                found.append((module, name))
    return found


def test_every_private_import_in_the_code_is_registered():
    registered = {(e.module, e.name.split(".")[0]) for e in all_private_apis()}
    unregistered = []
    for folder in ("ml_assets", "ml_assets_tests", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for module, name in _private_imports(path):
                if (module, name) not in registered:
                    where = path.relative_to(ROOT)
                    unregistered.append(f"{where}: from {module} import {name or '(module)'}")
    assert not unregistered, (
        "private library names imported directly; add each to ml_assets/private_apis.py and "
        "import it from there:\n" + "\n".join(unregistered)
    )


def test_loading_the_code_location_imports_neither_great_expectations_nor_mlflow(tmp_path):
    code = ("import sys, ml_assets.definitions, ml_assets.private_apis; "
            "print(sorted(m for m in ('great_expectations', 'mlflow') if m in sys.modules))")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_ASSETS_", "DAGSTER_"))}
    env.update(ML_ASSETS_HOME=str(tmp_path / "home"), DAGSTER_HOME=str(tmp_path / "dh"))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_no_site_packages_scan_empties_mlflows_module_map_then_restores_it(monkeypatch):
    requirements = MLFLOW_MODULES_TO_PACKAGES.import_module()
    monkeypatch.setattr(requirements, "_MODULES_TO_PACKAGES", None)  # not computed yet
    monkeypatch.setattr(requirements, "_PACKAGES_TO_MODULES", None)
    with no_site_packages_scan():
        assert requirements._MODULES_TO_PACKAGES == {}
        requirements._PACKAGES_TO_MODULES = {}  # what MLflow builds from the empty map
    assert requirements._MODULES_TO_PACKAGES is None
    assert requirements._PACKAGES_TO_MODULES is None

    computed = {"sklearn": ["scikit-learn"]}  # already computed: left as it is
    monkeypatch.setattr(requirements, "_MODULES_TO_PACKAGES", computed)
    with no_site_packages_scan():
        assert requirements._MODULES_TO_PACKAGES is computed
    assert requirements._MODULES_TO_PACKAGES is computed
