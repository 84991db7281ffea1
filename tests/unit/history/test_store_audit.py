"""The audit table in the SQL store, on both backends: a record written twice is stored
once (its id), pages newest first never repeat nor skip one however many share a time,
filters by user, namespace and action, and a cursor not of this list is refused."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from flow_operator.history.sql import SqlRunStore
from flow_operator.history.store import AuditQuery, AuditRecord, InvalidCursor
from tests.unit.history.conftest import T0

ALICE = "system:serviceaccount:team-a:alice"
BOB = "system:serviceaccount:team-b:bob"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def entry(n: int, second: float, user: str = ALICE, action: str = "cancel",
          namespace: str = "team-a", status: int = 200) -> AuditRecord:  # fmt: skip
    return AuditRecord(
        id=f"a{n:03d}",
        time=at(second),
        user=user,
        groups=("system:serviceaccounts", f"system:serviceaccounts:{namespace}"),
        action=action,
        namespace=namespace,
        kind="FlowRun",
        name=f"run-{n}",
        result="done" if status < 300 else "refused",
        status=status,
        detail="" if status < 300 else f"{user} cannot patch flowruns in {namespace}",
    )


async def test_written_twice_stored_once_and_read_back_whole(store: SqlRunStore) -> None:
    first = [entry(1, 0), entry(2, 1, BOB, "rerun", "team-b", 403)]
    assert await store.record_audit(first) == 2
    assert await store.record_audit(first) == 0  # the recorder's retry
    page = await store.list_audit(AuditQuery())
    assert page.items == (first[1], first[0]) and page.next_cursor is None


async def test_pages_newest_first_and_filters(store: SqlRunStore) -> None:
    # 25 entries, five per second: the cursor walks ties by id
    records = [entry(i, i // 5, BOB if i % 2 else ALICE) for i in range(25)]
    await store.record_audit(records)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await store.list_audit(AuditQuery(), limit=7, cursor=cursor)
        seen += [r.id for r in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [r.id for r in sorted(records, key=lambda r: (r.time, r.id), reverse=True)]
    bobs = await store.list_audit(AuditQuery(user=BOB), limit=100)
    assert len(bobs.items) == 12 and {r.user for r in bobs.items} == {BOB}
    await store.record_audit([entry(99, 60, action="run", namespace="ml")])
    assert [r.id for r in (await store.list_audit(AuditQuery(namespace="ml"))).items] == ["a099"]
    assert [r.id for r in (await store.list_audit(AuditQuery(action="run"))).items] == ["a099"]
    assert (await store.list_audit(AuditQuery(action="run", user=BOB))).items == ()
    with pytest.raises(InvalidCursor):
        await store.list_audit(AuditQuery(), cursor="not-a-cursor")
