"""GET /api/v1/workflows/{namespace}/{name}/colors over a real SQLite store: the window's
transitions and time in each color, the window's defaults and errors, 404 for a Workflow
neither live nor stored, and `get workflows` in its namespace in kubernetes auth mode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from flow_operator.api.flowrun_backend import IndexedFlowRuns
from flow_operator.api.identity import KubernetesAccess
from flow_operator.api.server import make_app
from flow_operator.history.sql import open_store
from flow_operator.history.store import ColorTransition
from tests.unit.api.test_identity import Reviews, auth
from tests.unit.api_support import NOW, Secrets, View, make_api, validate

PATH = "/api/v1/workflows/{namespace}/{name}/colors"
TOKEN = {"Authorization": "Bearer operator-token-1"}


def at(minutes: float) -> str:
    return (NOW + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def move(minutes: float, to: str, before: str | None, ns: str = "analytics") -> ColorTransition:
    return ColorTransition(uid="wf-uid", namespace=ns, name="shop",
                           time=NOW + timedelta(minutes=minutes), from_color=before,
                           to_color=to, reason="Publishing")  # fmt: skip


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], Any]]:
    store = await open_store(f"sqlite:///{tmp_path / 'history.db'}")
    await store.record_colors(
        [move(-120, "GREEN", None), move(-50, "RED", "GREEN"), move(-20, "GREEN", "RED")]
    )
    await store.record_colors([move(-30, "YELLOW", None, ns="ml")])
    secrets = Secrets()
    secrets.put("flow-system", "flow-operator-api", a="operator-token-1")
    api = make_api(View(), secrets, flowruns=IndexedFlowRuns({}, None, store))  # type: ignore[arg-type]
    client = TestClient(TestServer(make_app(api)))
    await client.start_server()
    yield client, api
    await client.close()
    await store.close()


async def test_the_window_its_transitions_and_time_in_color(parts: Any) -> None:
    client, _ = parts
    url = PATH.format(namespace="analytics", name="shop")
    resp = await client.get(f"{url}?since={at(-60)}&until={at(0)}", headers=TOKEN)
    body = await resp.json()
    validate(PATH, "get", resp.status, body)
    assert resp.status == 200 and body["colorAtStart"] == "GREEN"
    assert [(t["fromColor"], t["toColor"], t["time"]) for t in body["transitions"]] == [
        ("GREEN", "RED", "2024-02-12T09:24:53Z"),
        ("RED", "GREEN", "2024-02-12T09:54:53Z"),
    ]
    assert body["seconds"] == {"GREEN": 1800.0, "RED": 1800.0} and body["greenShare"] == 0.5
    # the defaults: until now (a later until is cut to now), since a day before
    resp = await client.get(f"{url}?until={at(600)}", headers=TOKEN)
    body = await resp.json()
    assert (body["since"], body["until"]) == ("2024-02-11T10:14:53Z", "2024-02-12T10:14:53Z")
    assert body["colorAtStart"] is None and body["seconds"]["unknown"] == 22 * 3600


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("since=yesterday", "query parameter since must be an RFC 3339 time"),
        ("until=2024-02-12T09:00:00", "query parameter until must be an RFC 3339 time"),
        (f"since={at(-1)}&until={at(-2)}", "is after until"),
        (f"since={at(-60 * 24 * 500)}", "longer than 400 days"),
    ],
)
async def test_a_bad_window_is_a_400_naming_it(parts: Any, query: str, says: str) -> None:
    client, _ = parts
    resp = await client.get(f"{PATH.format(namespace='analytics', name='shop')}?{query}",
                            headers=TOKEN)  # fmt: skip
    assert resp.status == 400 and says in (await resp.json())["message"]


async def test_unknown_is_404_and_kubernetes_mode_takes_get_workflows(parts: Any) -> None:
    client, api = parts
    resp = await client.get(PATH.format(namespace="analytics", name="nothing"), headers=TOKEN)
    assert resp.status == 404 and "no workflow analytics/nothing" in (await resp.json())["message"]
    assert (await client.get(PATH.format(namespace="analytics", name="shop"))).status == 401
    api.access = KubernetesAccess(Reviews(), Reviews())
    # alice views workflows in analytics, not in ml; bob the other way round
    ok = await client.get(
        PATH.format(namespace="analytics", name="shop"), headers=auth("alice-token")
    )
    assert ok.status == 200
    refused = await client.get(
        PATH.format(namespace="ml", name="shop"), headers=auth("alice-token")
    )
    assert refused.status == 403
    assert "cannot get workflows in ml" in (await refused.json())["message"]
    mine = await client.get(PATH.format(namespace="ml", name="shop"), headers=auth("bob-token"))
    assert [t["toColor"] for t in (await mine.json())["transitions"]] == ["YELLOW"]


def test_an_until_at_the_start_of_time_is_a_bad_window_not_a_crash() -> None:
    from flow_operator.api.colors import BadWindow, window

    with pytest.raises(BadWindow, match="too early: give a since"):
        window({"until": "0001-01-01T00:00:00Z"}, NOW)
    since, until = window({"since": "0001-01-01T00:00:00Z", "until": "0001-01-02T00:00:00Z"}, NOW)
    assert (until - since).days == 1
