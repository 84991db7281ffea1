"""Fixtures of the run store's tests: each store test runs on SQLite and on PostgreSQL.

PostgreSQL is a real server: one throwaway instance per session (initdb into a temporary
directory, pg_ctl on a free loopback port, fsync off), run as an unprivileged user when the
tests run as root, stopped and removed at the end. Each test gets a database of its own.
Without the PostgreSQL binaries the PostgreSQL cases fail and say what to install.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from flow_operator.history.sql import SqlRunStore, open_store

BACKENDS = ("sqlite", "postgresql")
T0 = datetime(2026, 11, 24, 9, 0, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _pg_bin() -> Path:
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).resolve().parent
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
    )
    if not found:
        pytest.fail(
            "PostgreSQL binaries (initdb, pg_ctl) not found on PATH or in "
            "/usr/lib/postgresql/*/bin: install Debian's postgresql package "
            "(apt-get install postgresql; .ci/run does it)",
            pytrace=False,
        )
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Postgres:
    port: int
    user: str = "flow"

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    bindir = _pg_bin()
    run_as: list[str] = []
    owner = None
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        name = "postgres" if _has_user("postgres") else "nobody"
        owner = pwd.getpwnam(name)
        run_as = ["runuser", "-u", name, "--"]
    base = Path(tempfile.mkdtemp(prefix="flowops-pg-"))
    data, logfile = base / "data", base / "server.log"
    if owner is not None:
        os.chown(base, owner.pw_uid, owner.pw_gid)

    def pg(*args: str) -> None:
        cmd = [*run_as, *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode:
            tail = logfile.read_text()[-2000:] if logfile.exists() else ""
            pytest.fail(f"{' '.join(args[:2])} failed: {done.stderr or done.stdout}\n{tail}")

    pg(
        str(bindir / "initdb"),
        "-D",
        str(data),
        "-U",
        "flow",
        "--auth=trust",
        "-E",
        "UTF8",
        "--no-sync",
        "--no-instructions",
    )
    port = _free_port()
    options = (
        f"-p {port} -h 127.0.0.1 -k {data} -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off"
    )
    pg(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(logfile),
        "-o",
        options,
        "-w",
        "-t",
        "60",
        "start",
    )
    try:
        yield Postgres(port)
    finally:
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop")
        shutil.rmtree(base, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


_numbers = itertools.count()


async def _fresh_database(server: Postgres) -> str:
    name = f"t{os.getpid()}_{next(_numbers)}"
    conn = await asyncpg.connect(
        host="127.0.0.1", port=server.port, user=server.user, database="postgres"
    )
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return server.dsn(name)


@pytest.fixture(params=BACKENDS)
async def dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.db'}"
    server: Postgres = request.getfixturevalue("postgres_server")
    return await _fresh_database(server)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(dsn: str, clock: Clock) -> AsyncIterator[SqlRunStore]:
    """A migrated store on each backend, with a hand-moved clock and a 1 KiB log cap."""
    opened = await open_store(dsn, clock=clock, log_cap=1024)
    try:
        yield opened
    finally:
        await opened.close()
