"""Each documented behaviour of Workflows and FlowRuns (docs/status.md, docs/flowrun.md)
that no other end-to-end test covers, on the real local control plane: a YELLOW Workflow,
a rollout past its progress deadline, an evicted pod, an image that cannot be pulled, a
task's timeout, a run's deadline, retries spent, a Job deleted under a running task,
cancel through flowctl and cancel reaching child runs. Capacity limits and the queue
timeout need an operator with limits: test_behaviours_capacity.py.

Pods are played by kwok; the image picks what a pod does (cluster/stages/pods.yaml)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import (
    FOREVER,
    OK,
    ClusterHandle,
    OperatorProcess,
    flowctl,
    flowrun,
    task,
    wait_for,
)

pytestmark = pytest.mark.e2e
GRACE = 4  # seconds a container may fail to start before its task fails (60 by default)
OPERATOR_ARGS = ["--all-namespaces", "--crash-grace-seconds", str(GRACE)]
FINAL = ("Completed", "Failed", "Crashed", "Cancelled")


def workflow(name: str, services: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "flowops.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {"desiredStatus": "PUBLISHED", "publishingMode": "ASYNC",
                 "services": services, **spec},
    }  # fmt: skip


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class Ns:
    """One namespace of the cluster, and what the tests read from it."""

    def __init__(self, cluster: ClusterHandle, namespace: str) -> None:
        self.cluster, self.ns = cluster, namespace

    def kubectl(self, *args: str, check: bool = True) -> str:
        return self.cluster.kubectl("-n", self.ns, *args, check=check).stdout

    def apply(self, obj: dict[str, Any]) -> None:
        self.cluster.kubectl("-n", self.ns, "apply", "-f", "-", input=yaml.safe_dump(obj))

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return self.cluster.get_json("-n", self.ns, kind, name)

    def items(self, kind: str, *selector: str) -> list[dict[str, Any]]:
        return list(self.cluster.get_json("-n", self.ns, kind, *selector).get("items", []))

    def status(self, name: str) -> dict[str, Any]:
        return self.get("flowrun", name).get("status") or {}

    def wait_phase(self, name: str, *phases: str, timeout: float = 60) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            status = self.status(name)
            return status if status.get("phase") in phases else None

        return dict(wait_for(f"flow run {name} in {phases}", reached, timeout))

    def wait_task(self, run: str, name: str, status: str, timeout: float = 30) -> dict[str, Any]:
        """The run's status line of task `name` once it reads `status` (as written)."""

        def line() -> dict[str, Any] | None:
            found = tasks(self.status(run)).get(name) or {}
            return found if found.get("status") == status else None

        return dict(wait_for(f"task {run}/{name} {status}", line, timeout))

    def jobs(self, run: str | None = None) -> list[str]:
        selector = ["-l", f"flowops.io/flowrun={run}"] if run else []
        return sorted(j["metadata"]["name"] for j in self.items("jobs", *selector))

    def events(self, kind: str, name: str) -> list[dict[str, Any]]:
        selector = f"involvedObject.kind={kind},involvedObject.name={name}"
        return self.items("events", "--field-selector", selector)

    def color(self, name: str) -> str | None:
        return (self.get("workflow", name).get("status") or {}).get("actualStatus")


def tasks(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in status.get("tasks") or []}


def phases(status: dict[str, Any]) -> list[tuple[str, str]]:
    return [(h["phase"], h["reason"]) for h in status["history"]]


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


@pytest.fixture
def ns(cluster: ClusterHandle, namespace: str, operator: OperatorProcess) -> Ns:
    return Ns(cluster, namespace)


# --- Workflows (docs/status.md) ---------------------------------------------------------


def test_a_service_short_of_replicas_is_yellow(ns: Ns) -> None:
    # Three nodes of 8Gi: one 5Gi replica fits on each, the fourth is unschedulable.
    big = {"requests": {"memory": "5Gi"}}
    ns.apply(workflow("wide", [{"id": "scorer", "image": OK, "replicas": 4, "resources": big}]))

    def yellow() -> dict[str, Any] | None:
        status = ns.get("workflow", "wide").get("status") or {}
        service = (status.get("details") or {}).get("services", [{}])[0]
        return status if status.get("actualStatus") == "YELLOW" and service["actual"] == 3 else None

    status = wait_for("YELLOW with 3 of 4 replicas", yellow, 60)
    service = status["details"]["services"][0]
    assert (service["desired"], service["actual"], service["status"]) == (4, 3, "YELLOW")
    assert (service["rolloutStatus"], service["rolloutStatusReason"]) == (
        "InProgress", "RollingOutReplicaSet")  # fmt: skip
    words = sorted(r["status"] for r in service["replicasDetail"])
    assert words == ["Running", "Running", "Running", "Unschedulable"]
    assert status["servicesReady"] == "0/1"
    assert conditions(status) == {
        "Ready": ("False", "Publishing"),
        "Reconciling": ("True", "Publishing"),
        "Stalled": ("False", "Publishing"),
    }
    assert status["conditions"][0]["message"] == "0/1 components ready; rolling out: scorer"
    wait_for(
        "a ColorChanged Event to YELLOW",
        lambda: any(
            e["reason"] == "ColorChanged" and e["message"].endswith("-> YELLOW")
            and e["type"] == "Normal"
            for e in ns.events("Workflow", "wide")
        ),
        10,
    )  # fmt: skip


def test_a_rollout_past_its_progress_deadline_is_red_and_stalled(ns: Ns) -> None:
    # Never Ready: the Deployment makes no progress, and after 10 s says so.
    ns.apply(workflow("stuck", [{"id": "scorer", "image": FOREVER, "replicas": 1}],
                      progressDeadlineSeconds=10))  # fmt: skip
    deployment = wait_for("the Deployment", lambda: ns.items("deployments"), 30)[0]
    assert deployment["spec"]["progressDeadlineSeconds"] == 10
    wait_for("RED", lambda: ns.color("stuck") == "RED", 45)
    status = ns.get("workflow", "stuck")["status"]
    service = status["details"]["services"][0]
    assert (service["desired"], service["actual"], service["status"]) == (1, 0, "RED")
    assert (service["rolloutStatus"], service["rolloutStatusReason"]) == (
        "Failed", "ProgressDeadlineExceeded")  # fmt: skip
    assert conditions(status) == {
        "Ready": ("False", "ProgressDeadlineExceeded"),
        "Reconciling": ("False", "ProgressDeadlineExceeded"),
        "Stalled": ("True", "ProgressDeadlineExceeded"),
    }
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["message"] == "rollout failed (progress deadline exceeded): scorer"
    # ASYNC with no instance was ORANGE (docs/status.md, decision 1); the deadline made it RED.
    wait_for(
        "a Warning ColorChanged Event ORANGE -> RED",
        lambda: any(
            e["reason"] == "ColorChanged" and e["message"] == "ORANGE -> RED"
            and e["type"] == "Warning"
            for e in ns.events("Workflow", "stuck")
        ),
        10,
    )  # fmt: skip


# --- FlowRuns: Failed and Crashed (docs/flowrun.md) ---------------------------------------


def test_an_evicted_pod_crashes_the_run_without_a_retry(ns: Ns) -> None:
    # The kubelet's eviction (node pressure: phase Failed, reason Evicted). An eviction
    # through the Eviction API (a drain) is not this: the pod is deleted, and the Job
    # counts it as a failed attempt (a retry spent, or the task Failed with no retries).
    ns.apply(flowrun("evicted", [task("load", "kwok.flowops.test/evicted", retries=2),
                                 task("after", dependsOn=["load"])]))  # fmt: skip
    status = ns.wait_phase("evicted", *FINAL)
    evicted = "The node was low on resource: memory. Threshold quantity: 100Mi, available: 52Mi."
    assert (status["phase"], status["reason"]) == ("Crashed", "Evicted"), status
    assert status["message"] == f"task load crashed: evicted: {evicted}"
    line = tasks(status)["load"]
    assert (line["status"], line["reason"], line["attempts"]) == ("Crashed", "Evicted", 1)
    assert line["message"] == f"evicted: {evicted}"
    assert tasks(status)["after"]["status"] == "Skipped"
    assert conditions(status)["Stalled"] == ("True", "Evicted")
    # No retry is spent: the unfinished Job (two retries left) is deleted with the run.
    wait_for("the Job deleted", lambda: ns.jobs("evicted") == [], 30)


def test_an_image_that_cannot_be_pulled_fails_the_run_after_the_grace(ns: Ns) -> None:
    ns.apply(flowrun("pull", [task("fetch", "kwok.flowops.test/pullfail")]))
    status = ns.wait_phase("pull", *FINAL, timeout=60)
    waiting = 'ImagePullBackOff: Back-off pulling image "kwok.flowops.test/pullfail": not found'
    assert (status["phase"], status["reason"]) == ("Failed", "TaskFailed"), status
    assert status["message"] == f"task fetch failed: {waiting}"
    line = tasks(status)["fetch"]
    assert (line["status"], line["reason"], line["message"]) == (
        "Failed", "ImagePullBackOff", waiting)  # fmt: skip
    # Not at once: the task ran (its pod waiting for its image) for the grace period.
    waited = (ts(line["endTime"]) - ts(line["startTime"])).total_seconds()
    assert waited >= GRACE - 1, line
    wait_for("the Job deleted", lambda: ns.jobs("pull") == [], 30)


def test_a_task_past_its_timeout_fails_the_run(ns: Ns) -> None:
    ns.apply(flowrun("slow", [task("train", FOREVER, timeoutSeconds=3),
                              task("publish", dependsOn=["train"])]))  # fmt: skip
    job = wait_for("the Job", lambda: ns.get("job", "slow-train"), 30)
    assert job["spec"]["activeDeadlineSeconds"] == 3
    status = ns.wait_phase("slow", *FINAL)
    assert (status["phase"], status["reason"]) == ("Failed", "TaskFailed"), status
    line = tasks(status)["train"]
    assert (line["status"], line["reason"]) == ("Failed", "DeadlineExceeded")
    assert line["message"].splitlines()[0] == "timed out after 3s"
    assert status["message"].startswith("task train failed: timed out after 3s")
    assert tasks(status)["publish"]["status"] == "Skipped"
    assert ns.jobs("slow") == ["slow-train"]  # a finished Job stays, for its logs


def test_a_run_past_its_deadline_fails_and_stops_its_tasks(ns: Ns) -> None:
    ns.apply(flowrun("late", [task("serve", FOREVER), task("after", dependsOn=["serve"])],
                     activeDeadlineSeconds=3))  # fmt: skip
    status = ns.wait_phase("late", *FINAL)
    assert (status["phase"], status["reason"]) == ("Failed", "DeadlineExceeded"), status
    assert status["message"] == "run deadline of 3s exceeded; running: serve"
    assert (ts(status["endTime"]) - ts(status["startTime"])).total_seconds() >= 3
    lines = tasks(status)
    assert (lines["serve"]["status"], lines["serve"]["message"]) == (
        "Cancelled", "stopped: the run is Failed")  # fmt: skip
    assert lines["after"]["status"] == "Skipped"
    assert phases(status)[-1] == ("Failed", "DeadlineExceeded")
    wait_for("the running Job deleted", lambda: ns.jobs("late") == [], 30)


def test_retries_spent_fail_the_run_with_the_attempts_counted(ns: Ns) -> None:
    # One retry: the Job controller starts a second pod about 10 s after the first failed.
    ns.apply(flowrun("retried", [task("score", "kwok.flowops.test/fail", retries=1)]))
    job = wait_for("the Job", lambda: ns.get("job", "retried-score"), 30)
    assert job["spec"]["backoffLimit"] == 1
    status = ns.wait_phase("retried", *FINAL, timeout=90)
    assert (status["phase"], status["reason"]) == ("Failed", "TaskFailed"), status
    line = tasks(status)["score"]
    assert (line["status"], line["reason"], line["attempts"]) == (
        "Failed", "BackoffLimitExceeded", 2)  # fmt: skip
    assert line["message"].splitlines()[0] == "exit code 1 (Error) after 2 attempts"
    assert status["message"].startswith("task score failed: exit code 1 (Error) after 2 attempts")
    pods = ns.items("pods", "-l", "flowops.io/flowrun=retried")
    assert len(pods) == 2 and {p["status"]["phase"] for p in pods} == {"Failed"}
    assert line["podName"] == max(pods, key=lambda p: p["metadata"]["creationTimestamp"])[
        "metadata"]["name"]  # fmt: skip


def test_a_job_deleted_under_a_running_task_fails_the_run(ns: Ns) -> None:
    ns.apply(flowrun("gone", [task("serve", FOREVER), task("after", dependsOn=["serve"])]))
    ns.wait_task("gone", "serve", "Running")  # recorded as running before the Job goes
    ns.kubectl("delete", "job", "gone-serve", "--wait=false")
    status = ns.wait_phase("gone", *FINAL, timeout=30)
    assert (status["phase"], status["reason"]) == ("Failed", "TaskFailed"), status
    assert status["message"] == "task serve failed: its Job gone-serve was deleted while running"
    line = tasks(status)["serve"]
    assert (line["status"], line["reason"]) == ("Failed", "Deleted")
    assert tasks(status)["after"]["status"] == "Skipped"
    assert ns.jobs("gone") == []  # not run again


# --- Cancel (docs/flowrun.md, docs/cli.md) -----------------------------------------------


def test_cancel_through_flowctl(ns: Ns) -> None:
    ns.apply(flowrun("stop-me", [task("serve", FOREVER), task("after", dependsOn=["serve"])]))
    ns.wait_task("stop-me", "serve", "Running")
    assert ns.jobs("stop-me") == ["stop-me-serve"]
    done = flowctl(ns.cluster, "cancel", "stop-me", "-n", ns.ns)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"flow run {ns.ns}/stop-me: cancel requested (was Deployed)"
    assert ns.get("flowrun", "stop-me")["spec"]["cancel"] is True
    status = ns.wait_phase("stop-me", *FINAL, timeout=30)
    assert (status["phase"], status["reason"], status["message"]) == (
        "Cancelled", "CancelRequested", "cancelled on request (spec.cancel)")  # fmt: skip
    assert {n: t["status"] for n, t in tasks(status).items()} == {
        "serve": "Cancelled", "after": "Skipped"}  # fmt: skip
    assert conditions(status)["Stalled"] == ("True", "CancelRequested")
    wait_for("the Job deleted", lambda: ns.jobs("stop-me") == [], 30)
    again = flowctl(ns.cluster, "cancel", "stop-me", "-n", ns.ns)
    assert again.returncode == 1 and "already finished (Cancelled)" in again.stderr


def test_cancel_reaches_the_child_runs(ns: Ns) -> None:
    child = {"flowName": "serving", "version": "2", "tasks": [task("serve", FOREVER)]}
    ns.apply(flowrun("parent", [{"name": "nested", "subFlow": child}]))
    kid = ns.wait_phase("parent-nested", "Deployed", timeout=30)
    wait_for("the child's Job", lambda: ns.jobs("parent-nested") == ["parent-nested-serve"], 30)
    ns.wait_task("parent", "nested", "Running")
    assert kid["tasks"][0]["name"] == "serve"
    ns.kubectl("patch", "flowrun", "parent", "--type=merge", "-p", '{"spec":{"cancel":true}}')
    status = ns.wait_phase("parent", *FINAL, timeout=30)
    assert (status["phase"], status["reason"]) == ("Cancelled", "CancelRequested")
    assert tasks(status)["nested"]["status"] == "Cancelled"
    kid = ns.wait_phase("parent-nested", *FINAL, timeout=30)
    assert ns.get("flowrun", "parent-nested")["spec"]["cancel"] is True
    assert (kid["phase"], kid["reason"], kid["message"]) == (
        "Cancelled", "CancelRequested", "cancelled on request (spec.cancel)")  # fmt: skip
    assert tasks(kid)["serve"]["status"] == "Cancelled"
    wait_for("the child's Job deleted", lambda: ns.jobs("parent-nested") == [], 30)
