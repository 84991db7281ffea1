"""Per-attempt timeline segments (views/attempts.py) from a task's Job and pods, with the
times worked out by hand: a failed attempt and its retry, OOMKilled and Evicted attempts,
a pod the scheduler rejects (Unschedulable, with its message), one whose container is
being created, a pod without a PodScheduled condition; the pods of another Job are not
the task's; and the run detail of the API carries them for a live run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flow_operator.api.flowrun_backend import IndexedFlowRuns
from flow_operator.views.attempts import attempts, outcome, ready_time, run_attempts, task_pods
from tests.unit.api_support import validate

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=10)


def at(s: float) -> str:
    return (T0 + timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%SZ")


JOB = {"metadata": {"name": "r-load", "uid": "job-uid", "creationTimestamp": at(5)}}


def pod(name: str, created: float, *, scheduled: float | None = None, started: float | None = None,
        finished: float | None = None, phase: str = "Succeeded", reason: str | None = None,
        exit_code: int = 0, unschedulable: str | None = None, waiting: str | None = None,
        job: str = "r-load", uid: str = "job-uid", status_reason: str | None = None) -> dict[str, Any]:  # fmt: skip
    conditions = []
    if scheduled is not None:
        conditions.append(
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": at(scheduled)}
        )
    if unschedulable is not None:
        conditions.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                           "message": unschedulable, "lastTransitionTime": at(created)})  # fmt: skip
    state: dict[str, Any] = {}
    if finished is not None:
        state["terminated"] = {"exitCode": exit_code, "startedAt": at(started or created),
                               "finishedAt": at(finished), **({"reason": reason} if reason else {})}  # fmt: skip
    elif started is not None:
        state["running"] = {"startedAt": at(started)}
    elif waiting is not None:
        state["waiting"] = {"reason": waiting}
    status: dict[str, Any] = {"phase": phase, "conditions": conditions,
                              "containerStatuses": [{"name": "main", "state": state}] if state else []}  # fmt: skip
    if status_reason:
        status["reason"] = status_reason
        status["message"] = "The node was low on resource: memory."
    return {
        "metadata": {"name": name, "creationTimestamp": at(created),
                     "labels": {"flowops.io/task": "load"},
                     "ownerReferences": [{"kind": "Job", "name": job, "uid": uid, "controller": True}]},
        "status": status,
    }  # fmt: skip


def test_a_failed_attempt_then_its_successful_retry() -> None:
    pods = [
        pod(
            "r-load-a",
            6,
            scheduled=6,
            started=8,
            finished=10,
            phase="Failed",
            reason="Error",
            exit_code=1,
        ),
        pod("r-load-b", 20, scheduled=21, started=22, finished=30),
    ]
    got = attempts(pods, ready_at=T0 + timedelta(seconds=2), job=JOB, now=NOW)
    assert [a["outcome"] for a in got] == ["Failed", "Succeeded"]
    assert (got[0]["reason"], got[0]["exitCode"]) == ("Error", 1)
    assert got[0]["segments"] == [
        {"kind": "waiting", "start": at(2), "end": at(6)},  # ready -> the Job's first pod
        {"kind": "unscheduled", "start": at(6), "end": at(6)},
        {"kind": "starting", "start": at(6), "end": at(8), "reason": "ContainerCreating"},
        {"kind": "running", "start": at(8), "end": at(10)},
    ]
    assert got[1]["segments"] == [
        {"kind": "backoff", "start": at(10), "end": at(20)},  # the Job's retry delay
        {"kind": "unscheduled", "start": at(20), "end": at(21)},
        {"kind": "starting", "start": at(21), "end": at(22), "reason": "ContainerCreating"},
        {"kind": "running", "start": at(22), "end": at(30)},
    ]
    assert (got[1]["attempt"], got[1]["pod"], got[1]["start"], got[1]["end"]) == (
        2,
        "r-load-b",
        at(22),
        at(30),
    )


def test_oomkilled_and_evicted_are_marked() -> None:
    oom = pod(
        "p1",
        6,
        scheduled=6,
        started=7,
        finished=9,
        phase="Failed",
        reason="OOMKilled",
        exit_code=137,
    )
    assert outcome(oom) == ("OOMKilled", "OOMKilled", 137)
    evicted = pod("p2", 6, scheduled=6, started=7, phase="Failed", status_reason="Evicted")
    got = attempts([evicted], ready_at=None, job=JOB, now=NOW)[0]
    assert got["outcome"] == "Evicted" and got["message"].startswith("The node was low")
    # no finishedAt and no Ready condition: it ended, at the latest, when it is known to have started
    assert got["segments"][-1] == {"kind": "running", "start": at(7), "end": at(7)}


def test_a_pod_the_scheduler_rejects_says_why_while_it_waits() -> None:
    waiting = pod(
        "p", 6, phase="Pending", unschedulable="0/2 nodes are available: 2 Insufficient memory."
    )
    got = attempts([waiting], ready_at=T0, job=JOB, now=NOW)[0]
    assert got["outcome"] == "Pending"
    assert got["segments"][-1] == {
        "kind": "unscheduled", "start": at(6), "end": at(600), "reason": "Unschedulable",
        "message": "0/2 nodes are available: 2 Insufficient memory.",
    }  # fmt: skip


def test_a_container_being_created_and_a_pod_without_podscheduled() -> None:
    creating = pod("p", 6, scheduled=7, phase="Pending", waiting="ImagePullBackOff")
    seg = attempts([creating], ready_at=None, job=JOB, now=NOW)[0]["segments"]
    assert seg[-1] == {
        "kind": "starting",
        "start": at(7),
        "end": at(600),
        "reason": "ImagePullBackOff",
    }
    bare = pod("q", 6, started=9, phase="Running")
    seg = attempts([bare], ready_at=None, job=JOB, now=NOW)[0]["segments"]
    assert [s["kind"] for s in seg] == ["pending", "running"]
    assert seg[0] == {
        "kind": "pending",
        "start": at(6),
        "end": at(9),
        "reason": "ContainerCreating",
    }
    assert seg[1] == {"kind": "running", "start": at(9), "end": at(600)}


def test_only_the_jobs_own_pods_oldest_first() -> None:
    mine_b = pod("b", 20)
    mine_a = pod("a", 6)
    other_uid = pod("c", 7, uid="someone-else")
    other_job = pod("d", 8, job="r-other")
    assert [
        p["metadata"]["name"]
        for p in task_pods([mine_b, other_uid, mine_a, other_job], [JOB], "load", "r-load")
    ] == ["a", "b"]
    assert task_pods([mine_a], [], "load", "r-load") == []


def test_ready_time_is_the_last_dependency_end() -> None:
    tasks = {"a": {"endTime": at(10)}, "b": {"endTime": at(14)}, "c": {}}
    assert ready_time({"dependsOn": ["a", "b"]}, tasks, T0) == T0 + timedelta(seconds=14)
    assert ready_time({}, tasks, T0) == T0
    assert ready_time({"dependsOn": ["a", "c"]}, tasks, T0) is None  # c has not ended


class Children:
    def __init__(self, pods: list[dict[str, Any]], jobs: list[dict[str, Any]]) -> None:
        self.pods = {("ns", "r"): pods}
        self.jobs = {("ns", "r"): jobs}


async def test_the_run_detail_carries_the_attempts_of_a_live_run() -> None:
    body = {
        "metadata": {"name": "r", "namespace": "ns", "uid": "u", "creationTimestamp": at(0)},
        "spec": {"flowName": "f", "version": "1",
                 "tasks": [{"name": "extract"}, {"name": "load", "dependsOn": ["extract"], "retries": 1}]},
        "status": {"phase": "Completed", "startTime": at(0), "tasks": [
            {"name": "extract", "status": "Succeeded", "endTime": at(4)},
            {"name": "load", "status": "Succeeded", "jobName": "r-load", "attempts": 2,
             "startTime": at(5), "endTime": at(30)}]},
    }  # fmt: skip
    pods = [pod("r-load-a", 6, scheduled=6, started=8, finished=10, phase="Failed", reason="Error", exit_code=1),
            pod("r-load-b", 20, scheduled=21, started=22, finished=30)]  # fmt: skip
    assert set(run_attempts(body, pods, [JOB], NOW)) == {"load"}
    backend = IndexedFlowRuns({("ns", "r"): [body]}, kube=None, children=Children(pods, [JOB]),  # type: ignore[arg-type]
                              clock=lambda: NOW)  # fmt: skip
    detail = await backend.detail("ns", "r")
    assert detail is not None
    extract, load = detail["tasks"]
    assert "attemptDetail" not in extract  # no Job in view
    assert [a["outcome"] for a in load["attemptDetail"]] == ["Failed", "Succeeded"]
    assert load["attemptDetail"][0]["segments"][0] == {
        "kind": "waiting",
        "start": at(4),
        "end": at(6),
    }
    validate("/api/v1/flowruns/{namespace}/{name}", "get", 200, detail)
