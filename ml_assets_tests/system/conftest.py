"""The system suite (`make test-system`): tests that need Debian's packages (Chromium,
PostgreSQL, Redis). Each starts its own servers on 127.0.0.1 in temporary folders and stops
them whatever happened. `make test` leaves this folder out through `-m "not system"`.

Imports of the system extras (playwright, psycopg2, celery) stay inside the tests, so that
`make test`, which has only the dev extras, still collects this folder cleanly.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from ml_assets_tests.e2e.conftest import dagster_dev_factory, free_port, wait_for  # noqa: F401 (a fixture)
from ml_assets_tests.e2e.services import Service

HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # Everything in this folder is a system test, whether or not its module says so.
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.system)


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0)
    assert found, f"PostgreSQL's {name} not found under /usr/lib/postgresql: run `make test-system` " \
                  "(deploy/system-packages.sh installs Debian's postgresql)"
    return found[-1]


class PostgresServer:
    """A throwaway PostgreSQL cluster: `initdb` into a temporary folder, `postgres` on
    127.0.0.1:<free port> with its unix socket in that folder, password authentication.

    PostgreSQL refuses to run as root, so as root the cluster belongs to Debian's `postgres`
    user. `postgres` runs in the foreground in its own session (rather than `pg_ctl start`,
    which detaches it) so the test owns its process group and stops it with SIGINT, Postgres's
    fast shutdown."""

    user = "dagster"

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="ml_assets_pg_"))
        self.password = secrets.token_hex(12)
        self.port = free_port()
        run_as = "postgres" if os.geteuid() == 0 else None
        if run_as:
            entry = pwd.getpwnam(run_as)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if run_as:
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        data = self.root / "data"
        init = subprocess.run(
            [_pg_bin("initdb"), "-D", str(data), "-U", self.user, f"--pwfile={pwfile}",
             "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"],
            user=run_as, capture_output=True, text=True, timeout=120, check=False,
        )
        assert init.returncode == 0, init.stdout + init.stderr
        pwfile.unlink()
        self.service = Service(
            "postgres",
            [_pg_bin("postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(self.port),
             "-k", str(self.root)],
            self.root, {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8"},
            stop_signal=signal.SIGINT, user=run_as,
        )

        def ready():
            self.service.assert_running()
            check = subprocess.run([_pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                                   capture_output=True, timeout=10, check=False)
            return check.returncode == 0

        wait_for(ready, 60, "PostgreSQL to accept connections", interval=0.3)

    def url(self, db: str) -> str:
        # The driver named: SQLAlchemy 2.1 reads a bare `postgresql://` as psycopg 3, while
        # dagster-postgres brings psycopg2 (deploy/README.md).
        return f"postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/{db}"

    def dsn(self, db: str) -> str:
        return f"host=127.0.0.1 port={self.port} dbname={db} user={self.user} password={self.password}"

    def create_database(self, name: str) -> None:
        import psycopg2

        conn = psycopg2.connect(self.dsn("postgres"))
        conn.autocommit = True
        try:
            with conn.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()

    def query(self, db: str, sql: str) -> list[tuple]:
        import psycopg2

        conn = psycopg2.connect(self.dsn(db))
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchall()
        finally:
            conn.close()

    def stop(self):
        try:
            self.service.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def postgres():
    server = PostgresServer()
    try:
        yield server
    finally:
        server.stop()


class RedisServer:
    """Debian's redis-server on 127.0.0.1:<free port>, no persistence, in a temporary folder."""

    def __init__(self, root: Path):
        self.port = free_port()
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        assert Path(binary).exists(), "redis-server not found: run `make test-system` " \
                                      "(deploy/system-packages.sh installs Debian's redis-server)"
        self.service = Service(
            "redis",
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(root), "--protected-mode", "yes"],
            root, {"PATH": os.environ.get("PATH", "")},
        )

        def ready():
            import socket

            self.service.assert_running()
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")

        wait_for(ready, 30, "redis-server", interval=0.2)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self):
        self.service.stop()
