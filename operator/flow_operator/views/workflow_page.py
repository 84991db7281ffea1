"""What the dashboard's Workflow page shows beyond the card: each service's rollout as its
Deployment counts it, the Workflow's pods as `kubectl get pods` would list them (with the
scheduler's reason and message), and the live runs that use the Workflow.

Pure functions of the bodies the operator's watches hold (the slim Deployments and pods of
the Workflow's label, the FlowRun index); the HTTP API serves them (api/server.py,
`/api/v1/workflows/{namespace}/{name}/pods` and `/runs`), ages are Go durations as of `now`
(the page shows them kubectl-style, age.js).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from flow_operator.builders.naming import COMPONENT_LABEL
from flow_operator.objects.body import Body
from flow_operator.objects.durations import since
from flow_operator.objects.podstate import condition, pod_status
from flow_operator.objects.times import parse_time
from flow_operator.views.runs import row_of, run_key


class Row(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class RolloutRow(Row):
    """One service's rollout: the Deployment's replica counts, and why pods are refused."""

    id: str
    desired: int  # the spec's replicas (the Deployment's spec.replicas once it exists)
    updated: int  # pods at the Deployment's latest template
    ready: int
    available: int  # ready for minReadySeconds
    rolloutStatus: str | None = None
    rolloutStatusReason: str | None = None
    message: str | None = None  # the service's message (the Deployment's ReplicaFailure)


class PodRow(Row):
    """One pod as `kubectl get pods -o wide` lists it, with what keeps it pending."""

    name: str
    service: str | None  # the component label: the service (or stream) it belongs to
    status: str  # kubectl's STATUS word; Unschedulable when the scheduler refused it
    message: str | None  # the scheduler's (or the kubelet's) message
    ready: str  # "1/1": ready containers / containers
    restarts: int
    node: str | None
    created: str | None
    age: str  # a Go duration as of now
    scheduled: str | None  # the PodScheduled condition: True, or its reason when not


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def rollout_rows(
    services: Iterable[Mapping[str, Any]], deployments: Iterable[Body]
) -> list[RolloutRow]:
    """Each service of the status (`details.services`, dumped), in spec order, with the
    counts of its Deployment (by the component label); none yet: all zero."""
    by_id: dict[str, Body] = {}
    for dep in deployments:
        labels = (dep.get("metadata") or {}).get("labels") or {}
        if labels.get(COMPONENT_LABEL):
            by_id[str(labels[COMPONENT_LABEL])] = dep
    rows = []
    for svc in services:
        sid = str(svc.get("id") or "")
        dep = by_id.get(sid) or {}
        status = dep.get("status") or {}
        spec = dep.get("spec") or {}
        desired = spec.get("replicas")
        rows.append(
            RolloutRow(
                id=sid,
                desired=_int(desired) if desired is not None else _int(svc.get("desired")),
                updated=_int(status.get("updatedReplicas")),
                ready=_int(status.get("readyReplicas")),
                available=_int(status.get("availableReplicas")),
                rolloutStatus=svc.get("rolloutStatus"),
                rolloutStatusReason=svc.get("rolloutStatusReason"),
                message=svc.get("message"),
            )
        )
    return rows


def pod_row(pod: Body, now: datetime) -> PodRow:
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    word, message = pod_status(pod)
    containers = status.get("containerStatuses") or []
    total = len(spec.get("containers") or []) or len(containers)
    ready = sum(1 for c in containers if c.get("ready"))
    created = parse_time(meta.get("creationTimestamp"))
    scheduled = condition(pod, "PodScheduled")
    if scheduled is None:
        placed = None
    elif scheduled.get("status") == "True":
        placed = "True"
    else:
        placed = str(scheduled.get("reason") or "False")
    return PodRow(
        name=str(meta.get("name") or ""),
        service=(meta.get("labels") or {}).get(COMPONENT_LABEL),
        status=word,
        message=message,
        ready=f"{ready}/{total}",
        restarts=sum(_int(c.get("restartCount")) for c in containers),
        node=spec.get("nodeName"),
        created=meta.get("creationTimestamp"),
        age=since(created, now) if created else "0s",
        scheduled=placed,
    )


def pod_rows(pods: Iterable[Body], now: datetime) -> list[PodRow]:
    """The pods by service, then name (kubectl's order within one)."""
    rows = [pod_row(p, now) for p in pods]
    return sorted(rows, key=lambda r: (r.service or "", r.name))


def pods_document(
    namespace: str,
    name: str,
    status: Mapping[str, Any] | None,
    pods: Iterable[Body],
    deployments: Iterable[Body],
    now: datetime,
) -> dict[str, Any]:
    """The answer of `/pods`: the services' rollout and the pods, as of `now`."""
    services = ((status or {}).get("details") or {}).get("services") or []
    return {
        "namespace": namespace,
        "name": name,
        "services": [r.dump() for r in rollout_rows(services, deployments)],
        "pods": [r.dump() for r in pod_rows(pods, now)],
    }


def workflow_of(body: Body) -> str | None:
    """The Workflow a FlowRun uses: its spec's workflowRef, or its Flow version's
    (status.definition) for a run of a Flow."""
    for source in ((body.get("spec") or {}), ((body.get("status") or {}).get("definition") or {})):
        ref = source.get("workflowRef") or {}
        if ref.get("name"):
            return str(ref["name"])
    return None


def runs_using(bodies: Iterable[Body], namespace: str, workflow: str) -> list[dict[str, Any]]:
    """The runs in `namespace` that use `workflow`, newest first, as list rows (no tasks)."""
    rows = []
    for body in bodies:
        meta = body.get("metadata") or {}
        if meta.get("namespace") == namespace and workflow_of(body) == workflow:
            row = row_of(body)
            rows.append(row.model_copy(update={"tasks": None, "history": None}).dump())
    rows.sort(key=run_key, reverse=True)
    return rows
