"""The Workflow page's reads: GET /api/v1/workflows/{namespace}/{name}/pods (each service's
rollout from its Deployment, each pod as kubectl lists it with the scheduler's message)
and /runs (the live runs that use the Workflow), from the operator's watches; their views
(views/workflow_page.py) on plain bodies; `get workflows` plus `list pods` / `list
flowruns` in kubernetes auth mode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from flow_operator.api.flowrun_backend import IndexedFlowRuns
from flow_operator.api.identity import KubernetesAccess
from flow_operator.api.server import make_app
from flow_operator.api.workflows import WorkflowDirectory
from flow_operator.views.workflow_page import pod_row, rollout_rows, runs_using, workflow_of
from tests.unit.api.test_identity import ALICE, Reviews, auth
from tests.unit.api_support import NOW, Secrets, View, make_api, validate

PODS = "/api/v1/workflows/{namespace}/{name}/pods"
RUNS = "/api/v1/workflows/{namespace}/{name}/runs"
TOKEN = {"Authorization": "Bearer operator-token-1"}
LABELS = {"flowops.io/workflow": "shop"}


def pending_pod() -> dict[str, Any]:
    """A pod the scheduler refused: Pending, PodScheduled False / Unschedulable."""
    return {
        "metadata": {"name": "shop-huge-7d9-abcde", "namespace": "analytics",
                     "labels": {**LABELS, "flowops.io/component": "huge"},
                     "creationTimestamp": "2024-02-12T10:10:00Z"},
        "spec": {"containers": [{"name": "huge"}]},
        "status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": "0/3 nodes are available: 3 Insufficient memory."}]},
    }  # fmt: skip


def running_pod(name: str, restarts: int = 0) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "analytics",
                     "labels": {**LABELS, "flowops.io/component": "web"},
                     "creationTimestamp": "2024-02-12T09:14:53Z"},
        "spec": {"containers": [{"name": "web"}, {"name": "sidecar"}], "nodeName": "node-1"},
        "status": {"phase": "Running", "startTime": "2024-02-12T09:14:55Z",
                   "conditions": [{"type": "PodScheduled", "status": "True"},
                                  {"type": "Ready", "status": "True"}],
                   "containerStatuses": [
                       {"name": "web", "ready": True, "restartCount": restarts,
                        "state": {"running": {}}},
                       {"name": "sidecar", "ready": False, "restartCount": 1,
                        "state": {"running": {}}}]},
    }  # fmt: skip


def deployment(component: str, replicas: int, **status: int) -> dict[str, Any]:
    return {
        "metadata": {"name": f"shop-{component}", "namespace": "analytics",
                     "labels": {**LABELS, "flowops.io/component": component}},
        "spec": {"replicas": replicas},
        "status": status,
    }  # fmt: skip


def test_a_pod_the_scheduler_refused_says_why() -> None:
    assert pod_row(pending_pod(), NOW).dump() == {
        "name": "shop-huge-7d9-abcde",
        "service": "huge",
        "status": "Unschedulable",
        "message": "0/3 nodes are available: 3 Insufficient memory.",
        "ready": "0/1",
        "restarts": 0,
        "node": None,
        "created": "2024-02-12T10:10:00Z",
        "age": "4m53s",
        "scheduled": "Unschedulable",
    }


def test_a_running_pod_counts_its_containers_and_restarts() -> None:
    row = pod_row(running_pod("shop-web-1", restarts=2), NOW).dump()
    assert (row["status"], row["ready"], row["restarts"], row["node"]) == (
        "Running", "1/2", 3, "node-1")  # fmt: skip
    assert (row["age"], row["scheduled"], row["message"]) == ("1h0m0s", "True", None)


def test_rollout_counts_come_from_each_services_deployment() -> None:
    services = [
        {"id": "web", "desired": 3, "rolloutStatus": "InProgress",
         "rolloutStatusReason": "RollingOutReplicaSet"},
        {"id": "huge", "desired": 1, "rolloutStatus": "InProgress",
         "message": "pods refused by Pod Security: ..."},
        {"id": "new", "desired": 2, "rolloutStatus": "InProgress"},
    ]  # fmt: skip
    rows = rollout_rows(
        services,
        [deployment("huge", 1), deployment("web", 3, updatedReplicas=2, readyReplicas=3,
                                           availableReplicas=1)],
    )  # fmt: skip
    assert [(r.id, r.desired, r.updated, r.ready, r.available) for r in rows] == [
        ("web", 3, 2, 3, 1),
        ("huge", 1, 0, 0, 0),
        ("new", 2, 0, 0, 0),  # no Deployment yet: the spec's replicas, nothing else
    ]
    assert rows[0].rolloutStatusReason == "RollingOutReplicaSet"
    assert rows[1].message == "pods refused by Pod Security: ..."


def run_body(ns: str, name: str, start: str, *, spec_ref: str | None = None,
             version_ref: str | None = None) -> dict[str, Any]:  # fmt: skip
    spec: dict[str, Any] = {"flowName": name, "tasks": [{"name": "t", "image": "x"}]}
    if spec_ref:
        spec["workflowRef"] = {"name": spec_ref}
    status: dict[str, Any] = {"phase": "Deployed", "startTime": start}
    if version_ref:
        status["definition"] = {"workflowRef": {"name": version_ref}}
    return {"metadata": {"namespace": ns, "name": name}, "spec": spec, "status": status}


RUN_BODIES = [
    run_body("analytics", "inline", "2024-02-12T09:00:00Z", spec_ref="shop"),
    run_body("analytics", "of-a-flow", "2024-02-12T10:00:00Z", version_ref="shop"),
    run_body("analytics", "other", "2024-02-12T10:05:00Z", spec_ref="billing"),
    run_body("analytics", "none", "2024-02-12T10:06:00Z"),
    run_body("ml", "elsewhere", "2024-02-12T10:07:00Z", spec_ref="shop"),
]


def test_the_runs_using_a_workflow_by_their_ref_or_their_flow_versions() -> None:
    assert [workflow_of(b) for b in RUN_BODIES] == ["shop", "shop", "billing", None, "shop"]
    rows = runs_using(RUN_BODIES, "analytics", "shop")
    assert [r["name"] for r in rows] == ["of-a-flow", "inline"]  # newest first
    assert all("tasks" not in r for r in rows)


@pytest.fixture
async def parts() -> AsyncIterator[tuple[TestClient[Any, Any], Any]]:
    view = View()
    view.workflows[("analytics", "shop")] = [
        {"metadata": {"namespace": "analytics", "name": "shop", "resourceVersion": "1"},
         "spec": {"services": []},
         "status": {"desiredStatus": "PUBLISHED", "publishingMode": "ASYNC", "actualStatus": "ORANGE",
                    "details": {"services": [
                        {"id": "web", "desired": 2, "actual": 2, "status": "GREEN",
                         "rolloutStatus": "Complete", "replicasDetail": []},
                        {"id": "huge", "desired": 1, "actual": 0, "status": "RED",
                         "rolloutStatus": "InProgress", "replicasDetail": []}]}}},
    ]  # fmt: skip
    view.pods[("analytics", "shop")] = [running_pod("shop-web-2"), pending_pod(),
                                        running_pod("shop-web-1")]  # fmt: skip
    deployments = {
        ("analytics", "shop"): [
            deployment("web", 2, updatedReplicas=2, readyReplicas=2, availableReplicas=2),
            deployment("huge", 1, updatedReplicas=1),
        ]
    }
    secrets = Secrets()
    secrets.put("flow-system", "flow-operator-api", a="operator-token-1")
    runs = {(b["metadata"]["namespace"], b["metadata"]["name"]): [b] for b in RUN_BODIES}
    api = make_api(view, secrets, flowruns=IndexedFlowRuns(runs, None))  # type: ignore[arg-type]
    api.directory = WorkflowDirectory(
        view.workflows, view.pods, clock=lambda: NOW, deployments=deployments
    )
    client = TestClient(TestServer(make_app(api)))
    await client.start_server()
    yield client, api
    await client.close()


async def test_pods_answers_rollout_and_pods_from_the_watches(parts: Any) -> None:
    client, _ = parts
    resp = await client.get(PODS.format(namespace="analytics", name="shop"), headers=TOKEN)
    body = await resp.json()
    validate(PODS, "get", resp.status, body)
    assert resp.status == 200
    assert [(s["id"], s["desired"], s["updated"], s["ready"], s["available"])
            for s in body["services"]] == [("web", 2, 2, 2, 2), ("huge", 1, 1, 0, 0)]  # fmt: skip
    assert [(p["service"], p["name"], p["status"]) for p in body["pods"]] == [
        ("huge", "shop-huge-7d9-abcde", "Unschedulable"),
        ("web", "shop-web-1", "Running"),
        ("web", "shop-web-2", "Running"),
    ]
    assert body["pods"][0]["message"] == "0/3 nodes are available: 3 Insufficient memory."
    missing = await client.get(PODS.format(namespace="analytics", name="nope"), headers=TOKEN)
    assert (
        missing.status == 404 and "no workflow analytics/nope" in (await missing.json())["message"]
    )
    assert (await client.get(PODS.format(namespace="analytics", name="shop"))).status == 401


async def test_runs_answers_the_live_runs_using_it(parts: Any) -> None:
    client, _ = parts
    resp = await client.get(RUNS.format(namespace="analytics", name="shop"), headers=TOKEN)
    body = await resp.json()
    validate(RUNS, "get", resp.status, body)
    assert [r["name"] for r in body["items"]] == ["of-a-flow", "inline"]
    missing = await client.get(RUNS.format(namespace="analytics", name="nope"), headers=TOKEN)
    assert missing.status == 404


async def test_kubernetes_mode_takes_list_pods_and_list_flowruns(parts: Any) -> None:
    client, api = parts
    reviews = Reviews()
    api.access = KubernetesAccess(reviews, reviews)
    pods = PODS.format(namespace="analytics", name="shop")
    runs = RUNS.format(namespace="analytics", name="shop")
    # alice views workflows and edits flowruns in analytics, but may not list its pods
    refused = await client.get(pods, headers=auth("alice-token"))
    assert refused.status == 403
    assert (await refused.json())["message"] == f"{ALICE.user} cannot list pods in analytics"
    assert (await client.get(runs, headers=auth("alice-token"))).status == 200
    # bob may see nothing of analytics: refused the Workflow itself first
    bobs = await client.get(runs, headers=auth("bob-token"))
    assert (
        bobs.status == 403 and "cannot get workflows in analytics" in (await bobs.json())["message"]
    )
    reviews.rules[(ALICE.user, "analytics")]["pods"] = {"list"}
    api.access = KubernetesAccess(reviews, reviews)  # a fresh decision cache
    assert (await client.get(pods, headers=auth("alice-token"))).status == 200
