"""GET /api/v1/audit over a real SQLite store: actions recorded through the audit log's
sink reach the table, and admins (`list audits.flowops.io` cluster-wide) page through them
newest first, filtered; anyone else is refused."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from flow_operator.api.audit import Audit
from flow_operator.api.flowrun_backend import IndexedFlowRuns
from flow_operator.api.identity import KubernetesAccess
from flow_operator.api.server import make_app
from flow_operator.handlers.history import AuditSink
from flow_operator.history.sql import SqlRunStore, open_store
from flow_operator.ports import Identity
from flow_operator.reconcile.history import AuditRecorder
from tests.unit.api.test_identity import ALICE, BOB, Events, Reviews, auth
from tests.unit.api_support import Secrets, View, make_api, validate

ADMIN = Identity("system:serviceaccount:flow-system:ops", ("system:serviceaccounts",))
T0 = datetime(2024, 2, 12, 9, 0, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlRunStore]:
    opened = await open_store(f"sqlite:///{tmp_path / 'history.db'}")
    yield opened
    await opened.close()


@pytest.fixture
def recorder(store: SqlRunStore) -> Iterator[AuditRecorder]:
    audits = AuditRecorder(store)
    sink = AuditSink(audits)
    sink.attach()
    try:
        yield audits
    finally:
        sink.detach()


async def test_actions_reach_the_table_and_admins_page_through_them(
    store: SqlRunStore, recorder: AuditRecorder
) -> None:
    now = [T0]
    audit = Audit(Events(), clock=lambda: now[0])
    for i in range(5):
        now[0] = T0 + timedelta(seconds=i)
        who = ALICE if i % 2 == 0 else BOB
        await audit.record(who, "cancel", "analytics", f"run-{i}", 200 if i < 4 else 403,
                           detail="" if i < 4 else "cannot patch flowruns in analytics")  # fmt: skip
    assert len(recorder) == 5  # queued by the sink, not written by the request
    assert await recorder.flush() and len(recorder) == 0
    reviews = Reviews()
    reviews.tokens["ops-token"] = ADMIN
    reviews.rules[(ADMIN.user, None)] = {"audits": {"list"}}
    api = make_api(View(), Secrets(), flowruns=IndexedFlowRuns({}, None, store))  # type: ignore[arg-type]
    api.access = KubernetesAccess(reviews, reviews)
    async with TestClient(TestServer(make_app(api))) as client:
        resp = await client.get("/api/v1/audit?limit=2", headers=auth("ops-token"))
        page = await resp.json()
        validate("/api/v1/audit", "get", resp.status, page)
        assert [r["name"] for r in page["items"]] == ["run-4", "run-3"]
        assert page["items"][0]["result"] == "refused" and page["items"][0]["kind"] == "FlowRun"
        assert page["items"][0]["groups"] == list(ALICE.groups)
        resp = await client.get(f"/api/v1/audit?limit=2&continue={page['continue']}",
                                headers=auth("ops-token"))  # fmt: skip
        assert [r["name"] for r in (await resp.json())["items"]] == ["run-2", "run-1"]
        resp = await client.get(f"/api/v1/audit?user={BOB.user}", headers=auth("ops-token"))
        assert [r["name"] for r in (await resp.json())["items"]] == ["run-3", "run-1"]
        resp = await client.get("/api/v1/audit?action=run", headers=auth("ops-token"))
        assert (await resp.json())["items"] == []
        resp = await client.get("/api/v1/audit?continue=bogus", headers=auth("ops-token"))
        assert resp.status == 400 and "continue" in (await resp.json())["message"]
        # alice edits flowruns in analytics: not an admin
        refused = await client.get("/api/v1/audit", headers=auth("alice-token"))
        assert refused.status == 403
        message = (await refused.json())["message"]
        assert "cannot list audits" in message and "for admins" in message
        assert (await client.get("/api/v1/audit")).status == 401
