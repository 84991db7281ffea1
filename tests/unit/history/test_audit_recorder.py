"""The API's audit on its way to the run store: an action's Entry goes from the audit log
through the history's sink and queue (handlers/history.py AuditSink, reconcile/history.py
AuditRecorder), never written by the request; while the database is down the records
wait, one dropped is said in the log and the metric, and a retry stores one once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer

from flow_operator import metrics
from flow_operator.api.server import make_app
from flow_operator.handlers.history import AuditSink
from flow_operator.history.store import AuditQuery, AuditRecord
from flow_operator.reconcile.history import AuditRecorder
from tests.unit.api.test_identity import ALICE, BOB, Events, Reviews, auth, kube_api
from tests.unit.api_support import Clock, MemoryFlowRuns
from tests.unit.history_fakes import MemoryStore

T0 = datetime(2024, 2, 12, 9, 0, tzinfo=UTC)


@pytest.fixture
def recorder() -> Iterator[AuditRecorder]:
    audits = AuditRecorder(MemoryStore())
    sink = AuditSink(audits)
    sink.attach()
    try:
        yield audits
    finally:
        sink.detach()


async def test_an_action_over_http_is_queued_for_the_table(recorder: AuditRecorder) -> None:
    backend = MemoryFlowRuns()
    api = kube_api(Reviews(), Clock(), backend, Events())
    async with TestClient(TestServer(make_app(api))) as client:
        resp = await client.post("/api/v1/flowruns/analytics/sales-forecast-x2p9/cancel",
                                 headers=auth("alice-token"))  # fmt: skip
        assert resp.status == 200
        resp = await client.post("/api/v1/flowruns/ml/x/cancel", headers=auth("bob-token"))
        assert resp.status == 403
    waiting = list(recorder.pending.values())
    assert [(r.user, r.action, r.namespace, r.result) for r in waiting] == [
        (ALICE.user, "cancel", "analytics", "done"),
        (BOB.user, "cancel", "ml", "refused"),
    ]


async def test_records_wait_while_the_database_is_down_and_a_dropped_one_is_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryStore()
    store.down = True
    audits = AuditRecorder(store, limit=2)
    records = [
        AuditRecord(id=f"a{i}", time=T0 + timedelta(seconds=i), user="alice", action="cancel",
                    result="done", status=200)
        for i in range(3)
    ]  # fmt: skip
    errors = metrics.HISTORY_WRITE_ERRORS.labels("audit")
    before = errors._value.get()
    with caplog.at_level(logging.ERROR, logger="flow_operator.reconcile.history"):
        for r in records:
            audits.offer(r)
    assert list(audits.pending) == ["a1", "a2"]
    assert '"id":"a0"' in caplog.text and errors._value.get() == before + 1
    assert not await audits.flush() and len(audits) == 2
    store.down = False
    assert await audits.flush()
    listed = await store.list_audit(AuditQuery())
    assert [r.id for r in listed.items] == ["a2", "a1"]
    audits.offer(records[2])
    assert await audits.flush() and len(store.audit) == 2  # the id: stored once


def test_the_sink_ignores_other_records() -> None:
    audits = AuditRecorder(MemoryStore())
    sink = AuditSink(audits)
    sink.emit(logging.LogRecord("flow_operator.audit", logging.INFO, "", 0, "x", None, None))
    assert len(audits) == 0
