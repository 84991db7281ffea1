"""The run store's port: what the operator, the API and flowctl may ask of run history.

Like Argo's `WorkflowArchive`, one small protocol with a null implementation
(`NullRunStore`) for when history is off, so callers never ask whether a database is
configured. The values are frozen pydantic models that serialise in camelCase (the record
is stored as that JSON); the errors are the project's own, so no caller sees a driver's.

Semantics every implementation keeps:
- `upsert_run` is idempotent, keyed by uid; a record older than the stored one (fewer
  phase transitions, or as many from an older resourceVersion) never overwrites it.
- `list_runs` is newest first by `sortTime` (the run's start, or its creation while it
  waits), ties broken by uid, and pages by an opaque cursor, so a page never repeats or
  skips a run however many share a start time.
- A log is capped per attempt (`DEFAULT_LOG_CAP`, 2 MiB): the tail is kept, since that is
  where a failure explains itself, and the cut is marked (`truncated`, the original size).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from flow_operator.models.flowrun import Level, Phase, RunType

DEFAULT_LOG_CAP = 2 * 1024 * 1024
DEFAULT_PAGE = 50
MAX_PAGE = 1000
LOG_LOST_POD_DELETED = "log lost: pod deleted before capture"


class HistoryError(Exception):
    """Anything the run store refuses or cannot do."""


class StoreUnavailable(HistoryError):
    """The database cannot be reached or did not answer; the caller may retry later."""


class InvalidCursor(HistoryError, ValueError):
    """A `continue` token that this store did not hand out (or that was altered)."""


class InvalidRecord(HistoryError, ValueError):
    """A FlowRun body that cannot be recorded (no uid, name, namespace or creation time)."""


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("a time needs a timezone")
    return value.astimezone(UTC)


# Every time in history is aware and in UTC, whatever offset it came with.
Time = Annotated[datetime, AfterValidator(_utc)]


class Value(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid"
    )

    def dump(self) -> dict[str, object]:
        """The JSON form: camelCase, every field (null where unknown)."""
        return self.model_dump(by_alias=True, mode="json")


class TaskRecord(Value):
    """One task's line as it was last recorded."""

    name: str
    version: str | None = None
    depends_on: tuple[str, ...] = ()
    status: str
    reason: str | None = None
    message: str | None = None
    start_time: Time | None = None
    end_time: Time | None = None
    runtime: str | None = None
    job_name: str | None = None
    pod_name: str | None = None
    child_run: str | None = None
    attempts: int = 0


class TransitionRecord(Value):
    phase: str
    time: Time | None = None
    reason: str = ""
    message: str = ""


class RunRecord(Value):
    """A FlowRun as the history keeps it: the seed's columns, its tasks and its history."""

    uid: Annotated[str, Field(min_length=1, max_length=64)]
    namespace: Annotated[str, Field(min_length=1, max_length=253)]
    name: Annotated[str, Field(min_length=1, max_length=253)]
    flow_name: str
    version: str | None = None
    level: str | None = None
    run_type: str | None = None
    configuration: str | None = None
    flow_type: str | None = None
    parent_run: str | None = None
    workflow: str | None = None
    status: str
    reason: str | None = None
    message: str | None = None
    created: Time
    start_time: Time | None = None
    end_time: Time | None = None
    duration: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    tasks: tuple[TaskRecord, ...] = ()
    history: tuple[TransitionRecord, ...] = ()
    generation: int | None = None
    observed_generation: int | None = None
    # metadata.resourceVersion when it is a number (it is, from etcd), else 0.
    resource_version: int = 0

    @property
    def sort_time(self) -> datetime:
        """The list's order: when the run started, or was created while it waits."""
        return self.start_time or self.created

    @property
    def revision(self) -> tuple[int, int]:
        """Later is larger: phase transitions only grow, then the object's resourceVersion."""
        return (len(self.history), self.resource_version)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    p.value for p in (Phase.COMPLETED, Phase.FAILED, Phase.CRASHED, Phase.CANCELLED)
)
_CANONICAL = {v.value.casefold(): v.value for e in (Phase, RunType, Level) for v in e}


class RunQuery(Value):
    """Which runs to list. Text fields match a case-insensitive substring; run type,
    status and level match exactly (in any case); flow and namespace match exactly;
    `since <= sortTime < until`; `logContains` matches a substring of any task log."""

    text: str | None = None  # any of name, flow, configuration, run type, status
    name: str | None = None
    configuration: str | None = None
    run_type: str | None = None
    status: str | None = None
    flow: str | None = None
    namespace: str | None = None
    level: str | None = None
    since: Time | None = None
    until: Time | None = None
    log_contains: str | None = None
    # Only these namespaces (what the caller may list); None: every one.
    namespaces: tuple[str, ...] | None = None

    @field_validator("run_type", "status", "level")
    @classmethod
    def _canonical(cls, value: str | None) -> str | None:
        return None if value is None else _CANONICAL.get(value.casefold(), value)


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last run's sort time and uid (keyset pagination)."""

    sort_time: datetime
    uid: str

    def encode(self) -> str:
        raw = json.dumps([self.sort_time.astimezone(UTC).isoformat(), self.uid])
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            when, uid = json.loads(raw)
            sort_time = datetime.fromisoformat(when)
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
            raise InvalidCursor(f"not a continue token of this list: {token[:40]!r}") from exc
        if not isinstance(uid, str) or sort_time.tzinfo is None:
            raise InvalidCursor(f"not a continue token of this list: {token[:40]!r}")
        return cls(sort_time, uid)


class Page(Value):
    """One page of runs, newest first; `counts` are per status over the query without its
    status filter (what a dashboard's status tabs show), `total` matches the whole query."""

    items: tuple[RunRecord, ...]
    next_cursor: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    total: int = 0
    # Rows of this page that could not be read (logged with their reason) and were left out.
    skipped: int = 0


class LogRecord(Value):
    """One attempt's log as captured, or why there is none."""

    uid: str
    task: str
    attempt: int
    text: str = ""
    truncated: bool = False
    size: int = 0  # bytes of the log as it was before any cut
    lost_reason: str | None = None
    captured_at: Time


class PrunePolicy(Value):
    """What the store keeps: runs younger than `maxAge` (by end time, else sort time) and,
    per namespace, flow and status, the newest `keepPerFlowStatus`; color transitions and
    audit records younger than `maxAge`, and each Workflow's newest transition however old
    (time in color stays computable). `None` keeps all."""

    max_age: timedelta | None = None
    keep_per_flow_status: Annotated[int, Field(ge=0)] | None = None
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 500


class PruneReport(Value):
    """What a prune deleted, or with `dryRun` would delete (then `batches` is 0). `total`
    counts runs; the color transitions and audit records past `maxAge` are counted apart."""

    dry_run: bool
    by_age: int = 0
    by_count: int = 0
    color_transitions: int = 0
    audit_records: int = 0
    batches: int = 0
    # Up to EXAMPLES runs of those, as "namespace/name (uid)".
    examples: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return self.by_age + self.by_count


EXAMPLES = 20


class ColorTransition(Value):
    """A Workflow's color changed: at `time`, from `fromColor` (None: not known, the first
    color the operator saw) to `toColor`, `reason` being its Ready condition's reason.
    Keyed by (uid, time, toColor): recording one twice stores it once."""

    uid: Annotated[str, Field(min_length=1, max_length=64)]
    namespace: Annotated[str, Field(min_length=1, max_length=253)]
    name: Annotated[str, Field(min_length=1, max_length=253)]
    time: Time
    from_color: str | None = None
    to_color: Annotated[str, Field(min_length=1, max_length=16)]
    reason: str = ""

    @property
    def key(self) -> tuple[str, datetime, str]:
        return (self.uid, self.time, self.to_color)


class ColorHistory(Value):
    """A Workflow's transitions in a window, oldest first, and the last one before it (the
    color the window starts in; None when none is stored)."""

    before: ColorTransition | None = None
    transitions: tuple[ColorTransition, ...] = ()


# The transitions a color read returns at most (a window holding more is cut, newest kept).
MAX_COLOR_TRANSITIONS = 10_000


AUDIT_RESULTS = ("done", "refused", "failed")


class AuditRecord(Value):
    """One audited API action (api/audit.py): who, what, on which object, when, how it
    ended. `id` is made once per action, so writing it again stores nothing twice."""

    id: Annotated[str, Field(min_length=1, max_length=64)]
    time: Time
    user: Annotated[str, Field(min_length=1)]
    groups: tuple[str, ...] = ()
    action: Annotated[str, Field(min_length=1, max_length=64)]
    namespace: str = ""
    kind: str = ""
    name: str = ""
    result: Annotated[str, Field(pattern="^(done|refused|failed)$")]
    status: int
    created: str | None = None  # the run the action made
    detail: str = ""


class AuditQuery(Value):
    """Which audit records to list: each field matches exactly; None: any."""

    user: str | None = None
    namespace: str | None = None
    action: str | None = None


class AuditPage(Value):
    """One page of audit records, newest first."""

    items: tuple[AuditRecord, ...]
    next_cursor: str | None = None


def cap_log(text: str, cap: int = DEFAULT_LOG_CAP) -> tuple[str, bool, int]:
    """The last `cap` bytes of a log (cut at a character boundary), whether it was cut,
    and its size before."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= cap:
        return text, False, len(data)
    return data[len(data) - cap :].decode("utf-8", errors="ignore"), True, len(data)


def page_limit(limit: int | None) -> int:
    """A page size within bounds (the default when absent)."""
    if limit is None:
        return DEFAULT_PAGE
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    return min(limit, MAX_PAGE)


class RunStore(Protocol):
    async def upsert_run(self, record: RunRecord) -> bool:
        """Store the record unless a later one is stored; True when it was written."""
        ...

    async def get_run(self, ref: str) -> RunRecord | None:
        """A run by uid, or by "namespace/name" (the newest run of that name)."""
        ...

    async def list_runs(
        self, query: RunQuery, limit: int | None = None, cursor: str | None = None
    ) -> Page: ...

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
        """Store an attempt's log (capped; `truncated` if the caller cut it already) or,
        with `lost_reason`, why it has none. A captured log is never replaced by a loss."""
        ...

    async def get_log(self, uid: str, task: str, attempt: int | None = None) -> LogRecord | None:
        """An attempt's log; the latest attempt's when `attempt` is None."""
        ...

    async def statuses(self, uids: Collection[str]) -> dict[str, str]:
        """The stored status of each of these runs that is stored (one read)."""
        ...

    async def namespaces(self) -> list[str]:
        """The namespaces that hold stored runs, sorted."""
        ...

    async def prune(self, policy: PrunePolicy, *, dry_run: bool = False) -> PruneReport: ...

    async def record_colors(self, transitions: Sequence[ColorTransition]) -> int:
        """Store these Workflow color transitions (one transaction); those stored already
        (same uid, time and color) are left as they are. The number newly stored."""
        ...

    async def color_history(
        self, namespace: str, name: str, since: datetime, until: datetime
    ) -> ColorHistory:
        """The Workflow's transitions with `since <= time < until` (every uid that had the
        name), and the last one before `since`."""
        ...

    async def record_audit(self, records: Sequence[AuditRecord]) -> int:
        """Store these audit records (one transaction); one stored already (same id) is
        left as it is. The number newly stored."""
        ...

    async def list_audit(
        self, query: AuditQuery, limit: int | None = None, cursor: str | None = None
    ) -> AuditPage:
        """Audit records newest first (time, then id), one page; InvalidCursor."""
        ...

    async def close(self) -> None: ...


class NullRunStore:
    """History off: records go nowhere, nothing is found, nothing is pruned."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.clock = clock

    async def upsert_run(self, record: RunRecord) -> bool:
        return False

    async def get_run(self, ref: str) -> RunRecord | None:
        return None

    async def list_runs(
        self, query: RunQuery, limit: int | None = None, cursor: str | None = None
    ) -> Page:
        page_limit(limit)
        if cursor is not None:
            Cursor.decode(cursor)
        return Page(items=())

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
        return LogRecord(
            uid=uid,
            task=task,
            attempt=attempt,
            lost_reason=lost_reason or "history is off",
            captured_at=self.clock(),
        )

    async def get_log(self, uid: str, task: str, attempt: int | None = None) -> LogRecord | None:
        return None

    async def statuses(self, uids: Collection[str]) -> dict[str, str]:
        return {}

    async def namespaces(self) -> list[str]:
        return []

    async def prune(self, policy: PrunePolicy, *, dry_run: bool = False) -> PruneReport:
        return PruneReport(dry_run=dry_run)

    async def record_colors(self, transitions: Sequence[ColorTransition]) -> int:
        return 0

    async def color_history(
        self, namespace: str, name: str, since: datetime, until: datetime
    ) -> ColorHistory:
        return ColorHistory()

    async def record_audit(self, records: Sequence[AuditRecord]) -> int:
        return 0

    async def list_audit(
        self, query: AuditQuery, limit: int | None = None, cursor: str | None = None
    ) -> AuditPage:
        page_limit(limit)
        if cursor is not None:
            Cursor.decode(cursor)
        return AuditPage(items=())

    async def close(self) -> None:
        return None


def counts_total(counts: Mapping[str, int], status: str | None) -> int:
    """The runs a query matches, from its per-status counts."""
    return counts.get(status, 0) if status is not None else sum(counts.values())
