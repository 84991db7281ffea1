"""The SQL run store on both backends (SQLite and a real PostgreSQL; see conftest.py):
idempotent upserts that never move a run back, keyset pages, search, counts, capped logs,
corrupt rows skipped, prune by age and count with a dry run that tells the truth."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
from sqlalchemy import func, select, update

from flow_operator.history.sql import SqlRunStore, create_engine, open_store, run_counts, runs
from flow_operator.history.store import (
    LOG_LOST_POD_DELETED,
    InvalidCursor,
    PrunePolicy,
    RunQuery,
    RunRecord,
    StoreUnavailable,
    TaskRecord,
    TransitionRecord,
)
from tests.unit.history.conftest import T0, Clock

STATES = ("Submitted", "Queued", "Deployed", "Completed")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def rec(
    uid: str, start: float | None = 0, *, phases: int = 4, rv: int = 1, **fields: Any
) -> RunRecord:
    """A run whose history has `phases` transitions (Completed after four)."""
    history = tuple(
        TransitionRecord(phase=p, time=at(i), reason=p) for i, p in enumerate(STATES[:phases])
    )
    base: dict[str, Any] = {
        "uid": uid,
        "namespace": "ml",
        "name": f"run-{uid}",
        "flow_name": "churn",
        "version": "3",
        "level": "user",
        "run_type": "Manual",
        "configuration": "churn-prod",
        "status": history[-1].phase if history else "Submitted",
        "created": at(-10),
        "start_time": None if start is None else at(start),
        "tasks": (TaskRecord(name="extract", status="Succeeded", attempts=1),),
        "history": history,
        "resource_version": rv,
    }
    return RunRecord(**{**base, **fields})


async def names(store: SqlRunStore, query: RunQuery | None = None, limit: int = 100) -> list[str]:
    page = await store.list_runs(query or RunQuery(), limit=limit)
    return [r.uid for r in page.items]


async def test_upsert_is_idempotent_and_never_moves_a_run_back(store: SqlRunStore) -> None:
    deployed = rec("a", phases=3, rv=10)
    done = rec("a", phases=4, rv=12, message="all done")
    assert await store.upsert_run(deployed)
    assert await store.upsert_run(done)
    assert await store.upsert_run(done)  # the same record again: written, unchanged
    # A late write of an earlier phase (a replay, a slow worker) is refused...
    assert not await store.upsert_run(rec("a", phases=3, rv=99))
    # ...and so is one with as many transitions from an older resourceVersion.
    assert not await store.upsert_run(rec("a", phases=4, rv=11, message="stale"))
    got = await store.get_run("a")
    assert got == done
    # Same phase, newer object (a task's details changed): written.
    newer = rec("a", phases=4, rv=13, message="details")
    assert await store.upsert_run(newer)
    assert await store.get_run("a") == newer
    assert [r.uid for r in (await store.list_runs(RunQuery())).items] == ["a"]


async def test_get_run_by_uid_or_namespace_and_name(store: SqlRunStore) -> None:
    old, new = rec("u1", 0, name="nightly"), rec("u2", 60, name="nightly")
    other = rec("u3", 30, name="nightly", namespace="ops")
    for r in (old, new, other):
        await store.upsert_run(r)
    assert await store.get_run("u1") == old
    assert await store.get_run("ml/nightly") == new  # the newest run of that name
    assert await store.get_run("ops/nightly") == other
    assert await store.get_run("ml/missing") is None
    assert await store.get_run("nope") is None


async def test_pages_are_newest_first_and_stable_under_ties(store: SqlRunStore) -> None:
    # 23 runs, most sharing a start time: order by (sort time, uid), newest first.
    records = [rec(f"r{i:02d}", start=(i // 5) * 10) for i in range(23)]
    records.append(rec("waiting", start=None, created=at(35), phases=2))
    for r in reversed(records):
        await store.upsert_run(r)
    expected = [r.uid for r in sorted(records, key=lambda r: (r.sort_time, r.uid), reverse=True)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await store.list_runs(RunQuery(), limit=5, cursor=cursor)
        seen += [r.uid for r in page.items]
        pages += 1
        assert page.total == 23 + pages  # the 24, and one more added after each page
        cursor = page.next_cursor
        if cursor is None:
            break
        # A run added meanwhile at the top does not shift the next page.
        await store.upsert_run(rec(f"new{pages}", start=1000 + pages))
    assert seen == expected
    assert pages == 5
    assert expected[:3] == ["r22", "r21", "r20"] and expected[3] == "waiting"


async def test_search_by_the_seed_fields_and_more(store: SqlRunStore) -> None:
    await store.upsert_run(rec("a", 0, name="churn-weekly-001", configuration="churn-prod"))
    await store.upsert_run(
        rec(
            "b",
            10,
            name="tagging",
            flow_name="nlp",
            configuration="Default_100%",
            run_type="Scheduled",
            level="platform",
            phases=3,
        )
    )
    await store.upsert_run(
        rec(
            "c",
            20,
            name="etl",
            flow_name="etl",
            namespace="ops",
            configuration=None,
            run_type="API",
            status="Failed",
            end_time=at(30),
        )
    )
    cases: list[tuple[RunQuery, list[str]]] = [
        (RunQuery(), ["c", "b", "a"]),
        (RunQuery(name="WEEKLY"), ["a"]),
        (RunQuery(name="nlp"), ["b"]),  # the flow's name counts as a name
        (RunQuery(configuration="prod"), ["a"]),
        (RunQuery(configuration="_100%"), ["b"]),  # LIKE wildcards are literal
        (RunQuery(configuration="f_u"), []),  # would match "fau" as a wildcard
        (RunQuery(run_type="scheduled"), ["b"]),
        (RunQuery(status="deployed"), ["b"]),
        (RunQuery(status="Failed"), ["c"]),
        (RunQuery(flow="etl"), ["c"]),
        (RunQuery(namespace="ml"), ["b", "a"]),
        (RunQuery(level="Platform"), ["b"]),
        (RunQuery(text="api"), ["c"]),
        (RunQuery(text="churn"), ["a"]),
        (RunQuery(since=at(10)), ["c", "b"]),
        (RunQuery(since=at(5), until=at(20)), ["b"]),
        (RunQuery(namespace="ml", run_type="Manual", status="Completed"), ["a"]),
    ]
    for query, expected in cases:
        assert await names(store, query) == expected, query


async def test_counts_per_status_ignore_the_status_filter(store: SqlRunStore) -> None:
    for i in range(3):
        await store.upsert_run(rec(f"ok{i}", i))
    await store.upsert_run(rec("f", 5, status="Failed"))
    await store.upsert_run(rec("other", 6, flow_name="etl", status="Failed"))
    page = await store.list_runs(RunQuery(flow="churn", status="Completed"), limit=2)
    assert page.counts == {"Completed": 3, "Failed": 1}
    assert page.total == 3
    assert len(page.items) == 2 and page.next_cursor is not None
    everything = await store.list_runs(RunQuery())
    assert everything.counts == {"Completed": 3, "Failed": 2} and everything.total == 5
    quiet = await store.list_runs(RunQuery(), counts=False)
    assert quiet.counts == {} and len(quiet.items) == 5


async def test_namespaces_filter_statuses_and_the_namespaces_held(store: SqlRunStore) -> None:
    await store.upsert_run(rec("a", 1))
    await store.upsert_run(rec("b", 2, namespace="etl", status="Failed"))
    await store.upsert_run(rec("c", 3, namespace="ops"))
    page = await store.list_runs(RunQuery(namespaces=("ml", "etl")))
    assert [r.uid for r in page.items] == ["b", "a"]
    assert page.counts == {"Completed": 1, "Failed": 1}
    searched = await store.list_runs(RunQuery(text="run", namespaces=("ops",)))
    assert [r.uid for r in searched.items] == ["c"] and searched.counts == {"Completed": 1}
    assert (await store.list_runs(RunQuery(namespaces=()))).items == ()
    assert await store.namespaces() == ["etl", "ml", "ops"]
    assert await store.statuses(["a", "b", "gone"]) == {"a": "Completed", "b": "Failed"}
    assert await store.statuses([]) == {}


async def test_a_foreign_cursor_is_refused(store: SqlRunStore) -> None:
    with pytest.raises(InvalidCursor):
        await store.list_runs(RunQuery(), cursor="not-a-cursor")
    with pytest.raises(ValueError):
        await store.list_runs(RunQuery(), limit=0)


async def test_corrupt_rows_are_skipped_with_a_logged_reason(
    store: SqlRunStore, caplog: pytest.LogCaptureFixture
) -> None:
    for uid, start in (("good1", 0), ("bad", 10), ("good2", 20), ("alien", 30)):
        await store.upsert_run(rec(uid, start))
    async with store.engine.begin() as conn:
        await conn.execute(update(runs).where(runs.c.uid == "bad").values(record='{"uid": "bad"'))
        alien = rec("someone-else").model_dump_json(by_alias=True)
        await conn.execute(update(runs).where(runs.c.uid == "alien").values(record=alien))
    with caplog.at_level(logging.WARNING, logger="flow_operator.history.sql"):
        page = await store.list_runs(RunQuery(), limit=3)
        assert [r.uid for r in page.items] == ["good2"]
        assert page.skipped == 2 and page.next_cursor is not None
        rest = await store.list_runs(RunQuery(), limit=3, cursor=page.next_cursor)
        assert [r.uid for r in rest.items] == ["good1"]
        assert await store.get_run("bad") is None
    text = caplog.text
    assert "skipping run bad: its record does not read" in text
    assert "skipping run alien: its record is of run someone-else" in text


async def test_logs_are_capped_marked_and_never_replaced_by_a_loss(
    store: SqlRunStore, clock: Clock
) -> None:
    await store.upsert_run(rec("a"))
    short = await store.put_log("a", "extract", 1, "one line\n")
    assert (short.text, short.truncated, short.size, short.lost_reason) == (
        "one line\n",
        False,
        9,
        None,
    )
    long = "é" * 700 + "the end\n"  # 1,408 bytes, over the test's 1 KiB cap
    clock.advance(5)
    got = await store.put_log("a", "extract", 2, long)
    assert got.truncated and got.size == 1408 and got.captured_at == at(5)
    assert got.text.endswith("the end\n") and long.endswith(got.text)
    assert len(got.text.encode()) <= 1024
    assert await store.get_log("a", "extract", 2) == got
    assert await store.get_log("a", "extract") == got  # the latest attempt
    assert await store.get_log("a", "extract", 1) == short
    # A capture that comes after a loss was recorded replaces it; never the reverse.
    lost = await store.put_log("a", "train", 1, "", lost_reason=LOG_LOST_POD_DELETED)
    assert lost.lost_reason == LOG_LOST_POD_DELETED and lost.text == ""
    again = await store.put_log("a", "extract", 1, "", lost_reason=LOG_LOST_POD_DELETED)
    assert again == short
    found = await store.put_log("a", "train", 1, "late capture")
    assert found.lost_reason is None and await store.get_log("a", "train") == found
    # The caller cut the log already (say, kubelet's byte limit): kept as marked.
    pre = await store.put_log("a", "publish", 1, "tail", truncated=True)
    assert pre.truncated and pre.size == 4
    assert await store.get_log("a", "nothing") is None


async def test_log_contains_searches_every_task_log(store: SqlRunStore) -> None:
    for uid, start in (("a", 0), ("b", 10), ("c", 20)):
        await store.upsert_run(rec(uid, start))
    await store.put_log("a", "extract", 1, "Traceback: ValueError: bad token\n")
    await store.put_log("b", "extract", 1, "all fine\n")
    await store.put_log("b", "train", 2, "warning: 100% of rows bad_token\n")
    assert await names(store, RunQuery(log_contains="valueerror")) == ["a"]
    assert await names(store, RunQuery(log_contains="bad_token")) == ["b"]  # "_" is literal
    assert await names(store, RunQuery(log_contains="100%")) == ["b"]
    assert await names(store, RunQuery(log_contains="bad")) == ["b", "a"]
    assert await names(store, RunQuery(log_contains="nowhere")) == []


async def test_prune_by_count_per_flow_and_status(store: SqlRunStore) -> None:
    for i in range(5):
        await store.upsert_run(rec(f"ok{i}", i))
        await store.put_log(f"ok{i}", "extract", 1, "log")
    for i in range(3):
        await store.upsert_run(rec(f"bad{i}", i, status="Failed"))
        await store.upsert_run(rec(f"etl{i}", i, flow_name="etl"))
    await store.upsert_run(rec("ops0", 0, namespace="ops"))
    policy = PrunePolicy(keep_per_flow_status=2, batch_size=2)
    dry = await store.prune(policy, dry_run=True)
    assert (dry.by_count, dry.by_age, dry.batches, dry.dry_run) == (5, 0, 0, True)
    assert len(await names(store)) == 12  # a dry run deletes nothing
    report = await store.prune(policy)
    assert (report.by_count, report.by_age, report.batches) == (5, 0, 3)
    assert sorted(report.examples) == sorted(dry.examples)
    assert set(await names(store)) == {"ok4", "ok3", "bad2", "bad1", "etl2", "etl1", "ops0"}
    assert await store.get_log("ok0", "extract") is None  # logs go with their run
    assert await store.get_log("ok4", "extract") is not None
    assert (await store.prune(policy)).total == 0


async def test_prune_by_age_and_count_dry_run_matches(store: SqlRunStore, clock: Clock) -> None:
    # Ended at 0..9 days ago; one unfinished run started 30 days ago.
    for day in range(10):
        end = T0 + timedelta(days=20 + day)
        await store.upsert_run(rec(f"d{day}", 0, end_time=end, start_time=end - timedelta(hours=1)))
    await store.upsert_run(rec("stuck", phases=3, start_time=T0))
    clock.now = T0 + timedelta(days=30)
    policy = PrunePolicy(max_age=timedelta(days=5), keep_per_flow_status=7, batch_size=3)
    dry = await store.prune(policy, dry_run=True)
    # Past the limit of 7: d2, d1, d0; older than 5 days and within it: d3, d4 and stuck.
    assert (dry.by_count, dry.by_age) == (3, 3)
    report = await store.prune(policy)
    assert (report.by_count, report.by_age) == (dry.by_count, dry.by_age)
    assert report.batches == 2
    assert await names(store) == ["d9", "d8", "d7", "d6", "d5"]
    only_age = await store.prune(PrunePolicy(max_age=timedelta(days=1)), dry_run=True)
    assert (only_age.by_age, only_age.by_count) == (4, 0)
    assert (await store.prune(PrunePolicy(), dry_run=True)).total == 0


async def test_times_come_back_in_utc(store: SqlRunStore) -> None:
    east = datetime(2026, 11, 24, 21, 0, tzinfo=timezone(timedelta(hours=9)))
    await store.upsert_run(rec("tz", None, created=east))
    got = await store.get_run("tz")
    assert got is not None and got.created == east and got.created.utcoffset() == timedelta(0)
    page = await store.list_runs(RunQuery(since=east, until=east + timedelta(seconds=1)))
    assert [r.uid for r in page.items] == ["tz"]


async def test_the_cap_is_per_store(dsn: str, clock: Clock) -> None:
    big = await open_store(dsn, clock=clock)  # the default 2 MiB
    try:
        got = await big.put_log("a", "t", 1, "x" * 1_500_000)
        assert not got.truncated and got.size == 1_500_000
        got = await big.put_log("a", "t", 2, "y" * (3 * 1024 * 1024))
        assert got.truncated and len(got.text) == 2 * 1024 * 1024
    finally:
        await big.close()


def _closed_port() -> int:
    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _join_aiosqlite_threads() -> None:
    # aiosqlite, on a failed connect, queues its thread's stop without waiting for it; the
    # answer must reach this test's event loop while it is open, not a later test's closed one.
    for thread in threading.enumerate():
        if "_connection_worker_thread" in thread.name:
            thread.join(timeout=5)
            assert not thread.is_alive(), f"{thread.name} did not stop"


UNREACHABLE = [
    "postgresql://flow@127.0.0.1:{port}/nothing",
    "sqlite:////nonexistent-dir/x/h.db",
]


@pytest.mark.parametrize("bad_dsn", UNREACHABLE)
async def test_an_unreachable_database_is_store_unavailable(bad_dsn: str) -> None:
    bad = bad_dsn.format(port=_closed_port())
    with pytest.raises(StoreUnavailable, match="history database: cannot migrate"):
        await open_store(bad)
    gone = SqlRunStore(create_engine(bad, timeout=2))
    try:
        with pytest.raises(StoreUnavailable, match="cannot record a run"):
            await gone.upsert_run(rec("b"))
        with pytest.raises(StoreUnavailable, match="cannot read a run"):
            await gone.get_run("b")
        with pytest.raises(StoreUnavailable, match="cannot list runs"):
            await gone.list_runs(RunQuery())
        with pytest.raises(StoreUnavailable, match="cannot record a log"):
            await gone.put_log("b", "t", 1, "x")
        with pytest.raises(StoreUnavailable, match="cannot prune"):
            await gone.prune(PrunePolicy(max_age=timedelta(days=1)))
    finally:
        await gone.close()
        _join_aiosqlite_threads()


async def test_racing_writers_leave_the_latest_record(store: SqlRunStore) -> None:
    # Every phase of one run, each written several times, all at once in a shuffled order.
    versions = [rec("race", phases=p, rv=rv) for p in (1, 2, 3, 4) for rv in (p * 10, p * 10 + 1)]
    order = versions[3::-1] + versions[:3:-1] + versions  # newest in the middle, twice
    results = await asyncio.gather(*(store.upsert_run(r) for r in order))
    assert any(results)
    assert await store.get_run("race") == versions[-1]


async def test_a_dropped_connection_is_replaced(store: SqlRunStore, dsn: str) -> None:
    if store.backend != "postgresql":
        pytest.skip("SQLite has no server to drop a connection")
    await store.upsert_run(rec("a"))
    async with store.engine.connect() as conn:  # the pool keeps this one afterwards
        await conn.execute(select(func.count()).select_from(runs))
    database = dsn.rsplit("/", 1)[1]
    admin = await asyncpg.connect(dsn.rsplit("/", 1)[0] + "/postgres")
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1",
            database,
        )
    finally:
        await admin.close()
    assert killed >= 1
    got = await store.get_run("a")  # the pool's pre-ping finds the dead one and reconnects
    assert got is not None and got.uid == "a"


async def test_kept_counts_match_the_runs(store: SqlRunStore, clock: Clock) -> None:
    # flowrun_counts (kept by triggers) against a count of flowruns, after inserts, phase
    # changes, a flow change, racing writers and a prune.
    for i in range(6):
        await store.upsert_run(rec(f"a{i}", i, phases=2, flow_name="churn" if i % 2 else "etl"))
    for i in range(4):  # to Completed (a1 Failed), each in flow churn (a0 and a2 move)
        await store.upsert_run(
            rec(f"a{i}", i, phases=4, **({"status": "Failed"} if i == 1 else {}))
        )
    await store.upsert_run(rec("a5", 5, phases=3, flow_name="moved", namespace="ops"))
    await store.upsert_run(rec("a4", 4, phases=2, flow_name="etl", configuration="etl-dev"))
    await store.upsert_run(rec("none", 8, phases=2, configuration=None))
    await asyncio.gather(*(store.upsert_run(rec("r", 9, phases=p)) for p in (1, 2, 3, 4, 2, 4)))
    await store.prune(PrunePolicy(keep_per_flow_status=1))

    async with store.engine.connect() as conn:
        kept = {
            (row.namespace, row.flow_name, row.configuration or None, row.status): row.n
            for row in (await conn.execute(select(run_counts))).all()
            if row.n
        }
        key = (runs.c.namespace, runs.c.flow_name, runs.c.configuration, runs.c.status)
        counted = {
            (ns, flow, config, status): n
            for ns, flow, config, status, n in (
                await conn.execute(select(*key, func.count()).group_by(*key))
            ).all()
        }
    assert kept == counted and sum(kept.values()) == 5  # one per flow and status
    assert (await store.list_runs(RunQuery(flow="churn"))).counts == {
        "Completed": 1,
        "Failed": 1,
        "Queued": 1,
    }
    assert (await store.list_runs(RunQuery(configuration="PROD"))).counts == {
        "Completed": 1,
        "Failed": 1,
        "Deployed": 1,
    }
    assert (await store.list_runs(RunQuery(configuration="etl-d", flow="etl"))).counts == {
        "Queued": 1
    }
