"""`make dev`'s two servers: `dagster dev` and, beside it, MLflow's UI over the pipelines'
tracking and registry store, started together and stopped together.

    python -m ml_assets.dev_servers [--host H] [--port P] [--mlflow-port M] [-- DAGSTER DEV ARGS]

Each server runs in a process group of its own, so a signal reaches all of its processes
(dagster dev's webserver, daemon and code servers; mlflow's uvicorn workers). Ctrl-C (SIGINT)
or SIGTERM to this launcher is passed on to both; when one server dies the other is stopped.
With MLFLOW_TRACKING_URI naming a tracking server (http...), that server is the UI and no
second one is started.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ml_assets.environment import Environment, EnvironmentError_, load_environment

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3000
# A stopping server gets this long to end its processes before they are killed.
STOP_GRACE_SECONDS = 30.0
# A port taken or a bad setting: nothing was started.
EXIT_CANNOT_START = 2
# Addresses a browser on this machine uses; MLflow 3 answers 403 to any other Host header.
LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")


@dataclass
class Server:
    """One of the two servers: what it is called, where it answers, its process group."""

    name: str
    url: str
    ready_path: str
    args: list[str]
    env: dict[str, str]
    stop_signal: int
    process: subprocess.Popen | None = None
    ready: bool = False

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.args, env=self.env, stdin=subprocess.DEVNULL, start_new_session=True
        )

    def exited(self) -> int | None:
        return self.process.poll() if self.process else 0

    def check_ready(self) -> bool:
        """True once the server answers HTTP 200 (printed once, when it first does)."""
        if not self.ready:
            try:
                with urllib.request.urlopen(self.url + self.ready_path, timeout=1) as response:
                    self.ready = response.status == 200
            except OSError:
                return False
            if self.ready:
                say(f"{self.name} ready: {self.url}")
        return self.ready

    def send_stop(self, sig: int | None = None) -> None:
        if self.process is None or not group_alive(self.process.pid):
            return
        try:
            os.killpg(self.process.pid, sig or self.stop_signal)
        except ProcessLookupError:
            pass

    def stopped(self) -> bool:
        """True when no process of its group is left (its leader reaped first: a zombie
        leader still counts as a member of the group)."""
        if self.process is None:
            return True
        self.process.poll()
        return self.process.returncode is not None and not group_alive(self.process.pid)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:  # a member that changed its user: still there
        return True


def say(message: str) -> None:
    print(f"[ml_assets dev] {message}", file=sys.stderr, flush=True)


def port_taken(host: str, port: int) -> bool:
    """True when something already listens on host:port. SO_REUSEADDR: a port whose last
    connections are still in TIME_WAIT (a server stopped a moment ago) counts as free, as
    it does for the servers, which bind the same way."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), port))
        except OSError:
            return True
    return False


def browser_host(host: str) -> str:
    """The address a browser on this machine uses for a server bound to `host`."""
    return DEFAULT_HOST if host in ("0.0.0.0", "::", "") else host


def is_tracking_server(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://", "databricks"))


def server_environment(**extra: str) -> dict[str, str]:
    """This process's environment with the virtualenv's bin first on PATH (mlflow starts
    `uvicorn` by name), plus `extra`."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def mlflow_server(host: str, port: int, tracking_uri: str, artifacts_dir: Path) -> Server:
    """`mlflow server` over the pipelines' store: one worker and no job runner (MLflow 3's
    GenAI job queue, several processes more), which the tracking UI does not need. The
    artifacts are read where the pipelines wrote them (`--no-serve-artifacts`: the runs'
    artifact locations are folders on this machine, which the UI reads directly)."""
    env = server_environment(
        # Read by `mlflow server` like --backend-store-uri, and kept out of `ps` (a server
        # database URI may carry a password).
        MLFLOW_BACKEND_STORE_URI=tracking_uri,
    )
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    args = [sys.executable, "-m", "mlflow", "server", "--host", host, "--port", str(port),
            "--workers", "1", "--default-artifact-root", str(artifacts_dir), "--no-serve-artifacts",
            # the UI polls the server every few seconds: a line per request would bury
            # dagster dev's output in the same terminal
            "--uvicorn-opts", "--no-access-log"]
    if not env.get("MLFLOW_SERVER_ALLOWED_HOSTS"):  # the user's own list wins
        names = {*LOCAL_NAMES, browser_host(host)}
        args += ["--allowed-hosts", ",".join(sorted(f"{n},{n}:*" for n in names))]
    url = f"http://{browser_host(host)}:{port}"
    return Server("MLflow UI", url, "/health", args, env, signal.SIGTERM)


def dagster_dev(host: str, port: int, extra_args: list[str], mlflow_ui_url: str | None) -> Server:
    """`dagster dev`; its assets link to the MLflow UI started beside it (unless the user
    set ML_ASSETS_MLFLOW_UI_URL). SIGINT is the signal it shuts its processes down on."""
    env = server_environment()
    if mlflow_ui_url:
        env.setdefault("ML_ASSETS_MLFLOW_UI_URL", mlflow_ui_url)
    args = [sys.executable, "-m", "dagster", "dev", "--host", host, "--port", str(port), *extra_args]
    url = f"http://{browser_host(host)}:{port}"
    return Server("Dagster UI", url, "/server_info", args, env, signal.SIGINT)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ml_assets.dev_servers",
        description="Start `dagster dev` and the MLflow UI side by side; Ctrl-C stops both.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address both bind (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"the Dagster UI's port (default {DEFAULT_PORT})")
    parser.add_argument("--mlflow-port", type=int, default=None,
                        help="the MLflow UI's port (default: the Dagster UI's port + 1)")
    parser.add_argument("dagster_args", nargs=argparse.REMAINDER,
                        help="after `--`: passed on to `dagster dev` (e.g. -w workspace.yaml)")
    args = parser.parse_args(argv)
    if args.mlflow_port is None:
        args.mlflow_port = args.port + 1
    if args.dagster_args[:1] == ["--"]:
        args.dagster_args = args.dagster_args[1:]
    return args


def plan_servers(args: argparse.Namespace, env: Environment) -> tuple[list[Server], str]:
    """The servers to start, and where the MLflow UI is (started here or not)."""
    servers = []
    if is_tracking_server(env.tracking_uri):
        mlflow_ui_url = None
        ui_note = f"{env.mlflow_ui_url} (the tracking server of MLFLOW_TRACKING_URI; not started here)"
    else:
        mlflow = mlflow_server(args.host, args.mlflow_port, env.tracking_uri, env.mlflow_artifacts_dir)
        servers.append(mlflow)
        mlflow_ui_url, ui_note = mlflow.url, f"{mlflow.url} (store {env.tracking_uri})"
    servers.append(dagster_dev(args.host, args.port, args.dagster_args, mlflow_ui_url))
    return servers, ui_note


def ports_in_use(args: argparse.Namespace, servers: list[Server]) -> list[str]:
    wanted = {"Dagster UI": args.port, "MLflow UI": args.mlflow_port}
    return [
        f"port {wanted[s.name]} on {args.host} is already in use (wanted for the {s.name}); "
        f"stop what listens there or choose another: "
        + ("make dev PORT=..." if s.name == "Dagster UI" else "make dev MLFLOW_PORT=...")
        for s in servers if port_taken(args.host, wanted[s.name])
    ]


def prepare_store(tracking_uri: str, home: Path) -> None:
    """Create (and migrate) a local sqlite store before the UI opens it, under the same lock
    the pipelines' processes take: two processes creating it at once break it for good."""
    from ml_assets.registry.mlflow_wiring import ensure_tracking_store

    home.mkdir(parents=True, exist_ok=True)
    ensure_tracking_store(tracking_uri)


class Signals:
    """SIGINT and SIGTERM, counted: the first stops the servers gently, a second at once."""

    def __init__(self):
        self.received: list[int] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._record)

    def _record(self, signum, frame) -> None:
        self.received.append(signum)


def supervise(servers: list[Server], signals: Signals) -> int:
    """Wait until a signal arrives or a server exits; then stop them all. The exit code:
    0 after a requested stop, 1 when a server ended by itself."""
    failed: Server | None = None
    while not signals.received and failed is None:
        failed = next((s for s in servers if s.exited() is not None), None)
        if failed is None:
            for server in servers:
                server.check_ready()
        time.sleep(0.5)
    if failed is not None:
        others = [s.name for s in servers if s is not failed]
        say(f"the {failed.name} ({failed.url}) exited with code {failed.exited()}"
            + (f"; stopping the {', '.join(others)}" if others else ""))
    else:
        say("stopping " + " and ".join(f"the {s.name}" for s in servers))
    stop_all(servers, signals)
    return 0 if failed is None else 1


def stop_all(servers: list[Server], signals: Signals) -> None:
    """Each server's stop signal to its whole group; SIGKILL to what is left after the grace
    period, or at once on a further Ctrl-C."""
    gentle_signals = len(signals.received)
    for server in servers:
        server.send_stop()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while not all(s.stopped() for s in servers):
        if time.monotonic() > deadline or len(signals.received) > gentle_signals:
            for server in servers:
                server.send_stop(signal.SIGKILL)
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        env = load_environment()
    except EnvironmentError_ as exc:
        say(f"error: {exc}")
        return EXIT_CANNOT_START
    servers, ui_note = plan_servers(args, env)
    taken = ports_in_use(args, servers)
    if taken:
        for message in taken:
            say(f"error: {message}")
        return EXIT_CANNOT_START
    if not is_tracking_server(env.tracking_uri):
        try:
            prepare_store(env.tracking_uri, env.home)
        except Exception as exc:  # a message naming the store, not a traceback
            say(f"error: cannot open the MLflow store {env.tracking_uri}: {type(exc).__name__}: {exc}")
            return EXIT_CANNOT_START
    signals = Signals()
    dagster_url = next(s.url for s in servers if s.name == "Dagster UI")
    say(f"Dagster UI: {dagster_url}   MLflow UI: {ui_note}   (Ctrl-C stops both)")
    try:
        for server in servers:
            server.start()
        return supervise(servers, signals)
    finally:
        stop_all(servers, signals)  # whatever happened above, nothing is left running


if __name__ == "__main__":
    sys.exit(main())
