"""The store's searches at scale keep their answers (both backends): `logContains` through
the log search index (PostgreSQL's trigram index, SQLite's FTS5 trigram table, kept by
triggers through every change of a log), and the configuration search's merge of each
matching configuration's newest runs, page by page, equal to filtering the whole list;
and the statements do use those indexes (EXPLAIN)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, text

from flow_operator.history.sql import MAX_CONFIGURATION_ARMS, SqlRunStore
from flow_operator.history.store import LOG_LOST_POD_DELETED, PrunePolicy, RunQuery, RunRecord
from tests.unit.history.test_store_sql import rec


async def uids(store: SqlRunStore, query: RunQuery, limit: int = 100) -> list[str]:
    """Every run the query lists, page by page (`limit` a page)."""
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await store.list_runs(query, limit=limit, cursor=cursor)
        seen += [r.uid for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return seen


async def test_log_contains_follows_every_change_of_a_log(store: SqlRunStore) -> None:
    for uid, start in (("a", 0), ("b", 10), ("c", 20), ("d", 30)):
        await store.upsert_run(rec(uid, start, status="Failed" if uid == "c" else "Completed"))
    await store.put_log("a", "extract", 1, 'error: "quoted" Connection REFUSED by db-7\n')
    await store.put_log("b", "extract", 1, "", lost_reason=LOG_LOST_POD_DELETED)
    await store.put_log("c", "train", 1, "ok\nconnection refused\n")
    await store.put_log("d", "train", 1, "all fine\n")
    assert await uids(store, RunQuery(log_contains="connection refused")) == ["c", "a"]
    assert await uids(store, RunQuery(log_contains='"quoted"')) == ["a"]  # quotes are text
    assert await uids(store, RunQuery(log_contains="ok")) == ["c"]  # shorter than a trigram
    assert await uids(store, RunQuery(log_contains="i")) == ["d", "c", "a"]
    assert await uids(store, RunQuery(log_contains="lost")) == []  # a loss is no log text
    # a capture replaces the loss: the index follows the update
    await store.put_log("b", "extract", 1, "then: connection refused\n")
    assert await uids(store, RunQuery(log_contains="CONNECTION refused")) == ["c", "b", "a"]
    # a second attempt, the other filters and the counts
    await store.put_log("c", "train", 2, "connection refused again\n")
    page = await store.list_runs(RunQuery(log_contains="connection refused", status="Failed"))
    assert [r.uid for r in page.items] == ["c"] and page.total == 1
    assert page.counts == {"Completed": 2, "Failed": 1}
    assert await uids(store, RunQuery(log_contains="connection refused"), limit=1) == [
        "c",
        "b",
        "a",
    ]
    # pruned runs leave the index with their logs
    await store.prune(PrunePolicy(keep_per_flow_status=1))  # keeps c (Failed), d
    assert await uids(store, RunQuery(log_contains="connection refused")) == ["c"]
    assert await uids(store, RunQuery(log_contains="db-7")) == []


def _configured(i: int, rng: random.Random) -> RunRecord:
    env = rng.choice(("prod", "staging", "dev"))
    flow = rng.choice(("churn", "etl", "fraud"))
    return rec(
        f"r{i:03d}",
        rng.randrange(50),  # many runs share a start: the order's tie is the uid
        flow_name=flow,
        namespace=rng.choice(("ml", "ops")),
        configuration=None if i % 17 == 0 else f"{flow}-{env}-{rng.choice(('eu', 'us'))}",
        status=rng.choice(("Completed", "Failed")),
        phases=4,
    )


async def test_the_configuration_search_pages_as_the_whole_list_filtered(
    store: SqlRunStore,
) -> None:
    rng = random.Random(5)
    records = [_configured(i, rng) for i in range(120)]
    for r in records:
        await store.upsert_run(r)
    newest = sorted(records, key=lambda r: (r.sort_time, r.uid), reverse=True)
    cases = [
        RunQuery(configuration="prod"),
        RunQuery(configuration="PROD-e"),
        RunQuery(configuration="etl-dev-us"),
        RunQuery(configuration="-"),
        RunQuery(configuration="nowhere"),
        RunQuery(configuration="prod", status="Failed"),
        RunQuery(configuration="u", flow="churn", namespace="ops"),
        RunQuery(configuration="e", namespaces=("ml",)),
        RunQuery(configuration="prod", run_type="Manual", since=rec("x", 10).start_time),
    ]
    for query in cases:
        fragment = (query.configuration or "").casefold()
        want = [
            r.uid
            for r in newest
            if r.configuration is not None
            and fragment in r.configuration.casefold()
            and query.status in (None, r.status)
            and query.flow in (None, r.flow_name)
            and query.namespace in (None, r.namespace)
            and (query.namespaces is None or r.namespace in query.namespaces)
            and (query.since is None or r.sort_time >= query.since)
        ]
        for limit in (7, 50):
            assert await uids(store, query, limit=limit) == want, (query, limit)
        page = await store.list_runs(query, limit=5)
        assert page.total == len(want), query


async def test_past_the_arms_the_configuration_search_filters_the_list(
    store: SqlRunStore,
) -> None:
    count = MAX_CONFIGURATION_ARMS + 5
    for i in range(count):
        await store.upsert_run(rec(f"r{i:04d}", i % 40, configuration=f"cfg-{i:04d}"))
    got = await uids(store, RunQuery(configuration="cfg-"), limit=100)
    assert len(got) == count and len(set(got)) == count
    assert await uids(store, RunQuery(configuration="cfg-0007")) == ["r0007"]


@contextmanager
def statements(store: SqlRunStore) -> Iterator[list[tuple[str, Any]]]:
    """The statements the store sends meanwhile, with their parameters."""
    seen: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        seen.append((statement, params))

    event.listen(store.engine.sync_engine, "before_cursor_execute", grab)
    try:
        yield seen
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", grab)


async def plan(store: SqlRunStore, statement: str, params: Any) -> str:
    """The plan of one statement; on PostgreSQL with sequential scans discouraged, as a
    large table would make them (these tables hold a few rows)."""
    async with store.engine.connect() as conn:
        if store.backend == "postgresql":
            await conn.execute(text("SET enable_seqscan = off"))
            got = await conn.exec_driver_sql("EXPLAIN " + statement, params)
            await conn.execute(text("RESET enable_seqscan"))
        else:
            got = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)
        return "\n".join(str(row[-1]) for row in got.all())


async def test_the_searches_use_their_indexes(store: SqlRunStore) -> None:
    for i in range(20):
        await store.upsert_run(rec(f"r{i}", i, configuration=f"cfg-{i % 4}"))
        await store.put_log(f"r{i}", "extract", 1, f"line {i}: connection refused\n")
    with statements(store) as seen:
        await store.list_runs(RunQuery(log_contains="refused"), counts=False)
    (statement, params), *_ = seen
    shown = await plan(store, statement, params)
    index = "ix_task_logs_text_trgm" if store.backend == "postgresql" else "task_logs_fts"
    assert index in shown, shown
    with statements(store) as seen:
        await store.list_runs(RunQuery(configuration="cfg-1"), counts=False)
    statement, params = seen[-1]  # the page (after the configurations it merges)
    shown = await plan(store, statement, params)
    assert "ix_flowruns_configuration_sort" in shown, shown
