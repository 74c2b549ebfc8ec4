"""A real, throw-away PostgreSQL cluster for tests: ``initdb`` in a temp dir, ``pg_ctl start`` on a
free port, ``pg_ctl stop`` at teardown.

The server binaries come from the machine (``scripts/install-test-deps.sh`` installs them where
``initdb`` is missing). PostgreSQL refuses to run as root, so when the tests run as root the
cluster directory is handed to the ``postgres`` system user and the server runs as that user
(``runuser``); otherwise it runs as the current user. The cluster trusts local TCP connections
(127.0.0.1 only, ``listen_addresses``), so no password is involved.

Use the pytest fixture ``postgres_cluster`` (module-scoped here, re-exported from a test module),
or ``PostgresCluster`` as a context manager.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

DATABASE = "loyalty"
SEARCH_DIRS = ("/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin",
               "/usr/local/pgsql/bin")


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for directory in SEARCH_DIRS:
        candidate = Path(directory) / name
        if candidate.exists():
            return str(candidate)
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresCluster:
    """One cluster: ``start()`` creates and starts it, ``stop()`` stops it and removes its files."""

    directory: Path | None = None
    port: int = 0
    user: str = "postgres"
    database: str = DATABASE
    _owner: str | None = None
    _tmp: str | None = None

    def start(self) -> "PostgresCluster":
        initdb, pg_ctl = find_binary("initdb"), find_binary("pg_ctl")
        if not initdb or not pg_ctl:
            pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) are not installed: run scripts/install-test-deps.sh "
                        "(make test does)")
        if self.directory is None:
            self._tmp = tempfile.mkdtemp(prefix="loyalty-pg-")
            self.directory = Path(self._tmp)
        data = self.directory / "pgdata"
        self.port = self.port or _free_port()
        if os.geteuid() == 0:
            self._owner = "postgres"
            try:
                pwd.getpwnam(self._owner)
            except KeyError:
                pytest.fail("running as root and there is no 'postgres' user to run the server as: create one "
                            "(the postgresql package does; scripts/install-test-deps.sh installs it)")
            # the server user must be able to reach its data directory through the temp path
            os.chmod(self.directory, 0o755)
            shutil.chown(self.directory, user=self._owner)
        else:
            self.user = pwd.getpwuid(os.geteuid()).pw_name
        self._run([initdb, "-D", str(data), "-U", self.user, "-A", "trust", "-E", "UTF8",
                   "--locale=C", "--no-sync"])
        log = self.directory / "server.log"
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=40 "
                   "-c shared_buffers=64MB -c timezone=UTC")
        self._run([pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"])
        self._psql_create_database()
        return self

    def _run(self, argv: list[str]) -> None:
        if self._owner:
            argv = ["runuser", "-u", self._owner, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, cwd="/")
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr or done.stdout}")

    def _psql_create_database(self) -> None:
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres")
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute(f'create database "{self.database}"')
        finally:
            con.close()

    def stop(self) -> None:
        if self.directory is None:
            return
        pg_ctl = find_binary("pg_ctl")
        data = self.directory / "pgdata"
        if pg_ctl and (data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):
                self._run([pg_ctl, "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"])
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "PostgresCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what clients need ---------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """The ``LOYALTY_PG_*`` variables (settings and dbt profile) that point at this cluster."""
        return {"LOYALTY_PG_HOST": "127.0.0.1", "LOYALTY_PG_PORT": str(self.port),
                "LOYALTY_PG_USER": self.user, "LOYALTY_PG_PASSWORD": "", "LOYALTY_PG_DATABASE": self.database}

    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={self.database}"


@pytest.fixture(scope="module")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A running PostgreSQL cluster for the test module, stopped and removed afterwards."""
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
