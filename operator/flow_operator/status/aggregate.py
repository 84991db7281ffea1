"""A Workflow plus its Deployments, ReplicaSets and Pods -> the status document.

Pure: no kopf, no API calls, time passed in. The color rules (docs/status.md):

* a component is GREEN at `actual >= desired`, YELLOW at `0 < actual < desired`,
  RED at `actual == 0 < desired`; `actual` counts ready *and* available replicas;
* the workflow is RED on any error (a failed rollout, a refused object); else GREEN when
  every component (the stream included) is at desired; YELLOW when every component has
  an instance; ORANGE when some have instances and some have none; with no instance
  anywhere it is RED for SYNC and ORANGE for ASYNC, whose work queues until the services
  come up (the reference document's fifth example);
* UNPUBLISHED: `details` is `{}`; GREEN once every managed Deployment is gone, ORANGE while
  teardown runs, RED on error (the reference document's fourth example shows GREEN).

A service whose pods the API server refuses (its Deployment's ReplicaFailure condition)
carries the refusal as its `message`; its color still follows its replica counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flow_operator.models.workflow import (
    Color,
    Component,
    DesiredStatus,
    Details,
    PublishingMode,
    RolloutStatus,
    ServiceStatus,
    StreamStatus,
    Workflow,
    WorkflowStatus,
)
from flow_operator.objects.body import Body
from flow_operator.objects.conditions import kstatus
from flow_operator.objects.podstate import replica_detail
from flow_operator.objects.times import rfc3339, rfc3339_micro
from flow_operator.status.rollout import replica_failure, rollout

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"


@dataclass(frozen=True)
class Observed:
    """What the cluster holds for one Workflow, grouped by component id."""

    deployments: Mapping[str, Body] = field(default_factory=dict)
    replicasets: Mapping[str, Sequence[Body]] = field(default_factory=dict)
    pods: Mapping[str, Sequence[Body]] = field(default_factory=dict)
    # Errors from applying the desired objects, by component id ("" = the whole workflow).
    errors: Mapping[str, str] = field(default_factory=dict)


def component_color(desired: int, actual: int) -> Color:
    if actual >= desired:
        return Color.GREEN
    return Color.YELLOW if actual > 0 else Color.RED


def workflow_color(mode: PublishingMode, counts: Sequence[tuple[int, int]], error: bool) -> Color:
    """Aggregate (desired, actual) pairs of every component into the workflow's color."""
    if error:
        return Color.RED
    if all(actual >= desired for desired, actual in counts):
        return Color.GREEN
    wanted = [actual for desired, actual in counts if desired > 0]
    if all(actual > 0 for actual in wanted):
        return Color.YELLOW
    if any(actual > 0 for actual in wanted):
        return Color.ORANGE
    return Color.ORANGE if mode is PublishingMode.ASYNC else Color.RED


def _latest_hash(replicasets: Sequence[Body]) -> str | None:
    def revision(rs: Body) -> int:
        value = ((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION)
        return int(value) if value and str(value).isdigit() else -1

    if not replicasets:
        return None
    newest = max(replicasets, key=revision)
    return ((newest.get("metadata") or {}).get("labels") or {}).get("pod-template-hash")


def _actual(deployment: Body | None) -> int:
    status = (deployment or {}).get("status") or {}
    return int(min(status.get("readyReplicas", 0), status.get("availableReplicas", 0)))


def service_status(c: Component, observed: Observed, now: datetime) -> ServiceStatus:
    deployment = observed.deployments.get(c.id)
    state, reason = rollout(deployment)
    min_ready = ((deployment or {}).get("spec") or {}).get("minReadySeconds", 0)
    latest = _latest_hash(observed.replicasets.get(c.id, ()))
    pods = sorted(observed.pods.get(c.id, ()), key=lambda p: p["metadata"]["name"])
    actual = _actual(deployment)
    return ServiceStatus(
        id=c.id,
        desired=c.replicas,
        actual=actual,
        status=component_color(c.replicas, actual),
        rolloutStatus=state,
        rolloutStatusReason=reason,
        message=replica_failure(deployment),
        replicasDetail=[replica_detail(p, latest, min_ready, now) for p in pods],
    )


def aggregate(wf: Workflow, observed: Observed, now: datetime) -> WorkflowStatus:
    """The Workflow's status document from its spec and the children observed, at `now`."""
    spec = wf.spec
    generation = wf.metadata.generation
    error = "; ".join(f"{k}: {v}" if k else v for k, v in sorted(observed.errors.items()))
    old = wf.status
    first_published = old.firstPublishedAt if old else None

    if spec.desired_status is DesiredStatus.UNPUBLISHED:
        remaining = sorted(observed.deployments)
        color = Color.RED if error else (Color.ORANGE if remaining else Color.GREEN)
        details = Details()
        ready_count = None
        if error:
            reason, message = "ReconcileError", error
        elif remaining:
            reason, message = "Unpublishing", f"removing {', '.join(remaining)}"
        else:
            reason, message = "Unpublished", "no managed Deployments remain"
        done = color is Color.GREEN
        failed = bool(error)
    else:
        first_published = first_published or rfc3339(now)
        services = [service_status(c, observed, now) for c in spec.services]
        stream = None
        if spec.stream is not None:
            actual = _actual(observed.deployments.get(spec.stream.id))
            stream = StreamStatus(
                id=spec.stream.id,
                desired=spec.stream.replicas,
                actual=actual,
                status=component_color(spec.stream.replicas, actual),
            )
        counts = [(s.desired, s.actual) for s in ([stream] if stream else []) + services]
        stream_state, stream_reason = (
            rollout(observed.deployments.get(spec.stream.id)) if spec.stream else (None, None)
        )
        states = [s.rolloutStatus for s in services] + ([stream_state] if stream_state else [])
        failed_ids = [s.id for s in services if s.rolloutStatus is RolloutStatus.FAILED]
        if stream_state is RolloutStatus.FAILED and spec.stream is not None:
            failed_ids.insert(0, spec.stream.id)
        failed = bool(error or failed_ids)
        color = workflow_color(spec.publishing_mode, counts, failed)
        details = Details(stream=stream, services=services)
        ready_count = f"{sum(1 for d, a in counts if a >= d)}/{len(counts)}"
        done = color is Color.GREEN and all(s is RolloutStatus.COMPLETE for s in states)
        if error:
            reason, message = "ReconcileError", error
        elif failed_ids:
            reason = "ProgressDeadlineExceeded"
            message = f"rollout failed (progress deadline exceeded): {', '.join(failed_ids)}"
        elif done:
            reason, message = "Published", "every component runs its desired replicas"
        else:
            waiting = [s.id for s in services if s.rolloutStatus is not RolloutStatus.COMPLETE]
            if stream_state is not RolloutStatus.COMPLETE and spec.stream is not None:
                waiting.insert(0, f"{spec.stream.id} ({stream_reason})")
            reason = "Publishing"
            message = f"{ready_count} components ready; rolling out: {', '.join(waiting) or '-'}"

    conditions = kstatus(
        done=done,
        failed=failed,
        reason=reason,
        message=message,
        generation=generation,
        now=rfc3339(now),
        old=old.conditions if old else None,
    )
    return WorkflowStatus(
        desiredStatus=spec.desired_status,
        actualStatus=color,
        publishingMode=spec.publishing_mode,
        details=details,
        observedGeneration=generation,
        conditions=conditions,
        servicesReady=ready_count,
        firstPublishedAt=first_published,
        colorSince=color_since(old, color, now),
    )


def color_since(old: WorkflowStatus | None, color: Color, now: datetime) -> str:
    """When the color became `color`: kept while it stays, `now` when it changes (or was
    never written, as by an operator before colorSince existed)."""
    if old is not None and old.actualStatus is color and old.colorSince:
        return old.colorSince
    return rfc3339_micro(now)  # microseconds: two changes in a second keep their order


def significant(status: Mapping[str, Any] | None) -> Any:
    """The status minus what changes by itself (ages, transition times): compare this."""
    if not status:
        return None
    doc = dict(status)
    details = dict(doc.get("details") or {})
    services = []
    for svc in details.get("services") or []:
        pods = [{k: v for k, v in p.items() if k != "age"} for p in svc.get("replicasDetail", [])]
        services.append({**svc, "replicasDetail": pods})
    if "services" in details:
        details["services"] = services
    doc["details"] = details
    doc["conditions"] = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"}
        for c in doc.get("conditions") or []
    ]
    # Whether it is dated, not when: a status written before colorSince existed gets it
    # once; a reconcile on a view that lags its own write (and dates the color anew) does
    # not rewrite it.
    doc["colorSince"] = bool(doc.get("colorSince"))
    return doc
