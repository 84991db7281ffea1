"""The store's schema comes from Alembic's migrations alone: from an empty database to the
newest revision on both backends, again without harm, down to nothing and back, and what
they build is exactly the tables `sql.py` queries (columns, types, keys, indexes); and a
database at the previous revision (0001), runs in it, reaches the newest with its runs."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from flow_operator.history.sql import (
    MIGRATIONS,
    SqlRunStore,
    create_engine,
    downgrade,
    metadata,
    migrate,
    schema_revision,
)
from flow_operator.history.store import RunQuery
from tests.unit.history.test_store_sql import rec


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

            def include(obj: Any, name: Any, kind: str, reflected: bool, other: Any) -> bool:
                # The trigram indexes exist on PostgreSQL only.
                only_pg = kind == "index" and obj.info.get("postgresql_only", False)
                return not (only_pg and conn.dialect.name != "postgresql")

            def diff(sync: Any) -> list[Any]:
                opts = {"compare_type": True, "include_object": include}
                context = MigrationContext.configure(sync, opts=opts)
                return list(compare_metadata(context, metadata))

            return await conn.run_sync(diff)
    finally:
        await engine.dispose()


async def test_from_empty_to_head_and_again(dsn: str) -> None:
    assert await schema_revision(dsn) is None
    assert await _tables(dsn) == set()
    await migrate(dsn)
    assert _head() == "0002"
    assert await schema_revision(dsn) == _head()
    assert await _tables(dsn) == {"alembic_version", "flowrun_counts", "flowruns", "task_logs"}
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


async def test_from_the_previous_version_with_runs_to_head(dsn: str) -> None:
    # A database at 0001 holding runs (written by today's store: 0002 changes no column of
    # flowruns); migrated, its runs stay, its counts are filled, and they keep up.
    await migrate(dsn, "0001")
    assert await schema_revision(dsn) == "0001"
    old = SqlRunStore(create_engine(dsn))
    try:
        for i, (flow, status) in enumerate(
            [
                ("churn", "Completed"),
                ("churn", "Completed"),
                ("churn", "Failed"),
                ("etl", "Deployed"),
            ]
        ):
            await old.upsert_run(rec(f"r{i}", i, flow_name=flow, status=status, phases=3))
    finally:
        await old.close()
    await migrate(dsn)
    assert await schema_revision(dsn) == _head()
    store = SqlRunStore(create_engine(dsn))
    try:
        page = await store.list_runs(RunQuery())
        assert [r.uid for r in page.items] == ["r3", "r2", "r1", "r0"]
        assert page.counts == {"Completed": 2, "Failed": 1, "Deployed": 1}
        assert (await store.list_runs(RunQuery(flow="etl"))).counts == {"Deployed": 1}
        await store.upsert_run(rec("r3", 3, flow_name="etl", status="Completed", phases=4))
        assert (await store.list_runs(RunQuery())).counts == {"Completed": 3, "Failed": 1}
        assert [r.uid for r in (await store.list_runs(RunQuery(configuration="RN-PR"))).items] == [
            "r3",
            "r2",
            "r1",
            "r0",
        ]
    finally:
        await store.close()
