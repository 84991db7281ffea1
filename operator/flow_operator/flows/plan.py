"""The Flow reconciler's decision: one pure function from what is observed to what to do.

`plan(flow, runs, now, retention)` takes the Flow (spec and the status last written), the
FlowRuns that carry its label (as `FlowRunRecord`s) and the time, and returns a `Plan`:
- `newVersion`: the version to record (a ControllerRevision to create) when the
  run-relevant spec changed, and `pruneVersions`, the revisions past the history limit;
- `create`: the FlowRun bodies of the ticks due now, named from the tick, so a create
  repeated after a crash meets AlreadyExists (the edge treats that as done);
- `skip`: ticks not started because of concurrency Forbid (or replaced within the plan);
- `cancel`: runs to cancel for concurrency Replace;
- `delete`: finished runs past the retention policy, candidates only: the edge deletes
  one once the run store has confirmed its final record and logs (`requiresArchive`);
- `status`: the Flow status to write after the writes above succeeded;
- `events`: one per tick started, skipped or missed;
- `requeueAt`: the next moment something is due (a tick or a retention deadline), so the
  edge sets a timer and never polls. Changes of the Flow or its runs wake it earlier.

The order for the edge: new version, creates, cancels, deletes (archived only), status.
If it stops anywhere on the way, the same inputs give the same plan: the names of the
creates are the same, the ones that now exist are not planned again.

Where a schedule starts counting (`last` of schedule.plan): its lastScheduleTime, or the
newest tick among its existing runs if later (a lost status write does not replay ticks),
or, for a schedule seen for the first time, the Flow's creation when this is the Flow's
first reconcile and `now` otherwise (a schedule added later does not catch up on the time
before it existed). A resumed schedule starts from `now`: suspended ticks are skipped,
not caught up. That starting moment is written as lastScheduleTime until a tick replaces
it, so it outlives the next reconcile.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from flow_operator.flows.concurrency import REPLACING, Action, Decision, RunSlot, decide
from flow_operator.flows.params import resolve
from flow_operator.flows.runs import FlowRunRecord, Record, Time, build_run
from flow_operator.flows.schedule import Cron, run_name, summary
from flow_operator.flows.schedule import plan as schedule_plan
from flow_operator.flows.versions import (
    next_version,
    revision_hash,
    revision_name,
    snapshot,
    to_prune,
)
from flow_operator.history.retention import FinishedRun, RetentionPolicy
from flow_operator.history.retention import plan as retention_plan
from flow_operator.models.flow import (
    Flow,
    FlowStatus,
    FlowVersion,
    LastRun,
    Schedule,
    ScheduleStatus,
)
from flow_operator.models.flowrun import Phase, RunType
from flow_operator.objects.body import Body
from flow_operator.objects.conditions import kstatus
from flow_operator.objects.times import parse_time, rfc3339

NORMAL = "Normal"
WARNING = "Warning"
TICK_STARTED = "TickStarted"
TICK_SKIPPED = "TickSkipped"
TICKS_MISSED = "TicksMissed"
INVALID_SCHEDULE = "InvalidSchedule"
RECONCILED = "Reconciled"


class Create(Record):
    """A FlowRun to create; AlreadyExists means an earlier pass created it: done."""

    name: str
    schedule: str | None = None
    tick: Time | None = None
    decision: Action
    body: Body


class Skip(Record):
    """A tick not started, and why (an Event says so)."""

    name: str
    schedule: str
    tick: Time
    reason: str
    message: str


class Cancel(Record):
    """A run to cancel (spec.cancel: true, preconditioned on its uid)."""

    name: str
    uid: str
    reason: str
    message: str


class Delete(Record):
    """A finished run past retention: delete it only once the store has archived it."""

    name: str
    uid: str
    why: str
    due: Time
    requires_archive: bool = True


class NewVersion(Record):
    """A version to record: its ControllerRevision holds `snapshot`."""

    version: FlowVersion
    snapshot: Body


class PlannedEvent(Record):
    type: str
    reason: str
    message: str


class Plan(Record):
    new_version: NewVersion | None = None
    prune_versions: tuple[FlowVersion, ...] = ()
    create: tuple[Create, ...] = ()
    skip: tuple[Skip, ...] = ()
    cancel: tuple[Cancel, ...] = ()
    delete: tuple[Delete, ...] = ()
    status: FlowStatus
    events: tuple[PlannedEvent, ...] = ()
    requeue_at: Time | None = None


class _Slots:
    """The flow's unfinished runs as the concurrency decision sees them, plus the runs this
    plan creates, so several ticks in one plan are decided one after the other."""

    def __init__(self, runs: Sequence[FlowRunRecord]) -> None:
        self.slots = {r.name: r.slot() for r in runs if not r.finished}
        self.uids = {r.name: r.uid for r in runs}

    def add(self, slot: RunSlot) -> None:
        self.slots[slot.name] = slot

    def cancelling(self, name: str) -> None:
        s = self.slots[name]
        self.slots[name] = RunSlot(s.name, s.created, s.holding, cancelling=True)


def _anchor(
    flow: Flow,
    schedule: Schedule,
    previous: ScheduleStatus | None,
    runs: Sequence[FlowRunRecord],
    now: datetime,
) -> datetime:
    """Where this schedule's due ticks start (module docstring)."""
    ticks = [r.scheduled for r in runs if r.schedule == schedule.name and r.scheduled]
    newest = max(ticks, default=None)
    if previous is not None and previous.suspended:
        return now
    written = parse_time(previous.last_schedule_time) if previous else None
    if written is None:
        first = flow.status is None or flow.status.observed_generation is None
        created = parse_time(flow.metadata.creationTimestamp)
        written = created if first and created is not None else now
    return max(written, newest) if newest else written


def plan(
    flow: Flow,
    runs: Sequence[FlowRunRecord],
    now: datetime,
    retention: RetentionPolicy | None = None,
) -> Plan:
    """What the Flow reconciler does at `now` (module docstring)."""
    now = now.astimezone(UTC)
    stamp = rfc3339(now)
    spec, name, namespace = flow.spec, flow.metadata.name, flow.metadata.namespace
    old = flow.status or FlowStatus()
    events: list[PlannedEvent] = []

    # Versions: record the spec's version if it is new, prune past the history limit.
    revision = revision_hash(spec)
    kept = sorted(old.versions, key=lambda v: v.version)
    number = next_version(kept, old.version, revision)
    new_version = None
    if number is not None:
        current = FlowVersion(
            version=number,
            revision=revision,
            revision_name=revision_name(name, number, revision),
            creation_time=stamp,
        )
        new_version = NewVersion(version=current, snapshot=snapshot(spec))
        kept.append(current)
    else:
        current = next(v for v in kept if v.version == old.version)
    in_use = {r.version for r in runs if not r.finished and r.version is not None}
    pruned = to_prune(kept, current.version, spec.revision_history_limit, in_use)
    kept = [v for v in kept if v not in pruned]

    # Schedules: the due ticks, each decided by the concurrency policy in turn.
    slots = _Slots(runs)
    existing = {r.name for r in runs}
    creates: dict[str, Create] = {}
    skips: list[Skip] = []
    cancels: list[Cancel] = []
    problems: list[str] = []
    schedules: list[ScheduleStatus] = []
    previous = {s.name: s for s in old.schedules}
    for s in spec.schedules or ():
        before = previous.get(s.name)
        base = ScheduleStatus(
            name=s.name,
            last_schedule_time=before.last_schedule_time if before else None,
            last_run=before.last_run if before else None,
            missed=before.missed if before else 0,
        )
        if spec.suspend or s.suspend:
            schedules.append(base.model_copy(update={"suspended": True}))
            continue
        resolution = resolve(spec, s.configuration, s.parameters)
        if not resolution.ok:
            problems.append(f"schedule {s.name}: {resolution.message()}")
            schedules.append(base)
            continue
        last = _anchor(flow, s, before, runs, now)
        due = schedule_plan(
            Cron.of(s),
            last=last,
            now=now,
            catch_up=s.catch_up,
            starting_deadline_seconds=s.starting_deadline_seconds,
        )
        for tick in due.start:
            run = run_name(name, s.name, tick)
            if run in existing:
                continue  # created by an earlier pass whose status write was lost
            candidate = RunSlot(run, now)
            decision = decide(spec.concurrency, candidate, list(slots.slots.values()))
            if decision.action is Action.SKIP:
                skips.append(Skip(name=run, schedule=s.name, tick=tick, **_why(decision)))
                continue
            for victim in decision.cancel:
                if victim in creates:  # a tick of this very plan: it never starts
                    gone = creates.pop(victim)
                    del slots.slots[victim]
                    skips.append(
                        Skip(
                            name=victim,
                            schedule=gone.schedule or s.name,
                            tick=gone.tick or tick,
                            reason=REPLACING,
                            message=f"replaced by {run} before it started (concurrency Replace)",
                        )
                    )
                else:
                    cancels.append(
                        Cancel(
                            name=victim,
                            uid=slots.uids.get(victim, ""),
                            reason=REPLACING,
                            message=f"cancelled to make room for {run} (concurrency Replace)",
                        )
                    )
                    slots.cancelling(victim)
            body = build_run(
                flow=name,
                namespace=namespace,
                definition=spec,
                version=current,
                name=run,
                run_type=RunType.SCHEDULED,
                resolution=resolution,
                decision=decision.action,
                schedule=s.name,
                tick=tick,
            )
            creates[run] = Create(
                name=run, schedule=s.name, tick=tick, decision=decision.action, body=body
            )
            slots.add(RunSlot(run, now, holding=decision.action is not Action.QUEUE))
        if due.missed:
            counted = f"{due.missed}{' or more' if due.missed_more else ''}"
            events.append(
                PlannedEvent(
                    type=WARNING,
                    reason=TICKS_MISSED,
                    message=f"schedule {s.name}: {counted} ticks missed (catchUp "
                    f"{s.catch_up.value}, startingDeadlineSeconds "
                    f"{s.starting_deadline_seconds or 'none'})",
                )
            )
        mine = [r for r in runs if r.schedule == s.name and r.scheduled] + [
            c for c in creates.values() if c.schedule == s.name
        ]
        newest = max(mine, key=_tick, default=None)
        schedules.append(
            base.model_copy(
                update={
                    "last_schedule_time": rfc3339(due.last_schedule_time or last),
                    "last_run": newest.name if newest else base.last_run,
                    "next_schedule_time": rfc3339(due.next_time) if due.next_time else None,
                    "missed": base.missed + due.missed,
                }
            )
        )

    for c in creates.values():
        events.append(
            PlannedEvent(
                type=NORMAL,
                reason=TICK_STARTED,
                message=f"schedule {c.schedule}: tick {rfc3339(c.tick or now)} started as "
                f"{c.name} ({c.decision.value})",
            )
        )
    for k in skips:
        events.append(PlannedEvent(type=NORMAL, reason=TICK_SKIPPED, message=k.message))

    # Retention: candidates only; the edge checks the store before it deletes.
    finished = [
        FinishedRun(
            key=r.name,
            namespace=namespace,
            flow=name,
            status=r.phase.value if r.phase else "",
            end_time=r.end or r.created,
        )
        for r in runs
        if r.finished
    ]
    kept_runs = retention_plan(finished, retention or RetentionPolicy(), now)
    deletes = tuple(
        Delete(name=d.key, uid=slots.uids.get(d.key, ""), why=d.why.value, due=d.due)
        for d in (*kept_runs.delete, *kept_runs.held)
    )

    nexts = [t for s in schedules if (t := parse_time(s.next_schedule_time))]
    requeue = min([*nexts, *([kept_runs.next_due] if kept_runs.next_due else [])], default=None)
    stalled = "; ".join(problems)
    status = FlowStatus(
        observed_generation=flow.metadata.generation,
        conditions=kstatus(
            done=not problems,
            failed=bool(problems),
            reason=INVALID_SCHEDULE if problems else RECONCILED,
            message=stalled or f"version {current.version}",
            generation=flow.metadata.generation,
            now=stamp,
            old=old.conditions,
        ),
        version=current.version,
        revision=current.revision,
        versions=kept,
        last_run=_last_run(runs, list(creates.values()), old.last_run, stamp),
        schedules=schedules,
        next_schedule_time=rfc3339(min(nexts)) if nexts else None,
        schedule_summary=summary(spec),
    )
    return Plan(
        new_version=new_version,
        prune_versions=tuple(pruned),
        create=tuple(creates.values()),
        skip=tuple(skips),
        cancel=tuple(cancels),
        delete=deletes,
        status=status,
        events=tuple(events),
        requeue_at=requeue,
    )


def _why(decision: Decision) -> dict[str, str]:
    return {"reason": decision.reason, "message": decision.message}


def _tick(r: FlowRunRecord | Create) -> datetime:
    t = r.scheduled if isinstance(r, FlowRunRecord) else r.tick
    return t or datetime.min.replace(tzinfo=UTC)


def _last_run(
    runs: Sequence[FlowRunRecord], creates: Sequence[Create], old: LastRun | None, stamp: str
) -> LastRun | None:
    """The newest run of the flow, by creation (a run created now is the newest). The
    creation time has a one-second grain: of runs made in the same second, an unfinished
    one is taken as the newer (a run that replaced another, or started after it ended, is
    still going), then the name."""
    if creates:
        c = creates[-1]
        return LastRun(
            name=c.name,
            version=int(c.body["spec"]["version"]),
            phase=Phase.SUBMITTED,
            run_type=c.body["spec"]["runType"],
            creation_time=stamp,
        )
    if not runs:
        return old
    r = max(runs, key=lambda r: (r.created, not r.finished, r.name))
    return LastRun(
        name=r.name,
        version=r.version,
        phase=r.phase or Phase.SUBMITTED,
        run_type=r.run_type.value if r.run_type else None,
        creation_time=rfc3339(r.created),
    )
