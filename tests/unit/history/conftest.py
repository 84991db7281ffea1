"""Fixtures of the run store's tests: each store test runs on SQLite and on PostgreSQL.

PostgreSQL is a real server: one throwaway instance per session (bench/pgserver.py, which
bench/history.py uses too: initdb into a temporary directory, pg_ctl on a free loopback
port, fsync off), run as an unprivileged user when the tests run as root, stopped and
removed at the end. Each test gets a database of its own.
Without the PostgreSQL binaries the PostgreSQL cases fail and say what to install.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from bench import pgserver
from bench.pgserver import Postgres

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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    try:
        server = pgserver.start()
    except pgserver.PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


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
