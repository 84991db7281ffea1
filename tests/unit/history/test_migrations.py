"""The store's schema comes from Alembic's migrations alone: from an empty database to the
newest revision on both backends, again without harm, down to nothing and back, and what
they build is exactly the tables `sql.py` queries (columns, types, keys, indexes)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from flow_operator.history.sql import (
    MIGRATIONS,
    create_engine,
    downgrade,
    metadata,
    migrate,
    schema_revision,
)


def _head() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


async def _tables(dsn: str) -> set[str]:
    engine = create_engine(dsn)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


async def _drift(dsn: str) -> list[Any]:
    engine = create_engine(dsn)
    try:
        async with engine.connect() as conn:

            def diff(sync: Any) -> list[Any]:
                context = MigrationContext.configure(sync, opts={"compare_type": True})
                return list(compare_metadata(context, metadata))

            return await conn.run_sync(diff)
    finally:
        await engine.dispose()


async def test_from_empty_to_head_and_again(dsn: str) -> None:
    assert await schema_revision(dsn) is None
    assert await _tables(dsn) == set()
    await migrate(dsn)
    assert _head() == "0001"
    assert await schema_revision(dsn) == _head()
    assert await _tables(dsn) == {"alembic_version", "flowruns", "task_logs"}
    await migrate(dsn)  # at start, every start: nothing to do the second time
    assert await schema_revision(dsn) == _head()


async def test_the_migrated_schema_is_the_one_the_store_queries(dsn: str) -> None:
    await migrate(dsn)
    assert await _drift(dsn) == []


async def test_down_to_nothing_and_back_up(dsn: str) -> None:
    await migrate(dsn)
    await downgrade(dsn, "base")
    assert await schema_revision(dsn) is None
    assert await _tables(dsn) == {"alembic_version"}
    await migrate(dsn)
    assert await schema_revision(dsn) == _head()
