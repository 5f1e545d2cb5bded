"""new_data_sensor through build_sensor_context + evaluate_tick: partitions, run keys, idempotence."""

import dagster as dg

from ml_assets_tests.conftest import DATASETS, breast_cancer, make_project


def tick(project, instance, cursor=None):
    sensor = project.defs().get_sensor_def(project.names.new_data_sensor)
    context = dg.build_sensor_context(
        instance=instance, instance_ref=instance.get_ref(), cursor=cursor, definitions=project.defs()
    )
    return sensor, sensor.evaluate_tick(context)


def apply(instance, result):
    """What the daemon does with a tick's partition requests."""
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))


def test_new_files_become_versions_with_one_run_request_each(tmp_path, instance):
    project = make_project(tmp_path, "bc", **DATASETS["breast_cancer"][1])
    df = breast_cancer()
    project.drop("a.csv", df.head(300))
    project.drop("b.csv", df.tail(300))

    sensor, result = tick(project, instance)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    keys = sorted(project.store.versions())
    assert len(keys) == 2
    assert sorted(r.partition_key for r in result.run_requests) == keys
    assert sorted(r.run_key for r in result.run_requests) == keys  # dedup forever by version
    assert sorted(result.dynamic_partitions_requests[0].partition_keys) == keys
    apply(instance, result)

    _, again = tick(project, instance)
    assert again.run_requests == [] and again.skip_message


def test_duplicate_bytes_and_unchanged_files_request_nothing(tmp_path, instance):
    project = make_project(tmp_path, "bc", **DATASETS["breast_cancer"][1])
    first = project.drop("a.csv", breast_cancer())
    _, result = tick(project, instance)
    apply(instance, result)
    project.drop("a copy.csv", first.read_bytes())
    _, result = tick(project, instance)
    assert result.run_requests == []
    assert len(project.store.versions()) == 1


def test_registered_but_unrequested_version_is_picked_up(tmp_path, instance):
    """A crash between registration and the partition request must not lose the version."""
    project = make_project(tmp_path, "bc", **DATASETS["breast_cancer"][1])
    project.drop("a.csv", breast_cancer())
    project.store.scan_landing(project.landing, "*.csv")  # registered, no partition yet
    _, result = tick(project, instance)
    assert [r.partition_key for r in result.run_requests] == list(project.store.versions())


def test_sensor_honours_landing_glob(tmp_path, instance):
    project = make_project(tmp_path, "bc", landing_glob="*.parquet", **DATASETS["breast_cancer"][1])
    project.landing.mkdir(parents=True)
    breast_cancer().to_parquet(project.landing / "a.parquet")
    project.drop("ignored.csv", breast_cancer())
    _, result = tick(project, instance)
    assert [r.partition_key for r in result.run_requests] == [
        k for k in project.store.versions() if k.startswith("a-")
    ]
    assert len(project.store.versions()) == 1
