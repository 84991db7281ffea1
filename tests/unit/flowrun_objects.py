"""FlowRuns and what the cluster holds for them (Jobs, pods, child runs, events), as the
API returns them, for the FlowRun unit tests. Jobs start from the real builder, so their
names, labels and owner references are what the operator would create."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flow_operator.builders.job import desired_child_run, desired_job
from flow_operator.models.flowrun import FlowRun
from flow_operator.objects.times import rfc3339

Body = dict[str, Any]
T0 = datetime(2024, 2, 12, 9, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def stamp(seconds: float) -> str:
    return rfc3339(at(seconds))


def task(name: str, *deps: str, **fields: Any) -> Body:
    body: Body = {"name": name, "version": "1.0", "image": f"busybox:{name}"}
    if deps:
        body["dependsOn"] = list(deps)
    return {**body, **fields}


def run_body(tasks: list[Body] | None = None, *, name: str = "churn-7f3k", **spec: Any) -> Body:
    return {
        "apiVersion": "flowops.io/v1alpha1",
        "kind": "FlowRun",
        "metadata": {"name": name, "namespace": "ml", "uid": "run-uid", "generation": 1},
        "spec": {
            "flowName": "churn",
            "version": "3",
            "tasks": tasks if tasks is not None else [task("extract")],
            **spec,
        },
    }


def flowrun(tasks: list[Body] | None = None, **spec: Any) -> FlowRun:
    return FlowRun.from_body(run_body(tasks, **spec))


def _condition(type_: str, reason: str | None, when: str, message: str = "") -> Body:
    cond = {"type": type_, "status": "True", "lastTransitionTime": when, "message": message}
    return {**cond, "reason": reason} if reason else cond


def job(
    run: FlowRun,
    name: str,
    *,
    active: int = 0,
    succeeded: int = 0,
    failed: int = 0,
    start: float = 0,
    done: float | None = None,
    failure: str | None = None,
    deleting: bool = False,
) -> Body:
    """The task's Job with a status: Complete when `done` is given (without `failure`),
    Failed with reason `failure` at `done`."""
    spec_task = next(t for t in run.spec.tasks if t.name == name)
    body = desired_job(run, spec_task)
    status: Body = {"startTime": stamp(start)}
    for key, count in (("active", active), ("succeeded", succeeded), ("failed", failed)):
        if count:
            status[key] = count
    if done is not None and failure is None:
        status["completionTime"] = stamp(done)
        status["conditions"] = [_condition("Complete", None, stamp(done))]
    elif done is not None:
        status["conditions"] = [_condition("Failed", failure, stamp(done), "job failed")]
    body["status"] = status
    if deleting:
        body["metadata"]["deletionTimestamp"] = stamp(done or start)
    return body


def pod(
    run: FlowRun,
    name: str,
    suffix: str = "a1b2c",
    *,
    created: float = 0,
    phase: str = "Running",
    terminated: tuple[str, int] | None = None,
    last_terminated: tuple[str, int] | None = None,
    waiting: tuple[str, str] | None = None,
    unschedulable: str | None = None,
    evicted: bool = False,
) -> Body:
    job_body = desired_job(run, next(t for t in run.spec.tasks if t.name == name))
    meta = job_body["metadata"]
    status: Body = {"phase": phase, "conditions": [{"type": "PodScheduled", "status": "True"}]}
    if unschedulable is not None:
        status["phase"] = "Pending"
        status["conditions"] = [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": unschedulable,
                "lastTransitionTime": stamp(created),
            }
        ]
    else:
        status["startTime"] = stamp(created)
    state: Body = {"running": {"startedAt": stamp(created)}}
    if terminated:
        state = {"terminated": {"reason": terminated[0], "exitCode": terminated[1]}}
    elif waiting:
        state = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
    container: Body = {"name": name, "ready": state.get("running") is not None, "state": state}
    if last_terminated:
        container["lastState"] = {
            "terminated": {"reason": last_terminated[0], "exitCode": last_terminated[1]}
        }
    if unschedulable is None:
        status["containerStatuses"] = [container]
    if evicted:
        status.update(phase="Failed", reason="Evicted", message="The node was low on memory.")
    return {
        "metadata": {
            "name": f"{meta['name']}-{suffix}",
            "namespace": meta["namespace"],
            "creationTimestamp": stamp(created),
            "labels": dict(meta["labels"]),
        },
        "spec": {"containers": [{"name": name}]},
        "status": status,
    }


def child(run: FlowRun, name: str, phase: str | None = None, **status: Any) -> Body:
    """The child run of sub-flow task `name`, as created, in `phase` (None: no status yet)."""
    body = desired_child_run(run, next(t for t in run.spec.tasks if t.name == name))
    if phase is not None:
        body["status"] = {"phase": phase, **status}
    return body


def failed_create(job_body: Body, message: str, first: float) -> Body:
    """The Job controller's Warning Event when the API server refuses one of its pods."""
    return {
        "metadata": {"name": f"{job_body['metadata']['name']}.17b2", "namespace": "ml"},
        "involvedObject": {"kind": "Job", "name": job_body["metadata"]["name"]},
        "type": "Warning",
        "reason": "FailedCreate",
        "message": message,
        "firstTimestamp": stamp(first),
        "lastTimestamp": stamp(first),
    }
