"""Builders of realistic Kubernetes objects (as the API returns them) for unit tests."""

from __future__ import annotations

from typing import Any

Body = dict[str, Any]
T0 = "2024-02-12T10:12:57Z"


def workflow(
    name: str = "wf",
    *,
    desired: str = "PUBLISHED",
    mode: str = "ASYNC",
    services: list[tuple[str, int]] | None = None,
    stream: tuple[str, int] | None = None,
    generation: int = 1,
    status: Body | None = None,
) -> Body:
    spec: Body = {
        "desiredStatus": desired,
        "publishingMode": mode,
        "services": [
            {"id": sid, "image": f"registry.local/{sid}:1", "replicas": n}
            for sid, n in (services or [("svc", 1)])
        ],
    }
    if stream:
        spec["stream"] = {"id": stream[0], "image": "benthos:4", "replicas": stream[1]}
    body: Body = {
        "apiVersion": "flowops.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name, "namespace": "ns", "uid": "wf-uid", "generation": generation},
        "spec": spec,
    }
    if status is not None:
        body["status"] = status
    return body


def deployment(
    cid: str,
    *,
    replicas: int = 1,
    updated: int | None = None,
    available: int = 0,
    total: int | None = None,
    generation: int = 1,
    observed: int | None = None,
    deadline_exceeded: bool = False,
) -> Body:
    updated = replicas if updated is None else updated
    progressing = {
        "type": "Progressing",
        "status": "False" if deadline_exceeded else "True",
        "reason": "ProgressDeadlineExceeded" if deadline_exceeded else "ReplicaSetUpdated",
    }
    return {
        "metadata": {
            "name": f"depl-{cid}",
            "generation": generation,
            "labels": {"flowops.io/component": cid},
        },
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": generation if observed is None else observed,
            "replicas": updated if total is None else total,
            "updatedReplicas": updated,
            "readyReplicas": available,
            "availableReplicas": available,
            "conditions": [progressing],
        },
    }


def replicaset(cid: str, pod_hash: str, revision: int = 1) -> Body:
    return {
        "metadata": {
            "name": f"depl-{cid}-{pod_hash}",
            "labels": {"flowops.io/component": cid, "pod-template-hash": pod_hash},
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
        }
    }


def pod(
    name: str,
    cid: str,
    pod_hash: str,
    *,
    phase: str = "Pending",
    created: str = T0,
    started: str | None = None,
    scheduled: tuple[str, str, str] | None = None,  # (status, reason, message)
    waiting: tuple[str, str] | None = None,  # (reason, message)
    terminated: tuple[str, int] | None = None,  # (reason, exit code)
    running: bool = False,
    ready: bool = False,
    deleting: bool = False,
    restarts: int = 0,
) -> Body:
    conditions: list[Body] = []
    if scheduled:
        conditions.append(
            {
                "type": "PodScheduled",
                "status": scheduled[0],
                "reason": scheduled[1],
                "message": scheduled[2],
            }
        )
    else:
        conditions.append({"type": "PodScheduled", "status": "True"})
    conditions.append(
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": created}
    )
    state: Body = {}
    if waiting:
        state = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
    elif terminated:
        state = {"terminated": {"reason": terminated[0], "exitCode": terminated[1]}}
    elif running:
        state = {"running": {"startedAt": started or created}}
    status: Body = {"phase": phase, "conditions": conditions}
    if started:
        status["startTime"] = started
    if state:
        status["containerStatuses"] = [
            {"name": "main", "ready": ready, "restartCount": restarts, "state": state}
        ]
    meta: Body = {
        "name": name,
        "creationTimestamp": created,
        "labels": {"flowops.io/component": cid, "pod-template-hash": pod_hash},
    }
    if deleting:
        meta["deletionTimestamp"] = created
    return {"metadata": meta, "spec": {"containers": [{"name": "main"}]}, "status": status}
