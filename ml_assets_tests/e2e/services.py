"""Real servers for the end-to-end and system tests: each runs in its own session (process
group) on 127.0.0.1 with its output in a log file, and is stopped as a whole group: the first
signal, then SIGKILL after a grace period."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ml_assets.library_settings import apply_library_defaults
from ml_assets_tests.e2e.conftest import free_port

BIN = Path(sys.executable).parent


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ML_ASSETS_/MLFLOW_/DAGSTER_ setting, plus `extra`,
    with the venv's bin first on PATH (mlflow starts `uvicorn`, dagster-celery starts `celery`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_ASSETS_", "MLFLOW_", "DAGSTER_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    apply_library_defaults(env)  # for servers that never import ml_assets (`mlflow server`)
    env.update(extra)
    return env


class Service:
    """One server process (and its children) in its own session."""

    def __init__(self, name: str, args: list[str], log_dir: Path, env: dict[str, str],
                 cwd: Path | None = None, stop_signal: int = signal.SIGTERM, user: str | None = None):
        self.name = name
        self.stop_signal = stop_signal
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - open for the server's lifetime
        self.process = subprocess.Popen(
            args, cwd=cwd or log_dir, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, user=user,
        )

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def assert_running(self) -> None:
        code = self.process.poll()
        assert code is None, f"{self.name} exited with {code}:\n{self.log_text()[-3000:]}"

    def wait_http(self, url: str, timeout: float) -> None:
        """Poll `url` until it answers 200; fail at once if the process exits."""
        deadline = time.monotonic() + timeout
        last_error = None
        while time.monotonic() < deadline:
            self.assert_running()
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError as exc:  # still starting
                last_error = exc
            time.sleep(0.5)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {self.name} at {url} "
                             f"(last error: {last_error})\n--- {self.name} log ---\n{self.log_text()[-3000:]}")

    def stop(self, grace: float = 20.0) -> None:
        """The first signal to the whole group, SIGKILL to what is left after `grace` seconds."""
        try:
            if self.process.poll() is None:
                try:
                    os.killpg(self.process.pid, self.stop_signal)
                    self.process.wait(timeout=grace)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    pass
            # children outlive their leader sometimes (mlflow's job runner, celery's pool)
            deadline = time.monotonic() + 5
            while _group_alive(self.process.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if self.process.poll() is None:
                self.process.wait(timeout=10)
        finally:
            self._log.close()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def start_mlflow_server(root: Path, backend_store_uri: str | None = None,
                        timeout: float = 180) -> tuple[Service, str]:
    """`mlflow server` on 127.0.0.1 with its own store (a sqlite file under `root` unless
    `backend_store_uri` says otherwise, e.g. PostgreSQL) and artifact folder under `root`.

    `--serve-artifacts --artifacts-destination`: clients upload and download artifacts through
    the server (`mlflow-artifacts:/` URIs), so they need no access to the server's disk, which
    is how a shared server is run. `--workers 1` and no job runner (MLflow 3's GenAI job queue,
    seven extra processes) keep it light on a small machine; neither changes the tracking or
    registry API.
    """
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    server = Service(
        "mlflow_server",
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--serve-artifacts", "--artifacts-destination", str(root / "artifacts")],
        root,
        clean_env(
            MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
            # mlflow reads --backend-store-uri from here too: a password stays out of `ps`
            MLFLOW_BACKEND_STORE_URI=backend_store_uri or f"sqlite:///{root / 'mlflow.db'}",
        ),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        server.wait_http(f"{url}/health", timeout)
    except BaseException:
        server.stop()
        raise
    return server, url


def ml_assets(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    """`ml-assets ARGS` as a user runs it, in `cwd`."""
    return subprocess.run([str(BIN / "ml-assets"), *args], check=False, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
