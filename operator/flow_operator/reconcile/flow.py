"""Reconcile one Flow: read it and its runs from the indexes, let the pure planner
(flows/plan.py) decide, then carry the plan out against the API.

Order of the writes (flows/plan.py): the new version's ControllerRevision, the ticks'
FlowRuns, the cancels (Replace), the deletes past the flow's history (archived runs only),
the pruned revisions, then the status, then the Events. Every write can be repeated: a
create that meets AlreadyExists is done (the names are deterministic), a cancel names the
run's uid (an immutable field: a run of the same name made since is refused, not
cancelled), a delete happens only once `archived(uid)` says the run store has the run's
final record and logs. So a crash anywhere on the way is followed by the same plan, minus
what was done.

The status is the planner's memory (lastScheduleTime); until the watch shows our own
write the reconciler reads the status it wrote (reconcile/writes.py). The answer is the
seconds until the plan's `requeueAt`: the work queue sets one timer to the next tick or
retention deadline, and a change of the Flow or of one of its runs wakes it earlier.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from pydantic import ValidationError

from flow_operator.errors import NotFound, Refused
from flow_operator.flows.objects import revision_body, with_flow_ref
from flow_operator.flows.plan import TICK_STARTED, Plan, plan
from flow_operator.flows.runs import FlowRunRecord
from flow_operator.history.retention import RetentionPolicy
from flow_operator.models.flow import Flow, FlowStatus
from flow_operator.objects.body import Body, first
from flow_operator.objects.conditions import kstatus
from flow_operator.objects.times import rfc3339
from flow_operator.ports import CONTROLLERREVISIONS, FLOWRUNS, FLOWS, EventSink, Reader, Writer
from flow_operator.reconcile.workqueue import Key
from flow_operator.reconcile.writes import StatusWrites

log = logging.getLogger(__name__)
View = Mapping[Key, Iterable[Body]]
INVALID_SPEC = "InvalidSpec"
VERSION_CREATED = "VersionCreated"
RUN_CANCELLED = "RunCancelled"


class FlowCluster(Writer, Reader, EventSink, Protocol):
    """What a Flow reconcile asks of the cluster (flow_operator.ports)."""


@dataclass
class FlowView:
    """The indexes kopf keeps: Flows by (namespace, name), their runs by (namespace, flow)."""

    flows: View
    runs: View  # FlowRuns labelled flowops.io/flow=<flow>


async def never_archived(uid: str) -> bool:
    """The default without a run store: no run counts as archived, none is deleted."""
    return False


def retention_of(flow: Flow) -> RetentionPolicy:
    """The flow's history limits as the planner's retention policy (no TTL: the FlowRun
    reconciler applies a run's own ttlSecondsAfterFinished)."""
    history = flow.spec.history
    if history is None:
        return RetentionPolicy()
    return RetentionPolicy(successful_kept=history.successful_kept, failed_kept=history.failed_kept)


@dataclass
class FlowReconciler:
    """The Flow controller's reconcile: one key, one plan, its writes."""

    view: FlowView
    kube: FlowCluster
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # whether the run store has a run's final record and logs; until helper wiring: never
    archived: Callable[[str], Awaitable[bool]] = never_archived
    # where Events go: flow_operator.events (posted in the background); else posted inline
    events: EventSink | None = None
    writes: StatusWrites[Key] = field(
        default_factory=lambda: StatusWrites(lambda s: s, interval=0.0)
    )

    async def __call__(self, key: Key) -> float | None:
        body = first(self.view.flows.get(key))
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            self.writes.forget(key)
            return None  # deleted: its revisions go with it, its runs stay (retention)
        status = self.writes.current(key, body, body.get("status"))
        if status is not body.get("status"):
            body = {**body, "status": status}
        now = self.clock()
        try:
            flow = Flow.from_body(body)
        except ValidationError as e:
            await self._stalled(key, body, e, now)
            return None  # a change of the spec wakes it
        runs = [r for b in self.view.runs.get(key, ()) if (r := _record(b)) is not None]
        decided = plan(flow, runs, now, retention_of(flow))
        await self._carry_out(key, flow, body, decided)
        if decided.requeue_at is None:
            return None
        return max((decided.requeue_at - now).total_seconds(), 0.0)

    async def _carry_out(self, key: Key, flow: Flow, body: Body, decided: Plan) -> None:
        ns, name = key
        emit = self.events or self.kube
        if decided.new_version is not None:
            v = decided.new_version
            revision = revision_body(flow, body, v.version, v.snapshot)
            if await self.kube.create(CONTROLLERREVISIONS, revision):
                log.info("flow %s/%s: version %d recorded", ns, name, v.version.version)
                await emit.event(
                    body,
                    VERSION_CREATED,
                    f"version {v.version.version} (revision {v.version.revision})",
                )
        existed: set[str] = set()
        for c in decided.create:
            if await self.kube.create(FLOWRUNS, with_flow_ref(c.body)):
                log.info("flow %s/%s: created run %s", ns, name, c.name)
            else:
                existed.add(c.name)  # an earlier pass made it: done, and announced then
        for k in decided.cancel:
            # The uid is immutable: a run of that name made since is refused, not cancelled.
            patch = {"metadata": {"uid": k.uid}, "spec": {"cancel": True}}
            with contextlib.suppress(NotFound, Refused):
                await self.kube.merge_patch(FLOWRUNS, ns, k.name, patch)
                await emit.event(body, RUN_CANCELLED, f"{k.name}: {k.message}")
        for d in decided.delete:
            if d.requires_archive and not await self.archived(d.uid):
                continue  # kept until the run store confirms its record and logs
            with contextlib.suppress(NotFound):
                current = await self.kube.get(FLOWRUNS, ns, d.name)
                if (current.get("metadata") or {}).get("uid") == d.uid:
                    await self.kube.delete(FLOWRUNS, ns, d.name)
                    log.info("flow %s/%s: deleted run %s (%s)", ns, name, d.name, d.why)
        for pruned in decided.prune_versions:
            if pruned.revision_name:
                await self.kube.delete(CONTROLLERREVISIONS, ns, pruned.revision_name)
        await self._write_status(key, body, decided.status.dump())
        for e in decided.events:
            if e.reason == TICK_STARTED and any(n in e.message for n in existed):
                continue
            await emit.event(body, e.reason, e.message, e.type)

    async def _write_status(self, key: Key, body: Body, new: Body) -> None:
        if new == (body.get("status") or {}):
            self.writes.settled(key)
            return
        made = await self.kube.replace_status(FLOWS, key[0], key[1], new)
        self.writes.record(key, body, new, made or "", None)

    async def _stalled(self, key: Key, body: Body, error: ValidationError, now: datetime) -> None:
        """A spec the CRD admitted but the model refuses (a cron expression, a time zone, a
        pattern): Stalled, with the field named; no run starts."""
        meta = body.get("metadata") or {}
        generation = int(meta.get("generation") or 0)
        message = _explain(error)
        try:
            old = FlowStatus.model_validate(body.get("status") or {})
        except ValidationError:
            old = FlowStatus()
        status = old.model_copy(
            update={
                "observed_generation": generation,
                "conditions": kstatus(
                    done=False,
                    failed=True,
                    reason=INVALID_SPEC,
                    message=message,
                    generation=generation,
                    now=rfc3339(now),
                    old=old.conditions,
                ),
                "next_schedule_time": None,
            }
        )
        new = status.dump()
        if new != (body.get("status") or {}):
            await (self.events or self.kube).event(body, INVALID_SPEC, message, "Warning")
        await self._write_status(key, body, new)


def _record(body: Body) -> FlowRunRecord | None:
    try:
        return FlowRunRecord.from_body(body)
    except (ValueError, ValidationError) as e:
        log.info("run %s not counted: %s", (body.get("metadata") or {}).get("name"), e)
        return None


def _explain(error: ValidationError) -> str:
    """The first problems, each with its field (spec.schedules.0.cron: ...)."""
    parts = []
    for e in error.errors()[:3]:
        where = ".".join(str(p) for p in e["loc"])
        parts.append(f"{where}: {e['msg']}" if where else str(e["msg"]))
    return "; ".join(parts)
