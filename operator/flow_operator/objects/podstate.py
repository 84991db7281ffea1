"""One pod's line in `replicasDetail`: the STATUS column of `kubectl get pods`, and more.

`pod_status` follows kubectl's printer (pkg/printers/internalversion `printPod`) so a user
sees the word they would see in kubectl, with one addition from the reference document:
a pending pod the scheduler rejected reads `Unschedulable`, and the scheduler's message
("0/2 nodes are available: 1 Insufficient memory ...") becomes `statusMessage`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flow_operator.models.workflow import ReplicaDetail
from flow_operator.objects.body import Body
from flow_operator.objects.durations import since
from flow_operator.objects.times import parse_time

# The API server's words refusing a pod by the namespace's pod-security.kubernetes.io/enforce
# level ('pods "x" is forbidden: violates PodSecurity "restricted:latest": ...'), as the Job
# and ReplicaSet controllers record them (a FailedCreate event, a ReplicaFailure condition).
POD_SECURITY = "violates PodSecurity"


def condition(obj: Body, type_: str) -> Body | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def _terminated_word(term: Body, prefix: str = "") -> str:
    if term.get("reason"):
        return prefix + str(term["reason"])
    if term.get("signal"):
        return f"{prefix}Signal:{term['signal']}"
    return f"{prefix}ExitCode:{term.get('exitCode', 0)}"


def pod_status(pod: Body) -> tuple[str, str | None]:
    """(STATUS word, message or None) for a pod, as kubectl would print it."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    phase = status.get("phase") or "Pending"
    reason: str = status.get("reason") or phase
    message: str | None = status.get("message") or None

    scheduled = condition(pod, "PodScheduled")
    if scheduled and scheduled.get("reason") == "SchedulingGated":
        reason = "SchedulingGated"

    initializing = False
    init_total = len(spec.get("initContainers") or [])
    for i, c in enumerate(status.get("initContainerStatuses") or []):
        state = c.get("state") or {}
        term, wait = state.get("terminated"), state.get("waiting")
        if term and term.get("exitCode", 0) == 0:
            continue
        initializing = True
        if term:
            reason, message = _terminated_word(term, "Init:"), term.get("message") or message
        elif wait and wait.get("reason") and wait["reason"] != "PodInitializing":
            reason, message = "Init:" + wait["reason"], wait.get("message") or message
        else:
            reason = f"Init:{i}/{init_total}"
        break

    initialized = condition(pod, "Initialized")
    if not initializing or (initialized and initialized.get("status") == "True"):
        has_running = False
        for c in reversed(status.get("containerStatuses") or []):
            state = c.get("state") or {}
            term, wait = state.get("terminated"), state.get("waiting")
            if wait and wait.get("reason"):
                reason, message = wait["reason"], wait.get("message") or message
            elif term:
                reason, message = _terminated_word(term), term.get("message") or message
            elif c.get("ready") and state.get("running") is not None:
                has_running = True
        if reason == "Completed" and has_running:
            ready = condition(pod, "Ready")
            reason = "Running" if ready and ready.get("status") == "True" else "NotReady"

    if meta.get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"
    elif reason == "Pending" and scheduled and scheduled.get("status") == "False":
        # The reference document's addition: say why the scheduler keeps it pending.
        reason = scheduled.get("reason") or "Unschedulable"
        message = scheduled.get("message") or message
    return reason, message


def is_ready(pod: Body) -> bool:
    ready = condition(pod, "Ready")
    return bool(ready and ready.get("status") == "True")


def is_available(pod: Body, min_ready_seconds: int, now: datetime) -> bool:
    """Ready for at least minReadySeconds: the Deployment controller's definition."""
    ready = condition(pod, "Ready")
    if not ready or ready.get("status") != "True":
        return False
    if min_ready_seconds <= 0:
        return True
    since_ready = parse_time(ready.get("lastTransitionTime"))
    return since_ready is not None and since_ready + timedelta(seconds=min_ready_seconds) <= now


def replica_detail(
    pod: Body, latest_hash: str | None, min_ready_seconds: int, now: datetime
) -> ReplicaDetail:
    meta = pod.get("metadata") or {}
    word, message = pod_status(pod)
    created = parse_time(meta.get("creationTimestamp"))
    pod_hash = (meta.get("labels") or {}).get("pod-template-hash")
    return ReplicaDetail(
        name=meta.get("name", ""),
        ready=is_ready(pod),
        available=is_available(pod, min_ready_seconds, now),
        startedAt=(pod.get("status") or {}).get("startTime"),
        age=since(created, now) if created else "0s",
        status=word,
        statusMessage=message,
        atLatestSpec=latest_hash is not None and pod_hash == latest_hash,
    )
