"""A version whose labels were shuffled is trained end to end and never becomes champion: the
bundled demo's classifier (breast cancer) and regressor (diabetes), first through `ml-assets
run` as a user runs it, then through the sensors under the real daemon (`dagster dev`). Each
time the quality gate refuses it on the floor of the primary metric (the regressor also on
the no-skill baseline), nothing of it is registered, and the champion stays the model of the
clean version."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from ml_assets.core.evaluation.gate import format_metric, format_metric_pair
from ml_assets.demo.simulator import DEMO_TABLES, shuffle_labels
from ml_assets.graph import QUALITY_GATE, DagsterNames
from ml_assets.registry.mlflow_wiring import RegisteredModel
from ml_assets.selections import execution_data, latest_check_executions
from ml_assets.storage import VersionedStore
from ml_assets_tests.conftest import REPO
from ml_assets_tests.e2e.conftest import serving_dagster_dev, wait_for
from ml_assets_tests.e2e.services import clean_env, ml_assets

pytestmark = pytest.mark.system

PIPELINES = ("breast_cancer", "diabetes")
# The rules of the quality gate a shuffled version of each demo table fails: the floor on the
# primary metric (and where it is set), and for the regressor also the no-skill baseline (its
# r2 falls below the baseline's; the classifier's ROC AUC stays just above 0.5).
REFUSING_RULES = {
    # The model the search chooses on shuffled diagnoses ranks no better than chance either.
    "breast_cancer": ("roc_auc", 0.7, "(the default for gates.min.roc_auc)",
                      ["baseline.roc_auc", "gates.min.roc_auc"]),
    "diabetes": ("r2", 0.25, "set in gates.min.r2", ["baseline.r2", "gates.min.r2"]),
}


def demo_pipelines(root: Path) -> None:
    """The bundled demo's two pipeline files, in the folder `pipelines/` of `root`."""
    folder = root / "pipelines"
    folder.mkdir()
    for name in PIPELINES:
        shutil.copy(REPO / "ml_assets" / "demo" / "pipelines" / f"{name}.yaml", folder)


def land(home: Path, pipeline: str, file: str, table: pd.DataFrame) -> None:
    landing = home / "landing" / pipeline
    landing.mkdir(parents=True, exist_ok=True)
    tmp = landing / f".{file}.tmp"
    table.to_csv(tmp, index=False)
    tmp.rename(landing / file)  # whole, as a sensor tick must see it


def clean_table(pipeline: str) -> pd.DataFrame:
    return pd.read_csv(DEMO_TABLES[pipeline].path)


def shuffled_table(pipeline: str) -> pd.DataFrame:
    table = DEMO_TABLES[pipeline]
    return shuffle_labels(pd.read_csv(table.path), table.target, seed=0)


def version_of(home: Path, pipeline: str, file: str) -> str | None:
    records = VersionedStore(home / "store", pipeline).versions().values()
    return next((r.key for r in records if r.source_name == file), None)


def registry(home: Path, pipeline: str) -> RegisteredModel:
    return RegisteredModel(f"sqlite:///{home / 'mlflow.db'}", pipeline)


def model_versions_of(home: Path, pipeline: str, key: str) -> list[int]:
    """The MLflow model versions registered from one data version."""
    client = registry(home, pipeline).client()
    found = client.search_model_versions(f"name = '{pipeline}'")
    return sorted(int(v.version) for v in found if v.tags.get("data_version") == key)


def quality_gate(instance, pipeline: str, key: str):
    """(record, evaluation) of the latest quality_gate check on one version, or None."""
    slug = DagsterNames.of(pipeline).slug
    record = latest_check_executions(instance, [QUALITY_GATE], key, slug).get(
        DagsterNames.of(pipeline).check_key(QUALITY_GATE))
    data = execution_data(record)
    return (record, data) if data is not None and hasattr(data, "passed") else None


def assert_refused_by_the_floor(instance, pipeline: str, key: str) -> None:
    """The quality gate failed on exactly the rules REFUSING_RULES names, in its words."""
    _, evaluation = quality_gate(instance, pipeline, key)
    metric, floor, where, rules = REFUSING_RULES[pipeline]
    assert evaluation.passed is False and evaluation.blocking
    checked = evaluation.metadata["gates"].value["checked"]
    assert sorted(name for name, entry in checked.items() if not entry["passed"]) == rules
    entry = checked[f"gates.min.{metric}"]
    assert entry["threshold"] == floor and entry["value"] < floor
    expected = [f"{metric} {format_metric(entry['value'])} is below the floor "
                f"{format_metric(floor)} {where}"]
    if f"baseline.{metric}" in rules:
        baseline = checked[f"baseline.{metric}"]
        value, base = format_metric_pair(baseline["value"], baseline["threshold"])
        expected.append(
            f"{metric} {value} is no better than the baseline's {base} (a model that ignores "
            "the features; higher is better); gates.beat_baseline requires the model to beat it")
    assert evaluation.description == f"data version {key}: " + "; ".join(expected)


def finished_run(instance, run_id: str):
    run = instance.get_run_by_id(run_id)
    return run if run is not None and run.is_finished else None


def open_instance(dagster_home: Path):
    from ml_assets.private_apis import InstanceRef

    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home)))


def test_shuffled_labels_never_become_champion_through_ml_assets_run(tmp_path):
    home, dagster_home = tmp_path / "home", tmp_path / "dagster_home"
    env = clean_env(ML_ASSETS_HOME=str(home), DAGSTER_HOME=str(dagster_home),
                    ML_ASSETS_SETTLE_SECONDS="0")
    demo_pipelines(tmp_path)
    for pipeline in PIPELINES:
        land(home, pipeline, "clean.csv", clean_table(pipeline))
    first = ml_assets(["run"], tmp_path, env)
    assert first.returncode == 0, f"{first.stdout}\n{first.stderr}"
    champions = {p: registry(home, p).champion() for p in PIPELINES}
    for pipeline in PIPELINES:
        assert champions[pipeline]["data_version"] == version_of(home, pipeline, "clean.csv")

    for pipeline in PIPELINES:
        land(home, pipeline, "shuffled.csv", shuffled_table(pipeline))
    second = ml_assets(["run"], tmp_path, env)
    assert second.returncode == 1, f"{second.stdout}\n{second.stderr}"  # a version was blocked

    status = ml_assets(["status", "--json"], tmp_path, env)
    assert status.returncode == 0, status.stderr
    by_name = {s["pipeline"]: s for s in json.loads(status.stdout)["pipelines"]}
    with open_instance(dagster_home) as instance:
        for pipeline in PIPELINES:
            key = version_of(home, pipeline, "shuffled.csv")
            [shuffled] = [v for v in by_name[pipeline]["versions"] if v["data_version"] == key]
            assert shuffled["status"] == "blocked"
            assert shuffled["blocked_by"] == ["evaluation_report:quality_gate"]
            assert shuffled["model_version"] is None
            assert_refused_by_the_floor(instance, pipeline, key)
            _, evaluation = quality_gate(instance, pipeline, key)
            assert shuffled["checks"]["quality_gate"]["description"] == evaluation.description
            assert shuffled["decision"] == (
                f"not promoted: the quality gate failed ({evaluation.description.split(': ', 1)[1]}); "
                "the champion stays.")
            # the champion is the clean version's model, unchanged, and nothing else registered
            assert by_name[pipeline]["champion"] == champions[pipeline]
            assert registry(home, pipeline).champion() == champions[pipeline]
            assert model_versions_of(home, pipeline, key) == []


@pytest.fixture
def dev(tmp_path):
    """`dagster dev` serving the demo's two pipeline files, sensors ticking every second."""
    demo_pipelines(tmp_path)
    with serving_dagster_dev(tmp_path, {"ML_ASSETS_SENSOR_INTERVAL": "1", "ML_ASSETS_SETTLE_SECONDS": "0"}) as dev:
        yield dev


def test_shuffled_labels_never_become_champion_under_the_daemon(tmp_path, dev):
    home = tmp_path / "home"
    for pipeline in PIPELINES:
        land(home, pipeline, "clean.csv", clean_table(pipeline))
    champions = {
        p: wait_for(registry(home, p).champion, 240, f"{p}'s first champion", interval=2)
        for p in PIPELINES
    }

    for pipeline in PIPELINES:
        land(home, pipeline, "shuffled.csv", shuffled_table(pipeline))
    instance = dev.instance()
    for pipeline in PIPELINES:
        key = wait_for(lambda p=pipeline: version_of(home, p, "shuffled.csv"), 60,
                       f"{pipeline}'s shuffled.csv to be registered as a data version")
        record, _ = wait_for(lambda p=pipeline, k=key: quality_gate(instance, p, k), 240,
                             f"the quality gate of {pipeline}'s shuffled version", interval=2)
        # its run ends before anything of it could be registered or promoted
        run = wait_for(lambda r=record.run_id: finished_run(instance, r), 120,
                       f"the run that evaluated {pipeline}'s shuffled version", interval=2)
        assert run.status == dg.DagsterRunStatus.FAILURE
        assert_refused_by_the_floor(instance, pipeline, key)
        assert registry(home, pipeline).champion() == champions[pipeline]
        assert model_versions_of(home, pipeline, key) == []
