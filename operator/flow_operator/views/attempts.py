"""Where a task's time went, per attempt: the run page's timeline bars (docs/dashboard.md).

An attempt is one pod of the task's Job. From what the operator watches (the Job and its
pods, slimmed by objects/slim.py) each attempt gets its segments, in order:

- `waiting`: the task could start (its dependencies had succeeded, or the run was
  Deployed) but its Job had not made its first pod yet: the operator creating the Job,
  then the Job controller creating the pod (first attempt only);
- `backoff`: the previous attempt had ended and the Job had not made the next pod yet;
- `unscheduled`: the pod existed but no node was chosen (PodScheduled not True). While it
  lasts, its reason is the scheduler's (Unschedulable, with the message); once scheduled,
  only its length is known;
- `starting`: scheduled, the container not started yet (ContainerCreating: image pull,
  volumes; or the kubelet's waiting reason while it lasts, such as ImagePullBackOff). With
  no PodScheduled condition, `unscheduled` and `starting` are one `pending` segment;
- `running`: from the container's start to its end (or now).

Each attempt ends with an outcome: Succeeded, Failed (Error, an exit code), OOMKilled,
Evicted, or still Pending/Running. The times are the pod's own (creation, conditions'
transitions, the container's startedAt/finishedAt). The run store does not keep them: once
the pods are gone (the run deleted after its TTL), only the task's start and end and its
number of attempts are known, and the page says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from flow_operator.objects.ownership import made_by_job
from flow_operator.objects.times import parse_aware, rfc3339

Body = Mapping[str, Any]


def _meta(body: Body) -> Mapping[str, Any]:
    return body.get("metadata") or {}


def _condition(pod: Body, type_: str) -> Mapping[str, Any] | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return None


def _container(pod: Body) -> Mapping[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return statuses[0] if statuses else {}


def _stamp(t: datetime | None) -> str | None:
    return rfc3339(t) if t is not None else None


def _segment(
    kind: str,
    start: datetime | None,
    end: datetime | None,
    reason: str | None = None,
    message: str | None = None,
) -> dict[str, Any] | None:
    if start is None or end is None or end < start:
        return None
    out: dict[str, Any] = {"kind": kind, "start": _stamp(start), "end": _stamp(end)}
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


def outcome(pod: Body) -> tuple[str, str | None, int | None]:
    """(Succeeded | Failed | OOMKilled | Evicted | Running | Pending, reason, exit code)."""
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    state = _container(pod).get("state") or {}
    term = state.get("terminated") or (_container(pod).get("lastState") or {}).get("terminated")
    if status.get("reason") == "Evicted":
        return "Evicted", "Evicted", None
    if term and phase in ("Failed", "Succeeded"):
        code = term.get("exitCode")
        if term.get("reason") == "OOMKilled":
            return "OOMKilled", "OOMKilled", code
        if phase == "Succeeded":
            return "Succeeded", term.get("reason"), code
        return "Failed", term.get("reason") or "Error", code
    if phase == "Failed":
        return "Failed", status.get("reason"), None
    if phase == "Succeeded":
        return "Succeeded", None, None
    return ("Running", None, None) if state.get("running") else ("Pending", None, None)


def _attempt(pod: Body, index: int, since: datetime | None, first: bool,
             now: datetime, job_created: datetime | None) -> dict[str, Any]:  # fmt: skip
    meta, status = _meta(pod), pod.get("status") or {}
    created = parse_aware(meta.get("creationTimestamp"))
    container = _container(pod)
    state = container.get("state") or {}
    term = state.get("terminated") or (container.get("lastState") or {}).get("terminated") or {}
    running = state.get("running") or {}
    started = parse_aware(running.get("startedAt")) or parse_aware(term.get("startedAt"))
    finished = parse_aware(term.get("finishedAt"))
    result, reason, code = outcome(pod)
    if finished is None and result in ("Evicted", "Failed", "Succeeded"):
        ready = _condition(pod, "Ready") or {}
        finished = parse_aware(ready.get("lastTransitionTime")) or started or created
    scheduled_cond = _condition(pod, "PodScheduled")
    scheduled = None
    if scheduled_cond is not None and scheduled_cond.get("status") == "True":
        scheduled = parse_aware(scheduled_cond.get("lastTransitionTime"))
    waiting = state.get("waiting") or {}
    pending_end = started or finished or now
    segments: list[dict[str, Any] | None] = []
    if first:  # until its Job exists and has made the pod
        segments.append(_segment("waiting", since, created or job_created))
    else:
        segments.append(_segment("backoff", since, created))
    if scheduled_cond is None:
        segments.append(_segment("pending", created, pending_end, waiting.get("reason")
                                 or ("ContainerCreating" if started or result == "Pending"
                                     else None), waiting.get("message")))  # fmt: skip
    elif scheduled is None:  # not scheduled yet (or never, before it ended)
        segments.append(_segment("unscheduled", created, pending_end,
                                 scheduled_cond.get("reason") or "Unschedulable",
                                 scheduled_cond.get("message")))  # fmt: skip
    else:
        segments.append(_segment("unscheduled", created, scheduled))
        segments.append(_segment("starting", scheduled, pending_end,
                                 waiting.get("reason") or "ContainerCreating",
                                 waiting.get("message")))  # fmt: skip
    if started is not None:
        segments.append(_segment("running", started, finished or now))
    end = finished or now
    out: dict[str, Any] = {
        "attempt": index,
        "pod": meta.get("name"),
        "outcome": result,
        "created": _stamp(created),
        "start": _stamp(started),
        "end": _stamp(finished),
        "segments": [s for s in segments if s is not None],
    }
    if reason:
        out["reason"] = reason
    if code is not None:
        out["exitCode"] = code
    if status.get("message"):
        out["message"] = status["message"]
    out["_end"] = end
    return out


def task_pods(pods: Iterable[Body], jobs: Iterable[Body], task: str, job: str | None) -> list[Body]:
    """The pods the task's Job made (owner by name and uid, as objects/ownership.py
    trusts them), oldest first."""
    theirs = next((j for j in jobs if _meta(j).get("name") == job), None) if job else None
    if theirs is None:
        return []
    mine = [p for p in pods if made_by_job(p, theirs)]
    return sorted(mine, key=lambda p: (str(_meta(p).get("creationTimestamp") or ""),
                                       str(_meta(p).get("name"))))  # fmt: skip


def attempts(
    pods: Iterable[Body],
    *,
    ready_at: datetime | None,
    job: Body | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """Each pod (oldest first) as an attempt with its segments; `ready_at` is when the
    task could start, `job` its Job (its creation ends the first wait)."""
    job_created = parse_aware(_meta(job).get("creationTimestamp")) if job is not None else None
    out: list[dict[str, Any]] = []
    since = ready_at
    for i, pod in enumerate(pods, start=1):
        a = _attempt(pod, i, since, i == 1, now, job_created)
        since = a.pop("_end")
        out.append(a)
    return out


def ready_time(task: Mapping[str, Any], tasks: Mapping[str, Mapping[str, Any]],
               run_start: datetime | None) -> datetime | None:  # fmt: skip
    """When a task could start: its last dependency's end, or the run's start."""
    ends = [parse_aware(tasks.get(d, {}).get("endTime")) for d in task.get("dependsOn") or []]
    known = [e for e in ends if e is not None]
    if task.get("dependsOn") and len(known) < len(task.get("dependsOn") or []):
        return None
    return max(known) if known else run_start


def run_attempts(
    body: Body, pods: Iterable[Body], jobs: Iterable[Body], now: datetime
) -> dict[str, list[dict[str, Any]]]:
    """Per task of a live FlowRun with a Job in view: its attempts (tasks without: none)."""
    spec, status = body.get("spec") or {}, body.get("status") or {}
    lines = {str(t.get("name")): t for t in status.get("tasks") or []}
    specs = {str(t.get("name")): t for t in spec.get("tasks") or []}
    timed = {n: {"endTime": line.get("endTime")} for n, line in lines.items()}
    run_start = parse_aware(status.get("startTime"))
    pods, jobs = list(pods), list(jobs)
    out: dict[str, list[dict[str, Any]]] = {}
    for name, line in lines.items():
        job_name = line.get("jobName")
        job = next((j for j in jobs if _meta(j).get("name") == job_name), None)
        if job is None:
            continue
        ready = ready_time(specs.get(name, {}), timed, run_start)
        out[name] = attempts(
            task_pods(pods, jobs, name, job_name), ready_at=ready, job=job, now=now
        )
    return out
