"""Reconcile one FlowRun: gather what the indexes show, let the pure state machine
(flowrun/machine.py) decide, then carry the decision out against the API.

Order of the writes: events (recorded: flow_operator.events posts them in the
background), then Jobs and child runs (created, never applied: a Job's
deterministic name makes a second create a 409, so a restarted operator never runs a task
twice), deletions and child cancels, then the status. The status is the machine's memory,
so until the watch shows our own write the reconciler reads the status it wrote instead of
the stale one in the index. Capacity (running runs operator-wide and per namespace, and
each flow's slots) is counted incrementally (flowrun/slots.py): the watch's events and our
own status writes keep the counts, so a decision reads them and never walks the runs; a run
admitted is reserved until its written status is counted. Counting and reserving happen
without an await between them, so two workers never both take the last slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import ValidationError

from flow_operator import metrics
from flow_operator.builders.naming import TASK_LABEL
from flow_operator.errors import KubeError, NotFound, Refused
from flow_operator.flowrun.machine import (
    Capacity,
    Context,
    Decision,
    Observed,
    WorkflowState,
    refuse,
    reject,
    step,
)
from flow_operator.flowrun.slots import Slots, Standing, state_of
from flow_operator.flowrun.taskstate import LOG_LINES
from flow_operator.flows.admission import Hold, admission_counted
from flow_operator.flows.reference import (
    Invalid,
    Outcome,
    Waiting,
    effective,
    needs_resolving,
    resolve_ref,
    to_read,
)
from flow_operator.flows.runs import flow_of
from flow_operator.models.flow import Flow, FlowSpec
from flow_operator.models.flowrun import TERMINAL, FlowRun, FlowRunStatus, Phase, TaskPhase
from flow_operator.models.security import SecurityDefault
from flow_operator.models.workflow import Color, DesiredStatus, PublishingMode
from flow_operator.objects.body import Body, first
from flow_operator.objects.times import parse_time
from flow_operator.observers import RunChanged
from flow_operator.ports import (
    CONTROLLERREVISIONS,
    FLOWRUNS,
    JOBS,
    EventSink,
    LogReader,
    Reader,
    Writer,
)
from flow_operator.reconcile.history import History
from flow_operator.reconcile.workqueue import Key
from flow_operator.reconcile.writes import StatusWrites

log = logging.getLogger(__name__)
View = Mapping[Key, Iterable[Body]]
# A Job created and not shown by the watch within this long is expected no more (client-go
# drops its expectations after 5 minutes too): its task is then read as the index shows it.
EXPECT_TTL = 300.0
# A change of task details alone (a pod's state, podName, attempts, startTime) waits this
# long for the next write of the run (the phase, a task's start or end: written at once,
# carrying the details), and is written by itself only when none came: a person sees every
# phase and every task start and end at once, a pod's progress within the window, and a
# run of 1-second tasks costs no write for details at all (docs/flowrun.md, issue 21).
DETAILS_WINDOW = 5.0
# A finished run due for deletion whose archive is not confirmed is looked at again this
# often, besides the recorder's wake-up when its record or last log is stored.
ARCHIVE_RECHECK = 30.0


class FlowRunCluster(Writer, Reader, LogReader, EventSink, Protocol):
    """What a FlowRun reconcile asks of the cluster (flow_operator.ports)."""


@dataclass
class FlowRunView:
    """The indexes kopf keeps for FlowRuns, keyed by (namespace, run)."""

    runs: View
    jobs: View  # Jobs labelled flowops.io/flowrun=<run>
    pods: View  # their pods
    children: View  # child FlowRuns, by their parent
    workflows: View  # Workflows, by (namespace, name)
    flows: View | None = None  # Flows, by (namespace, name)
    # Warning FailedCreate Events, by (namespace, the Job's name): watched, never listed
    # by a reconcile (handlers/flowrun.py); None: no Job's pods are ever seen refused
    refusals: View | None = None


@dataclass
class Limits:
    """Concurrency limits on Deployed runs (None: unlimited)."""

    running: int | None = None
    per_namespace: int | None = None
    grace: timedelta = timedelta(seconds=60)


@dataclass
class FlowRunReconciler:
    """The FlowRun controller's reconcile: one key, one step of the machine, its writes."""

    view: FlowRunView
    kube: FlowRunCluster
    limits: Limits = field(default_factory=Limits)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    security: SecurityDefault = SecurityDefault.NONE  # --default-security-context
    # every decision, with the run: to the topic's subscribers (metrics, the run store)
    publish: Callable[[RunChanged], None] | None = None
    # slots held and the runs waiting, kept from the watch (handlers/flowrun.py) and our
    # writes; a reconciler given none counts its index once, at the start
    slots: Slots | None = None
    _refused: dict[Key, dict[str, str]] = field(default_factory=dict)
    _logs: dict[tuple[str, str], str] = field(default_factory=dict)
    # A change of task details alone is written at most once per detail_interval per run
    # (DETAILS_WINDOW; longer while status writes are slow: reconcile/writes.py); the
    # phase and every task's status at once.
    detail_interval: float = DETAILS_WINDOW
    monotonic: Callable[[], float] = time.monotonic
    _deferred: dict[Key, float] = field(default_factory=dict)
    # Jobs created and not yet shown by the watch, by run: name -> when (monotonic)
    _expected: dict[Key, dict[str, float]] = field(default_factory=dict)
    # where Events go: flow_operator.events (posted in the background); else posted inline
    events: EventSink | None = None
    # run history: task logs captured as attempts end; finished runs deleted at their TTL
    # once archived (None: no history, nothing deleted)
    history: History | None = None

    def __post_init__(self) -> None:
        if self.slots is None:
            self.slots = Slots()
            listed = (state_of(b) for bodies in self.view.runs.values() for b in bodies)
            self.slots.relist(s for s in listed if s is not None)
        self.counts: Slots = self.slots
        # our status writes until the watch shows them; the detail rate limit
        self.writes: StatusWrites[Key] = StatusWrites(
            _headline, self.detail_interval, self.monotonic
        )

    async def __call__(self, key: Key) -> float | None:
        """Step the run until it waits for something: Submitted, Queued and Deployed follow
        each other in one reconcile (one status write, with all three in its history), not
        one reconcile per watch echo of the previous write."""
        while True:
            again, onwards = await self._step(key)
            if not onwards:
                return again

    async def _step(self, key: Key) -> tuple[float | None, bool]:
        """One step of the state machine; True when it only moved from Submitted or to
        Queued, creating nothing: then the next step follows at once (its status is kept,
        not written, and the step that waits or acts writes it)."""
        body = next(iter(self.view.runs.get(key, ())), None)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            self._forget(key, str(((body or {}).get("metadata") or {}).get("uid") or ""))
            if body is None:
                self.counts.observe(key, None, deleted=True)
            return None, False  # deleted: garbage collection takes its Jobs and child runs
        current = self._current(key, body)
        if current is body:  # the index shows our last write, or we wrote none: count it
            self.counts.observe(key, state_of(body))
        body = current
        ctx = Context(now=self.clock(), grace=self.limits.grace, security=self.security)
        try:
            run = FlowRun.from_body(body)
        except ValidationError as e:
            decision = reject(body, e, ctx)
            await self._carry_out(key, body, None, decision)
            return None, False
        resolved = None
        if needs_resolving(run):  # spec.flowRef instead of tasks (flows/reference.py)
            outcome = await self._resolve(key, run, ctx.now)
            if isinstance(outcome, Waiting):
                log.info("FlowRun %s/%s waits: %s", key[0], key[1], outcome.message)
                return outcome.retry_after, False
            if isinstance(outcome, Invalid):
                await self._carry_out(key, body, run, refuse(body, outcome.message, ctx))
                return None, False
            resolved = outcome.definition
        definition = resolved or (run.status.definition if run.status else None)
        if run.spec.tasks is None and definition is not None:
            run = effective(run, definition)
        observed = await self._observe(key, run)
        decision = step(run, observed, ctx)
        if resolved is not None:  # recorded with the first status: resolved once
            decision = replace(
                decision, status=decision.status.model_copy(update={"definition": resolved})
            )
        old = run.status.phase if run.status is not None else None
        onwards = (
            decision.status.phase is not old
            and decision.status.phase in (Phase.SUBMITTED, Phase.QUEUED)
            and not decision.jobs_to_create
            and not decision.children_to_create
        )
        uid = str((body.get("metadata") or {}).get("uid") or "")
        if self.history is not None and decision.jobs_to_delete:
            await self.history.before_deleting(
                uid, key, decision.status, observed.pods, decision.jobs_to_delete
            )
        if await self._carry_out(key, body, run, decision, write=not onwards):
            return 0.05, False
        again = decision.requeue_after
        if self.history is not None:
            self.history.attempts(uid, key, decision.status, observed.pods)
            if decision.status.phase in TERMINAL:
                expiry = await self._expire(key, uid, run, decision.status)
                if expiry is not None:
                    again = min(again, expiry) if again is not None else expiry
        deferred = self._deferred.pop(key, None)
        if deferred is not None:  # details kept, not yet written: come back to write them
            again = min(again, deferred) if again is not None else deferred
        return again, onwards

    async def _expire(
        self, key: Key, uid: str, run: FlowRun, status: FlowRunStatus
    ) -> float | None:
        """A finished run's TTL: seconds until it is due; when due and archived, the run
        is deleted (its Jobs and pods go by owner references) and None returned. Due but
        not archived yet: the recorder enqueues the run when its final record or last log
        is stored; ARCHIVE_RECHECK is the fallback."""
        assert self.history is not None
        given = run.spec.ttl_seconds_after_finished
        ttl = timedelta(seconds=given) if given is not None else self.history.ttl
        end = parse_time(status.end_time)
        if ttl is None or end is None or not uid:
            return None
        wait = (end + ttl - self.clock()).total_seconds()
        if wait > 0:
            return wait
        missing = await self.history.not_archived(uid)
        if missing is not None:
            log.info("FlowRun %s/%s is due for deletion, not archived yet (%s): again when "
                     "it is, or in %ss", *key, missing, int(ARCHIVE_RECHECK))  # fmt: skip
            return ARCHIVE_RECHECK
        with contextlib.suppress(NotFound):
            await self.kube.delete(FLOWRUNS, key[0], key[1])
        log.info("deleted finished FlowRun %s/%s (archived, ttl %ss)", key[0], key[1],
                 int(ttl.total_seconds()))  # fmt: skip
        metrics.history_run_deleted("ttl")
        return None

    # --- reading -------------------------------------------------------------------------
    async def _resolve(self, key: Key, run: FlowRun, now: datetime) -> Outcome:
        """Resolve a flowRef run: its Flow from the index, the version's ControllerRevision
        when the Flow's spec is not that version any more."""
        ref = run.spec.flow_ref
        assert ref is not None
        body = first(self.view.flows.get((key[0], ref.name), ())) if self.view.flows else None
        try:
            flow = None if body is None else Flow.from_body(body)
        except ValidationError:
            return Invalid(f"spec.flowRef.name: flow {ref.name}'s spec is invalid (its status)")
        definitions: dict[int, FlowSpec] = {}
        wanted = to_read(ref, flow)
        if wanted is not None and wanted.revision_name:
            try:
                revision = await self.kube.get(CONTROLLERREVISIONS, key[0], wanted.revision_name)
                definitions[wanted.version] = FlowSpec.model_validate(revision.get("data") or {})
            except (NotFound, ValidationError) as e:  # resolve_ref says it could not be read
                log.info("revision %s of flow %s unread: %s", wanted.revision_name, ref.name, e)
        return resolve_ref(run, flow, definitions, now)

    def _current(self, key: Key, body: Body) -> Body:
        """The body, with the status we wrote (or decided) if the index does not show it yet."""
        status = self.writes.current(key, body, body.get("status"))
        return body if status is body.get("status") else {**body, "status": status}

    async def _observe(self, key: Key, run: FlowRun) -> Observed:
        jobs = list(self.view.jobs.get(key, ()))
        pods = list(self.view.pods.get(key, ()))
        return Observed(
            jobs=jobs,
            pods=pods,
            children=list(self.view.children.get(key, ())),
            events=self._refusals(key[0], jobs),
            errors=dict(self._refused.get(key, {})),
            logs=await self._failed_logs(run, pods),
            workflow=self._workflow(run),
            capacity=self._capacity(key, run),
            expected=self._expectations(key, jobs),
        )

    def _expectations(self, key: Key, jobs: list[Body]) -> frozenset[str]:
        """The run's Jobs created and not yet in the index; those seen (or too old) go."""
        expected = self._expected.get(key)
        if not expected:
            return frozenset()
        seen = {str((j.get("metadata") or {}).get("name")) for j in jobs}
        now = self.monotonic()
        for name in [n for n, t in expected.items() if n in seen or now - t > EXPECT_TTL]:
            del expected[name]
        if not expected:
            del self._expected[key]
        return frozenset(expected)

    def _workflow(self, run: FlowRun) -> WorkflowState | None:
        ref = run.spec.workflow_ref
        if ref is None:
            return None
        body = next(iter(self.view.workflows.get((run.metadata.namespace, ref.name), ())), None)
        if body is None:
            return None
        spec, status = body.get("spec") or {}, body.get("status") or {}
        try:
            color = Color(status.get("actualStatus") or Color.RED.value)
            mode = PublishingMode(spec.get("publishingMode") or PublishingMode.ASYNC.value)
        except ValueError:
            color, mode = Color.RED, PublishingMode.ASYNC
        published = spec.get("desiredStatus") == DesiredStatus.PUBLISHED.value
        return WorkflowState(published=published, mode=mode, color=color)

    def _capacity(self, key: Key, run: FlowRun) -> Capacity:
        """Runs holding a slot besides this one, and those waiting ahead of it (a free slot
        goes to the oldest waiting run first). A Queued run that may deploy reserves its
        slot here, before any await, until its written status is counted.

        The counts are the ones flowrun/slots.py keeps as runs change: reading them costs
        the same whatever the number of runs, and no reconcile walks the runs."""
        phase = run.status.phase if run.status is not None else None
        holds = phase is Phase.DEPLOYED or self.counts.reserved(key)
        limits = self.limits
        standing = Standing()
        if (limits.running is not None or limits.per_namespace is not None) and not holds:
            standing = self.counts.standing(key, limits.running, limits.per_namespace)
        wide, own = limits.running, limits.per_namespace
        free = (wide is None or standing.running + standing.ahead < wide) and (
            own is None or standing.namespace_running + standing.namespace_ahead < own
        )
        flow_hold = None if holds else self._flow_hold(key)
        if not holds and free and phase is Phase.QUEUED and flow_hold is None:
            self.counts.reserve(key)
            holds = True
        return Capacity(
            running=standing.running,
            limit=limits.running,
            namespace_running=standing.namespace_running,
            namespace_limit=limits.per_namespace,
            holds_slot=holds,
            flow_hold=None if flow_hold is None else (flow_hold.reason, flow_hold.message),
            ahead=standing.ahead,
            namespace_ahead=standing.namespace_ahead,
        )

    def _flow_hold(self, key: Key) -> Hold | None:
        """Whether the run's flow holds it back (a run made under Queue or Replace)."""
        mine = first(self.view.runs.get(key, ()))
        flow = None if mine is None else flow_of(mine)
        if mine is None or not flow or self.view.flows is None:
            return None
        body = first(self.view.flows.get((key[0], flow), ()))
        try:
            concurrency = None if body is None else Flow.from_body(body).spec.concurrency
        except ValidationError:
            concurrency = None  # the Flow reconciler reports its spec; nothing to keep here
        holding, ahead = self.counts.flow_place(key, flow)
        return admission_counted(concurrency, mine, holding, ahead)

    def _refusals(self, namespace: str, jobs: list[Body]) -> list[Body]:
        """The FailedCreate Events of the run's Jobs (a quota or an admission rule refusing
        their pods), from the watch: no API call. An Event of an earlier Job of the same
        name (another uid) is not this Job's."""
        if self.view.refusals is None:
            return []
        events: list[Body] = []
        for job in jobs:
            meta = job.get("metadata") or {}
            uid = meta.get("uid")
            for event in self.view.refusals.get((namespace, str(meta.get("name"))), ()):
                about = (event.get("involvedObject") or {}).get("uid")
                if not uid or not about or about == uid:
                    events.append(event)
        return events

    async def _failed_logs(self, run: FlowRun, pods: list[Body]) -> dict[str, str]:
        """The last lines of each failed task's pod log, read once per pod: of its last
        failed attempt (the index holds pods in no order of their making)."""
        ended = {
            t.name
            for t in (run.status.tasks if run.status else [])
            if t.status not in (TaskPhase.PENDING, TaskPhase.RUNNING)
        }
        out: dict[str, str] = {}
        for pod in sorted(pods, key=_made):
            meta = pod.get("metadata") or {}
            task = (meta.get("labels") or {}).get(TASK_LABEL)
            if not task or task in ended or (pod.get("status") or {}).get("phase") != "Failed":
                continue
            ident = (run.metadata.namespace, str(meta.get("name")))
            if ident not in self._logs:
                self._logs[ident] = await self._tail(*ident)
            if self._logs[ident]:
                out[task] = self._logs[ident]
        return out

    async def _tail(self, namespace: str, pod: str) -> str:
        try:
            chunks = await self.kube.pod_log(namespace, pod, tail_lines=LOG_LINES)
            text = b"".join([c async for c in chunks]).decode(errors="replace")
        except KubeError as e:
            if e.status is None:
                raise  # no answer at all: read again when the reconcile is retried
            log.info("no log of failed pod %s/%s: %s", namespace, pod, e.message)
            return ""
        return text.strip()

    # --- writing -------------------------------------------------------------------------
    async def _carry_out(
        self, key: Key, body: Body, run: FlowRun | None, decision: Decision, write: bool = True
    ) -> bool:
        """Do what `decision` says; True when the API server refused a Job or child run
        (the next step, right away, records the refusal in the task's line). With
        write=False the new status is only kept in memory, for the next step to read."""
        ns = key[0]
        for event in decision.events:
            await (self.events or self.kube).event(body, event.reason, event.message, event.type)
        refused: dict[str, str] = {}

        async def create(job: Body) -> None:
            task = job["metadata"]["labels"][TASK_LABEL]
            try:
                if await self.kube.create(JOBS, job):
                    log.info("created Job %s/%s", ns, job["metadata"]["name"])
                # made now or before (a 409): the index will show it
                self._expected.setdefault(key, {})[job["metadata"]["name"]] = self.monotonic()
            except (Refused, NotFound) as e:  # the API server refuses this Job: not "again"
                refused[task] = f"Job {job['metadata']['name']} refused: {e.message}"

        # The ready tasks' Jobs side by side (the client's cap on object writes bounds
        # them), not one round trip after another; any other failure is raised after all
        # have been tried (a Job made is found by its name the next time: never twice).
        tried = await asyncio.gather(
            *(create(job) for job in decision.jobs_to_create), return_exceptions=True
        )
        if failed := next((e for e in tried if isinstance(e, BaseException)), None):
            raise failed
        for child in decision.children_to_create:
            task = child["metadata"]["labels"][TASK_LABEL]
            try:
                if await self.kube.create(FLOWRUNS, child):
                    log.info("created child FlowRun %s/%s", ns, child["metadata"]["name"])
            except (Refused, NotFound) as e:
                refused[task] = f"child run {child['metadata']['name']} refused: {e.message}"
        for name in decision.jobs_to_delete:
            await self.kube.delete(JOBS, ns, name)
            log.info("deleted Job %s/%s", ns, name)
        for name in decision.children_to_cancel:
            with contextlib.suppress(NotFound):
                await self.kube.merge_patch(FLOWRUNS, ns, name, {"spec": {"cancel": True}})
        if refused:
            self._refused.setdefault(key, {}).update(refused)
        new = decision.status.dump()
        if new != (body.get("status") or {}) or (write and self.writes.unsent(key)):
            wait = self.writes.wait(key, new) if write else 0.0
            if wait > 0:
                write = False  # details only: kept, written when the interval is over
                self._deferred[key] = wait
            made, took = None, None
            if write:
                sent = self.writes.monotonic()
                made = await self.kube.replace_status(FLOWRUNS, ns, key[1], new)
                took = self.writes.monotonic() - sent
            self.writes.record(key, body, new, None if made is None else made or "", took)
            if made is not None:  # counted at once, not when the watch shows it
                meta = {**(body.get("metadata") or {}), "resourceVersion": made}
                self.counts.observe(key, state_of({**body, "metadata": meta, "status": new}))
        else:
            self.writes.settled(key)
        # Written (or still Queued): the status, not a reservation, now says where it is.
        self.counts.release(key)
        if decision.status.phase in TERMINAL:
            self._refused.pop(key, None)
            self._expected.pop(key, None)
        old_phase = run.status.phase if run is not None and run.status is not None else None
        if self.publish is not None:
            uid = (body.get("metadata") or {}).get("uid", "")
            self.publish(RunChanged(key, uid, body, old_phase, decision.status))
        return bool(refused)

    def _forget(self, key: Key, uid: str = "") -> None:
        if self.history is not None and uid:
            self.history.forget(uid)
        self.writes.forget(key)
        self._deferred.pop(key, None)
        self.counts.release(key)
        self._refused.pop(key, None)
        self._expected.pop(key, None)


def _headline(status: Body | None) -> Any:
    """The part of a run's status written at once: all but the tasks' details (each task
    counts by its name and status only)."""
    if status is None:
        return None
    tasks = [(t.get("name"), t.get("status")) for t in status.get("tasks") or []]
    return {**status, "tasks": tasks}


def _made(pod: Body) -> tuple[str, str]:
    """A pod's place among its Job's attempts: made after the one before it failed."""
    meta = pod.get("metadata") or {}
    return str(meta.get("creationTimestamp") or ""), str(meta.get("name") or "")
