"""The flow-run endpoints' port: the `FlowRunBackend` the HTTP layer talks to, its errors.

The operator's backend (api/flowrun_backend.py) reads the FlowRun index merged with the
run store's history, and calls the API server only for logs and actions. The rows
themselves (the seed's Flow Run Status table) are the shared read model in
`flow_operator.views.runs`, re-exported here for the backends that import them from this
module; `record_row` is the same row from a stored record, `run_query` the list's query
parameters as the store's `RunQuery`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from flow_operator.flows.schedule import FLOW_LABEL
from flow_operator.history.retention import parse_duration
from flow_operator.history.store import (
    AuditPage,
    AuditQuery,
    ColorHistory,
    LogRecord,
    PrunePolicy,
    PruneReport,
    RunQuery,
    RunRecord,
)
from flow_operator.objects.times import parse_aware, rfc3339
from flow_operator.views.paging import Page
from flow_operator.views.runs import (
    RERUN_OF,
    RUN_STATES,
    FlowRunRow,
    TaskRow,
    Transition,
    matches,
    rerun_body,
    row_of,
    select,
)

__all__ = [
    "QUERY",
    "RERUN_OF",
    "RUN_STATES",
    "BadQuery",
    "FlowRunBackend",
    "FlowRunError",
    "FlowRunRow",
    "StoredLog",
    "TaskRow",
    "matches",
    "prune_policy",
    "record_row",
    "rerun_body",
    "row_of",
    "run_query",
    "select",
]


class FlowRunError(Exception):
    """An action or a log request the backend refuses, with the HTTP status to answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class BadQuery(ValueError):
    """A list parameter that is not what it takes (the message names it)."""


# The list's query parameters and the RunQuery field each one sets.
QUERY = {
    "search": "text",
    "name": "name",
    "configuration": "configuration",
    "runType": "run_type",
    "status": "status",
    "flow": "flow",
    "namespace": "namespace",
    "level": "level",
    "since": "since",
    "until": "until",
    "logContains": "log_contains",
}
TIMES = ("since", "until")


def run_query(filters: Mapping[str, str]) -> RunQuery:
    """The store's query of the list's parameters (`since`/`until`: RFC 3339 with a zone)."""
    fields: dict[str, Any] = {}
    for param, field in QUERY.items():
        value = filters.get(param)
        if not value:
            continue
        if param in TIMES:
            when = parse_aware(value)
            if when is None:
                raise BadQuery(
                    f"query parameter {param} must be an RFC 3339 time with a zone "
                    f"(e.g. {param}=2026-11-24T09:00:00Z), not {value[:40]!r}"
                )
            fields[field] = when
        else:
            fields[field] = value
    try:
        return RunQuery(**fields)
    except ValidationError as e:
        raise BadQuery(f"the list's query is not valid: {e.errors()[0]['msg']}") from None


def prune_policy(params: Mapping[str, str], default: PrunePolicy) -> PrunePolicy:
    """The policy of a prune request: `maxAge` (`90d`, `12h`, `1d12h`, seconds, or `never`)
    and `keepPerFlowStatus` (a whole number, or `none`), each `default`'s when absent."""
    fields: dict[str, Any] = {}
    age = params.get("maxAge")
    if age:
        try:
            fields["max_age"] = parse_duration(age)
        except ValueError:
            raise BadQuery(
                f"maxAge must be a duration such as 90d, 12h, 1d12h or never, not {age[:40]!r}"
            ) from None
    keep = params.get("keepPerFlowStatus")
    if keep:
        if keep == "none":
            fields["keep_per_flow_status"] = None
        elif keep.isascii() and keep.isdigit() and int(keep) <= 1_000_000:
            fields["keep_per_flow_status"] = int(keep)
        else:
            raise BadQuery(f"keepPerFlowStatus must be a whole number or none, not {keep[:40]!r}")
    return default.model_copy(update=fields)


def _time(value: datetime | None) -> str | None:
    return rfc3339(value) if value is not None else None


def record_row(record: RunRecord) -> FlowRunRow:
    """A stored run as the seed's table row, with its tasks (as `row_of` shows a live one)."""
    return FlowRunRow(
        namespace=record.namespace,
        name=record.name,
        flowName=record.flow_name,
        flow=record.labels.get(FLOW_LABEL),  # (a run applied by hand with flowRef: unknown)
        version=record.version,
        level=record.level,
        runType=record.run_type,
        configuration=record.configuration,
        flowType=record.flow_type,
        startTime=_time(record.start_time),
        endTime=_time(record.end_time),
        duration=record.duration,
        status=record.status,
        message=record.message,
        reason=record.reason,
        tasks=[
            TaskRow(
                name=t.name,
                version=t.version,
                status=t.status,
                startTime=_time(t.start_time),
                endTime=_time(t.end_time),
                runtime=t.runtime,
                message=t.message,
                pod=t.pod_name,
                dependsOn=list(t.depends_on) or None,
                attempts=t.attempts or None,
                reason=t.reason,
                childRun=t.child_run,
            )
            for t in record.tasks
        ],
        history=[
            Transition(
                phase=h.phase,
                time=_time(h.time) or "",
                reason=h.reason or None,
                message=h.message or None,
            )
            for h in record.history
        ]
        or None,
    )


class StoredLog:
    """A task attempt's log as the store captured it (the pod is gone): its text, tailed to
    `tail_lines`, then cut to its first `limit_bytes` (as `pods/log` does: the tail first,
    then the byte limit, which may end mid-line), as one chunk; `log` says which attempt,
    its size and whether it was cut."""

    def __init__(
        self, log: LogRecord, tail_lines: int | None = None, limit_bytes: int | None = None
    ) -> None:
        self.log = log
        text = log.text
        if tail_lines is not None:
            text = "".join(text.splitlines(keepends=True)[-tail_lines:])
        data = text.encode()
        if limit_bytes is not None:
            data = data[:limit_bytes]
        self._chunks = [data] if data else []

    def __aiter__(self) -> StoredLog:
        return self

    async def __anext__(self) -> bytes:
        if not self._chunks:
            raise StopAsyncIteration
        return self._chunks.pop(0)

    async def aclose(self) -> None:
        self._chunks.clear()

    def headers(self) -> dict[str, str]:
        """What the answer says of it: from the history, which attempt, cut or not."""
        out = {
            "X-Log-Source": "history",
            "X-Log-Attempt": str(self.log.attempt),
            "X-Log-Truncated": "true" if self.log.truncated else "false",
            "X-Log-Size": str(self.log.size),
        }
        if self.log.lost_reason is not None:
            out["X-Log-Lost"] = self.log.lost_reason
        return out


class FlowRunBackend(Protocol):
    def list(self, **filters: str) -> list[dict[str, Any]]:
        """The live runs (the dashboard's namespaces, `me`)."""
        ...

    def get(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def namespaces(self) -> set[str]:
        """The namespaces holding runs, live or stored."""
        ...

    async def page(
        self,
        filters: Mapping[str, str],
        *,
        limit: int | None = None,
        cursor: str | None = None,
        namespaces: Collection[str] | None = None,
    ) -> Page[dict[str, Any]]:
        """One page of runs, live and stored, newest first; BadCursor, BadQuery."""
        ...

    async def detail(self, namespace: str, name: str) -> dict[str, Any] | None:
        """One run with its tasks, live or from the history."""
        ...

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
    ) -> AsyncIterator[bytes]: ...

    @property
    def retention(self) -> PrunePolicy:
        """The store's policy (--history-retention, --history-keep-per-flow-status): what a
        prune request applies where it does not say."""
        ...

    async def prune(self, policy: PrunePolicy, *, dry_run: bool) -> PruneReport: ...

    async def colors(
        self, namespace: str, name: str, since: datetime, until: datetime
    ) -> ColorHistory:
        """A Workflow's stored color transitions over the window (FlowRunError 503 when
        the store cannot be read)."""
        ...

    async def audit(
        self, query: AuditQuery, *, limit: int | None = None, cursor: str | None = None
    ) -> AuditPage:
        """The API's audit, newest first, one page (FlowRunError 503 when the store cannot
        be read, 400 for a cursor not of this list)."""
        ...

    async def cancel(self, namespace: str, name: str) -> dict[str, Any]: ...

    async def rerun(self, namespace: str, name: str, *, latest: bool = False) -> dict[str, Any]:
        """A new run of the old one's spec (its Flow version; `latest`: the current one)."""
        ...

    def using_workflow(self, namespace: str, workflow: str) -> Sequence[dict[str, Any]]:
        """The live runs in `namespace` that use the Workflow `workflow` (the Workflow
        page), newest first."""
        ...
