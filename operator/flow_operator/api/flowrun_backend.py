"""The operator's FlowRunBackend: the live runs from the FlowRun index (no API read per
request) merged with the run store's history (docs/history.md); logs, cancel and rerun
through the API server.

- the list (`page`): the live runs matching the query (few: finished ones leave after
  their TTL) merged with one page of the store by the store's own order (sort time, then
  uid, newest first) and its keyset cursor; a run both live and stored is shown as it is
  live (the live object wins). Counts per status are the store's, corrected for the live
  runs (those not stored yet, and those whose stored status is behind);
- one run (`detail`): the live object, else the store's newest run of that name;
- logs: the task's pod (status.tasks[].podName) through `pods/log`, streamed by a client
  of its own (`logs`, kube.PodLogs); once the pod or the run is gone, the attempt's log
  as the store captured it (`StoredLog`);
- cancel: a merge patch `spec.cancel: true`; the reconciler then deletes the Jobs and moves
  the run to Cancelled (the answer is the run as it stands, with the request noted);
- rerun: a new FlowRun (generateName `<old name>-`) with the old spec, `runType: Manual`,
  `cancel` cleared and the annotation `flowops.io/rerun-of`; a run of a Flow keeps its
  version, or with `latest` asks for the Flow's current one (views/runs.rerun_body).
"""

from __future__ import annotations

import asyncio
import bisect
import builtins
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from flow_operator.api.flowruns import (
    FlowRunError,
    FlowRunRow,
    StoredLog,
    record_row,
    rerun_body,
    row_of,
    run_query,
    select,
)
from flow_operator.errors import KubeError, NotFound
from flow_operator.history.record import record_of
from flow_operator.history.store import (
    AuditPage,
    AuditQuery,
    ColorHistory,
    Cursor,
    HistoryError,
    InvalidCursor,
    InvalidRecord,
    NullRunStore,
    PrunePolicy,
    PruneReport,
    RunQuery,
    RunRecord,
    RunStore,
    StoreUnavailable,
    counts_total,
    page_limit,
)
from flow_operator.history.store import (
    Page as StorePage,
)
from flow_operator.models.flowrun import TERMINAL
from flow_operator.objects.body import Body
from flow_operator.objects.ownership import Whose, task_pod
from flow_operator.ports import FLOWRUNS, LogReader, Resource
from flow_operator.views.attempts import run_attempts
from flow_operator.views.paging import BadCursor, Page
from flow_operator.views.workflow_page import runs_using

Key = tuple[str, str]


class ChildViews(Protocol):
    """The operator's watches of the runs' Jobs and pods, by (namespace, run)
    (reconcile/flowrun.FlowRunView is one)."""

    @property
    def jobs(self) -> Mapping[Key, Iterable[Body]]: ...

    @property
    def pods(self) -> Mapping[Key, Iterable[Body]]: ...


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class LiveSelection:
    """The live runs for one list query (IndexedFlowRuns._select_live)."""

    live: dict[str, tuple[RunRecord, Body]]  # every live run, by uid
    unfiltered: list[RunRecord]  # matching the query but its status: the counts
    candidates: list[RunRecord]  # matching all of it, on the page's side, newest first
    ascending: list[tuple[datetime, str]]  # the candidates' keys, oldest first

    def above(self, boundary: tuple[datetime, str] | None) -> int:
        """How many candidates are not older than `boundary`, the key of the last row read
        from the store (None: all). The run at the boundary itself counts: its stored copy
        was that row, and the next page starts after it."""
        if boundary is None:
            return len(self.candidates)
        return len(self.ascending) - bisect.bisect_left(self.ascending, boundary)


# A live run's stored status, equal to its live one, is believed this long (seconds).
STATUS_TTL = 10.0
# More live runs than this are matched against a list query in a worker thread.
OFF_LOOP_AFTER = 200


class FlowRunActions(LogReader, Protocol):
    """What the HTTP API's flow runs ask of the cluster: logs, a cancel, a rerun."""

    async def merge_patch(
        self, resource: Resource, namespace: str, name: str, patch: Body
    ) -> None: ...

    async def create_returning(self, resource: Resource, body: Body) -> Body: ...


def live_record(body: Body) -> RunRecord:
    """The record of a live body; one the API server would not hand out (no uid or
    creation time, as in tests) gets a stand-in uid and the epoch, so it is still listed."""
    try:
        return record_of(body)
    except InvalidRecord:
        meta = dict(body.get("metadata") or {})
        meta.setdefault("uid", f"live:{meta.get('namespace')}/{meta.get('name')}")
        meta.setdefault("creationTimestamp", EPOCH.isoformat())
        return record_of({**body, "metadata": meta})


def _contains(value: str | None, text: str) -> bool:
    return text.casefold() in (value or "").casefold()


def matches(record: RunRecord, query: RunQuery, *, status: bool = True) -> bool:
    """The store's query semantics (history.sql) on a record in memory; `logContains` is
    the store's to answer (a live run's logs are in its pods)."""
    if query.log_contains:
        return False
    searched = (record.name, record.flow_name, record.configuration, record.run_type,
                record.status)  # fmt: skip
    if query.text and not any(_contains(v, query.text) for v in searched):
        return False
    if query.name and not (
        _contains(record.name, query.name) or _contains(record.flow_name, query.name)
    ):
        return False
    if query.configuration and not _contains(record.configuration, query.configuration):
        return False
    exact = (
        (record.run_type, query.run_type),
        (record.status, query.status if status else None),
        (record.flow_name, query.flow),
        (record.namespace, query.namespace),
        (record.level, query.level),
    )
    if any(wanted is not None and value != wanted for value, wanted in exact):
        return False
    if query.namespaces is not None and record.namespace not in query.namespaces:
        return False
    if query.since is not None and record.sort_time < query.since:
        return False
    return query.until is None or record.sort_time < query.until


def _key(record: RunRecord) -> tuple[datetime, str]:
    return (record.sort_time, record.uid)


class IndexedFlowRuns:
    """FlowRunBackend over kopf's FlowRun index ({(ns, name): [body]}) and the run store."""

    def __init__(
        self,
        runs: Mapping[Key, Iterable[Body]],
        kube: FlowRunActions,
        store: RunStore | None = None,
        retention: PrunePolicy | None = None,
        logs: LogReader | None = None,
        children: ChildViews | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.runs = runs
        self.clock = clock
        # The operator's watches of the runs' Jobs and pods: a log is streamed only from
        # the pod the task made (objects/ownership.py). None: not checked (a test's fake).
        self.children = children
        self.kube = kube
        # The operator's own log reader (kube.PodLogs: a pool apart from the reconcilers',
        # handlers/http.py); a test's fake `kube` reads logs too.
        self.pod_logs: LogReader = logs if logs is not None else kube
        self.store: RunStore = store if store is not None else NullRunStore()
        self._retention = retention if retention is not None else PrunePolicy()
        # each live body's record, kept while its resourceVersion stands: a list reads
        # every live run, and building a record is ~0.2 ms (bench/loop.py)
        self._records: dict[Key, tuple[Body, str, RunRecord]] = {}
        # the stored status of live runs: uid -> (resourceVersion, status, when asked)
        self._statuses: dict[str, tuple[int, str, float]] = {}
        self.monotonic = monotonic

    @property
    def retention(self) -> PrunePolicy:
        return self._retention

    def _bodies(self) -> Iterable[Body]:
        for items in list(self.runs.values()):
            yield from items

    def _live_records(
        self, snapshot: Iterable[tuple[Key, Iterable[Body]]]
    ) -> dict[str, tuple[RunRecord, Body]]:
        """Every live run's record by uid, rebuilt only for the bodies that changed."""
        kept: dict[Key, tuple[Body, str, RunRecord]] = {}
        live: dict[str, tuple[RunRecord, Body]] = {}
        for key, items in snapshot:
            body = next(iter(items), None)
            if body is None:
                continue
            version = str((body.get("metadata") or {}).get("resourceVersion") or "")
            cached = self._records.get(key)
            if cached is not None and (cached[0] is body or (version and cached[1] == version)):
                record = cached[2]
            else:
                record = live_record(body)
            kept[key] = (body, version, record)
            live[record.uid] = (record, body)
        self._records = kept
        return live

    def _select_live(
        self,
        snapshot: Iterable[tuple[Key, Iterable[Body]]],
        query: RunQuery,
        after: Cursor | None,
    ) -> LiveSelection:
        """The live runs by uid; those matching the query but its status (for the counts);
        those on this page's side of the cursor matching all of it, newest first."""
        live = self._live_records(snapshot)
        unfiltered = [r for r, _ in live.values() if matches(r, query, status=False)]
        end = None if after is None else (after.sort_time, after.uid)
        candidates = [r for r in unfiltered if matches(r, query) and (end is None or _key(r) < end)]
        candidates.sort(key=_key, reverse=True)
        return LiveSelection(live, unfiltered, candidates, [_key(r) for r in reversed(candidates)])

    def _live(self, namespace: str, name: str) -> Body | None:
        return next(iter(self.runs.get((namespace, name), ())), None)

    def _body(self, namespace: str, name: str) -> Body:
        body = self._live(namespace, name)
        if body is None:
            raise FlowRunError(404, "NotFound", f"no flow run {namespace}/{name}")
        return body

    def list(self, **filters: str) -> list[dict[str, Any]]:
        """The live runs only (the index), matching the seed's filters."""
        return select((row_of(b) for b in self._bodies()), filters)

    def using_workflow(self, namespace: str, workflow: str) -> Sequence[dict[str, Any]]:
        """The live runs (the index) in `namespace` whose workflowRef, or whose Flow
        version's, names `workflow` (views/workflow_page.py)."""
        return runs_using(self._bodies(), namespace, workflow)

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A live run only."""
        body = self._live(namespace, name)
        return row_of(body).dump() if body is not None else None

    async def namespaces(self) -> set[str]:
        """The namespaces holding runs, live or stored (the store down: the live ones)."""
        live = {str(k[0]) for k in list(self.runs)}
        try:
            return live | set(await self.store.namespaces())
        except StoreUnavailable:
            return live

    async def page(
        self,
        filters: Mapping[str, str],
        *,
        limit: int | None = None,
        cursor: str | None = None,
        namespaces: Collection[str] | None = None,
    ) -> Page[dict[str, Any]]:
        """One page of runs, live and stored, newest first (see the module's docstring)."""
        query = run_query(filters)
        if namespaces is not None:
            query = query.model_copy(update={"namespaces": tuple(sorted(namespaces))})
        size = page_limit(limit)
        try:
            after = Cursor.decode(cursor) if cursor else None
        except InvalidCursor as e:
            raise BadCursor(str(e)) from None
        # The index's entries now, on the loop (the watch changes it there). With many live
        # runs, matching them and making the page's rows is done in a worker thread, so no
        # request holds the loop for long (bench/loop.py): the interpreter hands the loop
        # the GIL back every switch interval (5 ms).
        snapshot = list(self.runs.items())
        off_loop = len(snapshot) > OFF_LOOP_AFTER
        if off_loop:
            sel = await asyncio.to_thread(self._select_live, snapshot, query, after)
        else:
            sel = self._select_live(snapshot, query, after)
        try:
            stored, boundary, kept = await self._stored_page(query, size, cursor, sel)
            statuses = await self._stored_statuses(sel.unfiltered)
        except InvalidCursor as e:
            raise BadCursor(str(e)) from None
        except StoreUnavailable:
            stored, boundary, kept, statuses = None, None, [], None
        args = (sel, size, stored, boundary, kept, statuses or {})
        if off_loop:
            return await asyncio.to_thread(self._assemble, query, *args)
        return self._assemble(query, *args)

    async def _stored_statuses(self, records: Iterable[RunRecord]) -> dict[str, str]:
        """The stored status of each of these live runs (those stored), for the counts.

        Asking the store for thousands of uids on every list cost ~45 ms of the loop in
        SQLAlchemy's compiling of the IN list alone (bench/loop.py). So an answer is kept
        while it cannot change: the stored status equals the live one and the live object
        is the same version (the recorder writes only when it changes), at most
        STATUS_TTL seconds; the others are asked again."""
        now = self.monotonic()
        wanted = {r.uid: r for r in records}
        known: dict[str, str] = {}
        ask: list[str] = []
        for uid, record in wanted.items():
            cached = self._statuses.get(uid)
            if (
                cached is not None
                and cached[0] == record.resource_version
                and cached[1] == record.status
                and now - cached[2] < STATUS_TTL
            ):
                known[uid] = cached[1]
            else:
                ask.append(uid)
        answered = await self.store.statuses(ask) if ask else {}
        kept = {u: c for u, c in self._statuses.items() if u in wanted and u not in answered}
        for uid, status in answered.items():
            kept[uid] = (wanted[uid].resource_version, status, now)
        self._statuses = kept
        return known | answered

    @staticmethod
    def _assemble(
        query: RunQuery,
        sel: LiveSelection,
        size: int,
        stored: StorePage | None,
        boundary: tuple[datetime, str] | None,
        kept: builtins.list[RunRecord],
        statuses: Mapping[str, str],
    ) -> Page[dict[str, Any]]:
        """The merged page: the live runs above the store's boundary and its rows, newest
        first; counts from the store's, corrected by the live runs' own statuses."""
        above = sel.candidates[: sel.above(boundary)]
        merged = sorted([*above[: size + 1], *kept], key=_key, reverse=True)
        taken = merged[:size]
        nxt: str | None = None
        if len(merged) > size:
            nxt = Cursor(*_key(taken[-1])).encode()
        elif boundary is not None:
            nxt = Cursor(*boundary).encode()
        counts = Counter(stored.counts if stored is not None else {})
        for record in sel.unfiltered:
            counts[record.status] += 1
            before = statuses.get(record.uid)
            if before is not None:
                counts[before] -= 1
        by_status = {s: n for s, n in sorted(counts.items()) if n > 0}
        rows = []
        for record in taken:
            found = sel.live.get(record.uid)
            row = row_of(found[1]) if found is not None else record_row(record)
            rows.append(row.model_copy(update={"tasks": None, "history": None}).dump())
        return Page(
            items=rows,
            next=nxt,
            total=counts_total(by_status, query.status),
            counts=by_status,
        )

    async def _stored_page(
        self,
        query: RunQuery,
        size: int,
        cursor: str | None,
        sel: LiveSelection,
    ) -> tuple[StorePage, tuple[datetime, str] | None, builtins.list[RunRecord]]:
        """The store's rows for one merged page: its first page (with the counts), the key
        it ended at (None: the store has no more), and its rows of runs not live (a live
        run is shown as it is live). A stored row of a live run takes a place it cannot fill,
        so the store is read on past it, only as far as the page still needs: reading a
        page of `size + live runs` rows instead decoded up to 1000 rows per request."""
        first = page = await self.store.list_runs(query, size, cursor)
        kept: builtins.list[RunRecord] = []
        while True:
            kept += [r for r in page.items if r.uid not in sel.live]
            if page.next_cursor is None:
                return first, None, kept
            last = Cursor.decode(page.next_cursor)
            boundary = (last.sort_time, last.uid)
            have = len(kept) + sel.above(boundary)
            if have >= size:
                return first, boundary, kept
            page = await self.store.list_runs(query, size - have, page.next_cursor)

    async def detail(self, namespace: str, name: str) -> dict[str, Any] | None:
        """One run with its tasks: live, else the store's newest of that name."""
        body = self._live(namespace, name)
        if body is not None:
            return self._with_attempts(namespace, name, body).dump()
        record = await self._stored(namespace, name)
        return record_row(record).dump() if record is not None else None

    def _with_attempts(self, namespace: str, name: str, body: Body) -> FlowRunRow:
        """The live run's row, each task with its attempts from the watched pods."""
        row = row_of(body)
        if self.children is None or not row.tasks:
            return row
        key = (namespace, name)
        found = run_attempts(body, self.children.pods.get(key, ()),
                             self.children.jobs.get(key, ()), self.clock())  # fmt: skip
        tasks = [t.model_copy(update={"attemptDetail": found.get(t.name)}) for t in row.tasks]
        return row.model_copy(update={"tasks": tasks})

    async def _stored(self, namespace: str, name: str) -> RunRecord | None:
        try:
            return await self.store.get_run(f"{namespace}/{name}")
        except StoreUnavailable as e:
            raise FlowRunError(503, "HistoryUnavailable", str(e)) from None

    def _whose(self, namespace: str, name: str, task: str, job: str | None, pod: str) -> Whose:
        if self.children is None:
            return Whose.TASKS
        key = (namespace, name)
        return task_pod(self.children.pods.get(key, ()), self.children.jobs.get(key, ()),
                        run=name, task=task, job=job, pod=pod)  # fmt: skip

    async def logs(
        self,
        namespace: str,
        name: str,
        task: str,
        *,
        follow: bool,
        tail_lines: int | None,
        attempt: int | None = None,
        limit_bytes: int | None = None,
    ) -> AsyncIterator[bytes]:
        body = self._live(namespace, name)
        record = live_record(body) if body is not None else await self._stored(namespace, name)
        if record is None:
            raise FlowRunError(404, "NotFound", f"no flow run {namespace}/{name}")
        line = next((t for t in record.tasks if t.name == task), None)
        if line is None:
            raise FlowRunError(404, "NotFound", f"flow run {namespace}/{name} has no task {task}")
        latest = attempt is None or attempt >= max(line.attempts, 1)
        live = body is not None and latest and line.pod_name is not None
        whose = Whose.GONE
        if live and line.pod_name is not None:
            whose = self._whose(namespace, name, task, line.job_name, line.pod_name)
        if whose is Whose.FOREIGN:
            raise FlowRunError(
                403,
                "NotTheTasksPod",
                f"pod {line.pod_name} is not the one task {task} of {namespace}/{name} made "
                f"(its labels or owner are not the task's Job {line.job_name}): its log is "
                "not served",
            )
        if whose is Whose.TASKS and line.pod_name is not None:
            try:
                return await self.pod_logs.pod_log(
                    namespace,
                    line.pod_name,
                    follow=follow,
                    tail_lines=tail_lines,
                    limit_bytes=limit_bytes,
                )
            except NotFound:
                pass  # the pod is gone: the store's capture, below
            except KubeError as e:
                raise FlowRunError(502, "LogsUnavailable", e.message) from None
        try:
            log = await self.store.get_log(record.uid, task, attempt)
        except StoreUnavailable as e:
            raise FlowRunError(503, "HistoryUnavailable", str(e)) from None
        if log is None:
            if body is not None and line.pod_name is None and attempt is None:
                raise FlowRunError(409, "Conflict", f"task {task} has no pod yet")
            which = f"attempt {attempt}" if attempt is not None else "a log"
            raise FlowRunError(404, "LogsUnavailable",
                               f"task {task} of {namespace}/{name}: no pod and no stored "
                               f"{which}")  # fmt: skip
        return StoredLog(log, tail_lines, limit_bytes)

    async def prune(self, policy: PrunePolicy, *, dry_run: bool) -> PruneReport:
        try:
            return await self.store.prune(policy, dry_run=dry_run)
        except StoreUnavailable as e:
            raise FlowRunError(503, "HistoryUnavailable", str(e)) from None
        except HistoryError as e:
            raise FlowRunError(500, "PruneFailed", str(e)) from None

    async def colors(
        self, namespace: str, name: str, since: datetime, until: datetime
    ) -> ColorHistory:
        try:
            return await self.store.color_history(namespace, name, since, until)
        except StoreUnavailable as e:
            raise FlowRunError(503, "HistoryUnavailable", str(e)) from None
        except HistoryError as e:
            raise FlowRunError(500, "HistoryFailed", str(e)) from None

    async def audit(
        self, query: AuditQuery, *, limit: int | None = None, cursor: str | None = None
    ) -> AuditPage:
        try:
            return await self.store.list_audit(query, limit, cursor)
        except InvalidCursor as e:
            raise FlowRunError(400, "BadRequest", f"continue: {e}") from None
        except StoreUnavailable as e:
            raise FlowRunError(503, "HistoryUnavailable", str(e)) from None
        except HistoryError as e:
            raise FlowRunError(500, "HistoryFailed", str(e)) from None

    async def cancel(self, namespace: str, name: str) -> dict[str, Any]:
        body = self._body(namespace, name)
        row = row_of(body)
        if row.status in {p.value for p in TERMINAL}:
            raise FlowRunError(409, "Conflict", f"flow run {name} already finished ({row.status})")
        try:
            await self.kube.merge_patch(FLOWRUNS, namespace, name, {"spec": {"cancel": True}})
        except KubeError as e:
            raise FlowRunError(e.status or 502, "CancelRefused", e.message) from None
        note = "cancel requested"
        return row.model_copy(update={"message": note}).dump()

    async def rerun(self, namespace: str, name: str, *, latest: bool = False) -> dict[str, Any]:
        body = self._live(namespace, name)
        if body is None:
            record = await self._stored(namespace, name)
            if record is None:
                raise FlowRunError(404, "NotFound", f"no flow run {namespace}/{name}")
            raise FlowRunError(409, "Conflict", f"flow run {namespace}/{name} is in the history "
                               "only (its spec left with it): start its flow again")  # fmt: skip
        try:
            new = rerun_body(body, latest=latest)
        except ValueError as e:
            raise FlowRunError(
                409, "Conflict", f"flow run {name} has no latest version: {e}"
            ) from None
        try:
            created = await self.kube.create_returning(FLOWRUNS, new)
        except KubeError as e:
            raise FlowRunError(e.status or 502, "RerunRefused", e.message) from None
        return row_of(created).dump()
