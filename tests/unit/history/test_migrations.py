"""The store's schema comes from Alembic's migrations alone: from an empty database to the
newest revision on both backends, again without harm, down to nothing and back, and what
they build is exactly the tables `sql.py` queries (columns, types, keys, indexes); and a
database at an earlier revision (0001 to 0006), runs in it, reaches the newest with its
runs."""

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
from flow_operator.history.store import (
    AuditQuery,
    AuditRecord,
    ColorTransition,
    PrunePolicy,
    RunQuery,
)
from tests.unit.history.test_store_colors import at
from tests.unit.history.test_store_sql import rec

# The FTS5 table of SQLite's log search (migration 0006) and the shadow tables it keeps.
FTS_TABLES = {f"task_logs_fts{part}" for part in ("", "_data", "_idx", "_docsize", "_config")}


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


async def _indexes(dsn: str, table: str) -> set[str]:
    engine = create_engine(dsn)
    try:
        async with engine.connect() as conn:
            found = await conn.run_sync(lambda sync: inspect(sync).get_indexes(table))
            return {str(index["name"]) for index in found}
    finally:
        await engine.dispose()


async def _drift(dsn: str) -> list[Any]:
    engine = create_engine(dsn)
    try:
        async with engine.connect() as conn:

            def include(obj: Any, name: Any, kind: str, reflected: bool, other: Any) -> bool:
                # The trigram indexes exist on PostgreSQL only; SQLite's FTS5 table of the
                # log search is not in the metadata (sql.log_search, a virtual table).
                if kind == "table" and name in FTS_TABLES:
                    return False
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
    assert _head() == "0007"
    assert await schema_revision(dsn) == _head()
    assert await _tables(dsn) - FTS_TABLES == {
        "alembic_version",
        "audit_log",
        "flowrun_counts",
        "flowruns",
        "task_logs",
        "workflow_colors",
    }
    # SQLite's log search is an FTS5 table (and its shadow tables); PostgreSQL has an index.
    assert (await _tables(dsn) >= FTS_TABLES) == dsn.startswith("sqlite")
    await migrate(dsn)  # at start, every start: nothing to do the second time
    assert await schema_revision(dsn) == _head()


async def test_the_migrated_schema_is_the_one_the_store_queries(dsn: str) -> None:
    await migrate(dsn)
    assert await _drift(dsn) == []


async def test_down_to_nothing_and_back_up(dsn: str) -> None:
    await migrate(dsn)
    await downgrade(dsn, "base")
    assert await schema_revision(dsn) is None
    assert await _tables(dsn) == {"alembic_version"}  # the FTS5 tables went too
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


async def test_from_0002_with_runs_to_head_records_colors(dsn: str) -> None:
    # 0003 adds workflow_colors and touches nothing else: the runs stay, colors are stored.
    await migrate(dsn, "0002")
    assert "workflow_colors" not in await _tables(dsn)
    old = SqlRunStore(create_engine(dsn))
    try:
        await old.upsert_run(rec("r0", 0, status="Completed"))
    finally:
        await old.close()
    await migrate(dsn)
    assert await schema_revision(dsn) == _head()
    store = SqlRunStore(create_engine(dsn))
    try:
        assert [r.uid for r in (await store.list_runs(RunQuery())).items] == ["r0"]
        green = ColorTransition(uid="w", namespace="ml", name="shop", time=at(0), to_color="GREEN")
        assert await store.record_colors([green]) == 1
        assert (await store.color_history("ml", "shop", at(-1), at(1))).transitions == (green,)
    finally:
        await store.close()
    await downgrade(dsn, "0002")
    assert "workflow_colors" not in await _tables(dsn)


async def test_from_0003_with_runs_and_colors_to_head_records_audit(dsn: str) -> None:
    # 0004 adds audit_log and touches nothing else.
    await migrate(dsn, "0003")
    assert "audit_log" not in await _tables(dsn)
    green = ColorTransition(uid="w", namespace="ml", name="shop", time=at(0), to_color="GREEN")
    old = SqlRunStore(create_engine(dsn))
    try:
        await old.upsert_run(rec("r0", 0, status="Completed"))
        await old.record_colors([green])
    finally:
        await old.close()
    await migrate(dsn)
    assert await schema_revision(dsn) == _head() == "0007"
    store = SqlRunStore(create_engine(dsn))
    try:
        assert [r.uid for r in (await store.list_runs(RunQuery())).items] == ["r0"]
        assert (await store.color_history("ml", "shop", at(-1), at(1))).transitions == (green,)
        done = AuditRecord(id="a1", time=at(0), user="alice", action="cancel",
                           namespace="ml", kind="FlowRun", name="r0", result="done",
                           status=200)  # fmt: skip
        assert await store.record_audit([done]) == 1
        assert (await store.list_audit(AuditQuery())).items == (done,)
    finally:
        await store.close()
    await downgrade(dsn, "0003")
    assert "audit_log" not in await _tables(dsn)


async def test_from_0004_with_colors_to_head_indexes_their_time(dsn: str) -> None:
    # 0005 adds the index prune's age delete of color transitions uses, and nothing else.
    await migrate(dsn, "0004")
    assert "ix_workflow_colors_time" not in await _indexes(dsn, "workflow_colors")
    green = ColorTransition(uid="w", namespace="ml", name="shop", time=at(0), to_color="GREEN")
    old = SqlRunStore(create_engine(dsn))
    try:
        await old.record_colors([green])
    finally:
        await old.close()
    await migrate(dsn)
    assert await schema_revision(dsn) == _head() == "0007"
    assert "ix_workflow_colors_time" in await _indexes(dsn, "workflow_colors")
    store = SqlRunStore(create_engine(dsn))
    try:
        assert (await store.color_history("ml", "shop", at(-1), at(1))).transitions == (green,)
    finally:
        await store.close()
    await downgrade(dsn, "0004")
    assert "ix_workflow_colors_time" not in await _indexes(dsn, "workflow_colors")


async def test_from_0005_with_logs_to_head_searches_them(dsn: str) -> None:
    # 0006 adds the log search index (PostgreSQL's trigram index, SQLite's FTS5 table filled
    # from the logs already stored); 0007 swaps the configuration index. Nothing else moves.
    await migrate(dsn, "0005")
    assert "ix_task_logs_text_trgm" not in await _indexes(dsn, "task_logs")
    assert not await _tables(dsn) & FTS_TABLES
    old = SqlRunStore(create_engine(dsn))
    try:
        for i, line in enumerate(("Connection refused by db-7", "all fine")):
            await old.upsert_run(rec(f"r{i}", i, configuration=f"cfg-{i}"))
            await old.put_log(f"r{i}", "extract", 1, line)
    finally:
        await old.close()
    await migrate(dsn)
    assert await schema_revision(dsn) == _head() == "0007"
    if dsn.startswith("sqlite"):
        assert await _tables(dsn) >= FTS_TABLES
    else:
        assert "ix_task_logs_text_trgm" in await _indexes(dsn, "task_logs")
    assert "ix_flowruns_configuration_sort" in await _indexes(dsn, "flowruns")
    assert "ix_flowruns_configuration" not in await _indexes(dsn, "flowruns")
    store = SqlRunStore(create_engine(dsn))
    try:
        found = await store.list_runs(RunQuery(log_contains="connection REFUSED"))
        assert [r.uid for r in found.items] == ["r0"]
        await store.put_log("r1", "train", 1, "later: connection refused")  # the index follows
        found = await store.list_runs(RunQuery(log_contains="connection refused"))
        assert [r.uid for r in found.items] == ["r1", "r0"]
        assert [r.uid for r in (await store.list_runs(RunQuery(configuration="cfg-1"))).items] == [
            "r1"
        ]
    finally:
        await store.close()
    await downgrade(dsn, "0005")
    assert not await _tables(dsn) & FTS_TABLES
    assert "ix_task_logs_text_trgm" not in await _indexes(dsn, "task_logs")
    assert "ix_flowruns_configuration" in await _indexes(dsn, "flowruns")
    old = SqlRunStore(create_engine(dsn))
    try:  # 0005's store writes logs again: no trigger is left behind
        await old.put_log("r1", "publish", 1, "after the downgrade")
        await old.prune(PrunePolicy(keep_per_flow_status=0))
    finally:
        await old.close()


async def test_from_0006_to_head_swaps_the_configuration_index(dsn: str) -> None:
    await migrate(dsn, "0006")
    assert "ix_flowruns_configuration" in await _indexes(dsn, "flowruns")
    old = SqlRunStore(create_engine(dsn))
    try:
        await old.upsert_run(rec("r0", 0, configuration="churn-prod-eu"))
    finally:
        await old.close()
    await migrate(dsn)
    indexes = await _indexes(dsn, "flowruns")
    assert (
        "ix_flowruns_configuration_sort" in indexes and "ix_flowruns_configuration" not in indexes
    )
    store = SqlRunStore(create_engine(dsn))
    try:
        assert [r.uid for r in (await store.list_runs(RunQuery(configuration="PROD"))).items] == [
            "r0"
        ]
    finally:
        await store.close()
    await downgrade(dsn, "0006")
    assert "ix_flowruns_configuration_sort" not in await _indexes(dsn, "flowruns")
