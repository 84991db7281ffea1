"""What a task's Job and pods (or its child run) say about it: the task's status line.

For a Job, the first rule that holds:

1. the Job is Complete: Succeeded;
2. a capacity signal: Crashed. A container OOMKilled, the pod evicted, the pod
   unschedulable for longer than the grace period, or the Job controller refused the pod
   by a quota (its FailedCreate event) for that long. No retry is spent waiting on these:
   the next pod would hit the same wall. A pod Pod Security refuses (the namespace's
   enforce level) for that long Fails the task instead (reason PodSecurity): the spec's
   securityContexts are the fix, not capacity;
3. the Job Failed (its retries spent, or its timeout passed), or its pod cannot start its
   container (image pull, bad config) past the grace period: Failed, with the exit code
   of the last attempt and the last lines of its log;
4. otherwise Running; the message is kubectl's word for a pod that isn't running yet.

A grace period not yet over comes back as the time it ends (`wake`), for a requeue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flow_operator.models.flowrun import TaskBase, TaskPhase, TaskStatus
from flow_operator.objects.body import Body, meta
from flow_operator.objects.durations import go_duration, since
from flow_operator.objects.podstate import POD_SECURITY, condition, pod_status
from flow_operator.objects.times import parse_time, rfc3339

# The lines of a failed pod's log a task's message carries: the reconciler fetches this
# many (tailLines) and the message keeps the non-blank ones (docs/flowrun.md).
LOG_LINES = 5
STUCK_WAITING = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)
# The Job controller sets SuccessCriteriaMet and FailureTarget first, while pods terminate.
SUCCEEDED_CONDITIONS = ("Complete", "SuccessCriteriaMet")
FAILED_CONDITIONS = ("Failed", "FailureTarget")


@dataclass(frozen=True)
class Reading:
    status: TaskStatus
    wake: datetime | None = None  # when a grace period ends and the reading may change


@dataclass(frozen=True)
class _Signal:
    reason: str
    message: str
    # Crashed for capacity; a policy refusing the pod (Pod Security) is the spec's fault.
    phase: TaskPhase = TaskPhase.CRASHED


def _first_true(obj: Body, types: Sequence[str]) -> Body | None:
    for type_ in types:
        cond = condition(obj, type_)
        if cond and cond.get("status") == "True":
            return cond
    return None


def job_ended(job: Body) -> bool:
    """The Job succeeded or failed for good (its pods may still be terminating)."""
    return _first_true(job, SUCCEEDED_CONDITIONS + FAILED_CONDITIONS) is not None


def finished(status: TaskStatus, phase: TaskPhase, end: str | None, **changes: Any) -> TaskStatus:
    """`status` ended in `phase` at `end`, with its runtime."""
    start, stop = parse_time(status.start_time), parse_time(end)
    runtime = since(start, stop) if start and stop else None
    return status.model_copy(
        update={"status": phase, "end_time": end, "runtime": runtime, **changes}
    )


def _containers(pod: Body) -> list[Body]:
    return list((pod.get("status") or {}).get("containerStatuses") or [])


def _terminations(pod: Body) -> list[Body]:
    out = []
    for c in _containers(pod):
        for key in ("state", "lastState"):
            term = (c.get(key) or {}).get("terminated")
            if term:
                out.append(term)
    return out


def _exit(pods: Sequence[Body]) -> str | None:
    """The newest non-zero exit: `exit code 2 (Error)`."""
    for pod in reversed(pods):
        for term in _terminations(pod):
            if term.get("exitCode", 0) != 0:
                return f"exit code {term['exitCode']} ({term.get('reason') or 'Error'})"
    return None


def _past(start: datetime | None, grace: timedelta, now: datetime) -> tuple[bool, datetime | None]:
    """(over, wake): is `start + grace` past, and if not, when it will be."""
    if start is None:
        return False, None
    end = start + grace
    return (True, None) if end <= now else (False, end)


def _capacity(
    task: TaskBase,
    job: Body,
    pods: Sequence[Body],
    events: Sequence[Body],
    now: datetime,
    grace: timedelta,
) -> tuple[_Signal | None, datetime | None]:
    wakes: list[datetime] = []
    for pod in pods:
        if any(t.get("reason") == "OOMKilled" for t in _terminations(pod)):
            limits = (task.resources.limits or {}) if task.resources else {}
            limit = f" of {limits['memory']}" if "memory" in limits else ""
            return _Signal("OOMKilled", f"OOMKilled: a container exceeded its memory{limit}"), None
        status = pod.get("status") or {}
        if status.get("reason") == "Evicted":
            return _Signal("Evicted", f"evicted: {status.get('message') or 'by the kubelet'}"), None
        scheduled = condition(pod, "PodScheduled")
        if (
            not meta(pod).get("deletionTimestamp")
            and scheduled
            and scheduled.get("status") == "False"
            and scheduled.get("reason") == "Unschedulable"
        ):
            start = parse_time(scheduled.get("lastTransitionTime")) or parse_time(
                meta(pod).get("creationTimestamp")
            )
            over, wake = _past(start, grace, now)
            if over:
                return _Signal(
                    "Unschedulable",
                    f"unschedulable for more than {go_duration(grace.total_seconds())}: "
                    f"{scheduled.get('message') or 'no node fits'}",
                ), None
            wakes += [wake] if wake else []
    if not (job.get("status") or {}).get("active"):
        for event in events:
            if event.get("reason") != "FailedCreate":
                continue
            first = event.get("eventTime") or event.get("firstTimestamp")
            over, wake = _past(
                parse_time(first or meta(event).get("creationTimestamp")), grace, now
            )
            message = str(event.get("message") or "")
            if over:
                if POD_SECURITY in message:
                    return _Signal(
                        "PodSecurity", f"pod refused by Pod Security: {message}", TaskPhase.FAILED
                    ), None
                quota = "exceeded quota" in message
                reason = "QuotaExceeded" if quota else "FailedCreate"
                return _Signal(reason, f"pod refused: {message}"), None
            wakes += [wake] if wake else []
    return None, min(wakes, default=None)


def _stuck(
    pods: Sequence[Body], now: datetime, grace: timedelta
) -> tuple[_Signal | None, datetime | None]:
    """A container that cannot start (image, config) for longer than the grace period."""
    wakes: list[datetime] = []
    for pod in pods:
        for c in _containers(pod):
            waiting = (c.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") not in STUCK_WAITING:
                continue
            start = (pod.get("status") or {}).get("startTime") or meta(pod).get("creationTimestamp")
            over, wake = _past(parse_time(start), grace, now)
            if over:
                detail = f": {waiting['message']}" if waiting.get("message") else ""
                return _Signal(waiting["reason"], f"{waiting['reason']}{detail}"), None
            wakes += [wake] if wake else []
    return None, min(wakes, default=None)


def _with_log(message: str, log: str | None) -> str:
    lines = [line for line in (log or "").splitlines() if line.strip()][-LOG_LINES:]
    return "\n".join([message, *lines])


def job_reading(
    task: TaskBase,
    job: Body,
    pods: Sequence[Body],
    events: Sequence[Body],
    log: str | None,
    now: datetime,
    grace: timedelta,
) -> Reading:
    """The task's line from its Job, the Job's pods and the Job's warning events."""
    pods = sorted(
        pods, key=lambda p: (meta(p).get("creationTimestamp") or "", meta(p).get("name", ""))
    )
    counts = job.get("status") or {}
    # The Job's counters lag its conditions (a Job can be Complete with succeeded still 0
    # for a moment): every pod seen is an attempt too.
    attempts = max(
        sum(int(counts.get(k) or 0) for k in ("active", "succeeded", "failed")), len(pods)
    )
    status = TaskStatus(
        name=task.name,
        version=task.version,
        status=TaskPhase.RUNNING,
        start_time=counts.get("startTime"),
        job_name=meta(job).get("name"),
        pod_name=meta(pods[-1]).get("name") if pods else None,
        attempts=attempts,
    )
    complete = _first_true(job, SUCCEEDED_CONDITIONS)
    if complete:
        end = counts.get("completionTime") or complete.get("lastTransitionTime")
        return Reading(finished(status, TaskPhase.SUCCEEDED, end))
    end_now = rfc3339(now)
    crash, wake = _capacity(task, job, pods, events, now, grace)
    if crash:
        return Reading(
            finished(status, crash.phase, end_now, reason=crash.reason, message=crash.message)
        )
    failed = _first_true(job, FAILED_CONDITIONS)
    if failed:
        reason = failed.get("reason") or "Failed"
        message = _with_log(_failure(task, reason, failed, pods, attempts), log)
        end = failed.get("lastTransitionTime") or end_now
        return Reading(finished(status, TaskPhase.FAILED, end, reason=reason, message=message))
    stuck, stuck_wake = _stuck(pods, now, grace)
    if stuck:
        return Reading(
            finished(status, TaskPhase.FAILED, end_now, reason=stuck.reason, message=stuck.message)
        )
    wakes = [w for w in (wake, stuck_wake) if w]
    return Reading(status.model_copy(update={"message": _word(pods)}), min(wakes, default=None))


def _failure(task: TaskBase, reason: str, failed: Body, pods: Sequence[Body], attempts: int) -> str:
    if reason == "DeadlineExceeded" and task.timeout_seconds:
        return f"timed out after {task.timeout_seconds}s"
    message = _exit(pods) or failed.get("message") or reason
    return f"{message} after {attempts} attempts" if attempts > 1 else str(message)


def _word(pods: Sequence[Body]) -> str | None:
    """kubectl's word for the newest pod, unless it is simply Running."""
    if not pods:
        return None
    word, detail = pod_status(pods[-1])
    if word == "Running":
        return None
    return f"{word}: {detail}" if detail else word


CHILD_PHASES = {
    "Completed": TaskPhase.SUCCEEDED,
    "Crashed": TaskPhase.CRASHED,
    "Failed": TaskPhase.FAILED,
    "Cancelled": TaskPhase.FAILED,
}


def child_reading(task: TaskBase, child: Body) -> Reading:
    """The task's line from the child run it follows: done when the child is."""
    status = child.get("status") or {}
    phase = status.get("phase") or "Submitted"
    line = TaskStatus(
        name=task.name,
        version=task.version,
        status=CHILD_PHASES.get(phase, TaskPhase.RUNNING),
        start_time=status.get("startTime"),
        end_time=status.get("endTime"),
        runtime=status.get("duration"),
        child_run=meta(child).get("name"),
        attempts=1,
        message=f"sub-flow {phase}" + (f": {status['message']}" if status.get("message") else ""),
    )
    if line.status in (TaskPhase.FAILED, TaskPhase.CRASHED):
        line.reason = status.get("reason") or phase
    return Reading(line)


def refused_reading(task: TaskBase, error: str, now: datetime) -> Reading:
    """The API server refused to create the task's Job or child run."""
    quota = "exceeded quota" in error
    return Reading(
        TaskStatus(
            name=task.name,
            version=task.version,
            status=TaskPhase.CRASHED if quota else TaskPhase.FAILED,
            reason="QuotaExceeded" if quota else "CreateRefused",
            message=error,
            end_time=rfc3339(now),
        )
    )


# --- significance: which changes of a Job or pod can change a task's line --------------
def job_significance(job: Body) -> Any:
    """What of a Job a task's line is read from (job_reading): a change of anything else
    (its `ready` and `terminating` counts, uncountedTerminatedPods, its resourceVersion)
    changes no decision and no status, so it needs no reconcile."""
    status = job.get("status") or {}
    conditions = [
        (c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
        for c in status.get("conditions") or []
    ]
    m = meta(job)
    return (
        m.get("uid"),
        m.get("deletionTimestamp"),
        *(status.get(k) for k in ("active", "succeeded", "failed", "startTime", "completionTime")),
        conditions,
    )


def pod_significance(pod: Body) -> Any:
    """What of a pod a task's line is read from: kubectl's word for it (the line's
    message), its phase, start and deletion, whether it is scheduled, and its containers'
    terminations and waits (OOMKilled, exit codes, a container that cannot start)."""
    m, status = meta(pod), pod.get("status") or {}
    scheduled = condition(pod, "PodScheduled") or {}
    containers = [
        (
            c.get("name"),
            c.get("restartCount"),
            ((c.get("state") or {}).get("waiting") or {}).get("reason"),
            *(
                ((c.get(k) or {}).get("terminated") or {}).get(f)
                for k in ("state", "lastState")
                for f in ("reason", "exitCode")
            ),
        )
        for c in _containers(pod)
    ]
    return (
        m.get("uid"),
        m.get("deletionTimestamp"),
        pod_status(pod),
        status.get("phase"),
        status.get("reason"),
        status.get("startTime"),
        tuple(scheduled.get(k) for k in ("status", "reason", "message", "lastTransitionTime")),
        containers,
    )
