"""`make dev`'s launcher (python -m ml_assets.dev_servers): the Dagster UI and the MLflow UI
side by side over one temporary home, both stopped by one Ctrl-C; a taken port named."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from ml_assets.dev_servers import parse_args, plan_servers
from ml_assets.environment import load_environment
from ml_assets_tests.conftest import REPO
from ml_assets_tests.e2e.conftest import free_port, wait_for
from ml_assets_tests.e2e.services import clean_env


def processes_with(marker: str) -> list[int]:
    """The processes whose environment holds `marker`: every process the launcher started,
    and their children, inherit it."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if marker.encode() in environ:
            found.append(int(entry.name))
    return found


def http_ok(url: str, host_header: str | None = None) -> bool:
    request = urllib.request.Request(url, headers={"Host": host_header} if host_header else {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status == 200


class Launcher:
    """`python -m ml_assets.dev_servers` as `make dev` runs it, over a temporary home; the
    test's own marker in its environment finds every process it started."""

    def __init__(self, root: Path, port: int | None = None, mlflow_port: int | None = None,
                 **extra_env: str):
        self.root = root
        self.port = port or free_port()
        self.mlflow_port = mlflow_port or free_port()
        dagster_home = root / "dagster_home"
        dagster_home.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "deploy" / "dev" / "dagster.yaml", dagster_home / "dagster.yaml")
        self.marker = f"ML_ASSETS_HOME={root / 'home'}"
        self.env = clean_env(DAGSTER_HOME=str(dagster_home), ML_ASSETS_HOME=str(root / "home"),
                             **extra_env)
        self.log_path = root / "dev_servers.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - open while the launcher runs
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ml_assets.dev_servers", "--host", "127.0.0.1",
             "--port", str(self.port), "--mlflow-port", str(self.mlflow_port),
             "--", "-m", "ml_assets.definitions"],
            cwd=root, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )

    @property
    def dagster_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_until_both_answer(self, timeout: float = 240) -> None:
        def both_answer():
            assert self.process.poll() is None, f"the launcher exited:\n{self.log_text()[-3000:]}"
            return http_ok(f"{self.mlflow_url}/health") and http_ok(f"{self.dagster_url}/server_info")

        wait_for(both_answer, timeout, "the MLflow UI and the Dagster UI to answer")

    def interrupt(self, timeout: float = 90) -> int:
        """Ctrl-C, as the terminal sends it to the launcher; its exit code."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        """Whatever a failed test left: SIGINT, then SIGKILL to every process it started."""
        try:
            if self.process.poll() is None:
                try:
                    self.interrupt()
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)
            for pid in processes_with(self.marker):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        finally:
            self._log.close()


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.e2e
def test_both_uis_answer_over_the_home_and_ctrl_c_stops_every_process(tmp_path):
    from ml_assets.registry.mlflow_wiring import ensure_experiment

    home = tmp_path / "home"
    home.mkdir()
    # An experiment in the home's store as the pipelines create it: the UI must show it.
    ensure_experiment(f"sqlite:///{home / 'mlflow.db'}", "breast_cancer", str(home / "mlartifacts"))
    launcher = Launcher(tmp_path)
    try:
        launcher.wait_until_both_answer()
        search = f"{launcher.mlflow_url}/ajax-api/2.0/mlflow/experiments/search?max_results=10"
        # as a browser on 127.0.0.1 asks (MLflow 3 refuses Host headers it does not allow)
        request = urllib.request.Request(search, headers={"Host": f"127.0.0.1:{launcher.mlflow_port}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            names = {e["name"] for e in json.load(response)["experiments"]}
        assert "breast_cancer" in names
        assert processes_with(launcher.marker), "no process of the launcher found"

        assert launcher.interrupt() == 0, launcher.log_text()[-3000:]
        # nothing of either server is left, and both ports are free again
        assert processes_with(launcher.marker) == [], launcher.log_text()[-3000:]
        assert port_free(launcher.port) and port_free(launcher.mlflow_port)
        log = launcher.log_text()
        assert f"MLflow UI ready: {launcher.mlflow_url}" in log
        assert f"Dagster UI ready: {launcher.dagster_url}" in log
        assert "stopping the MLflow UI and the Dagster UI" in log
    finally:
        launcher.stop()


@pytest.mark.e2e
@pytest.mark.parametrize("taken", ["dagster", "mlflow"])
def test_a_taken_port_is_named_and_nothing_starts(tmp_path, taken):
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        port = occupant.getsockname()[1]
        ports = {"port": port} if taken == "dagster" else {"mlflow_port": port}
        launcher = Launcher(tmp_path, **ports)
        try:
            code = launcher.process.wait(timeout=60)
        finally:
            launcher.stop()
    log = launcher.log_text()
    assert code == 2, log
    what, setting = ("Dagster UI", "PORT") if taken == "dagster" else ("MLflow UI", "MLFLOW_PORT")
    assert f"port {port} on 127.0.0.1 is already in use (wanted for the {what})" in log
    assert f"make dev {setting}=" in log
    assert "Traceback" not in log
    assert not (tmp_path / "home" / "mlflow.db").exists()  # nothing was started


def test_a_tracking_server_is_the_ui_and_no_second_one_starts(tmp_path, monkeypatch):
    monkeypatch.delenv("ML_ASSETS_MLFLOW_UI_URL", raising=False)
    env = load_environment({"ML_ASSETS_HOME": str(tmp_path / "home"),
                            "MLFLOW_TRACKING_URI": "http://mlflow.internal:5000/"}, cwd=tmp_path)
    servers, ui_note = plan_servers(parse_args(["--port", "3000"]), env)
    assert [s.name for s in servers] == ["Dagster UI"]
    assert ui_note.startswith("http://mlflow.internal:5000 ")
    assert "ML_ASSETS_MLFLOW_UI_URL" not in servers[0].env  # its links go to the server


def test_the_mlflow_port_defaults_to_the_one_after_dagster_and_the_assets_link_to_it(
        tmp_path, monkeypatch):
    monkeypatch.delenv("ML_ASSETS_MLFLOW_UI_URL", raising=False)
    env = load_environment({"ML_ASSETS_HOME": str(tmp_path / "home")}, cwd=tmp_path)
    mlflow, dagster = plan_servers(parse_args(["--port", "4000"]), env)[0]
    assert (mlflow.name, mlflow.url) == ("MLflow UI", "http://127.0.0.1:4001")
    assert (dagster.name, dagster.url) == ("Dagster UI", "http://127.0.0.1:4000")
    assert dagster.env["ML_ASSETS_MLFLOW_UI_URL"] == "http://127.0.0.1:4001"
    # the store the pipelines use, and its artifacts folder
    assert mlflow.env["MLFLOW_BACKEND_STORE_URI"] == f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"
    assert str(tmp_path / "home" / "mlartifacts") in mlflow.args


def test_the_mlflow_ui_address_setting(tmp_path):
    def ui_url(**environ):
        return load_environment({"ML_ASSETS_HOME": str(tmp_path), **environ}, cwd=tmp_path).mlflow_ui_url

    assert ui_url() == "http://127.0.0.1:3001"
    assert ui_url(MLFLOW_TRACKING_URI="https://mlflow.example.com/") == "https://mlflow.example.com"
    assert ui_url(MLFLOW_TRACKING_URI="https://mlflow.example.com",
                  ML_ASSETS_MLFLOW_UI_URL="https://ui.example.com/") == "https://ui.example.com"
    from ml_assets.environment import EnvironmentError_

    with pytest.raises(EnvironmentError_, match="ML_ASSETS_MLFLOW_UI_URL: expected an http"):
        ui_url(ML_ASSETS_MLFLOW_UI_URL="127.0.0.1:3001")


@pytest.mark.e2e
def test_stop_after_the_other_server_dies(tmp_path):
    """When one server ends by itself, the launcher stops the other and says which ended."""
    launcher = Launcher(tmp_path)
    try:
        # the MLflow UI answers first; `dagster dev` is stopped wherever its start has got to
        wait_for(lambda: http_ok(f"{launcher.mlflow_url}/health"), 120, "the MLflow UI")
        [mlflow_leader] = [pid for pid in processes_with(launcher.marker)
                           if b"mlflow\0server" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        os.killpg(mlflow_leader, signal.SIGKILL)
        code = launcher.process.wait(timeout=90)
        assert code == 1
        assert processes_with(launcher.marker) == []
        assert f"the MLflow UI ({launcher.mlflow_url}) exited with code -9; stopping the Dagster UI" \
            in launcher.log_text()
    finally:
        launcher.stop()
