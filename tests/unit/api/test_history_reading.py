"""The run list, one run and task logs read from the run store merged with the live runs
(api/flowrun_backend.py over a real SQLite store): the live object wins, pages walk both
without a repeat, counts are corrected for the live runs, logs come from the store once
the pod is gone (truncation and losses said in headers), and the prune endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from flow_operator.api.flowrun_backend import IndexedFlowRuns
from flow_operator.api.flowruns import StoredLog
from flow_operator.api.server import make_app
from flow_operator.errors import NotFound
from flow_operator.history.record import record_of
from flow_operator.history.sql import SqlRunStore, open_store
from flow_operator.history.store import (
    LOG_LOST_POD_DELETED,
    AuditRecord,
    ColorTransition,
    PrunePolicy,
    RunQuery,
)
from flow_operator.views.paging import BadCursor
from tests.unit.api_support import Secrets, View, make_api, validate

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
TOKEN = "operator-token-1"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def stamp(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def body(name: str, minute: float, phase: str = "Completed", **spec: Any) -> dict[str, Any]:
    """A FlowRun of one task `only` (its pod `<name>-only`), started at T0 + minute."""
    return {
        "metadata": {
            "name": name,
            "namespace": spec.pop("namespace", "ml"),
            "uid": f"uid-{name}",
            "creationTimestamp": stamp(minute - 1),
            "resourceVersion": "7",
        },
        "spec": {
            "flowName": spec.pop("flow", "churn"),
            "runType": "Scheduled",
            "configuration": {"name": spec.pop("configuration", "churn-prod")},
            "tasks": [{"name": "only", "version": "1"}],
        },
        "status": {
            "phase": phase,
            "startTime": stamp(minute),
            "history": [{"phase": phase, "time": stamp(minute)}],
            "tasks": [
                {"name": "only", "status": "Succeeded", "podName": f"{name}-only", "attempts": 2}
            ],
        },
    }


class Pods:
    """The cluster's pods: a log per pod name; a pod not in it is gone (404)."""

    def __init__(self) -> None:
        self.logs: dict[str, bytes] = {}

    async def pod_log(
        self,
        namespace: str,
        pod: str,
        *,
        follow: bool = False,
        tail_lines: int | None = None,
        limit_bytes: int | None = None,
    ) -> AsyncIterator[bytes]:
        if pod not in self.logs:
            raise NotFound(f'pods "{pod}" not found', status=404, reason="NotFound")
        text = self.logs[pod]

        async def chunks() -> AsyncIterator[bytes]:
            yield text

        return chunks()

    async def merge_patch(self, *args: Any) -> None:
        raise AssertionError("no patch here")

    async def create_returning(self, *args: Any) -> dict[str, Any]:
        raise AssertionError("no create here")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlRunStore]:
    later = T0 + timedelta(days=1)  # the store's clock: a day after the runs
    s = await open_store(f"sqlite:///{tmp_path / 'history.db'}", log_cap=64, clock=lambda: later)
    yield s
    await s.close()


@pytest.fixture
async def setup(store: SqlRunStore) -> tuple[IndexedFlowRuns, dict[Any, Any], Pods]:
    """Five runs stored (old-0 .. old-4, gone from the cluster), two live: `live-5`, stored
    while it was Deployed and Completed since, and `live-6`, not stored yet."""
    for i in range(5):
        await store.upsert_run(record_of(body(f"old-{i}", i, "Failed" if i == 2 else "Completed")))
    await store.upsert_run(record_of(body("live-5", 5, "Deployed")))
    index = {
        ("ml", "live-5"): [body("live-5", 5, "Completed")],
        ("ml", "live-6"): [body("live-6", 6, "Deployed")],
    }
    pods = Pods()
    retention = PrunePolicy(max_age=timedelta(days=90))
    return IndexedFlowRuns(index, pods, store, retention), index, pods


async def test_the_list_merges_live_and_stored_runs_newest_first(
    setup: tuple[IndexedFlowRuns, dict[Any, Any], Pods],
) -> None:
    backend, _, _ = setup
    page = await backend.page({})
    assert [r["name"] for r in page.items] == [f"{p}-{i}" for p, i in (
        ("live", 6), ("live", 5), ("old", 4), ("old", 3), ("old", 2), ("old", 1), ("old", 0)
    )]  # fmt: skip
    assert page.items[1]["status"] == "Completed"  # the live object wins over the stored one
    assert all("tasks" not in r and "history" not in r for r in page.items)
    assert page.counts == {"Completed": 5, "Deployed": 1, "Failed": 1} and page.total == 7
    seen: list[str] = []
    cursor: str | None = None
    while True:
        part = await backend.page({}, limit=2, cursor=cursor)
        seen += [r["name"] for r in part.items]
        assert part.counts == page.counts
        if part.next is None:
            break
        cursor = part.next
    assert seen == [r["name"] for r in page.items]


async def test_search_filters_and_visible_namespaces(
    setup: tuple[IndexedFlowRuns, dict[Any, Any], Pods], store: SqlRunStore
) -> None:
    backend, _, _ = setup
    await store.upsert_run(record_of(body("etl-1", 1, namespace="etl", flow="etl")))
    failed = await backend.page({"status": "failed"})
    assert [r["name"] for r in failed.items] == ["old-2"] and failed.total == 1
    assert [r["name"] for r in (await backend.page({"search": "live"})).items] == [
        "live-6",
        "live-5",
    ]
    window = {"since": stamp(3), "until": stamp(6)}
    assert [r["name"] for r in (await backend.page(window)).items] == ["live-5", "old-4", "old-3"]
    assert [r["name"] for r in (await backend.page({"flow": "etl"})).items] == ["etl-1"]
    only_etl = await backend.page({}, namespaces={"etl"})
    assert [r["name"] for r in only_etl.items] == ["etl-1"] and only_etl.counts == {"Completed": 1}
    assert await backend.namespaces() == {"ml", "etl"}
    with pytest.raises(BadCursor):
        await backend.page({}, cursor="not-a-cursor")


async def test_one_run_and_its_log_once_gone_from_the_cluster(
    setup: tuple[IndexedFlowRuns, dict[Any, Any], Pods], store: SqlRunStore
) -> None:
    backend, _, pods = setup
    run = await backend.detail("ml", "old-3")
    assert run is not None and run["status"] == "Completed"
    assert run["tasks"][0]["pod"] == "old-3-only" and run["history"][0]["phase"] == "Completed"
    assert await backend.detail("ml", "ghost") is None
    await store.put_log("uid-old-3", "only", 1, "first try\nboom\n")
    await store.put_log("uid-old-3", "only", 2, "".join(f"line {i}\n" for i in range(20)))
    latest = await backend.logs("ml", "old-3", "only", follow=False, tail_lines=None)
    assert isinstance(latest, StoredLog) and latest.log.attempt == 2
    assert latest.headers()["X-Log-Truncated"] == "true"  # the store's cap is 64 bytes
    text = b"".join([c async for c in latest]).decode()
    assert text.endswith("line 19\n") and len(text.encode()) <= 64
    failed = await backend.logs("ml", "old-3", "only", follow=False, tail_lines=1, attempt=1)
    assert b"".join([c async for c in failed]) == b"boom\n"
    # a live run whose pod is gone: the store's capture; with its pod: the pod
    await store.put_log("uid-live-5", "only", 2, "", lost_reason=LOG_LOST_POD_DELETED)
    lost = await backend.logs("ml", "live-5", "only", follow=False, tail_lines=None)
    assert isinstance(lost, StoredLog) and lost.headers()["X-Log-Lost"] == LOG_LOST_POD_DELETED
    pods.logs["live-5-only"] = b"from the pod\n"
    live = await backend.logs("ml", "live-5", "only", follow=False, tail_lines=None)
    assert not isinstance(live, StoredLog) and [c async for c in live] == [b"from the pod\n"]


@pytest.fixture
async def client(
    setup: tuple[IndexedFlowRuns, dict[Any, Any], Pods],
) -> AsyncIterator[TestClient[Any, Any]]:
    secrets = Secrets()
    secrets.put("flow-system", "flow-operator-api", a=TOKEN)
    c = TestClient(TestServer(make_app(make_api(View(), secrets, flowruns=setup[0]))))
    await c.start_server()
    yield c
    await c.close()


async def test_over_http(client: TestClient[Any, Any], store: SqlRunStore) -> None:
    resp = await client.get("/api/v1/flowruns?limit=3", headers=AUTH)
    listed = await resp.json()
    validate("/api/v1/flowruns", "get", resp.status, listed)
    assert [r["name"] for r in listed["items"]] == ["live-6", "live-5", "old-4"]
    assert listed["total"] == 7 and "continue" in listed
    resp = await client.get("/api/v1/flowruns?since=yesterday", headers=AUTH)
    assert resp.status == 400 and "since" in (await resp.json())["message"]
    resp = await client.get("/api/v1/flowruns/ml/old-1", headers=AUTH)
    validate("/api/v1/flowruns/{namespace}/{name}", "get", resp.status, await resp.json())
    await store.put_log("uid-old-1", "only", 2, "done\n")
    resp = await client.get("/api/v1/flowruns/ml/old-1/tasks/only/logs", headers=AUTH)
    assert resp.status == 200 and await resp.text() == "done\n"
    assert resp.headers["X-Log-Source"] == "history" and resp.headers["X-Log-Attempt"] == "2"
    assert resp.headers["X-Log-Truncated"] == "false"
    resp = await client.get("/api/v1/flowruns/ml/old-0/tasks/only/logs", headers=AUTH)
    assert resp.status == 404 and (await resp.json())["error"] == "LogsUnavailable"


async def test_prune_over_http(client: TestClient[Any, Any], store: SqlRunStore) -> None:
    path = "/api/v1/history/prune"
    await store.record_colors(
        [ColorTransition(uid="w", namespace="ml", name="shop", time=T0 + timedelta(hours=h),
                         to_color=color) for h, color in ((0, "GREEN"), (1, "RED"))]
    )  # fmt: skip
    await store.record_audit(
        [AuditRecord(id="a1", time=T0, user="alice", action="cancel", result="done", status=200)]
    )
    resp = await client.post(f"{path}?dryRun=true&maxAge=0", headers=AUTH)
    report = await resp.json()
    validate(path, "post", resp.status, report)
    assert report["dryRun"] and report["byAge"] == 6 and report["total"] == 6
    assert (report["colorTransitions"], report["auditRecords"]) == (1, 1)  # RED is the newest
    assert len((await store.list_runs(RunQuery())).items) == 6  # nothing deleted
    resp = await client.post(f"{path}?maxAge=soon", headers=AUTH)
    assert resp.status == 400 and "maxAge" in (await resp.json())["message"]
    resp = await client.post(f"{path}?keepPerFlowStatus=1", headers=AUTH)
    report = await resp.json()
    assert resp.status == 200 and report["byCount"] == 3 and not report["dryRun"]
    assert len((await store.list_runs(RunQuery())).items) == 3
    assert (await client.post(path)).status == 401


async def test_a_live_log_is_served_only_from_the_pod_the_task_made(
    setup: tuple[IndexedFlowRuns, dict[Any, Any], Pods], store: SqlRunStore
) -> None:
    """With the operator's Job and pod watches, a pod the status names but the task's Job
    did not make is refused (403 naming it); a pod the watch no longer sees is the store's."""
    from dataclasses import dataclass

    from flow_operator.api.flowruns import FlowRunError

    backend, index, pods = setup
    pods.logs["live-5-only"] = b"from the pod\n"
    index[("ml", "live-5")][0]["status"]["tasks"][0]["jobName"] = "live-5-only"

    @dataclass
    class Children:
        jobs: dict[Any, list[dict[str, Any]]]
        pods: dict[Any, list[dict[str, Any]]]

    job = {"metadata": {"name": "live-5-only", "uid": "job-uid"}}
    owner = {"kind": "Job", "name": "live-5-only", "uid": "job-uid", "controller": True}
    made = {"metadata": {"name": "live-5-only", "ownerReferences": [owner],
                         "labels": {"flowops.io/flowrun": "live-5", "flowops.io/task": "only"}}}  # fmt: skip
    backend.children = Children(jobs={("ml", "live-5"): [job]}, pods={("ml", "live-5"): [made]})
    live = await backend.logs("ml", "live-5", "only", follow=False, tail_lines=None)
    assert not isinstance(live, StoredLog) and [c async for c in live] == [b"from the pod\n"]
    made["metadata"]["ownerReferences"] = [{**owner, "uid": "someone-elses"}]
    with pytest.raises(FlowRunError) as refused:
        await backend.logs("ml", "live-5", "only", follow=False, tail_lines=None)
    assert refused.value.status == 403 and "pod live-5-only is not the one" in str(refused.value)
    backend.children = Children(jobs={}, pods={})  # the pod left the watch: the store's log
    await store.put_log("uid-live-5", "only", 2, "kept\n")
    gone = await backend.logs("ml", "live-5", "only", follow=False, tail_lines=None)
    assert isinstance(gone, StoredLog) and [c async for c in gone] == [b"kept\n"]


# --- many live runs (bench/loop.py's findings): the page stays exact -----------------------


def versioned(name: str, minute: float, phase: str, version: int) -> dict[str, Any]:
    run = body(name, minute, phase)
    run["metadata"]["resourceVersion"] = str(version)
    return run


async def walk(backend: IndexedFlowRuns, limit: int, **filters: str) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    while True:
        part = await backend.page(filters, limit=limit, cursor=cursor)
        seen += [r["name"] for r in part.items]
        if part.next is None:
            return seen
        cursor = part.next


async def test_many_live_runs_stored_too_page_exactly_once(store: SqlRunStore) -> None:
    """300 live runs (past OFF_LOOP_AFTER: matched in a worker thread), the newest 250 of
    them also stored, between 40 stored runs gone from the cluster: every page is full and
    newest first, the walk shows each run once, though the store's first rows are all
    stored copies of live runs (the store is read on past them, as far as the page needs)."""
    index: dict[Any, Any] = {}
    for i in range(300):
        run = versioned(f"live-{i:03d}", 100 + i, "Completed", 10 + i)
        index[("ml", run["metadata"]["name"])] = [run]
        if i >= 50:
            await store.upsert_run(record_of(run))
    for i in range(40):
        await store.upsert_run(record_of(body(f"old-{i:03d}", i * 2, "Completed")))
    backend = IndexedFlowRuns(index, Pods(), store)
    everything = [f"live-{i:03d}" for i in reversed(range(300))]
    everything += [f"old-{i:03d}" for i in reversed(range(40))]
    first = await backend.page({}, limit=100)
    assert [r["name"] for r in first.items] == everything[:100]
    assert first.total == 340 and first.counts == {"Completed": 340}
    assert await walk(backend, 100) == everything
    assert await walk(backend, 7) == everything


async def test_a_changed_live_run_is_listed_as_it_is_now(store: SqlRunStore) -> None:
    """A live run's record is kept while its resourceVersion stands, and read again when
    the watch brings a new one; the counts ask the store again when they can differ."""
    run = versioned("live-1", 1, "Deployed", 5)
    await store.upsert_run(record_of(run))
    index: dict[Any, Any] = {("ml", "live-1"): [run]}
    clock = [0.0]
    backend = IndexedFlowRuns(index, Pods(), store, monotonic=lambda: clock[0])
    page = await backend.page({})
    assert [r["status"] for r in page.items] == ["Deployed"] and page.counts == {"Deployed": 1}
    index[("ml", "live-1")] = [versioned("live-1", 1, "Completed", 6)]
    page = await backend.page({})
    assert [r["status"] for r in page.items] == ["Completed"] and page.counts == {"Completed": 1}
    # the store catches up (the recorder writes version 6): still one run, Completed
    await store.upsert_run(record_of(index[("ml", "live-1")][0]))
    assert (await backend.page({})).counts == {"Completed": 1}
    # the run leaves the cluster: the stored row alone counts
    del index[("ml", "live-1")]
    clock[0] += 60
    page = await backend.page({})
    assert [r["status"] for r in page.items] == ["Completed"] and page.counts == {"Completed": 1}


async def test_me_asks_about_namespaces_of_stored_runs_too(
    setup: tuple[IndexedFlowRuns, dict[Any, Any], Pods], store: SqlRunStore
) -> None:
    backend, _, _ = setup
    await store.upsert_run(record_of(body("etl-1", 1, namespace="etl", flow="etl")))
    secrets = Secrets()
    secrets.put("flow-system", "flow-operator-api", token=TOKEN)
    api = make_api(View(), secrets, flowruns=backend)
    async with TestClient(TestServer(make_app(api))) as client:
        answer = await client.get("/api/v1/me", headers=AUTH)
        assert answer.status == 200
        shown = {n["namespace"] for n in (await answer.json())["namespaces"]}
    assert shown == {"ml", "etl"}  # etl holds only a stored run
