"""The FlowRun state machine: a run and what the cluster shows -> its next status and the
objects to create or delete. Pure: no API calls, the clock passed in.

    (new) -> Submitted -> Queued -> Deployed -> Completed | Failed | Crashed
    Submitted, Queued, Deployed -> Cancelled (spec.cancel) | Failed

* Submitted: accepted. Always next: Queued, or Failed at once when the run's SYNC
  Workflow is not YELLOW or GREEN (fail fast).
* Queued: waits for a slot (operator-wide and per-namespace limits; sub-flow runs use
  their parent's) and for its ASYNC Workflow to be YELLOW or GREEN, at most
  `queueTimeoutSeconds` (then Failed).
* Deployed: Jobs (child runs for sub-flow tasks) are created for the tasks whose
  dependencies have all succeeded, so in `dependsOn` order. Completed when every task
  succeeded; Crashed when one hit the cluster's capacity, Failed when one failed or the
  run's deadline passed (flowrun/taskstate.py reads the tasks). The message names the task.
* A step makes at most one phase transition, so every phase is written and announced by
  an Event; the status write wakes the next step.
* Nothing leaves a terminal phase. The status is frozen; cleanup goes on until done:
  a Cancelled run's Jobs are deleted, a Failed or Crashed run's unfinished Jobs too
  (finished ones stay for their logs), and unfinished child runs are cancelled.
* Idempotent: only tasks with no observed Job or child get one; the names are
  deterministic, so the reconciler takes AlreadyExists as done. The status is the
  record: a finished task keeps its line even when its Job is gone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError

from flow_operator.builders.job import desired_child_run, desired_job, object_name
from flow_operator.builders.naming import TASK_LABEL
from flow_operator.flowrun.taskstate import (
    Reading,
    child_reading,
    finished,
    job_ended,
    job_reading,
    refused_reading,
)
from flow_operator.models.flowrun import (
    TERMINAL,
    FlowRun,
    FlowRunStatus,
    FlowType,
    Phase,
    Task,
    TaskPhase,
    TaskStatus,
    Transition,
)
from flow_operator.models.security import SecurityDefault
from flow_operator.models.workflow import Color, PublishingMode
from flow_operator.objects.body import Body
from flow_operator.objects.conditions import kstatus
from flow_operator.objects.durations import since
from flow_operator.objects.times import parse_time, rfc3339

USABLE = (Color.GREEN, Color.YELLOW)
# The task states posted as Events: the failures only (a Warning with the cause). A task
# that starts or succeeds is in the run's status, its history and its metrics; an Event
# each was 2 API writes per task (issue 21: Events per run at most the phase transitions
# plus one per failed task).
ANNOUNCED = (TaskPhase.FAILED, TaskPhase.CRASHED)
BAD = (Phase.FAILED, Phase.CRASHED, TaskPhase.FAILED, TaskPhase.CRASHED)


@dataclass(frozen=True)
class WorkflowState:
    """The referenced Workflow, as its status shows it."""

    published: bool
    mode: PublishingMode
    color: Color


@dataclass(frozen=True)
class Capacity:
    """Runs holding a slot, not counting this one, against the limits (None: no limit).

    A run holds a slot from Deployed until it finishes; `holds_slot` says the reconciler
    counts this run among them already (or reserved one for it), which admits it. A free
    slot goes to the runs waiting for one in the order they were made: `ahead` and
    `namespace_ahead` count the older waiting runs that come first (flowrun/slots.py)."""

    running: int = 0
    limit: int | None = None
    namespace_running: int = 0
    namespace_limit: int | None = None
    holds_slot: bool = False
    ahead: int = 0
    namespace_ahead: int = 0
    # (reason, message): the run's flow holds it back (flows/admission.py: Queue, Replace)
    flow_hold: tuple[str, str] | None = None


@dataclass(frozen=True)
class Observed:
    """What the cluster holds for one run: objects as the API returns them (plain dicts)."""

    jobs: Sequence[Body] = ()  # Jobs labelled flowops.io/flowrun=<run>
    pods: Sequence[Body] = ()  # their pods (labelled the same, and by task)
    children: Sequence[Body] = ()  # child FlowRuns of sub-flow tasks
    events: Sequence[Body] = ()  # Warning Events about the Jobs (FailedCreate)
    # The API server's refusal (403, 422) to create a task's Job or child run, by task
    # name; transient errors are the reconciler's to retry and don't belong here.
    errors: Mapping[str, str] = field(default_factory=dict)
    # The last lines of a failed task's pod log, by task name, when the reconciler has them.
    logs: Mapping[str, str] = field(default_factory=dict)
    # The Workflow of spec.workflowRef; None when the run has none or it does not exist.
    workflow: WorkflowState | None = None
    capacity: Capacity = field(default_factory=Capacity)
    # Jobs this operator created that the watch does not show yet (client-go's
    # "expectations"): their tasks are Running, neither to be created again nor deleted.
    expected: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Context:
    now: datetime
    # How long a pod may stay unschedulable, refused by a quota or unable to start its
    # container before its task is Crashed (or Failed).
    grace: timedelta = timedelta(seconds=60)
    # What a task's pod gets where its securityContexts leave a field out.
    security: SecurityDefault = SecurityDefault.NONE


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    """What to do: create and delete (deletes with propagationPolicy Background), patch
    `spec.cancel: true` into child runs, emit the events, then write `status` if it
    differs. `requeue_after`: seconds until a deadline or grace period may change it."""

    status: FlowRunStatus
    jobs_to_create: list[Body] = field(default_factory=list)
    jobs_to_delete: list[str] = field(default_factory=list)
    children_to_create: list[Body] = field(default_factory=list)
    children_to_cancel: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None


@dataclass(frozen=True)
class _Hold:
    """Why a run may not deploy yet; `fail`: why it never will."""

    fail: bool
    reason: str
    message: str


def step(run: FlowRun, observed: Observed, ctx: Context) -> Decision:
    """The run's next status and actions, given what the cluster shows at `ctx.now`."""
    old = run.status
    this = _Step(run, observed, ctx)
    if old is None:
        message = f"accepted: {_tasks(len(run.spec.steps))}"
        return this.decide(Phase.SUBMITTED, "Submitted", message, this.lines())
    if old.phase in TERMINAL:
        deletes, cancels = this.cleanup(old.phase)
        status = _observe_generation(old, run.metadata.generation)
        return Decision(status=status, jobs_to_delete=deletes, children_to_cancel=cancels)
    if run.spec.cancel:
        message = "cancelled on request (spec.cancel)"
        return this.finish(Phase.CANCELLED, "CancelRequested", message, this.read_all()[0])
    if old.phase is Phase.DEPLOYED:
        return this.progress()
    return this.admit()


def reject(body: Mapping[str, Any], error: ValidationError, ctx: Context) -> Decision:
    """A run whose spec the CRD let through but the model refuses (a `dependsOn` cycle):
    Failed and Stalled with the model's message; a finished run stays as it is."""
    return refuse(body, describe(error), ctx)


def refuse(body: Mapping[str, Any], message: str, ctx: Context) -> Decision:
    """A run that can never start (an invalid spec; a flowRef that does not resolve, or a
    parameter the Flow refuses): Failed and Stalled, reason InvalidSpec, with `message`."""
    old = None
    with suppress(ValidationError):  # an unreadable status: the run is refused all the same
        old = FlowRunStatus.model_validate(body.get("status"))
    generation = int((body.get("metadata") or {}).get("generation") or 1)
    if old is not None and old.phase in TERMINAL:
        return Decision(status=_observe_generation(old, generation))
    tasks = _stop(old.tasks if old else [], Phase.FAILED, ctx.now)
    status = _status(old, generation, ctx.now, Phase.FAILED, "InvalidSpec", message, tasks)
    return Decision(status=status, events=_events(old, status))


def describe(error: ValidationError) -> str:
    """Pydantic's errors as one line each: `spec.tasks: dependsOn forms a cycle: a -> b -> a`."""
    parts = []
    for err in error.errors():
        msg = err["msg"].removeprefix("Value error, ")
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(msg if not loc or msg.startswith("spec.") else f"{loc}: {msg}")
    return "; ".join(parts)


def _ahead(waiting: int) -> str:
    return f" ({waiting} waiting ahead)" if waiting else ""


class _Step:
    """One step of one run: the inputs, and the decisions that share them."""

    def __init__(self, run: FlowRun, observed: Observed, ctx: Context) -> None:
        self.run, self.observed, self.ctx = run, observed, ctx
        uid = run.metadata.uid
        self.jobs, self.children = _owned(observed.jobs, uid), _owned(observed.children, uid)

    def lines(self) -> list[TaskStatus]:
        """The tasks as last written, in spec order (a task the status lacks is Pending)."""
        known = {t.name: t for t in self.run.status.tasks} if self.run.status else {}
        return [
            known.get(t.name) or TaskStatus(name=t.name, version=t.version)
            for t in self.run.spec.steps
        ]

    def hold(self) -> _Hold | None:
        """Why the run may not deploy now, if anything holds it."""
        spec, cap = self.run.spec, self.observed.capacity
        if spec.workflow_ref is not None:
            name, wf = spec.workflow_ref.name, self.observed.workflow
            if wf is None:
                return _Hold(False, "WaitingForWorkflow", f"waiting for Workflow {name} to exist")
            if not (wf.published and wf.color in USABLE):
                state = wf.color.value if wf.published else "unpublished"
                if wf.mode is PublishingMode.SYNC:
                    message = f"Workflow {name} is SYNC and {state}: runs need it YELLOW or GREEN"
                    return _Hold(True, "WorkflowUnavailable", message)
                message = f"waiting for Workflow {name} (ASYNC, {state}) to be YELLOW or GREEN"
                return _Hold(False, "WaitingForWorkflow", message)
        if cap.flow_hold is not None and not cap.holds_slot:
            return _Hold(False, *cap.flow_hold)
        if spec.flow_type is FlowType.SUB_FLOW or cap.holds_slot:
            return None
        full = []
        if cap.limit is not None and cap.running + cap.ahead >= cap.limit:
            full.append(f"{cap.running}/{cap.limit} runs operator-wide{_ahead(cap.ahead)}")
        room = cap.namespace_limit
        if room is not None and cap.namespace_running + cap.namespace_ahead >= room:
            namespace = self.run.metadata.namespace
            full.append(
                f"{cap.namespace_running}/{room} in namespace {namespace}"
                f"{_ahead(cap.namespace_ahead)}"
            )
        if full:
            return _Hold(False, "WaitingForCapacity", f"waiting for capacity: {', '.join(full)}")
        return None

    def admit(self) -> Decision:
        """Submitted or Queued: fail fast, wait (at most the queue timeout), or deploy."""
        old, spec, now = self.run.status, self.run.spec, self.ctx.now
        assert old is not None
        # Its Jobs exist: it was admitted, and a restart lost the status write. Go on.
        hold = None if self.jobs or self.children else self.hold()
        if hold is not None and hold.fail:
            return self.finish(Phase.FAILED, hold.reason, hold.message, self.lines())
        if old.phase is Phase.SUBMITTED:
            reason, message = (hold.reason, hold.message) if hold else ("Admitted", "admitted")
            return self.decide(Phase.QUEUED, reason, message, self.lines())
        if hold is None:
            return self.progress()
        queued = [parse_time(t.time) for t in old.history if t.phase is Phase.QUEUED]
        timeout = (queued[-1] if queued else None) or now
        timeout += timedelta(seconds=spec.queue_timeout_seconds)
        if timeout <= now:
            message = f"queued for more than {spec.queue_timeout_seconds}s: {hold.message}"
            return self.finish(Phase.FAILED, "QueueTimeout", message, self.lines())
        return self.decide(Phase.QUEUED, hold.reason, hold.message, self.lines(), wakes=[timeout])

    def read(self, task: Task, last: TaskStatus) -> Reading | None:
        """The task's line from what is observed; None when it has nothing yet."""
        obs, now = self.observed, self.ctx.now
        name = object_name(self.run.metadata.name, task.name)
        if task.sub_flow is not None and name in self.children:
            return child_reading(task, self.children[name])
        if task.sub_flow is None and name in self.jobs:
            pods = [p for p in obs.pods if _label(p, TASK_LABEL) == task.name]
            events = [e for e in obs.events if (e.get("involvedObject") or {}).get("name") == name]
            log = obs.logs.get(task.name)
            return job_reading(task, self.jobs[name], pods, events, log, now, self.ctx.grace)
        if task.name in obs.errors:
            return refused_reading(task, obs.errors[task.name], now)
        if task.sub_flow is None and name in obs.expected and last.status is TaskPhase.RUNNING:
            return Reading(last)  # created, not seen yet: it runs
        if last.status is TaskPhase.RUNNING:
            kind = "Job" if task.sub_flow is None else "child run"
            message = f"its {kind} {name} was deleted while running"
            return Reading(
                finished(last, TaskPhase.FAILED, rfc3339(now), reason="Deleted", message=message)
            )
        if last.status is not TaskPhase.PENDING:
            return Reading(last)  # finished, its object since removed: the status is the record
        return None

    def read_all(self) -> tuple[list[TaskStatus], list[datetime]]:
        """Every task's line, and when a grace period may change one."""
        lines, wakes = [], []
        for task, last in zip(self.run.spec.steps, self.lines(), strict=True):
            reading = self.read(task, last)
            lines.append(reading.status if reading else last)
            wakes += [reading.wake] if reading and reading.wake else []
        return lines, wakes

    def progress(self) -> Decision:
        """Deployed, or entering it: read every task, then end the run or start what can
        start. Entering, the run becomes Deployed whatever its tasks show (one transition
        a step); the next step judges them."""
        run, now = self.run, self.ctx.now
        assert run.status is not None
        lines, wakes = self.read_all()
        start = parse_time(run.status.start_time) or now
        if run.status.phase is Phase.DEPLOYED:
            ending = self.verdict(lines, start)
            if ending is not None:
                return ending
        if run.spec.active_deadline_seconds is not None:
            wakes.append(start + timedelta(seconds=run.spec.active_deadline_seconds))
        done = {t.name for t in lines if t.status is TaskPhase.SUCCEEDED}
        runnable = [
            task
            for task, line in zip(run.spec.steps, lines, strict=True)
            if line.status is TaskPhase.PENDING and set(task.depends_on or ()) <= done
        ]
        running = [t.name for t in lines if t.status is TaskPhase.RUNNING]
        running += [t.name for t in runnable]
        # A task is Running from the moment its Job is created (one status write says so,
        # not one for the create and another when the watch shows the Job).
        starting = {t.name for t in runnable if t.sub_flow is None}
        lines = [
            t.model_copy(
                update={
                    "status": TaskPhase.RUNNING,
                    "job_name": object_name(run.metadata.name, t.name),
                }
            )
            if t.name in starting
            else t
            for t in lines
        ]
        message = f"{len(done)} of {_tasks(len(lines))} done; running: {', '.join(running) or '-'}"
        return self.decide(
            Phase.DEPLOYED,
            "Deployed",
            message,
            lines,
            start=rfc3339(start),
            wakes=wakes,
            jobs=[desired_job(run, t, self.ctx.security) for t in runnable if t.sub_flow is None],
            children=[desired_child_run(run, t) for t in runnable if t.sub_flow is not None],
        )

    def verdict(self, lines: list[TaskStatus], start: datetime) -> Decision | None:
        """The end of a Deployed run, if its tasks or its deadline say so."""
        for bad, phase, verb in (
            (TaskPhase.CRASHED, Phase.CRASHED, "crashed"),
            (TaskPhase.FAILED, Phase.FAILED, "failed"),
        ):
            culprit = next((t for t in lines if t.status is bad), None)
            if culprit is not None:
                first, *log = (culprit.message or verb).splitlines()
                message = f"task {culprit.name} {verb}: {first}" + (f": {log[-1]}" if log else "")
                reason = culprit.reason if phase is Phase.CRASHED else "TaskFailed"
                return self.finish(phase, reason or verb, message, lines, culprit.end_time)
        deadline = self.run.spec.active_deadline_seconds
        if deadline is not None and start + timedelta(seconds=deadline) <= self.ctx.now:
            busy = ", ".join(t.name for t in lines if t.status is TaskPhase.RUNNING)
            message = f"run deadline of {deadline}s exceeded; running: {busy or '-'}"
            return self.finish(Phase.FAILED, "DeadlineExceeded", message, lines)
        if all(t.status is TaskPhase.SUCCEEDED for t in lines):
            end = max((t.end_time for t in lines if t.end_time), default=None)
            message = (
                f"all {len(lines)} tasks completed" if len(lines) > 1 else "the task completed"
            )
            return self.finish(Phase.COMPLETED, "Completed", message, lines, end)
        return None

    def finish(
        self,
        phase: Phase,
        reason: str,
        message: str,
        lines: list[TaskStatus],
        end: str | None = None,
    ) -> Decision:
        """Into a terminal phase, with the cleanup it needs."""
        deletes, cancels = self.cleanup(phase)
        tasks = _stop(lines, phase, self.ctx.now)
        decision = self.decide(phase, reason, message, tasks, end=end or rfc3339(self.ctx.now))
        return replace(decision, jobs_to_delete=deletes, children_to_cancel=cancels)

    def cleanup(self, phase: Phase) -> tuple[list[str], list[str]]:
        """(Jobs to delete, child runs to cancel) of a run in terminal `phase`."""
        deletes = [
            name
            for name, job in sorted(self.jobs.items())
            if not (job.get("metadata") or {}).get("deletionTimestamp")
            and (phase is Phase.CANCELLED or not job_ended(job))
        ]
        cancels = [
            name
            for name, child in sorted(self.children.items())
            if not (child.get("spec") or {}).get("cancel")
            and (child.get("status") or {}).get("phase") not in TERMINAL
        ]
        return deletes, cancels

    def decide(
        self,
        phase: Phase,
        reason: str,
        message: str,
        tasks: list[TaskStatus],
        *,
        start: str | None = None,
        end: str | None = None,
        wakes: Sequence[datetime] = (),
        jobs: Sequence[Body] = (),
        children: Sequence[Body] = (),
    ) -> Decision:
        old, now = self.run.status, self.ctx.now
        generation = self.run.metadata.generation
        status = _status(old, generation, now, phase, reason, message, tasks, start, end)
        later = [w for w in wakes if w > now]
        return Decision(
            status=status,
            jobs_to_create=list(jobs),
            children_to_create=list(children),
            events=_events(old, status),
            requeue_after=(min(later) - now).total_seconds() if later else None,
        )


def _label(obj: Body, key: str) -> str | None:
    labels: dict[str, str] = ((obj.get("metadata") or {}).get("labels")) or {}
    return labels.get(key)


def _owned(items: Sequence[Body], uid: str) -> dict[str, Body]:
    """By name, only those the run owns (a same-named older run's may linger)."""
    out = {}
    for item in items:
        meta = item.get("metadata") or {}
        refs = meta.get("ownerReferences") or []
        if not uid or any(r.get("uid") == uid for r in refs):
            out[meta.get("name", "")] = item
    return out


def _stop(lines: Sequence[TaskStatus], phase: Phase, now: datetime) -> list[TaskStatus]:
    """The run ended: a running task stopped with it (Cancelled), a pending one is Skipped."""
    stopped = f"stopped: the run is {phase.value}"
    return [
        finished(t, TaskPhase.CANCELLED, rfc3339(now), message=stopped)
        if t.status is TaskPhase.RUNNING
        else t.model_copy(update={"status": TaskPhase.SKIPPED})
        if t.status is TaskPhase.PENDING
        else t
        for t in lines
    ]


def _observe_generation(status: FlowRunStatus, generation: int) -> FlowRunStatus:
    """A finished run's status, unchanged but for the generation it has seen (kstatus)."""
    conditions = [
        c.model_copy(update={"observed_generation": generation}) for c in status.conditions or []
    ]
    return status.model_copy(
        update={"observed_generation": generation, "conditions": conditions or None}
    )


def _status(
    old: FlowRunStatus | None,
    generation: int,
    now: datetime,
    phase: Phase,
    reason: str,
    message: str,
    tasks: list[TaskStatus],
    start: str | None = None,
    end: str | None = None,
) -> FlowRunStatus:
    stamp = rfc3339(now)
    history = list(old.history) if old else []
    if old is None or old.phase is not phase:
        history.append(Transition(phase=phase, time=stamp, reason=reason, message=message))
    start = start or (old.start_time if old else None)
    began, ended = parse_time(start), parse_time(end)
    return FlowRunStatus(
        phase=phase,
        reason=reason,
        message=message,
        start_time=start,
        end_time=end,
        duration=since(began, ended) if began and ended else None,
        observed_generation=generation,
        conditions=kstatus(
            done=phase is Phase.COMPLETED,
            failed=phase in TERMINAL and phase is not Phase.COMPLETED,
            reason=reason,
            message=message,
            generation=generation,
            now=stamp,
            old=old.conditions if old else None,
        ),
        tasks=tasks,
        history=history,
        definition=old.definition if old else None,
    )


def _tasks(count: int) -> str:
    return "1 task" if count == 1 else f"{count} tasks"


def _task_event(t: TaskStatus) -> Event:
    first = (t.message or t.reason or "").splitlines()[:1]
    detail = f": {first[0]}" if first else ""
    return Event(
        "Warning", f"Task{t.status.value}", f"task {t.name} {t.status.value.lower()}{detail}"
    )


def _events(old: FlowRunStatus | None, new: FlowRunStatus) -> list[Event]:
    """One per task that failed or crashed, then one for the run's phase if it changed."""
    before = {t.name: t.status for t in old.tasks} if old else {}
    out = [
        _task_event(t)
        for t in new.tasks
        if t.status in ANNOUNCED and before.get(t.name) is not t.status
    ]
    if old is None or old.phase is not new.phase:
        kind: Literal["Normal", "Warning"] = "Warning" if new.phase in BAD else "Normal"
        out.append(Event(kind, new.reason or new.phase.value, new.message or ""))
    return out
