"""The run store's port without a database: cursors, the log cap, queries, page sizes and
the null store used when history is off."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from flow_operator.history.store import (
    DEFAULT_LOG_CAP,
    MAX_PAGE,
    Cursor,
    InvalidCursor,
    NullRunStore,
    PrunePolicy,
    RunQuery,
    RunStore,
    cap_log,
    page_limit,
)
from tests.unit.history.conftest import T0, Clock
from tests.unit.history.test_store_sql import rec


def test_a_cursor_round_trips_and_a_forged_one_is_refused() -> None:
    cursor = Cursor(datetime(2026, 11, 24, 18, 0, tzinfo=timezone(timedelta(hours=9))), "u-1")
    again = Cursor.decode(cursor.encode())
    assert again == cursor and again.sort_time.utcoffset() == timedelta(0)
    assert "=" not in cursor.encode()  # it travels in a query string as it is
    forged = [
        "",
        "!!!",
        base64.urlsafe_b64encode(b'["2026-11-24T09:00:00", "u"]').decode(),  # no timezone
        base64.urlsafe_b64encode(b'["2026-11-24T09:00:00+00:00", 5]').decode(),
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ]
    for token in forged:
        with pytest.raises(InvalidCursor):
            Cursor.decode(token)


def test_the_log_cap_keeps_the_tail_at_a_character_boundary() -> None:
    assert DEFAULT_LOG_CAP == 2 * 1024 * 1024
    assert cap_log("short", 10) == ("short", False, 5)
    assert cap_log("x" * 10, 10) == ("x" * 10, False, 10)
    assert cap_log("0123456789ab", 10) == ("23456789ab", True, 12)
    # "é" is two bytes: a cut through one drops the half rather than garbling it.
    kept, cut, size = cap_log("ab" + "é" * 5, 5)
    assert (kept, cut, size) == ("éé", True, 12)


def test_a_query_speaks_any_case_of_the_known_values() -> None:
    query = RunQuery(status="completed", run_type="SCHEDULED", level="Platform")
    assert (query.status, query.run_type, query.level) == ("Completed", "Scheduled", "platform")
    assert RunQuery(status="Whatever").status == "Whatever"  # unknown: matches nothing
    with pytest.raises(ValidationError):
        RunQuery(since=datetime(2026, 1, 1))  # a naive time is ambiguous
    query = RunQuery.model_validate({"logContains": "boom", "runType": "api"})
    assert (query.log_contains, query.run_type) == ("boom", "API")


def test_page_sizes() -> None:
    assert page_limit(None) == 50
    assert page_limit(1) == 1
    assert page_limit(10**6) == MAX_PAGE
    with pytest.raises(ValueError):
        page_limit(0)


def test_prune_policy_bounds() -> None:
    with pytest.raises(ValidationError):
        PrunePolicy(keep_per_flow_status=-1)
    with pytest.raises(ValidationError):
        PrunePolicy(batch_size=0)
    assert PrunePolicy(max_age=timedelta(days=90)).batch_size == 500


async def test_the_null_store_keeps_nothing_and_says_so() -> None:
    store: RunStore = NullRunStore(clock=Clock())
    assert not await store.upsert_run(rec("a"))
    assert await store.get_run("a") is None
    page = await store.list_runs(RunQuery(), limit=10)
    assert page.items == () and page.next_cursor is None and page.total == 0
    with pytest.raises(InvalidCursor):
        await store.list_runs(RunQuery(), cursor="forged")
    lost = await store.put_log("a", "t", 1, "text")
    assert lost.lost_reason == "history is off" and lost.text == "" and lost.captured_at == T0
    assert await store.get_log("a", "t") is None
    report = await store.prune(PrunePolicy(max_age=timedelta(0)), dry_run=True)
    assert report.dry_run and report.total == 0
    await store.close()


def test_record_times_are_kept_in_utc() -> None:
    east = datetime(2026, 11, 24, 21, 0, tzinfo=timezone(timedelta(hours=9)))
    record = rec("a", None, created=east)
    assert record.created == east and record.created.tzinfo == UTC
    with pytest.raises(ValidationError):
        rec("a", None, created=datetime(2026, 11, 24))
