"""The Dagster instance the Helm chart builds from deploy/kubernetes/values.yaml, loaded by
Dagster against a real PostgreSQL with this environment's packages (the image's): storage
works and the daemon's sensors tick against it.

`helm` is not available here, so `render_instance` writes the dagster.yaml the chart's
`configmap-instance.yaml` template and its `dagsterYaml.*` helpers yield, for the parts our
values use (see deploy/README.md for what that leaves unverified)."""

from __future__ import annotations

import pytest
import yaml

from ml_assets_tests.conftest import REPO
from ml_assets_tests.e2e.conftest import free_port, wait_for
from ml_assets_tests.e2e.services import BIN, Service, clean_env

pytestmark = pytest.mark.system

K8S = REPO / "deploy" / "kubernetes"
NAMESPACE = "mlops"


def _postgres_config(values: dict) -> dict:
    pg = values["postgresql"]
    config = {"username": pg["postgresqlUsername"], "password": {"env": "DAGSTER_PG_PASSWORD"},
              "hostname": pg["postgresqlHost"], "db_name": pg["postgresqlDatabase"],
              "port": pg["service"]["port"], "params": pg.get("postgresqlParams") or {}}
    if pg.get("postgresqlScheme"):
        config["scheme"] = pg["postgresqlScheme"]
    return {"postgres_db": config}


def _run_launcher(values: dict) -> dict:
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    config = {"load_incluster_config": launcher.get("loadInclusterConfig", True),
              "job_namespace": launcher.get("jobNamespace") or NAMESPACE,
              "image_pull_policy": launcher["imagePullPolicy"],
              "service_account_name": "ml-assets-dagster",
              "dagster_home": {"env": "DAGSTER_HOME"},
              "instance_config_map": {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"},
              "postgres_password_secret": {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"},
              "env_config_maps": [{"env": "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"},
                                  *[c["name"] for c in launcher.get("envConfigMaps", [])]]}
    for key, source in [("env_secrets", "envSecrets")]:
        if launcher.get(source):
            config[key] = [s["name"] for s in launcher[source]]
    if launcher.get("runK8sConfig"):
        config["run_k8s_config"] = {
            "".join(f"_{c.lower()}" if c.isupper() else c for c in k): v
            for k, v in launcher["runK8sConfig"].items()}
    return {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": config}


def _compute_logs(values: dict) -> dict:
    assert values["computeLogManager"]["type"] == "S3ComputeLogManager"
    s3 = values["computeLogManager"]["config"]["s3ComputeLogManager"]
    config = {"bucket": s3["bucket"]}
    for key, source in [("local_dir", "localDir"), ("prefix", "prefix"), ("use_ssl", "useSsl"),
                        ("verify", "verify"), ("endpoint_url", "endpointUrl"),
                        ("skip_empty_files", "skipEmptyFiles"), ("upload_interval", "uploadInterval"),
                        ("region", "region")]:
        if s3.get(source):
            config[key] = s3[source]
    return {"module": "dagster_aws.s3.compute_log_manager", "class": "S3ComputeLogManager",
            "config": config}


def render_instance(values: dict) -> dict:
    """dagster.yaml as the chart's instance ConfigMap writes it for `values`."""
    daemon = values["dagsterDaemon"]
    storage = _postgres_config(values)
    instance = {
        "scheduler": {"module": "dagster._core.scheduler", "class": "DagsterDaemonScheduler"},
        "schedule_storage": {"module": "dagster_postgres.schedule_storage",
                             "class": "PostgresScheduleStorage", "config": storage},
        "run_launcher": _run_launcher(values),
        "run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage",
                        "config": storage},
        "event_log_storage": {"module": "dagster_postgres.event_log",
                              "class": "PostgresEventLogStorage", "config": storage},
    }
    coordinator = daemon["runCoordinator"]
    if daemon["enabled"] and coordinator["enabled"]:
        queued = coordinator["config"]["queuedRunCoordinator"]
        instance["run_coordinator"] = {
            "module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator",
            "config": {"max_concurrent_runs": queued["maxConcurrentRuns"],
                       "tag_concurrency_limits": queued["tagConcurrencyLimits"]}}
    instance["compute_logs"] = _compute_logs(values)
    monitoring = daemon["runMonitoring"]
    if daemon["enabled"] and monitoring["enabled"]:
        instance["run_monitoring"] = {"enabled": True,
                                      "start_timeout_seconds": monitoring["startTimeoutSeconds"],
                                      "poll_interval_seconds": monitoring["pollIntervalSeconds"]}
        if monitoring.get("maxResumeRunAttempts"):
            instance["run_monitoring"]["max_resume_run_attempts"] = monitoring["maxResumeRunAttempts"]
    instance["telemetry"] = {"enabled": values["telemetry"]["enabled"]}
    retention = values["retention"]
    if retention["enabled"]:
        instance["retention"] = {
            "sensor": {"purge_after_days": retention["sensor"]["purgeAfterDays"]},
            "schedule": {"purge_after_days": retention["schedule"]["purgeAfterDays"]}}
    return instance


@pytest.fixture(scope="module")
def values():
    return yaml.safe_load((K8S / "values.yaml").read_text())


def test_the_rendered_instance_carries_what_the_values_fix(values):
    instance = render_instance(values)
    for storage in ("run_storage", "event_log_storage", "schedule_storage"):
        assert instance[storage]["config"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    assert instance["compute_logs"]["class"] == "S3ComputeLogManager"
    assert instance["compute_logs"]["config"]["endpoint_url"].startswith("http://minio.")
    production = yaml.safe_load((REPO / "deploy" / "production" / "dagster.yaml").read_text())
    assert instance["retention"]["schedule"] == production["retention"]["schedule"]
    for kind, days in production["retention"]["sensor"]["purge_after_days"].items():
        assert instance["retention"]["sensor"]["purge_after_days"][kind] == days
    assert (instance["run_coordinator"]["config"]["tag_concurrency_limits"]
            == production["run_coordinator"]["config"]["tag_concurrency_limits"])
    security = instance["run_launcher"]["config"]["run_k8s_config"]["pod_spec_config"]["securityContext"]
    assert security["fsGroup"] == 10001


def _local_instance(values: dict, postgres, tmp_path) -> dict:
    """The rendered instance pointed at the test's PostgreSQL. The launcher reads a kubeconfig
    file instead of the in-cluster service account (no cluster here); nothing else changes."""
    instance = render_instance(values)
    for storage in ("run_storage", "event_log_storage", "schedule_storage"):
        db = instance[storage]["config"]["postgres_db"]
        db.update(hostname="127.0.0.1", port=postgres.port, username=postgres.user)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "test", "user": {"token": "unused"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}]}))
    launcher = instance["run_launcher"]["config"]
    launcher.update(load_incluster_config=False, kubeconfig_file=str(kubeconfig))
    # the bucket's endpoint: nothing listens there, and nothing here writes a step log
    instance["compute_logs"]["config"]["endpoint_url"] = f"http://127.0.0.1:{free_port()}"
    return instance


def test_the_chart_instance_loads_and_the_daemon_ticks_on_postgres(values, postgres, tmp_path):
    import dagster as dg
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
    from dagster_k8s import K8sRunLauncher

    postgres.create_database(values["postgresql"]["postgresqlDatabase"])
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(_local_instance(values, postgres, tmp_path)))
    env = clean_env(DAGSTER_HOME=str(home), DAGSTER_PG_PASSWORD=postgres.password,
                    DAGSTER_K8S_INSTANCE_CONFIG_MAP="ml-assets-dagster-instance",
                    DAGSTER_K8S_PG_PASSWORD_SECRET="dagster-postgresql-secret",
                    DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP="ml-assets-dagster-pipeline-env",
                    ML_ASSETS_HOME=str(tmp_path / "home"), ML_ASSETS_SENSOR_INTERVAL="1",
                    MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
                    AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")

    # the instance as every pod of the chart loads it
    with pytest.MonkeyPatch.context() as patch:
        for key in ("DAGSTER_HOME", "DAGSTER_PG_PASSWORD", "DAGSTER_K8S_INSTANCE_CONFIG_MAP",
                    "DAGSTER_K8S_PG_PASSWORD_SECRET", "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP",
                    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            patch.setenv(key, env[key])
        with dg.DagsterInstance.get() as instance:
            assert isinstance(instance.run_launcher, K8sRunLauncher)
            assert isinstance(instance.compute_log_manager, S3ComputeLogManager)
            assert instance.run_launcher.job_namespace == NAMESPACE
            assert instance.get_runs() == []
            instance.add_dynamic_partitions("probe", ["v1"])
            assert instance.get_dynamic_partitions("probe") == ["v1"]

    daemon = Service("daemon", [str(BIN / "dagster-daemon"), "run", "-m", "ml_assets.deploy.k8s_definitions"],
                     tmp_path, env, cwd=tmp_path)
    database = values["postgresql"]["postgresqlDatabase"]

    def ticks() -> list[tuple[str, str, str]]:
        """(sensor, status, tick body) of every sensor tick recorded in PostgreSQL, in order."""
        return postgres.query(database, "SELECT job_origin_id, status, tick_body FROM job_ticks "
                                        "WHERE type = 'SENSOR' ORDER BY id")

    def latest_by_sensor(recorded) -> dict[str, str]:
        return {sensor: status for sensor, status, _ in recorded}

    try:
        def sensors_ticked_cleanly():
            daemon.assert_running()
            recorded = ticks()
            clean = all(s in ("SUCCESS", "SKIPPED") for s in latest_by_sensor(recorded).values())
            return recorded if len(recorded) >= 2 and clean else None

        # read while the daemon runs: stopping it may interrupt a tick in progress
        recorded = wait_for(sensors_ticked_cleanly, 180, "sensor ticks recorded in PostgreSQL, "
                            "each sensor's latest one clean", interval=1)
    finally:
        daemon.stop()
    # Every sensor's latest tick ran cleanly against this instance; a tick that failed before
    # is shown with its error.
    failed = [body for _, status, body in recorded if status == "FAILURE"]
    assert set(latest_by_sensor(recorded).values()) <= {"SUCCESS", "SKIPPED"}, failed
    assert failed == [], failed
