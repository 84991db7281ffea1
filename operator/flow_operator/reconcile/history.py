"""Run history in the operator: the recorder of runs, the capture of task logs, and the
archive check that lets a finished run leave the cluster (docs/history.md).

- `Recorder` follows the `app.runs` topic: each decision becomes `record_of(the run with
  its decided status)`, kept in a map keyed by uid, so the newest record of a run replaces
  the one still waiting (never dropped: the map holds at most one record per run, and no
  run leaves the cluster before its final record is written). One background task writes
  them, retrying with backoff while the database is down.
- `LogCapture` stores each task attempt's log, read through the LogReader port when the
  attempt ended (the tail, `cap` bytes), keyed by (uid, task, attempt) and idempotent. A
  pod gone before its log was read is stored as LOG_LOST_POD_DELETED and counted.
- `ColorRecorder` follows the `app.workflows` topic: each change of a Workflow's color
  (history/colors.py) waits, keyed by (uid, time, color), for the same kind of writer.
  At start the first decision of each Workflow adds the color its status holds (with its
  `colorSince`), so a transition decided but not stored before a kill -9 is stored then.
- `History` ties them to the store: `archived(uid)` is True once the store has the run's
  final record and every attempt's log (or its loss), what TTL and history-limit deletions
  wait for.

An operator restart loses nothing: kopf's first list reconciles every live FlowRun, each
reconcile publishes its decision, and the upserts are idempotent; attempts are captured
again from the pods the index shows (a captured log is never replaced by a loss).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from flow_operator import metrics
from flow_operator.builders.naming import TASK_LABEL
from flow_operator.errors import KubeError, NotFound
from flow_operator.history.colors import Seen, transitions
from flow_operator.history.record import record_of
from flow_operator.history.store import (
    DEFAULT_LOG_CAP,
    LOG_LOST_POD_DELETED,
    AuditPage,
    AuditQuery,
    AuditRecord,
    ColorHistory,
    ColorTransition,
    HistoryError,
    InvalidRecord,
    LogRecord,
    Page,
    PrunePolicy,
    PruneReport,
    RunQuery,
    RunRecord,
    RunStore,
    StoreUnavailable,
)
from flow_operator.models.flowrun import TERMINAL, FlowRunStatus, TaskPhase
from flow_operator.observers import RunChanged, WorkflowChanged
from flow_operator.ports import EventSink, LogReader

log = logging.getLogger(__name__)
Key = tuple[str, str]
K = TypeVar("K")
V = TypeVar("V")
Sleep = Callable[[float], Awaitable[None]]
# Backoff of the writers while the database is down: 0.5 s doubling to MAX_BACKOFF.
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
# Writes failing this long post a Warning Event (once per outage) on the oldest run waiting.
WARN_AFTER = 60.0
ENDED_PODS = frozenset({"Succeeded", "Failed"})
TASK_ENDED = frozenset(TaskPhase) - {TaskPhase.PENDING, TaskPhase.RUNNING}
# Color transitions waiting at most (beyond: the oldest dropped, logged and counted), and
# written per transaction.
MAX_PENDING_COLORS = 100_000
COLOR_BATCH = 500
# Audit records likewise.
MAX_PENDING_AUDIT = 100_000
AUDIT_BATCH = 500


def _digest(record: RunRecord) -> int:
    return hash(record.model_dump_json())


def _backoff(failures: int) -> float:
    return min(MAX_BACKOFF, FIRST_BACKOFF * 2.0 ** max(0, failures - 1))


@dataclass
class Outage:
    """How long the writes of one writer have been failing, and whether it was told."""

    since: float | None = None
    failures: int = 0
    warned: bool = False

    def failed(self, now: float) -> float:
        """Record a failure; the backoff before the next try."""
        self.failures += 1
        if self.since is None:
            self.since = now
        return _backoff(self.failures)

    def ok(self) -> None:
        self.since, self.failures, self.warned = None, 0, False

    def overdue(self, now: float, after: float) -> bool:
        """True once per outage, when it has lasted `after` seconds."""
        if self.since is None or self.warned or now - self.since < after:
            return False
        self.warned = True
        return True


class Recorder:
    """Run records waiting for the store, newest per uid, written in the background."""

    def __init__(
        self,
        store: RunStore,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        warn_after: float = WARN_AFTER,
    ) -> None:
        self.store = store
        self.monotonic = monotonic
        self.warn_after = warn_after
        self.pending: dict[str, RunRecord] = {}
        self._bodies: dict[str, Mapping[str, Any]] = {}
        self._wake = asyncio.Event()
        # What was last written of each live run (a digest), so an unchanged one is not again
        self._written: dict[str, int] = {}
        self.outage = Outage()
        # Where the Warning Event goes (app.recorder), and who hears of a final record
        # stored (the FlowRun queue: its TTL may be due).
        self.events: EventSink | None = None
        self.on_final: Callable[[Key], None] | None = None

    def __len__(self) -> int:
        return len(self.pending)

    def on_run(self, event: RunChanged) -> None:
        """The `app.runs` subscriber: record the run as the reconcile decided it."""
        body = {**event.body, "status": event.status.dump()}
        try:
            record = record_of(body)
        except InvalidRecord as e:
            log.warning("not recorded: %s", e)
            return
        self.offer(record, event.body)

    def offer(self, record: RunRecord, body: Mapping[str, Any] | None = None) -> None:
        """Queue `record`; a record of the same run still waiting is replaced, unless it
        is later (the store would refuse the older one anyway)."""
        waiting = self.pending.get(record.uid)
        if waiting is not None and waiting.revision > record.revision:
            return
        digest = _digest(record)
        if waiting is None and self._written.get(record.uid) == digest:
            return  # a reconcile that changed nothing: stored already
        if waiting is not None and _digest(waiting) == digest:
            # The same record again (a reconcile while the first one is being written):
            # replacing it would keep the run "waiting" after the write, and the
            # write's on_final would start the next reconcile, for ever.
            return
        self.pending[record.uid] = record
        if body is not None:
            self._bodies[record.uid] = body
        self._wake.set()

    def waiting(self, uid: str) -> bool:
        return uid in self.pending

    def forget(self, uid: str) -> None:
        """The run left the cluster (a record still waiting is written all the same)."""
        self._written.pop(uid, None)

    async def flush(self) -> bool:
        """Write every record waiting; False at the first one the store cannot take (the
        rest wait for the next try). A record the store refuses as invalid is dropped."""
        for uid, record in list(self.pending.items()):
            try:
                await self.store.upsert_run(record)
            except StoreUnavailable as e:
                metrics.history_write_error("run")
                wait = self.outage.failed(self.monotonic())
                log.warning("history: %d runs waiting, next try in %.1fs: %s",
                            len(self.pending), wait, e)  # fmt: skip
                await self._warn(str(e))
                return False
            except HistoryError as e:
                metrics.history_write_error("run")
                log.error("history: run %s/%s not recorded: %s", record.namespace, record.name, e)
                stored = False
            else:
                stored = True
                self._written[uid] = _digest(record)
            if self.pending.get(uid) is record:  # not replaced meanwhile (offer never
                # replaces a waiting record by an identical one)
                del self.pending[uid]
                self._bodies.pop(uid, None)
            if stored and record.finished and self.on_final is not None:
                self.on_final((record.namespace, record.name))
        self.outage.ok()
        return True

    async def _warn(self, reason: str) -> None:
        if self.events is None or not self.outage.overdue(self.monotonic(), self.warn_after):
            return
        uid = next(iter(self.pending), None)
        body = self._bodies.get(uid or "")
        if body is None:
            return
        message = (
            f"run history is behind: {len(self.pending)} run records not written for "
            f"{self.warn_after:.0f}s or more (finished runs stay in the cluster meanwhile): "
            f"{reason}"
        )[:1000]
        await self.events.event(dict(body), "HistoryBehind", message, "Warning")

    async def run(self, sleep: Sleep = asyncio.sleep) -> None:
        """The writer: wait for records, write them, back off while the store is down."""
        await _write_loop(self._wake, self.flush, self.outage, self.monotonic, sleep)


async def _write_loop(
    wake: asyncio.Event,
    flush: Callable[[], Awaitable[bool]],
    outage: Outage,
    monotonic: Callable[[], float],
    sleep: Sleep,
) -> None:
    """Every writer's loop: wait to be woken, flush, and while the store is down back off
    and try again (woken or not)."""
    while True:
        await wake.wait()
        wake.clear()
        if not await _flushed(flush, outage, monotonic):
            wake.set()
            await sleep(_backoff(outage.failures))


async def _flushed(
    flush: Callable[[], Awaitable[bool]], outage: Outage, monotonic: Callable[[], float]
) -> bool:
    """One flush; an unexpected error (a migration that fails, say) is logged and retried
    like an outage, never the end of the writer."""
    try:
        return await flush()
    except Exception:
        log.exception("history: writing to the run store failed")
        outage.failed(monotonic())
        return False


class WriteQueue(Generic[K, V]):
    """Records on their way to one kind of store write (at most `limit`, each key queued
    once), written in the background `batch` at a time: never blocking the caller, waiting
    while the database is down. One dropped (the queue full, or a batch the store refuses
    as invalid) is never lost silently: logged with what it was, and counted in
    flowops_history_write_errors_total{what=`what`}. ColorRecorder and AuditRecorder are
    its two uses; the run records have `Recorder` (one per run, replaced by a newer one)."""

    what: str = ""  # the metric's label
    noun: str = "records"  # in the log's words
    batch: int = 500
    max_pending: int = 100_000

    def __init__(
        self,
        store: RunStore,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        limit: int | None = None,
    ) -> None:
        self.store = store
        self.monotonic = monotonic
        self.limit = self.max_pending if limit is None else limit
        self.pending: dict[K, V] = {}
        self._wake = asyncio.Event()
        self.outage = Outage()

    def __len__(self) -> int:
        return len(self.pending)

    def key(self, value: V) -> K:
        raise NotImplementedError

    def describe(self, value: V) -> str:
        raise NotImplementedError

    async def write(self, batch: Sequence[V]) -> None:
        raise NotImplementedError

    def offer(self, value: V) -> None:
        key = self.key(value)
        if key in self.pending:
            return
        if len(self.pending) >= self.limit:
            # Bounded: the oldest waiting goes, said in the log and the metric.
            lost = self.pending.pop(next(iter(self.pending)))
            metrics.history_write_error(self.what)
            log.error("history: %d %s waiting, the oldest dropped: %s",
                      len(self.pending) + 1, self.noun, self.describe(lost))  # fmt: skip
        self.pending[key] = value
        self._wake.set()

    async def flush(self) -> bool:
        """Write what waits, `batch` at a time; False when the store cannot be reached
        (the rest wait)."""
        while self.pending:
            batch = list(self.pending.values())[: self.batch]
            try:
                await self.write(batch)
            except StoreUnavailable as e:
                metrics.history_write_error(self.what)
                wait = self.outage.failed(self.monotonic())
                log.warning("history: %d %s waiting, next try in %.1fs: %s",
                            len(self.pending), self.noun, wait, e)  # fmt: skip
                return False
            except HistoryError as e:
                metrics.history_write_error(self.what)
                for v in batch:
                    log.error("history: not stored (%s): %s", e, self.describe(v))
            for v in batch:
                self.pending.pop(self.key(v), None)
        self.outage.ok()
        return True

    async def run(self, sleep: Sleep = asyncio.sleep) -> None:
        await _write_loop(self._wake, self.flush, self.outage, self.monotonic, sleep)


class ColorRecorder(WriteQueue[tuple[str, datetime, str], ColorTransition]):
    """Workflow color transitions waiting for the store, keyed by (uid, time, color), so a
    replay queues one once."""

    what = "color"
    noun = "color transitions"
    batch = COLOR_BATCH
    max_pending = MAX_PENDING_COLORS

    def __init__(
        self,
        store: RunStore,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        limit: int | None = None,
    ) -> None:
        super().__init__(store, monotonic=monotonic, limit=limit)
        self._seen: dict[Key, Seen] = {}

    def on_workflow(self, event: WorkflowChanged) -> None:
        """The `app.workflows` subscriber: queue the transitions this decision shows."""
        if event.status is None:
            self._seen.pop(event.key, None)  # gone: a Workflow made again is seen anew
            return
        found, seen = transitions(event.body, event.status, self._seen.get(event.key))
        if seen is not None:
            self._seen[event.key] = seen
        for t in found:
            self.offer(t)

    def key(self, value: ColorTransition) -> tuple[str, datetime, str]:
        return value.key

    def describe(self, value: ColorTransition) -> str:
        return f"{value.namespace}/{value.name} {value.to_color} at {value.time.isoformat()}"

    async def write(self, batch: Sequence[ColorTransition]) -> None:
        await self.store.record_colors(batch)


class AuditRecorder(WriteQueue[str, AuditRecord]):
    """Audit records on their way to the store: an API request never waits for the
    database. While the database is down they wait (counted in
    flowops_history_pending{what="audit"}); one dropped is logged with its content."""

    what = "audit"
    noun = "audit records"
    batch = AUDIT_BATCH
    max_pending = MAX_PENDING_AUDIT

    def key(self, value: AuditRecord) -> str:
        return value.id

    def describe(self, value: AuditRecord) -> str:
        return value.model_dump_json()

    async def write(self, batch: Sequence[AuditRecord]) -> None:
        await self.store.record_audit(batch)


@dataclass(frozen=True)
class Attempt:
    """One attempt of a task to capture: its pod, or None when no pod shows it any more."""

    task: str
    attempt: int
    pod: str | None


def _made(pod: Mapping[str, Any]) -> tuple[str, str]:
    meta = pod.get("metadata") or {}
    return str(meta.get("creationTimestamp") or ""), str(meta.get("name") or "")


def attempts_to_capture(
    status: FlowRunStatus, pods: Iterable[Mapping[str, Any]], *, final: bool = False
) -> list[Attempt]:
    """The attempts whose log may be stored now: each pod that ended (Succeeded, Failed);
    with `final` (the run is over, its unfinished Jobs about to be deleted) every pod, and
    every attempt no pod shows any more (its log is lost). A task's pods are numbered in
    the order they were made, the newest being attempt `max(attempts, pods)`, so an early
    pod the garbage collector took does not renumber the later ones."""
    by_task: dict[str, list[Mapping[str, Any]]] = {}
    for pod in pods:
        task = ((pod.get("metadata") or {}).get("labels") or {}).get(TASK_LABEL)
        if task:
            by_task.setdefault(task, []).append(pod)
    out: list[Attempt] = []
    for line in status.tasks:
        if line.child_run or (not line.job_name and line.name not in by_task):
            continue  # a child run's logs are its own run's; a task with no Job has none
        mine = sorted(by_task.get(line.name, []), key=_made)
        if not final and _next_pod_unseen(line.status, line.attempts, mine):
            continue  # numbered now, the pod seen would take the unseen retry's number
        last = max(line.attempts, len(mine))
        first_seen = last - len(mine) + 1
        if final:
            out += [Attempt(line.name, n, None) for n in range(1, first_seen)]
        for n, pod in enumerate(mine, start=first_seen):
            phase = (pod.get("status") or {}).get("phase")
            if final or phase in ENDED_PODS:
                out.append(Attempt(line.name, n, str((pod.get("metadata") or {}).get("name"))))
    return out


def _next_pod_unseen(status: TaskPhase, attempts: int, mine: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the Job counts an attempt newer than every pod the watch shows: the task
    still runs, its newest pod seen has ended, and the Job counts more attempts than pods.
    (The Job controller counts the retry's pod in the same status write that counts the
    failure, often before the pod's own event arrives.) Pods missing for another reason,
    early ones the garbage collector took, are older: the newest pod seen still runs, or
    the task has ended."""
    if status in TASK_ENDED or not mine or len(mine) >= attempts:
        return False
    return (mine[-1].get("status") or {}).get("phase") in ENDED_PODS


@dataclass
class _Capture:
    uid: str
    namespace: str
    attempt: Attempt
    # The log, when read already (of a pod about to be deleted): (text, truncated).
    text: tuple[str, bool] | None = None


class LogCapture:
    """Task attempts' logs on their way to the store, keyed by (uid, task, attempt)."""

    def __init__(
        self,
        store: RunStore,
        logs: LogReader,
        *,
        cap: int = DEFAULT_LOG_CAP,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.logs = logs
        self.cap = cap
        self.monotonic = monotonic
        self.pending: dict[tuple[str, str, int], _Capture] = {}
        self._done: set[tuple[str, str, int]] = set()
        self._wake = asyncio.Event()
        self.outage = Outage()
        self.on_final: Callable[[Key], None] | None = None
        self._keys: dict[str, Key] = {}

    def __len__(self) -> int:
        return len(self.pending)

    def want(self, uid: str, key: Key, attempts: Iterable[Attempt]) -> None:
        """Capture these attempts (those stored or waiting already are left as they are)."""
        for attempt in attempts:
            ident = (uid, attempt.task, attempt.attempt)
            if ident in self._done or ident in self.pending:
                continue
            self.pending[ident] = _Capture(uid, key[0], attempt)
            self._keys[uid] = key
            self._wake.set()

    async def read_now(self, uid: str, key: Key, attempts: Iterable[Attempt]) -> None:
        """Read these attempts' logs now, before their pods are deleted; stored later."""
        for attempt in attempts:
            ident = (uid, attempt.task, attempt.attempt)
            if ident in self._done or attempt.pod is None:
                continue
            waiting = self.pending.get(ident)
            if waiting is not None and waiting.text is not None:
                continue
            try:
                text = await self._read(key[0], attempt.pod)
            except KubeError:
                text = None  # gone or refused: the background capture says which
            self.pending[ident] = _Capture(uid, key[0], attempt, text)
            self._keys[uid] = key
            self._wake.set()

    def waiting(self, uid: str) -> bool:
        return any(ident[0] == uid for ident in self.pending)

    def forget(self, uid: str) -> None:
        """The run left the cluster: its attempts will not come back."""
        self._done = {ident for ident in self._done if ident[0] != uid}
        self._keys.pop(uid, None)

    async def _read(self, namespace: str, pod: str) -> tuple[str, bool]:
        """The tail of the pod's log, at most `cap` bytes, and whether it was cut; read as
        a stream, so a large log never sits whole in memory."""
        chunks = await self.logs.pod_log(namespace, pod)
        tail, size = bytearray(), 0
        async for chunk in chunks:
            size += len(chunk)
            tail += chunk
            if len(tail) > 2 * self.cap:
                del tail[: len(tail) - self.cap]
        if size <= self.cap:
            return bytes(tail).decode(errors="replace"), False
        return bytes(tail[-self.cap :]).decode(errors="ignore"), True

    async def _capture(self, job: _Capture) -> None:
        """Read (unless read already) and store one attempt's log, or why there is none.
        Raises StoreUnavailable, or a KubeError without an answer: tried again later."""
        attempt, lost = job.attempt, None
        text, truncated = job.text or ("", False)
        if job.text is None:
            if attempt.pod is None:
                lost = LOG_LOST_POD_DELETED
            else:
                try:
                    text, truncated = await self._read(job.namespace, attempt.pod)
                except NotFound:
                    lost = LOG_LOST_POD_DELETED
                except KubeError as e:
                    if e.status is None:
                        raise
                    lost = f"log lost: {e.message}"[:500]
        await self.store.put_log(
            job.uid, attempt.task, attempt.attempt, text, truncated=truncated, lost_reason=lost
        )
        if lost == LOG_LOST_POD_DELETED:
            metrics.history_log_lost()
            log.warning("history: log of %s attempt %d of run %s lost: pod deleted before "
                        "capture", attempt.task, attempt.attempt, job.uid)  # fmt: skip

    async def flush(self) -> bool:
        """Capture every attempt waiting; False when the store (or the API server) cannot
        be reached: the rest wait for the next try."""
        for ident, job in list(self.pending.items()):
            try:
                await self._capture(job)
            except (StoreUnavailable, KubeError) as e:
                metrics.history_write_error("log")
                wait = self.outage.failed(self.monotonic())
                log.warning("history: %d logs waiting, next try in %.1fs: %s",
                            len(self.pending), wait, e)  # fmt: skip
                return False
            except HistoryError as e:
                metrics.history_write_error("log")
                log.error("history: log of %s/%d of run %s not stored: %s",
                          ident[1], ident[2], ident[0], e)  # fmt: skip
            if self.pending.get(ident) is job:
                del self.pending[ident]
            self._done.add(ident)
            key = self._keys.get(job.uid)
            if key is not None and not self.waiting(job.uid) and self.on_final is not None:
                self.on_final(key)
        self.outage.ok()
        return True

    async def run(self, sleep: Sleep = asyncio.sleep) -> None:
        await _write_loop(self._wake, self.flush, self.outage, self.monotonic, sleep)


@dataclass
class History:
    """The run store as the operator uses it: recorder, log capture, archive check, and the
    cluster's retention default. A part (`ctx.need(History)`) of the build steps."""

    store: RunStore
    recorder: Recorder
    capture: LogCapture
    colors: ColorRecorder | None = None
    audit: AuditRecorder | None = None
    ttl: timedelta | None = None  # --finished-run-ttl: the default of spec.ttlSecondsAfterFinished
    enabled: bool = True  # False: history off (NullRunStore), nothing is ever archived

    async def archived(self, uid: str) -> bool:
        """True when the store holds the run's final record and a log (or its loss) for
        every attempt of its tasks, and nothing of it waits to be written. False too when
        the store cannot be reached: nothing may leave the cluster then."""
        return await self.not_archived(uid) is None

    async def not_archived(self, uid: str) -> str | None:
        """Why the run is not archived yet (None: it is): what the store still lacks."""
        if not self.enabled:
            return "history is off"
        if self.recorder.waiting(uid):
            return "its record waits to be written"
        if self.capture.waiting(uid):
            return "a log waits to be captured"
        try:
            record = await self.store.get_run(uid)
            if record is None or not record.finished:
                return "the store has no final record of it"
            for task in record.tasks:
                if task.child_run or not task.job_name:
                    continue
                for attempt in range(1, task.attempts + 1):
                    if await self.store.get_log(uid, task.name, attempt) is None:
                        return f"the store has no log of task {task.name} attempt {attempt}"
        except HistoryError as e:
            log.info("history: archive of %s not confirmed: %s", uid, e)
            return f"the store cannot be read: {e}"
        return None

    def attempts(
        self, uid: str, key: Key, status: FlowRunStatus, pods: Sequence[Mapping[str, Any]]
    ) -> None:
        """After a reconcile: capture the attempts that ended (all of them once the run is
        over; lost ones too)."""
        if self.enabled and uid:
            final = status.phase in TERMINAL
            self.capture.want(uid, key, attempts_to_capture(status, pods, final=final))

    async def before_deleting(
        self,
        uid: str,
        key: Key,
        status: FlowRunStatus,
        pods: Sequence[Mapping[str, Any]],
        jobs: Iterable[str],
    ) -> None:
        """Read the logs of the pods of Jobs about to be deleted (a cancel, or the other
        tasks of a failed run), so their deletion loses nothing."""
        if not self.enabled or not uid:
            return
        doomed = set(jobs)
        theirs = [
            p for p in pods if ((p.get("metadata") or {}).get("labels") or {}).get("job-name")
            in doomed
        ]  # fmt: skip
        names = {(p.get("metadata") or {}).get("name") for p in theirs}
        attempts = [a for a in attempts_to_capture(status, pods, final=True) if a.pod in names]
        await self.capture.read_now(uid, key, attempts)

    def forget(self, uid: str) -> None:
        self.recorder.forget(uid)
        self.capture.forget(uid)


class OpeningStore:
    """A RunStore opened on first use (migrations run then), so the operator starts and
    reconciles with the database down: until it opens, every call is StoreUnavailable,
    and the next call tries again."""

    def __init__(self, open_: Callable[[], Awaitable[RunStore]]) -> None:
        self._open = open_
        self._store: RunStore | None = None
        self._lock = asyncio.Lock()

    async def _get(self) -> RunStore:
        if self._store is not None:
            return self._store
        async with self._lock:
            if self._store is None:
                self._store = await self._open()
                log.info("history: run store open")
            return self._store

    async def upsert_run(self, record: RunRecord) -> bool:
        return await (await self._get()).upsert_run(record)

    async def get_run(self, ref: str) -> RunRecord | None:
        return await (await self._get()).get_run(ref)

    async def list_runs(
        self, query: RunQuery, limit: int | None = None, cursor: str | None = None
    ) -> Page:
        return await (await self._get()).list_runs(query, limit, cursor)

    async def put_log(
        self,
        uid: str,
        task: str,
        attempt: int,
        text: str,
        *,
        truncated: bool = False,
        lost_reason: str | None = None,
    ) -> LogRecord:
        store = await self._get()
        return await store.put_log(
            uid, task, attempt, text, truncated=truncated, lost_reason=lost_reason
        )

    async def get_log(self, uid: str, task: str, attempt: int | None = None) -> LogRecord | None:
        return await (await self._get()).get_log(uid, task, attempt)

    async def statuses(self, uids: Collection[str]) -> dict[str, str]:
        return await (await self._get()).statuses(uids)

    async def namespaces(self) -> list[str]:
        return await (await self._get()).namespaces()

    async def prune(self, policy: PrunePolicy, *, dry_run: bool = False) -> PruneReport:
        return await (await self._get()).prune(policy, dry_run=dry_run)

    async def record_colors(self, transitions: Sequence[ColorTransition]) -> int:
        return await (await self._get()).record_colors(transitions)

    async def color_history(
        self, namespace: str, name: str, since: datetime, until: datetime
    ) -> ColorHistory:
        return await (await self._get()).color_history(namespace, name, since, until)

    async def record_audit(self, records: Sequence[AuditRecord]) -> int:
        return await (await self._get()).record_audit(records)

    async def list_audit(
        self, query: AuditQuery, limit: int | None = None, cursor: str | None = None
    ) -> AuditPage:
        return await (await self._get()).list_audit(query, limit, cursor)

    async def close(self) -> None:
        if self._store is not None:
            await self._store.close()
            self._store = None
