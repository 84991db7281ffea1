"""The operator-wide endpoints (flow runs, the Workflow list) on an in-memory backend:
bearer-token auth, the seed's search, one run with its tasks, logs, cancel and rerun."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from flow_operator.api.openapi import document
from flow_operator.api.server import MAX_LIMIT, OFF_LOOP_ROWS, make_app
from flow_operator.status.aggregate import Observed
from tests.unit.api_support import (
    Clock,
    MemoryFlowRuns,
    Secrets,
    View,
    make_api,
    validate,
)
from tests.unit.kube_objects import workflow
from tests.unit.status.test_golden_workflow_status import SCENARIOS

TOKEN = "operator-token-1"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RUN = "/api/v1/flowruns/{namespace}/{name}"


@pytest.fixture
def backend() -> MemoryFlowRuns:
    return MemoryFlowRuns()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def client(backend: MemoryFlowRuns, clock: Clock) -> AsyncIterator[TestClient[Any, Any]]:
    view = View()
    body, observed = SCENARIOS["sync-publishing-unschedulable"]()
    view.add(body, observed, secret="wf-keys")
    view.add(workflow("draft", desired="UNPUBLISHED"), Observed(), published=False)
    secrets = Secrets()
    secrets.put("flow-system", "flow-operator-api", a=TOKEN, b="operator-token-2")
    secrets.put("ns", "wf-keys", k="workflow-key")
    c = TestClient(TestServer(make_app(make_api(view, secrets, clock=clock, flowruns=backend))))
    await c.start_server()
    yield c
    await c.close()


async def get_json(client: TestClient[Any, Any], url: str, path: str, **kw: Any) -> Any:
    resp = await client.get(url, **{"headers": AUTH, **kw})
    body = await resp.json()
    validate(path, "get", resp.status, body)
    return resp.status, body


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer workflow-key"},  # a workflow's key is not an operator token
        {"X-API-KEY": TOKEN},
    ],
)
async def test_operator_endpoints_need_the_operator_token(
    client: TestClient[Any, Any], headers: dict[str, str]
) -> None:
    for url in ("/api/v1/flowruns", "/api/v1/workflows", "/api/v1/flowruns/ml/nlp-tagging-k8d1"):
        resp = await client.get(url, headers=headers)
        assert resp.status == 401, url
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    resp = await client.post("/api/v1/flowruns/ml/nightly-etl-q1w2/cancel", headers=headers)
    assert resp.status in (401, 429)


async def test_every_token_value_works(client: TestClient[Any, Any]) -> None:
    for token in (TOKEN, "operator-token-2"):
        resp = await client.get("/api/v1/flowruns", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 200


async def test_failed_tokens_are_rate_limited(client: TestClient[Any, Any], clock: Clock) -> None:
    for _ in range(5):
        assert (await client.get("/api/v1/flowruns")).status == 401
    resp = await client.get("/api/v1/flowruns", headers=AUTH)
    assert resp.status == 429
    clock.t += 2
    assert (await client.get("/api/v1/flowruns", headers=AUTH)).status == 200


async def test_list_newest_first_without_tasks(client: TestClient[Any, Any]) -> None:
    status, body = await get_json(client, "/api/v1/flowruns", "/api/v1/flowruns")
    assert status == 200
    names = [r["name"] for r in body["items"]]
    assert names == [
        "nightly-etl-q1w2",
        "sales-forecast-x2p9",
        "churn-weekly-7f3k",
        "nlp-tagging-k8d1",
    ]
    assert all("tasks" not in r for r in body["items"])
    row = body["items"][2]
    assert {k: row[k] for k in ("flowName", "version", "level", "runType", "configuration",
                                "flowType", "duration", "status")} == {
        "flowName": "churn-weekly", "version": "3", "level": "organization",
        "runType": "Scheduled", "configuration": "churn-prod", "flowType": "standalone",
        "duration": "14m5s", "status": "Completed",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("search=churn", ["churn-weekly-7f3k"]),  # name
        ("search=EMEA", ["sales-forecast-x2p9"]),  # configuration, any case
        ("search=scheduled", ["nightly-etl-q1w2", "churn-weekly-7f3k"]),  # run type
        ("search=failed", ["nlp-tagging-k8d1"]),  # status
        ("search=nothing-like-it", []),
        ("status=Queued", ["nightly-etl-q1w2"]),
        ("runType=Manual", ["sales-forecast-x2p9"]),
        ("configuration=default", ["nlp-tagging-k8d1"]),
        ("name=churn-weekly", ["churn-weekly-7f3k"]),  # the flow's name
        ("name=churn", ["churn-weekly-7f3k"]),  # a substring, as the history store has it
        ("name=nothing-like-it", []),
        ("status=queued", ["nightly-etl-q1w2"]),  # a state in any case
        ("namespace=ml", ["nightly-etl-q1w2", "nlp-tagging-k8d1"]),
        ("namespace=ml&search=etl", ["nightly-etl-q1w2"]),
    ],
)
async def test_search_and_filters(
    client: TestClient[Any, Any], query: str, expected: list[str]
) -> None:
    _, body = await get_json(client, f"/api/v1/flowruns?{query}", "/api/v1/flowruns")
    assert [r["name"] for r in body["items"]] == expected


async def test_the_list_pages_with_limit_and_continue(client: TestClient[Any, Any]) -> None:
    _, whole = await get_json(client, "/api/v1/flowruns", "/api/v1/flowruns")
    assert "continue" not in whole and whole["total"] == 4
    assert whole["counts"] == {"Queued": 1, "Deployed": 1, "Completed": 1, "Failed": 1}
    seen, url = [], "/api/v1/flowruns?limit=3"
    while True:
        _, page = await get_json(client, url, "/api/v1/flowruns")
        assert len(page["items"]) <= 3 and page["total"] == 4
        seen += [r["name"] for r in page["items"]]
        if "continue" not in page:
            break
        url = f"/api/v1/flowruns?limit=3&continue={page['continue']}"
    assert seen == [r["name"] for r in whole["items"]]
    _, scheduled = await get_json(
        client, "/api/v1/flowruns?search=scheduled&limit=1", "/api/v1/flowruns"
    )
    assert (scheduled["total"], scheduled["counts"]) == (2, {"Queued": 1, "Completed": 1})
    assert [r["name"] for r in scheduled["items"]] == ["nightly-etl-q1w2"]


@pytest.mark.parametrize(
    ("query", "named"),
    [("limit=0", "limit"), ("limit=1001", "limit"), ("limit=ten", "limit"), ("limit=-1", "limit"),
     ("continue=not-a-token", "continue"), ("continue=eyJ2IjoxfQ", "continue"),
     ("limit=2&continue=%25%25", "continue")],
)  # fmt: skip
async def test_a_bad_limit_or_continue_is_a_400_naming_it(
    client: TestClient[Any, Any], query: str, named: str
) -> None:
    status, body = await get_json(client, f"/api/v1/flowruns?{query}", "/api/v1/flowruns")
    assert (status, body["error"]) == (400, "BadRequest"), body
    assert named in body["message"].split(), body["message"]  # the parameter, as a word


def test_the_documented_limit_is_the_served_one() -> None:
    op = document()["paths"]["/api/v1/flowruns"]["get"]
    limit = next(p for p in op["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == MAX_LIMIT


async def test_one_run_with_its_tasks(client: TestClient[Any, Any]) -> None:
    status, run = await get_json(client, "/api/v1/flowruns/analytics/sales-forecast-x2p9", RUN)
    assert status == 200
    assert [(t["name"], t["status"]) for t in run["tasks"]] == [
        ("load", "Succeeded"), ("features", "Succeeded"), ("score", "Running")]  # fmt: skip
    status, body = await get_json(client, "/api/v1/flowruns/analytics/nope", RUN)
    assert (status, body["error"]) == (404, "NotFound")


async def test_task_logs(client: TestClient[Any, Any], backend: MemoryFlowRuns) -> None:
    backend.logs_text["score"] = "epoch 1\nepoch 2\n"
    url = "/api/v1/flowruns/analytics/sales-forecast-x2p9/tasks/score/logs?follow=true"
    resp = await client.get(url, headers=AUTH)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert await resp.text() == "epoch 1\nepoch 2\n"
    resp = await client.get(url.replace("score", "nope"), headers=AUTH)
    assert resp.status == 404
    resp = await client.get("/api/v1/flowruns/ml/nlp-tagging-k8d1/tasks/tag/logs", headers=AUTH)
    assert (resp.status, (await resp.json())["error"]) == (409, "Conflict")


async def test_cancel_and_rerun(client: TestClient[Any, Any], backend: MemoryFlowRuns) -> None:
    resp = await client.post("/api/v1/flowruns/ml/nightly-etl-q1w2/cancel", headers=AUTH)
    body = await resp.json()
    validate(RUN + "/cancel", "post", resp.status, body)
    # answered as it stands; Cancelled once the operator has acted (api_contract.py)
    assert (resp.status, body["status"], body["message"]) == (200, "Queued", "cancel requested")
    backend.settle()
    resp = await client.post("/api/v1/flowruns/ml/nightly-etl-q1w2/cancel", headers=AUTH)
    assert resp.status == 409
    validate(RUN + "/cancel", "post", 409, await resp.json())
    resp = await client.post("/api/v1/flowruns/ml/nlp-tagging-k8d1/rerun", headers=AUTH)
    body = await resp.json()
    validate(RUN + "/rerun", "post", resp.status, body)
    assert (resp.status, body["status"], body["flowName"]) == (201, "Submitted", "nlp-tagging")
    assert backend.actions == [
        ("cancel", "ml", "nightly-etl-q1w2"),
        ("rerun", "ml", "nlp-tagging-k8d1"),
    ]
    resp = await client.post("/api/v1/flowruns/ml/nope/rerun", headers=AUTH)
    assert resp.status == 404
    assert (
        await client.get("/api/v1/flowruns/ml/nightly-etl-q1w2/cancel", headers=AUTH)
    ).status == 405


async def test_without_a_backend_flow_runs_are_503(clock: Clock) -> None:
    secrets = Secrets()
    secrets.put("flow-system", "flow-operator-api", a=TOKEN)
    c = TestClient(TestServer(make_app(make_api(View(), secrets, clock=clock))))
    await c.start_server()
    try:
        status, body = await get_json(c, "/api/v1/flowruns", "/api/v1/flowruns")
        assert (status, body["error"]) == (503, "Unavailable")
        assert (
            await c.post(RUN.format(namespace="a", name="b") + "/rerun", headers=AUTH)
        ).status == 503
    finally:
        await c.close()


async def test_workflow_list_for_the_dashboard(client: TestClient[Any, Any]) -> None:
    status, body = await get_json(client, "/api/v1/workflows", "/api/v1/workflows")
    assert status == 200
    by_name = {w["name"]: w for w in body["items"]}
    assert set(by_name) == {"wf", "draft"}
    wf = by_name["wf"]
    assert (wf["id"], wf["actualStatus"], wf["servicesReady"], wf["published"]) == (
        "ns.wf",
        "ORANGE",
        "1/2",
        True,
    )
    assert "rolling out" in wf["message"]
    pod = wf["status"]["details"]["services"][0]["replicasDetail"][0]
    assert pod["status"] == "Unschedulable"
    draft = by_name["draft"]
    assert draft["published"] is False
    _, body = await get_json(client, "/api/v1/workflows?namespace=elsewhere", "/api/v1/workflows")
    assert body["items"] == []


async def test_a_long_workflow_list_is_whole_and_the_same_off_the_loop(clock: Clock) -> None:
    """Past OFF_LOOP_ROWS Workflows the rows are made in a worker thread: every one is
    listed, each row as the short list makes it."""
    view = View()
    for i in range(OFF_LOOP_ROWS + 50):
        body, observed = SCENARIOS["sync-publishing-unschedulable"]()
        body["metadata"]["name"] = f"wf-{i:03d}"
        view.add(body, observed)
    secrets = Secrets()
    secrets.put("flow-system", "flow-operator-api", a=TOKEN)
    c = TestClient(TestServer(make_app(make_api(view, secrets, clock=clock))))
    await c.start_server()
    try:
        status, body = await get_json(c, "/api/v1/workflows", "/api/v1/workflows")
        assert status == 200
        names = [w["name"] for w in body["items"]]
        assert names == [f"wf-{i:03d}" for i in range(OFF_LOOP_ROWS + 50)]
    finally:
        await c.close()
    alone = View()
    alone.workflows[("ns", "wf-007")] = view.workflows[("ns", "wf-007")]
    alone.pods[("ns", "wf-007")] = view.pods[("ns", "wf-007")]
    short = TestClient(TestServer(make_app(make_api(alone, secrets, clock=clock))))
    await short.start_server()
    try:
        _, one = await get_json(short, "/api/v1/workflows", "/api/v1/workflows")
    finally:
        await short.close()
    assert one["items"] == [body["items"][7]]
    assert (one["items"][0]["actualStatus"], one["items"][0]["servicesReady"]) == ("ORANGE", "1/2")
