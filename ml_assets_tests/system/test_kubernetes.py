"""deploy/kubernetes/, checked as far as a machine without a cluster or a Docker engine allows:
the Helm values parse and use the chart's keys, the code location they name loads with the
`k8s_job_executor` and the step resources, its gRPC server answers the chart's own health
probe, and the Dockerfile installs what is pinned here."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from ml_assets.graph import DagsterNames
from ml_assets_tests.conftest import REPO
from ml_assets_tests.e2e.conftest import free_port, wait_for
from ml_assets_tests.e2e.services import BIN, Service, clean_env

pytestmark = pytest.mark.system

K8S = REPO / "deploy" / "kubernetes"

# The keys a user-code deployment may have, from the chart's schema
# (helm/dagster/schema/.../user_deployments.py, Dagster 1.13): a typo is silently ignored by
# Helm, so it is caught here.
USER_DEPLOYMENT_KEYS = {
    "name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns",
    "deploymentNamespace", "port", "replicaCount", "env", "envConfigMaps", "envSecrets",
    "annotations", "nodeSelector", "affinity", "tolerations", "podSecurityContext",
    "securityContext", "resources", "livenessProbe", "readinessProbe", "startupProbe", "labels",
    "volumeMounts", "volumes", "schedulerName", "initContainers", "sidecarContainers",
    "deploymentStrategy",
}


@pytest.fixture(scope="module")
def values():
    return yaml.safe_load((K8S / "values.yaml").read_text())


def test_values_use_the_chart_keys(values):
    deployments = values["dagster-user-deployments"]
    assert deployments["enabled"] is True
    [deployment] = deployments["deployments"]
    assert set(deployment) <= USER_DEPLOYMENT_KEYS, set(deployment) - USER_DEPLOYMENT_KEYS
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "ml_assets.deploy.k8s_definitions"]
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    assert {"ML_ASSETS_HOME", "MLFLOW_TRACKING_URI"} <= set(deployment["env"])
    assert all(isinstance(v, str) for v in deployment["env"].values())  # the chart wants strings
    mounts = {m["name"]: m["mountPath"] for m in deployment["volumeMounts"]}
    assert mounts[deployment["volumes"][0]["name"]] == deployment["env"]["ML_ASSETS_HOME"]
    # the gRPC server's and, through includeConfigInLaunchedRuns, every run pod's
    assert set(deployment["resources"]) == {"requests", "limits"}

    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["enabled"] is False and values["postgresql"]["postgresqlHost"]
    assert values["generatePostgresqlPasswordSecret"] is False

    # the same one-run-per-pipeline rule as the dev and production instances
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator"
    limits = coordinator["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"]
    for instance_file in ("dev", "production"):
        instance = yaml.safe_load((REPO / "deploy" / instance_file / "dagster.yaml").read_text())
        queue = instance.get("run_queue") or instance["run_coordinator"]["config"]
        assert queue["tag_concurrency_limits"] == limits, instance_file


def test_the_code_location_loads_with_the_k8s_job_executor():
    import dagster as dg
    from ml_assets.private_apis import validate_config
    from dagster_k8s import k8s_job_executor

    from ml_assets.deploy import k8s_definitions

    config = k8s_definitions.EXECUTOR_CONFIG
    assert validate_config(k8s_job_executor.config_schema.config_type, config).success
    for step in [config["step_k8s_config"], *config["per_step_k8s_config"].values()]:
        resources = step["container_config"]["resources"]
        assert set(resources) == {"requests", "limits"}
    # every pipeline's training job, whether from a pipeline file or a component
    jobs = [k8s_definitions.defs.resolve_job_def(j.name) for j in k8s_definitions.defs.jobs]
    assert jobs
    assert {job.executor_def.name for job in jobs} == {"k8s"}
    steps_of_jobs = set()
    for job in (j for j in jobs if j.name.endswith("__train_version")):
        slug = job.name.removesuffix("__train_version")
        assert job.name == DagsterNames(slug).job
        # training and ingestion get their own resources in every pipeline
        assert {f"{slug}__model", f"{slug}__raw_data"} <= set(config["per_step_k8s_config"]), job.name
        steps_of_jobs |= {n.name for n in job.nodes}
    # every per-step override names a real step of a pipeline's job
    assert set(config["per_step_k8s_config"]) <= steps_of_jobs, set(config["per_step_k8s_config"]) - steps_of_jobs
    dg.Definitions.validate_loadable(k8s_definitions.defs)


def test_the_bundled_demo_gets_per_step_resources_for_both_pipelines(tmp_path):
    """What the image serves with no pipeline of the user's: the two demo pipelines, each
    with its own `<slug>__model` and `<slug>__raw_data` resources (a fresh process, so that
    the environment of this test process cannot choose the pipelines)."""
    env = clean_env(ML_ASSETS_HOME=str(tmp_path / "home"), DAGSTER_HOME=str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    script = ("import json; from ml_assets.deploy import k8s_definitions as k; "
              "print(json.dumps({'steps': sorted(k.EXECUTOR_CONFIG['per_step_k8s_config']), "
              "'jobs': sorted(j.name for j in k.defs.jobs), "
              "'executors': sorted({k.defs.resolve_job_def(j.name).executor_def.name for j in k.defs.jobs})}))")
    loaded = subprocess.run([str(BIN / "python"), "-c", script], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    found = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert found == {
        "steps": ["breast_cancer__model", "breast_cancer__raw_data", "diabetes__model", "diabetes__raw_data"],
        "jobs": sorted(f"{slug}__{job}" for slug in ("breast_cancer", "diabetes") for job in (
            "train_version", "decide_version", "score_batch", "measure_live_performance")),
        "executors": ["k8s"],
    }


def test_the_grpc_server_answers_the_chart_health_probe(values, tmp_path):
    """What the user-code deployment's container runs, and its liveness probe."""
    [deployment] = values["dagster-user-deployments"]["deployments"]
    port = free_port()
    env = clean_env(ML_ASSETS_HOME=str(tmp_path / "home"), DAGSTER_HOME=str(tmp_path / "dagster_home"),
                    MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (tmp_path / "dagster_home").mkdir()
    server = Service("grpc", [str(BIN / "dagster"), "api", "grpc", "-h", "127.0.0.1", "-p", str(port),
                              *deployment["dagsterApiGrpcArgs"]], tmp_path, env)
    try:
        def healthy():
            server.assert_running()
            probe = subprocess.run([str(BIN / "dagster"), "api", "grpc-health-check", "-p", str(port)],
                                   env=env, capture_output=True, timeout=30, check=False)
            return probe.returncode == 0

        wait_for(healthy, 120, "the code location's gRPC server", interval=1)
        assert "Started Dagster code server" in server.log_text()
    finally:
        server.stop()


def test_dockerfile_builds_from_files_that_exist_with_pinned_packages():
    dockerfile = (K8S / "Dockerfile").read_text()
    # an exact release (3.11.14-slim-bookworm) or a digest, never a moving tag
    python = re.search(r"^FROM python:(\d+)\.(\d+)\.(\d+)-slim-\w+(@sha256:[0-9a-f]{64})?$", dockerfile, re.MULTILINE)
    assert python and (int(python[1]), int(python[2])) >= (3, 11), "the base image is not pinned"
    for line in re.findall(r"^COPY (.+)$", dockerfile, re.MULTILINE):
        *sources, _target = line.split()
        for source in sources:
            assert (REPO / source).exists(), f"Dockerfile copies {source}, which is not in the repository"
    constraints = {line.split("==")[0].lower().replace("_", "-")
                   for line in (REPO / "constraints.txt").read_text().splitlines() if "==" in line}
    install = re.search(r"pip install -c constraints.txt ([^\\\n&]+)", dockerfile)[1].split()
    extras = [p for p in install if p != "."]
    assert {"dagster-postgres", "dagster-k8s", "psycopg2-binary", "dagster-aws"} <= set(extras)
    assert set(extras) <= constraints, set(extras) - constraints
    # the image checks at build time what the chart will run
    assert 'python -c "import ml_assets.deploy.k8s_definitions"' in dockerfile
