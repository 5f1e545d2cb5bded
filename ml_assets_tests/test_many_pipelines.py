"""Several pipelines in one code location: a classifier, a regressor and a multiclass one,
each with its own names, landing folder, runs and champion; a broken file beside them."""

from pathlib import Path

import dagster as dg
import pytest
import yaml

from ml_assets.definitions import build_definitions
from ml_assets.environment import load_environment
from ml_assets.invalid_pipelines import GROUP as INVALID_GROUP
from ml_assets.pipelines import load_catalog
from ml_assets.registry.mlflow_wiring import RegisteredModel
from ml_assets.storage import VersionedStore
from ml_assets_tests.conftest import DATASETS, run_new_version

PIPELINES = ("breast_cancer", "diabetes", "wine")


@pytest.fixture
def team(tmp_path):
    """A pipelines folder of three real tables, and one broken file beside them."""
    folder = tmp_path / "pipelines"
    folder.mkdir()
    for name in PIPELINES:
        (folder / f"{name}.yaml").write_text(yaml.safe_dump({"name": name, **DATASETS[name][1]}))
    (folder / "broken.yaml").write_text("name: churn\ntarget: churned\ntask: clasification\n")
    env = load_environment(
        {"ML_ASSETS_HOME": str(tmp_path / "home"), "ML_ASSETS_PIPELINES": str(folder),
         "ML_ASSETS_SETTLE_SECONDS": "0"}, cwd=tmp_path,
    )
    catalog = load_catalog(env)
    return env, catalog, build_definitions(env, catalog)


def drop(pipeline, name: str) -> Path:
    table = DATASETS[pipeline.name][0]()
    pipeline.env.landing_dir.mkdir(parents=True, exist_ok=True)
    path = pipeline.env.landing_dir / name
    table.to_csv(path, index=False)
    return path


def tick(defs, instance, sensor_name: str):
    sensor = defs.get_sensor_def(sensor_name)
    context = dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(),
                                      definitions=defs)
    return sensor.evaluate_tick(context)


def test_every_pipeline_has_names_of_its_own(team):
    env, catalog, defs = team
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    for p in catalog.pipelines:
        assert {f"{p.slug}/{a}" for a in ("raw_data", "validated_data", "features", "model",
                                          "evaluation_report", "registered_model_version",
                                          "drift_report")} <= keys
        groups = {repo.asset_graph.get(p.names.key(a)).group_name for a in ("raw_data", "model")}
        assert groups == {p.slug}
        job = defs.resolve_job_def(p.names.job)
        assert job.partitions_def.name == f"{p.slug}__data_version"
        assert {k.path[0] for k in job.asset_layer.executable_asset_keys} == {p.slug}
        for sensor in p.names.sensors:
            assert defs.get_sensor_def(sensor).name == sensor
        assert defs.get_schedule_def(p.names.weekly_retrain).job_name == p.names.job
    # the broken file: a visible asset and a sensor that says why, nothing that runs
    spec_key = dg.AssetKey([INVALID_GROUP, "broken"])
    assert spec_key in repo.asset_graph.get_all_asset_keys()
    assert "broken.yaml: key 'task'" in repo.asset_graph.get(spec_key).description
    assert not repo.asset_graph.get(spec_key).is_materializable
    assert {j.name for j in repo.get_all_jobs() if not j.name.startswith("__")} == {
        f"{n}__{job}" for n in PIPELINES
        for job in ("train_version", "decide_version", "score_batch", "measure_live_performance")}


def test_the_broken_file_is_reported_by_a_sensor_that_skips_with_its_reason(team, instance):
    _, _, defs = team
    result = tick(defs, instance, "broken__invalid_pipeline_file")
    assert not result.run_requests
    assert "broken.yaml: key 'task': expected one of 'classification' or 'regression', got " \
        "'clasification'" in result.skip_message


def test_each_pipeline_trains_its_own_champion_and_a_file_starts_only_its_own_run(team, instance):
    env, catalog, defs = team
    by_name = {p.name: p for p in catalog.pipelines}
    # One file, in the classifier's folder: only its sensor asks for a run.
    drop(by_name["breast_cancer"], "first.csv")
    results = {n: tick(defs, instance, by_name[n].names.new_data_sensor) for n in PIPELINES}
    assert [r.partition_key for r in results["breast_cancer"].run_requests] != []
    assert results["diabetes"].run_requests == [] and results["wine"].run_requests == []
    for result in results.values():
        for request in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    assert instance.get_dynamic_partitions("diabetes__data_version") == []

    drop(by_name["diabetes"], "first.csv")
    drop(by_name["wine"], "first.csv")
    for name in PIPELINES:
        pipeline = by_name[name]
        result = tick(defs, instance, pipeline.names.new_data_sensor)
        for request in result.dynamic_partitions_requests:
            assert request.partitions_def_name == pipeline.names.partitions
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        requests = result.run_requests
        if name == "breast_cancer":  # asked for on the first tick already
            requests = results["breast_cancer"].run_requests
        (request,) = requests
        assert {k.path[0] for k in request.asset_selection} == {pipeline.slug}
        run_new_version(defs, instance, pipeline.names, request)
    champions = {n: RegisteredModel(env.tracking_uri, n).champion() for n in PIPELINES}
    assert all(c is not None and c["version"] == 1 for c in champions.values())
    # each champion was trained on its own pipeline's version, from its own landing folder
    for name, champion in champions.items():
        assert champion["data_version"] in VersionedStore(env.store_root, name).versions()
    # the same file name in three folders: three partition sets, never mixed
    for name in PIPELINES:
        assert len(instance.get_dynamic_partitions(f"{name}__data_version")) == 1
