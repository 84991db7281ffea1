"""The pure parts of bench/history.py: its percentiles, its cursor walk (which checks that
pages come strictly newest first) and its generated runs (valid records, a spread)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from bench import history

from flow_operator.history.store import Cursor, Page, RunRecord
from tests.unit.history.conftest import T0
from tests.unit.history.test_store_sql import rec


def test_percentiles_are_in_milliseconds() -> None:
    got = history.percentiles([i / 1000 for i in range(1, 101)])  # 1..100 ms
    assert got == {"p50_ms": 51.0, "p99_ms": 99.0, "max_ms": 100.0}


def _pager(records: list[RunRecord], size: int) -> history.Pages:
    async def page(cursor: str | None) -> Page:
        start = 0
        if cursor is not None:
            after = Cursor.decode(cursor)
            start = next(i for i, r in enumerate(records) if r.uid == after.uid) + 1
        chunk = records[start : start + size]
        more = start + size < len(records)
        last = chunk[-1]
        return Page(
            items=tuple(chunk),
            next_cursor=Cursor(last.sort_time, last.uid).encode() if more else None,
        )

    return page


async def test_the_walk_follows_cursors_and_checks_the_order() -> None:
    records = [rec(f"u{9 - i}", -i) for i in range(10)]  # newest first
    seen = await history.walk(_pager(records, 3), None, pages=10)
    assert [uid for _, uid in seen] == [r.uid for r in records]
    assert len(await history.walk(_pager(records, 3), None, pages=2)) == 6


async def test_the_walk_refuses_a_repeat_or_a_wrong_order() -> None:
    records = [rec("b", 0), rec("a", 0), rec("a", 0)]  # the same run twice
    with pytest.raises(AssertionError, match="out of order"):
        await history.walk(_pager(records, 2), None, pages=5)
    older_first = [rec("x", 0), rec("y", 1)]
    with pytest.raises(AssertionError, match="out of order"):
        await history.walk(_pager(older_first, 5), None, pages=1)


def test_generated_runs_are_records_with_a_spread() -> None:
    _, rows = history.make_rows(2000, seed=3)
    runs = list(rows)
    records = [RunRecord.model_validate_json(r["record"]) for r in runs]
    for row, record in zip(runs, records, strict=True):
        assert (row["uid"], row["status"], row["sort_time"]) == (
            record.uid,
            record.status,
            record.sort_time,
        )
        assert row["history_len"] == len(record.history) and len(record.tasks) == 5
    statuses = Counter(r.status for r in records)
    assert statuses.most_common(1)[0][0] == "Completed" and len(statuses) == 7
    assert len({r.flow_name for r in records}) > 50 and len({r.namespace for r in records}) > 3
    assert len({r.uid for r in records}) == 2000
    on_the_minute = [r for r in records if r.sort_time.second == r.sort_time.microsecond == 0]
    assert len(on_the_minute) > 500  # scheduled runs: many share a start
    assert min(r.sort_time for r in records) > T0 - timedelta(days=365)


def test_generated_logs_are_one_per_attempt_with_an_id_and_failures_explained() -> None:
    _, rows = history.make_rows(300, seed=4)
    failed = 0
    for row in rows:
        record = RunRecord.model_validate_json(row["record"])
        made = history.make_logs(row)
        assert made == history.make_logs(row)  # deterministic for the run
        ran = [t for t in record.tasks if t.attempts]
        assert [(log["task"], log["attempt"]) for log in made] == [(t.name, 1) for t in ran]
        for task, log in zip(ran, made, strict=True):
            assert log["uid"] == record.uid and log["size"] == len(log["text"])
            assert f"pod {task.pod_name} of Job {task.job_name}" in log["text"]
            assert "request id " in log["text"] and log["text"].endswith("\n")
            if task.status == "Failed":
                failed += 1
                last = log["text"].splitlines()[-1]
                assert any(last.startswith(e.split(":")[0]) for e in history.ERRORS), last
    assert failed > 5
