"""The MLflow server of deploy/kubernetes/mlflow.yaml, started with the manifest's own flags:
it answers a request addressed to the cluster Service's name, which MLflow 3 refuses (403)
unless `--allowed-hosts` names it."""

from __future__ import annotations

import http.client

import pytest
import yaml

from ml_assets_tests.conftest import REPO
from ml_assets_tests.e2e.conftest import free_port
from ml_assets_tests.e2e.services import BIN, Service, clean_env

pytestmark = pytest.mark.system

SERVICE_HOST = "mlflow.mlops.svc.cluster.local:5000"
# an API route: /health and /version are exempt from MLflow's Host check
API = "/api/2.0/mlflow/experiments/search?max_results=1"


def manifest_args() -> list[str]:
    [deployment] = [d for d in yaml.safe_load_all((REPO / "deploy/kubernetes/mlflow.yaml").read_text())
                    if d and d["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["mlflow"]
    return container["args"]


def local_args(args: list[str], port: int, artifacts: str, allowed_hosts: bool) -> list[str]:
    """The manifest's arguments on 127.0.0.1 with a local artifact folder (no S3 here); the
    Host rule stays as the manifest writes it, or goes when `allowed_hosts` is False."""
    local = []
    for arg in args:
        flag = arg.split("=", 1)[0]
        if flag == "--host":
            arg = "--host=127.0.0.1"
        elif flag == "--port":
            arg = f"--port={port}"
        elif flag == "--workers":
            arg = "--workers=1"
        elif flag == "--artifacts-destination":
            arg = f"--artifacts-destination={artifacts}"
        elif flag == "--allowed-hosts" and not allowed_hosts:
            continue
        local.append(arg)
    return local


def status_for_host(port: int, host: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", API, headers={"Host": host})
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.parametrize("allowed_hosts, expected", [(True, 200), (False, 403)],
                         ids=["manifest-flags", "without-allowed-hosts"])
def test_the_server_answers_the_cluster_service_name(tmp_path, allowed_hosts, expected):
    args = manifest_args()
    assert any(a.startswith("--allowed-hosts=") and SERVICE_HOST in a.split("=", 1)[1].split(",")
               for a in args), args
    port = free_port()
    server = Service("mlflow", [str(BIN / "mlflow"), *local_args(args, port, str(tmp_path / "artifacts"), allowed_hosts)],
                     tmp_path, clean_env(MLFLOW_BACKEND_STORE_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
                                         MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"))
    try:
        server.wait_http(f"http://127.0.0.1:{port}/health", 180)
        assert status_for_host(port, SERVICE_HOST) == expected
    finally:
        server.stop()
