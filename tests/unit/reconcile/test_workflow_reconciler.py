"""The Workflow reconciler on a fake API: what it writes, and above all what it doesn't."""

from __future__ import annotations

import logging
from copy import deepcopy
from datetime import UTC, datetime
from typing import Any

import pytest

from flow_operator.builders.deployment import desired_deployment
from flow_operator.models.workflow import Workflow
from flow_operator.reconcile.workflow import API_KEY_RECHECK, WorkflowReconciler, WorkflowView
from tests.unit.fake_kube import FakeKube
from tests.unit.kube_objects import workflow

KEY = ("ns", "wf")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Cluster:
    """The view the reconciler reads, fed the way the watches would feed it."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.view = WorkflowView({KEY: [body]}, {}, {}, {}, {})
        self.kube = FakeKube()
        self.rec = WorkflowReconciler(self.view, self.kube, clock=lambda: NOW)

    def sync(self, available: bool = True) -> None:
        """Pretend the watches delivered what was applied, with the controllers done."""
        deployments = {}
        for applied in self.kube.applied:
            if applied["kind"] != "Deployment":
                continue
            d = {**applied, "metadata": {**applied["metadata"], "generation": 1}}
            n = applied["spec"]["replicas"] if available else 0
            d["status"] = {"observedGeneration": 1, "replicas": n, "updatedReplicas": n,
                           "readyReplicas": n, "availableReplicas": n}  # fmt: skip
            deployments[applied["metadata"]["name"]] = d
        self.view.deployments = {KEY: list(deployments.values())}
        services = [a for a in self.kube.applied if a["kind"] == "Service"]
        self.view.services = {KEY: services}
        if self.kube.statuses:
            self.body["status"] = self.kube.statuses[-1][3]
            self.body["metadata"]["resourceVersion"] = str(len(self.kube.statuses))


async def test_publish_converges_then_goes_quiet() -> None:
    c = Cluster(workflow(services=[("a", 2), ("b", 1)]))
    await c.rec(KEY)
    assert sorted(a["metadata"]["name"] for a in c.kube.applied) == ["wf-a", "wf-b"]
    assert c.kube.statuses[-1][3]["actualStatus"] == "ORANGE"
    c.sync()
    await c.rec(KEY)
    assert c.kube.statuses[-1][3]["actualStatus"] == "GREEN"
    c.sync()
    writes = c.kube.writes()
    for _ in range(3):  # unchanged: neither objects nor status are written again
        await c.rec(KEY)
    assert c.kube.writes() == writes
    assert [e[1] for e in c.kube.events] == ["none -> ORANGE", "ORANGE -> GREEN"]


async def test_status_written_once_before_watch_catches_up() -> None:
    c = Cluster(workflow())
    await c.rec(KEY)
    await c.rec(KEY)  # the view still shows no status: the write is remembered
    assert len(c.kube.statuses) == 1
    assert len(c.kube.applied) == 1


async def test_a_change_of_details_only_waits_out_the_interval_a_color_change_does_not() -> None:
    now = [100.0]
    c = Cluster(workflow(services=[("a", 3), ("b", 1)]))
    c.rec.writes.monotonic = lambda: now[0]

    async def available(n: int) -> float | None:
        c.sync()
        for d in c.view.deployments[KEY]:
            if d["metadata"]["name"] == "wf-a":
                d["status"].update(replicas=n, updatedReplicas=n, readyReplicas=n,
                                   availableReplicas=n)  # fmt: skip
        return await c.rec(KEY)

    def written() -> list[tuple[str, int]]:
        return [(s[3]["actualStatus"], s[3]["details"]["services"][0]["actual"])
                for s in c.kube.statuses if s[3]["details"]]  # fmt: skip

    await c.rec(KEY)
    assert await available(1) is None  # ORANGE -> YELLOW: written at once
    now[0] += 0.3
    again = await available(2)  # 1 -> 2 of 3 replicas, still YELLOW: details only
    assert again == pytest.approx(1.0)  # the queue brings it back when the interval is over
    assert written() == [("ORANGE", 0), ("YELLOW", 1)]
    now[0] += 0.4
    assert await c.rec(KEY) == pytest.approx(0.6)  # another event meanwhile: still waits
    now[0] += 0.6
    assert await c.rec(KEY) is None  # the interval is over: the latest state is written
    assert written()[-1] == ("YELLOW", 2)
    now[0] += 0.1
    assert await available(3) is None  # YELLOW -> GREEN 0.1 s later: at once
    assert written() == [("ORANGE", 0), ("YELLOW", 1), ("YELLOW", 2), ("GREEN", 3)]


async def test_one_more_service_ready_within_a_color_is_progress_not_headline() -> None:
    """servicesReady and the conditions' messages move with each service that becomes
    ready; within one color they wait out the interval like the details, so the write
    that turns the Workflow GREEN is not queued behind the one for "2/3"."""
    now = [100.0]
    c = Cluster(workflow(services=[("a", 1), ("b", 1), ("c", 1)]))
    c.rec.writes.monotonic = lambda: now[0]

    done: set[str] = set()

    async def ready(name: str) -> float | None:
        done.add(f"wf-{name}")
        c.sync(available=False)
        for d in c.view.deployments[KEY]:
            if d["metadata"]["name"] in done:
                d["status"].update(replicas=1, updatedReplicas=1, readyReplicas=1,
                                   availableReplicas=1)  # fmt: skip
        return await c.rec(KEY)

    await c.rec(KEY)
    now[0] += 2.0  # long after the last write
    assert await ready("a") == pytest.approx(1.0)  # 1/3, still ORANGE: kept an interval
    now[0] += 0.2
    assert await ready("b") == pytest.approx(0.8)  # 2/3, still ORANGE: kept
    now[0] += 0.1
    assert await ready("c") is None  # GREEN: at once
    written = [(s[3]["actualStatus"], s[3]["servicesReady"]) for s in c.kube.statuses]
    assert written == [("ORANGE", "0/3"), ("GREEN", "3/3")]
    ready_condition = next(x for x in c.kube.statuses[-1][3]["conditions"] if x["type"] == "Ready")
    assert ready_condition["status"] == "True"


async def test_a_late_echo_of_an_earlier_write_does_not_undo_a_later_one() -> None:
    c = Cluster(workflow(services=[("a", 1)]))
    c.body["metadata"]["resourceVersion"] = "1"
    first = deepcopy(c.body)
    await c.rec(KEY)  # write 1: ORANGE, made "made-1"
    c.sync()
    c.body["metadata"]["resourceVersion"] = "1"  # ... but the watch has not shown it yet
    c.body.pop("status")
    await c.rec(KEY)  # write 2: GREEN, over the same version
    assert [s[3]["actualStatus"] for s in c.kube.statuses] == ["ORANGE", "GREEN"]
    # the watch shows write 1 now: older than write 2, nothing is written again
    c.body.update(status=c.kube.statuses[0][3], metadata={**first["metadata"],
                  "resourceVersion": "made-1"})  # fmt: skip
    await c.rec(KEY)
    assert len(c.kube.statuses) == 2
    assert [e[1] for e in c.kube.events] == ["none -> ORANGE", "ORANGE -> GREEN"]
    c.body.update(status=c.kube.statuses[1][3], metadata={**first["metadata"],
                  "resourceVersion": "made-2"})  # fmt: skip
    await c.rec(KEY)
    assert len(c.kube.statuses) == 2 and len(c.kube.events) == 2


async def test_drifted_replicas_are_put_back() -> None:
    c = Cluster(workflow(services=[("a", 2)]))
    await c.rec(KEY)
    c.sync()
    c.view.deployments[KEY][0]["spec"]["replicas"] = 5  # type: ignore[index]
    before = len(c.kube.applied)
    await c.rec(KEY)
    assert len(c.kube.applied) == before + 1
    assert c.kube.applied[-1]["spec"]["replicas"] == 2


async def test_spec_change_rolls_out() -> None:
    c = Cluster(workflow(services=[("a", 1)]))
    await c.rec(KEY)
    c.sync()
    c.body["spec"]["services"][0]["image"] = "registry.local/a:2"
    c.body["metadata"]["generation"] = 2
    await c.rec(KEY)
    assert c.kube.applied[-1]["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":2")


async def test_unpublish_removes_owned_objects() -> None:
    body = workflow(services=[("a", 1)])
    body["spec"]["services"][0]["ports"] = [{"containerPort": 80}]
    c = Cluster(body)
    await c.rec(KEY)
    c.sync()
    c.body["spec"]["desiredStatus"] = "UNPUBLISHED"
    await c.rec(KEY)
    assert sorted(c.kube.deleted) == [("Deployment", "ns", "wf-a"), ("Service", "ns", "wf-a")]
    assert c.kube.statuses[-1][3]["actualStatus"] == "ORANGE"
    c.view.deployments, c.view.services = {}, {}
    await c.rec(KEY)
    last = c.kube.statuses[-1][3]
    assert (last["actualStatus"], last["details"]) == ("GREEN", {})


async def test_refused_object_is_red_with_the_api_message() -> None:
    c = Cluster(workflow(services=[("a", 1)]))
    c.kube.refuse["wf-a"] = "exceeded quota: compute, requested: pods=1"
    again = await c.rec(KEY)
    status = c.kube.statuses[-1][3]
    assert status["actualStatus"] == "RED" and again is not None
    stalled = next(x for x in status["conditions"] if x["type"] == "Stalled")
    assert stalled["status"] == "True" and "exceeded quota" in stalled["message"]


async def test_deleted_workflow_is_left_to_garbage_collection() -> None:
    c = Cluster(workflow())
    c.view.workflows = {}
    assert await c.rec(KEY) is None
    assert c.kube.writes() == 0


def test_builder_owner_and_labels() -> None:
    wf = Workflow.from_body(workflow(services=[("a", 3)]))
    d = desired_deployment(wf, wf.spec.services[0])
    assert d["metadata"]["ownerReferences"][0]["uid"] == "wf-uid"
    assert d["spec"]["selector"]["matchLabels"] == {
        "flowops.io/workflow": "wf",
        "flowops.io/component": "a",
    }
    assert (
        d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/managed-by"]
        == "flow-operator"
    )


async def test_spec_the_schema_cannot_check_goes_stalled_and_creates_nothing() -> None:
    body = workflow(services=[("a", 1)])
    body["spec"]["services"][0]["resources"] = {"requests": {"cpu": "lots"}}
    c = Cluster(body)
    assert await c.rec(KEY) is None
    assert c.kube.applied == []
    status = c.kube.statuses[-1][3]
    stalled = next(x for x in status["conditions"] if x["type"] == "Stalled")
    assert (status["actualStatus"], stalled["status"], stalled["reason"]) == (
        "RED",
        "True",
        "InvalidSpec",
    )
    assert "spec.services.0.resources.requests.cpu" in stalled["message"]
    c.body["status"] = status
    await c.rec(KEY)
    assert len(c.kube.statuses) == 1  # and it is not rewritten


async def test_trace_logs_each_status_write_with_its_color(
    caplog: pytest.LogCaptureFixture,
) -> None:
    c = Cluster(workflow(services=[("a", 1)]))
    with caplog.at_level(logging.DEBUG, logger="flow_operator.trace"):
        await c.rec(KEY)
        c.sync()
        await c.rec(KEY)
    lines = [r.getMessage() for r in caplog.records if r.name == "flow_operator.trace"]
    assert [(line.split()[:2], line.split("color=")[1]) for line in lines] == [
        (["write", "workflow"], "ORANGE"),
        (["write", "workflow"], "GREEN"),
    ]
    assert all(" ns/wf t=" in line and " took=" in line for line in lines)


class Verdicts:
    """The api-key Secret check the reconciler is handed (api/auth.py SecretKeys.verdict)."""

    def __init__(self, reason: str, message: str) -> None:
        self.answer = (reason, message)
        self.asked: list[tuple[str, str]] = []

    async def __call__(self, namespace: str, name: str) -> tuple[str, str]:
        self.asked.append((namespace, name))
        return self.answer


def api_key_condition(c: Cluster) -> dict[str, Any]:
    conditions = c.kube.statuses[-1][3]["conditions"]
    return next(x for x in conditions if x["type"] == "ApiKeySecret")


async def test_an_unfit_api_key_secret_is_a_condition_naming_the_fix() -> None:
    body = workflow()
    body["spec"]["apiKeySecretRef"] = {"name": "foo"}
    c = Cluster(body)
    message = (
        "apiKeySecretRef: Secret ns/foo has type Opaque; create it with type flowops.io/api-key"
    )
    check = c.rec.check_api_keys = Verdicts("WrongSecretType", message)
    again = await c.rec(KEY)
    assert check.asked == [("ns", "foo")]
    got = api_key_condition(c)
    assert (got["status"], got["reason"], got["message"]) == ("False", "WrongSecretType", message)
    assert again == API_KEY_RECHECK  # no Secret watch: checked again after a while
    assert c.kube.statuses[-1][3]["actualStatus"] == "ORANGE"  # the services are unaffected
    c.sync()
    check.answer = ("Accepted", "1 key accepted from ns/foo")
    assert await c.rec(KEY) is None
    got = api_key_condition(c)
    assert (got["status"], got["reason"]) == ("True", "Accepted")


async def test_no_secret_ref_no_condition_and_no_read() -> None:
    c = Cluster(workflow())
    check = c.rec.check_api_keys = Verdicts("Accepted", "")
    await c.rec(KEY)
    assert check.asked == []
    assert "ApiKeySecret" not in {x["type"] for x in c.kube.statuses[-1][3]["conditions"]}
