"""GET /api/v1/flows/{ns}/{name}/stats over a real SQLite run store merged with the live
runs (api/flowrun_backend.py): the numbers match the runs stored and live, the window and
the flow (and namespace) select them, the runs are read page by page, a bad window or last
is a 400 naming it, an unknown flow a 404; the answer matches the OpenAPI schema."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from flow_operator.api import flowstats
from flow_operator.api.flow_backend import IndexedFlows
from flow_operator.api.flowrun_backend import IndexedFlowRuns
from flow_operator.api.server import make_app
from flow_operator.history.record import record_of
from flow_operator.history.sql import SqlRunStore, open_store
from flow_operator.objects.times import rfc3339
from tests.unit.api.test_flow_api import flow
from tests.unit.api_support import NOW, Secrets, View, make_api, validate

TOKEN = "operator-token-1"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NS = "team"
STATS = "/api/v1/flows/{namespace}/{name}/stats"


def run(name: str, hours_ago: float, phase: str, seconds: float, *, version: str = "1",
        configuration: str = "nightly", flow_name: str = "etl", namespace: str = NS) -> dict[str, Any]:  # fmt: skip
    start = NOW - timedelta(hours=hours_ago)
    status: dict[str, Any] = {"phase": phase, "startTime": rfc3339(start)}
    if phase in ("Completed", "Failed", "Crashed", "Cancelled"):
        status["endTime"] = rfc3339(start + timedelta(seconds=seconds))
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}",
                     "creationTimestamp": rfc3339(start - timedelta(seconds=1)),
                     "labels": {"flowops.io/flow": flow_name, "flowops.io/flow-version": version},
                     "resourceVersion": "3"},
        "spec": {"flowName": flow_name, "version": version, "runType": "Scheduled",
                 "configuration": {"name": configuration}, "tasks": [{"name": "only"}]},
        "status": status,
    }  # fmt: skip


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlRunStore]:
    s = await open_store(f"sqlite:///{tmp_path / 'history.db'}", clock=lambda: NOW)
    yield s
    await s.close()


@pytest.fixture
async def backend(store: SqlRunStore) -> IndexedFlowRuns:
    stored = [
        run("etl-1", 30, "Completed", 10),
        run("etl-2", 28, "Completed", 20),
        run("etl-3", 26, "Failed", 3),
        run("etl-4", 24, "Completed", 30, configuration="adhoc"),
        run("etl-5", 20, "Completed", 40, version="2"),
        run("etl-6", 18, "Crashed", 5, version="2"),
        run("etl-7", 16, "Cancelled", 9, version="2"),
        run("etl-old", 24 * 9, "Failed", 1),  # out of the 7 days
        run("other-1", 10, "Failed", 1, flow_name="other"),  # another flow
        run("etl-elsewhere", 10, "Failed", 1, namespace="team-b"),  # another namespace
    ]
    for body in stored:
        await store.upsert_run(record_of(body))
    live = {(NS, "etl-8"): [run("etl-8", 2, "Completed", 50, version="2")],
            (NS, "etl-9"): [run("etl-9", 1, "Deployed", 0, version="2")]}  # fmt: skip
    return IndexedFlowRuns(live, _NoCluster(), store)


class _NoCluster:
    async def pod_log(self, *args: Any, **kw: Any) -> Any:
        raise AssertionError("no logs here")

    async def merge_patch(self, *args: Any) -> None:
        raise AssertionError("no patch here")

    async def create_returning(self, *args: Any) -> dict[str, Any]:
        raise AssertionError("no create here")


@pytest.fixture
async def client(backend: IndexedFlowRuns) -> AsyncIterator[TestClient[Any, Any]]:
    secrets = Secrets()
    secrets.put("flow-system", "flow-operator-api", a=TOKEN)
    api = make_api(View(), secrets, flowruns=backend)
    api.flows = IndexedFlows({(NS, "etl"): [flow("etl")]}, {}, _NoCluster())  # type: ignore[arg-type]
    c = TestClient(TestServer(make_app(api)))
    await c.start_server()
    yield c
    await c.close()


async def test_stats_match_the_runs(client: TestClient[Any, Any]) -> None:
    resp = await client.get(STATS.format(namespace=NS, name="etl"), headers=AUTH)
    assert resp.status == 200, await resp.text()
    doc = await resp.json()
    validate(STATS, "get", 200, doc)
    assert doc["window"] == {"since": rfc3339(NOW - timedelta(days=7)), "until": rfc3339(NOW)}
    # etl-1..9: 5 Completed (10, 20, 30, 40, 50 s), Failed + Crashed, 1 Cancelled, 1 running
    assert doc["overall"] == {"runs": 9, "unfinished": 1, "succeeded": 5, "failed": 2,
                              "cancelled": 1, "successRate": round(5 / 7, 4),
                              "p50Seconds": 30.0, "p95Seconds": 48.0}  # fmt: skip
    v2, v1 = doc["versions"]
    assert (v2["name"], v2["runs"], v2["succeeded"], v2["failed"], v2["successRate"]) == (
        "2",
        5,
        2,
        1,
        round(2 / 3, 4),
    )
    assert (v2["p50Seconds"], v1["p50Seconds"]) == (45.0, 20.0)
    assert (v1["name"], v1["runs"], v1["successRate"]) == ("1", 4, 0.75)
    assert [(c["name"], c["runs"]) for c in doc["configurations"]] == [("adhoc", 1), ("nightly", 8)]
    assert [p["name"] for p in doc["trend"]] == [f"etl-{i}" for i in range(1, 9)]
    assert doc["trend"][-1]["durationSeconds"] == 50.0 and doc["trend"][2]["status"] == "Failed"
    assert doc["flag"]["enough"] is False  # 7 judged runs: 2 before the newest 5
    assert doc["truncated"] is False


async def test_window_and_last(client: TestClient[Any, Any]) -> None:
    resp = await client.get(
        STATS.format(namespace=NS, name="etl") + "?window=21h&last=2", headers=AUTH
    )
    doc = await resp.json()
    assert resp.status == 200
    assert doc["overall"]["runs"] == 5  # etl-5 .. etl-9
    assert [p["name"] for p in doc["trend"]] == ["etl-7", "etl-8"]
    assert doc["windowAsked"] == "21h" and doc["last"] == 2


@pytest.mark.parametrize(("query", "named"), [("window=5m", "window"), ("window=x", "window"),
                                              ("last=0", "last"), ("last=many", "last")])  # fmt: skip
async def test_a_bad_query_is_a_400_naming_it(
    client: TestClient[Any, Any], query: str, named: str
) -> None:
    resp = await client.get(STATS.format(namespace=NS, name="etl") + f"?{query}", headers=AUTH)
    assert resp.status == 400
    assert (await resp.json())["message"].startswith(f"{named} must be")


async def test_unknown_flow_is_a_404_and_a_token_is_needed(client: TestClient[Any, Any]) -> None:
    resp = await client.get(STATS.format(namespace=NS, name="nope"), headers=AUTH)
    assert resp.status == 404
    validate(STATS, "get", 404, await resp.json())
    assert (await client.get(STATS.format(namespace=NS, name="etl"))).status == 401
    # a deleted Flow whose runs are still stored: answered from them
    resp = await client.get(STATS.format(namespace=NS, name="other"), headers=AUTH)
    assert resp.status == 200 and (await resp.json())["overall"]["failed"] == 1


async def test_the_runs_are_read_page_by_page(backend: IndexedFlowRuns) -> None:
    pages: list[int] = []
    real = backend.page

    async def page(*args: Any, **kw: Any) -> Any:
        got = await real(*args, **kw)
        pages.append(len(got.items))
        return got

    backend.page = page  # type: ignore[method-assign]
    doc = await flowstats.stats(backend, NS, "etl", {}, NOW, flow={}, page=2)
    assert doc is not None and doc["overall"]["runs"] == 9 and not doc["truncated"]
    assert pages == [2, 2, 2, 2, 1]
    pages.clear()
    cut = await flowstats.stats(backend, NS, "etl", {}, NOW, flow={}, page=2, max_runs=4)
    assert cut is not None and cut["truncated"] and cut["overall"]["runs"] == 4
    assert [p["name"] for p in cut["trend"]] == ["etl-6", "etl-7", "etl-8"]  # the newest 4
