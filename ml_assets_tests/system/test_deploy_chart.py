"""deploy/kubernetes/ checked without a cluster: the Helm values against the chart's own JSON
schema (vendored in deploy/kubernetes/chart/), every manifest's shape, the pods' volumes and
pipeline folder, and the run and step pods as dagster-k8s builds them from the values."""

from __future__ import annotations

import copy
import json
import subprocess

import pytest
import yaml

from ml_assets_tests.conftest import REPO
from ml_assets_tests.e2e.services import BIN, clean_env

pytestmark = pytest.mark.system

K8S = REPO / "deploy" / "kubernetes"
MANIFESTS = ["namespace.yaml", "storage.yaml", "pipelines.yaml", "mlflow.yaml"]
NAMESPACE = "mlops"
RELEASE = "ml-assets"


class DefaultedMap(dict):
    """A mapping of the values file that Helm deep-merges over the chart's defaults, so the
    keys the schema requires there come from the defaults. Lists (and what is inside them)
    replace the defaults whole: there the schema's `required` holds."""


def _mark_merged_maps(value, in_list: bool = False):
    if isinstance(value, dict):
        marked = {k: _mark_merged_maps(v, in_list) for k, v in value.items()}
        return marked if in_list else DefaultedMap(marked)
    if isinstance(value, list):
        return [_mark_merged_maps(v, True) for v in value]
    return value


def _without_remote_refs(schema):
    """The schema with its `$ref`s to kubernetesjsonschema.dev dropped (no network here):
    the sibling keywords (`type`, ...) still apply."""
    if isinstance(schema, dict):
        return {k: _without_remote_refs(v) for k, v in schema.items()
                if not (k == "$ref" and isinstance(v, str) and v.startswith("http"))}
    if isinstance(schema, list):
        return [_without_remote_refs(v) for v in schema]
    return schema


def schema_errors(values: dict) -> list[str]:
    """What the chart's values.schema.json says about a values file, as `path: message`."""
    import jsonschema

    schema = _without_remote_refs(json.loads((K8S / "chart" / "values.schema.json").read_text()))
    base = jsonschema.Draft7Validator

    def required(validator, names, instance, schema_):
        if isinstance(instance, DefaultedMap):
            return  # the chart's defaults supply them
        yield from jsonschema._keywords.required(validator, names, instance, schema_)

    validator_class = jsonschema.validators.extend(base, {"required": required})
    validator = validator_class(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or '<top>'}: {e.message}"
            for e in validator.iter_errors(_mark_merged_maps(values))]


@pytest.fixture(scope="module")
def values():
    return yaml.safe_load((K8S / "values.yaml").read_text())


def manifests() -> list[tuple[str, dict]]:
    found = []
    for name in MANIFESTS:
        for document in yaml.safe_load_all((K8S / name).read_text()):
            if document:
                found.append((name, document))
    return found


def test_the_values_satisfy_the_chart_schema(values):
    assert schema_errors(values) == []


def test_the_schema_check_catches_a_misspelt_key_and_a_wrong_type(values):
    broken = copy.deepcopy(values)
    broken["runLauncher"]["config"]["k8sRunLauncher"]["imagePulPolicy"] = "Always"
    broken["postgresql"]["service"]["port"] = "5432"
    [deployment] = broken["dagster-user-deployments"]["deployments"]
    del deployment["port"]  # a list item replaces the defaults: its required keys must be there
    errors = "\n".join(schema_errors(broken))
    assert "imagePulPolicy" in errors
    assert "postgresql/service/port" in errors
    assert "'port' is a required property" in errors


def test_the_values_name_what_a_deployment_needs(values):
    assert values["postgresql"]["postgresqlScheme"] == "postgresql+psycopg2"
    s3 = values["computeLogManager"]["config"]["s3ComputeLogManager"]
    assert values["computeLogManager"]["type"] == "S3ComputeLogManager" and s3["endpointUrl"]
    assert values["retention"]["enabled"] is True
    # no run-pod resources on the launcher: the code location's would override them
    run_k8s = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    assert "resources" not in run_k8s.get("containerConfig", {})
    assert "resources" not in values["runLauncher"]["config"]["k8sRunLauncher"]


def test_every_manifest_has_a_kind_an_api_version_and_a_name_in_the_namespace():
    found = manifests()
    kinds = {(doc["kind"], doc["metadata"]["name"]) for _, doc in found}
    assert {("Namespace", NAMESPACE), ("PersistentVolumeClaim", "ml-assets-store"),
            ("ConfigMap", "ml-assets-pipelines"), ("Deployment", "mlflow"),
            ("Service", "mlflow")} <= kinds
    for name, doc in found:
        assert set(doc) >= {"apiVersion", "kind", "metadata"}, name
        assert isinstance(doc["apiVersion"], str) and "/" in doc["apiVersion"] or doc["apiVersion"] == "v1", name
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, (name, doc["kind"])
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["resources"] == MANIFESTS
    claim = next(doc for _, doc in found if doc["kind"] == "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def _check_pod_spec(where: str, volumes: list[dict], mounts: list[dict]) -> None:
    named = {v["name"] for v in volumes}
    used = {m["name"] for m in mounts}
    assert used <= named, f"{where} mounts volumes it does not define: {used - named}"
    assert named <= used, f"{where} defines volumes it never mounts: {named - used}"


def test_every_pod_spec_mounts_the_volumes_it_names():
    for name, doc in manifests():
        if doc["kind"] != "Deployment":
            continue
        spec = doc["spec"]["template"]["spec"]
        mounts = [m for c in spec["containers"] for m in c.get("volumeMounts", [])]
        _check_pod_spec(f"{name} {doc['metadata']['name']}", spec.get("volumes", []), mounts)
        service = next(d for _, d in manifests() if d["kind"] == "Service"
                       and d["spec"]["selector"] == doc["spec"]["selector"]["matchLabels"])
        assert service, doc["metadata"]["name"]


def test_the_code_location_mounts_the_store_and_names_the_pipelines_folder(values):
    [deployment] = values["dagster-user-deployments"]["deployments"]
    _check_pod_spec("the user-code deployment", deployment["volumes"], deployment["volumeMounts"])
    mounts = {m["name"]: m["mountPath"] for m in deployment["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["volumes"]}
    env = deployment["env"]
    store = next(n for n, v in volumes.items() if "persistentVolumeClaim" in v)
    assert volumes[store]["persistentVolumeClaim"]["claimName"] == "ml-assets-store"
    assert mounts[store] == env["ML_ASSETS_HOME"]
    pipelines = next(n for n, v in volumes.items() if "configMap" in v)
    assert volumes[pipelines]["configMap"]["name"] == "ml-assets-pipelines"
    assert mounts[pipelines] == env["ML_ASSETS_PIPELINES"]


def _chart_container_context(values: dict) -> dict:
    """DAGSTER_CLI_API_GRPC_CONTAINER_CONTEXT as the user-deployments subchart's helper
    `dagsterUserDeployments.k8sContainerContext` writes it (the parts our values use)."""
    [deployment] = values["dagster-user-deployments"]["deployments"]
    k8s = {
        "image_pull_policy": deployment["image"]["pullPolicy"],
        "env_config_maps": [f"{RELEASE}-dagster-user-deployments-{deployment['name']}-user-env",
                            *[c["name"] for c in deployment.get("envConfigMaps", [])]],
        "namespace": NAMESPACE,
        "service_account_name": f"{RELEASE}-dagster-user-deployments-user-deployments",
    }
    for key, source in [("env_secrets", "envSecrets")]:
        if deployment.get(source):
            k8s[key] = [s["name"] for s in deployment[source]]
    for key, source in [("volume_mounts", "volumeMounts"), ("volumes", "volumes"),
                        ("labels", "labels"), ("resources", "resources")]:
        if deployment.get(source):
            k8s[key] = deployment[source]
    return {"k8s": k8s}


def _launcher_context(values: dict):
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import UserDefinedDagsterK8sConfig

    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    run_k8s = {_snake(k): v for k, v in launcher.get("runK8sConfig", {}).items()}
    return K8sContainerContext(
        image_pull_policy=launcher["imagePullPolicy"], namespace=NAMESPACE,
        resources=launcher.get("resources"),
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(run_k8s),
    )


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _pod(context, image: str = "registry.example.com/mlops/ml-assets:0.1.0"):
    """The Job dagster-k8s creates for this container context, as a dict."""
    from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job

    # what the chart's instance gives the launcher: DAGSTER_HOME and the instance ConfigMap
    job_config = DagsterK8sJobConfig(job_image=image, dagster_home="/opt/dagster/dagster_home",
                                     instance_config_map=f"{RELEASE}-dagster-instance",
                                     postgres_password_secret="dagster-postgresql-secret")
    job = construct_dagster_k8s_job(job_config, args=["dagster", "api", "execute_run", "{}"],
                                    job_name="dagster-run-x", user_defined_k8s_config=context.run_k8s_config,
                                    pod_name="dagster-run-x", component="run_worker")
    return job.to_dict()["spec"]["template"]["spec"]


def _requests_and_limits(pod: dict) -> dict:
    resources = pod["containers"][0]["resources"]
    return {"requests": resources["requests"], "limits": resources["limits"]}


def _check_launched_pod(where: str, pod: dict, values: dict) -> None:
    [deployment] = values["dagster-user-deployments"]["deployments"]
    [container] = pod["containers"]
    _check_pod_spec(where, pod["volumes"], container["volume_mounts"])
    mounts = {m["mount_path"] for m in container["volume_mounts"]}
    assert {deployment["env"]["ML_ASSETS_HOME"], deployment["env"]["ML_ASSETS_PIPELINES"]} <= mounts, where
    # the env (ML_ASSETS_PIPELINES, ML_ASSETS_HOME, ...) comes from the user-env ConfigMap
    config_maps = {e["config_map_ref"]["name"] for e in container["env_from"] if e.get("config_map_ref")}
    assert any(name.endswith(f"-{deployment['name']}-user-env") for name in config_maps), where
    secrets = {e["secret_ref"]["name"] for e in container["env_from"] if e.get("secret_ref")}
    assert {"ml-assets-env", "ml-assets-s3"} <= secrets, where
    assert pod["security_context"]["fs_group"] == 10001, where


def test_run_pods_get_the_volumes_the_pipelines_and_the_intended_resources(values):
    """The run pod as K8sRunLauncher builds it: launcher config, then the code location's
    container context (includeConfigInLaunchedRuns) over it, as dagster-k8s merges them."""
    from dagster_k8s.container_context import K8sContainerContext

    context = _launcher_context(values).merge(K8sContainerContext.create_from_config(_chart_container_context(values)))
    pod = _pod(context)
    _check_launched_pod("the run pod", pod, values)
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert _requests_and_limits(pod) == deployment["resources"]


def test_step_pods_get_the_volumes_the_pipelines_and_their_own_resources(values):
    """A step pod of the k8s_job_executor: the run's context, then the executor's
    step_k8s_config, then the step's own entry (as K8sStepHandler merges them)."""
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import UserDefinedDagsterK8sConfig

    from ml_assets.deploy.k8s_definitions import EXECUTOR_CONFIG

    run = _launcher_context(values).merge(K8sContainerContext.create_from_config(_chart_container_context(values)))
    executor = K8sContainerContext(
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(EXECUTOR_CONFIG["step_k8s_config"]))
    for step, config in [("any step", {}), *EXECUTOR_CONFIG["per_step_k8s_config"].items()]:
        context = run.merge(executor).merge(
            K8sContainerContext(run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(config)))
        pod = _pod(context)
        _check_launched_pod(f"the step pod of {step}", pod, values)
        expected = (config or EXECUTOR_CONFIG["step_k8s_config"])["container_config"]["resources"]
        assert _requests_and_limits(pod) == expected, step


def test_the_pipelines_configmap_is_what_the_code_location_serves(tmp_path):
    """The pipeline files of pipelines.yaml, written as Kubernetes mounts them, loaded by the
    module the chart serves: its pipelines, not the bundled demo."""
    config_map = next(doc for name, doc in manifests() if doc["kind"] == "ConfigMap")
    folder = tmp_path / "pipelines"
    folder.mkdir()
    for key, text in config_map["data"].items():
        (folder / key).write_text(text)
    names = sorted(yaml.safe_load(text)["name"] for text in config_map["data"].values())
    (tmp_path / "dagster_home").mkdir()
    env = clean_env(ML_ASSETS_HOME=str(tmp_path / "home"), DAGSTER_HOME=str(tmp_path / "dagster_home"),
                    ML_ASSETS_PIPELINES=str(folder))
    script = ("import json; from ml_assets.deploy import k8s_definitions as k; "
              "print(json.dumps(sorted(j.name for j in k.defs.jobs)))")
    loaded = subprocess.run([str(BIN / "python"), "-c", script], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    jobs = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert [j for j in jobs if j.endswith("__train_version")] == [f"{name}__train_version" for name in names]
    assert {j.split("__")[0] for j in jobs} == set(names)
    assert not {"breast_cancer__train_version", "diabetes__train_version"} & set(jobs)
