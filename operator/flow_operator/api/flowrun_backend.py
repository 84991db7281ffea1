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

from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from flow_operator.api.flowruns import (
    FlowRunError,
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
    MAX_PAGE,
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
from flow_operator.models.flowrun import TERMINAL
from flow_operator.objects.body import Body
from flow_operator.objects.ownership import Whose, task_pod
from flow_operator.ports import FLOWRUNS, LogReader, Resource
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
    ) -> None:
        self.runs = runs
        # The operator's watches of the runs' Jobs and pods: a log is streamed only from
        # the pod the task made (objects/ownership.py). None: not checked (a test's fake).
        self.children = children
        self.kube = kube
        # The operator's own log reader (kube.PodLogs: a pool apart from the reconcilers',
        # handlers/http.py); a test's fake `kube` reads logs too.
        self.pod_logs: LogReader = logs if logs is not None else kube
        self.store: RunStore = store if store is not None else NullRunStore()
        self._retention = retention if retention is not None else PrunePolicy()

    @property
    def retention(self) -> PrunePolicy:
        return self._retention

    def _bodies(self) -> Iterable[Body]:
        for items in list(self.runs.values()):
            yield from items

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
        live: dict[str, tuple[RunRecord, Body]] = {}
        for body in self._bodies():
            record = live_record(body)
            live[record.uid] = (record, body)
        unfiltered = [r for r, _ in live.values() if matches(r, query, status=False)]
        try:
            stored = await self.store.list_runs(query, min(size + len(live), MAX_PAGE), cursor)
            statuses = await self.store.statuses([r.uid for r in unfiltered])
        except InvalidCursor as e:
            raise BadCursor(str(e)) from None
        except StoreUnavailable:
            stored, statuses = None, None
        candidates = [
            r
            for r in unfiltered
            if matches(r, query) and (after is None or _key(r) < (after.sort_time, after.uid))
        ]
        boundary: tuple[datetime, str] | None = None
        if stored is not None:
            if stored.next_cursor is not None:
                last = Cursor.decode(stored.next_cursor)
                boundary = (last.sort_time, last.uid)
                candidates = [r for r in candidates if _key(r) > boundary]
            candidates += [r for r in stored.items if r.uid not in live]
        candidates.sort(key=_key, reverse=True)
        taken = candidates[:size]
        nxt: str | None = None
        if len(candidates) > size:
            nxt = Cursor(*_key(taken[-1])).encode()
        elif boundary is not None:
            nxt = Cursor(*boundary).encode()
        counts = Counter(stored.counts if stored is not None else {})
        for record in unfiltered:
            counts[record.status] += 1
            before = (statuses or {}).get(record.uid)
            if before is not None:
                counts[before] -= 1
        by_status = {s: n for s, n in sorted(counts.items()) if n > 0}
        rows = []
        for record in taken:
            found = live.get(record.uid)
            row = row_of(found[1]) if found is not None else record_row(record)
            rows.append(row.model_copy(update={"tasks": None, "history": None}).dump())
        return Page(
            items=rows,
            next=nxt,
            total=counts_total(by_status, query.status),
            counts=by_status,
        )

    async def detail(self, namespace: str, name: str) -> dict[str, Any] | None:
        """One run with its tasks: live, else the store's newest of that name."""
        body = self._live(namespace, name)
        if body is not None:
            return row_of(body).dump()
        record = await self._stored(namespace, name)
        return record_row(record).dump() if record is not None else None

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
