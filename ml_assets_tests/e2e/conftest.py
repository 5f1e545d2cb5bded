"""Real processes on 127.0.0.1: `dagster dev` (webserver + daemon) in a temporary home."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# A wait stops this long before the test's timeout, so that its own message (naming what it
# waited for) is reported, and the servers are stopped (a 30 s grace each), before
# pytest-timeout kills the test with a bare stack dump.
DEADLINE_MARGIN_SECONDS = 45.0

# When the running test must end (time.monotonic()), recorded by record_test_deadline below.
_test_deadline: float | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timeout_of(item: pytest.Item) -> float | None:
    """The test's timeout in seconds, as pytest-timeout reads it: the `timeout` marker, else
    --timeout, else the ini value; None or 0 is no timeout."""
    marker = item.get_closest_marker("timeout")
    if marker is not None:
        value = marker.kwargs.get("timeout", marker.args[0] if marker.args else None)
    else:
        value = item.config.getoption("timeout", None) or item.config.getini("timeout")
    return float(value) if value else None


@pytest.fixture(autouse=True)
def record_test_deadline(request):
    """Records when this test must end, for wait_for."""
    global _test_deadline
    timeout = timeout_of(request.node)
    _test_deadline = None if timeout is None else time.monotonic() + timeout
    yield _test_deadline
    _test_deadline = None


def seconds_left() -> float | None:
    """Seconds until the running test's timeout: from record_test_deadline (tests under this folder),
    else from the alarm pytest-timeout set (its signal method, tests anywhere); None when
    neither is known."""
    if _test_deadline is not None:
        return _test_deadline - time.monotonic()
    alarm = signal.getitimer(signal.ITIMER_REAL)[0]
    return alarm or None


def wait_for(predicate, timeout: float, what: str, interval: float = 1.0):
    left = seconds_left()
    cut_short = left is not None and left - DEADLINE_MARGIN_SECONDS < timeout
    if cut_short:
        timeout = max(left - DEADLINE_MARGIN_SECONDS, interval)
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # a service still starting; keep polling
            last_error = exc
        time.sleep(interval)
    why = " (cut short: the test's timeout is near)" if cut_short else ""
    raise AssertionError(
        f"timed out after {timeout:.0f}s{why} waiting for {what} (last error: {last_error})"
    )


def stop_process_group(process: subprocess.Popen, grace: float = 30.0) -> None:
    """SIGINT to the whole group (dagster dev forwards it), SIGKILL after a grace period."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=grace)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


class DagsterDev:
    def __init__(self, root: Path, extra_env: dict | None = None):
        self.root = root
        self.port = free_port()
        self.dagster_home = root / "dagster_home"
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "deploy" / "dev" / "dagster.yaml", self.dagster_home / "dagster.yaml")
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("ML_ASSETS_", "MLFLOW_", "DAGSTER_"))
        }
        self.env.update(
            {
                "DAGSTER_HOME": str(self.dagster_home),
                "ML_ASSETS_HOME": str(root / "home"),
                "ML_ASSETS_SENSOR_INTERVAL": "2",
                "ML_ASSETS_UI_URL": f"http://127.0.0.1:{self.port}",
                **(extra_env or {}),
            }
        )
        self.log = open(root / "dagster_dev.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "--host", "127.0.0.1", "--port", str(self.port),
             "-m", "ml_assets.definitions"],
            cwd=root, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def instance(self):
        from dagster import DagsterInstance
        from ml_assets.private_apis import InstanceRef

        return DagsterInstance.from_ref(InstanceRef.from_dir(str(self.dagster_home)))

    def log_text(self) -> str:
        self.log.flush()
        return (self.root / "dagster_dev.log").read_text(errors="replace")

    def stop(self):
        stop_process_group(self.process)
        self.log.close()


@contextmanager
def serving_dagster_dev(root: Path, extra_env: dict | None = None):
    """`dagster dev` in `root`, once its webserver answers; stopped on the way out."""
    import urllib.request

    dev = DagsterDev(root, extra_env)
    try:
        wait_for(lambda: urllib.request.urlopen(f"{dev.url}/server_info", timeout=2).status == 200,
                 120, "the Dagster webserver")
        yield dev
    finally:
        dev.stop()


@pytest.fixture
def dagster_dev_factory(tmp_path):
    started = []

    def start(extra_env=None):
        dev = DagsterDev(tmp_path, extra_env)
        started.append(dev)
        return dev

    yield start
    for dev in started:
        dev.stop()
