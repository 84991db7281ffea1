"""An in-memory RunStore for the operator's history tests: `down` makes every call
StoreUnavailable (the database gone), `runs`, `logs` and `colors` show what was stored."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Sequence
from datetime import datetime

from flow_operator.errors import NotFound
from flow_operator.history.store import (
    AuditPage,
    AuditQuery,
    AuditRecord,
    ColorHistory,
    ColorTransition,
    LogRecord,
    Page,
    PrunePolicy,
    PruneReport,
    RunQuery,
    RunRecord,
    StoreUnavailable,
    cap_log,
)
from tests.unit.fake_kube import FakeKube
from tests.unit.flowrun_objects import T0


class MemoryStore:
    def __init__(self, clock: Callable[[], datetime] = lambda: T0) -> None:
        self.down = False
        self.runs: dict[str, RunRecord] = {}
        self.logs: dict[tuple[str, str, int], LogRecord] = {}
        self.upserts = 0
        self.clock = clock
        self.colors: dict[tuple[str, datetime, str], ColorTransition] = {}
        self.audit: dict[str, AuditRecord] = {}

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("history database: connection refused")

    async def upsert_run(self, record: RunRecord) -> bool:
        self._check()
        self.upserts += 1
        old = self.runs.get(record.uid)
        if old is not None and old.revision > record.revision:
            return False
        self.runs[record.uid] = record
        return True

    async def get_run(self, ref: str) -> RunRecord | None:
        self._check()
        return self.runs.get(ref)

    async def list_runs(
        self, query: RunQuery, limit: int | None = None, cursor: str | None = None
    ) -> Page:
        self._check()
        items = sorted(self.runs.values(), key=lambda r: (r.sort_time, r.uid), reverse=True)
        return Page(items=tuple(items), total=len(items))

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
        self._check()
        old = self.logs.get((uid, task, attempt))
        if lost_reason is not None and old is not None and old.lost_reason is None:
            return old
        kept, cut, size = cap_log(text)
        record = LogRecord(uid=uid, task=task, attempt=attempt, text=kept,
                           truncated=truncated or cut, size=size, lost_reason=lost_reason,
                           captured_at=self.clock())  # fmt: skip
        self.logs[(uid, task, attempt)] = record
        return record

    async def get_log(self, uid: str, task: str, attempt: int | None = None) -> LogRecord | None:
        self._check()
        if attempt is None:
            mine = [k for k in self.logs if k[:2] == (uid, task)]
            return self.logs[max(mine)] if mine else None
        return self.logs.get((uid, task, attempt))

    async def statuses(self, uids: Collection[str]) -> dict[str, str]:
        self._check()
        return {u: self.runs[u].status for u in uids if u in self.runs}

    async def namespaces(self) -> list[str]:
        self._check()
        return sorted({r.namespace for r in self.runs.values()})

    async def prune(self, policy: PrunePolicy, *, dry_run: bool = False) -> PruneReport:
        self._check()
        return PruneReport(dry_run=dry_run)

    async def record_colors(self, transitions: Sequence[ColorTransition]) -> int:
        self._check()
        new = [t for t in transitions if t.key not in self.colors]
        self.colors.update((t.key, t) for t in new)
        return len(new)

    async def color_history(
        self, namespace: str, name: str, since: datetime, until: datetime
    ) -> ColorHistory:
        self._check()
        mine = sorted(
            (t for t in self.colors.values() if (t.namespace, t.name) == (namespace, name)),
            key=lambda t: t.time,
        )
        before = [t for t in mine if t.time < since]
        return ColorHistory(
            before=before[-1] if before else None,
            transitions=tuple(t for t in mine if since <= t.time < until),
        )

    async def record_audit(self, records: Sequence[AuditRecord]) -> int:
        self._check()
        new = [r for r in records if r.id not in self.audit]
        self.audit.update((r.id, r) for r in new)
        return len(new)

    async def list_audit(
        self, query: AuditQuery, limit: int | None = None, cursor: str | None = None
    ) -> AuditPage:
        self._check()
        items = sorted(self.audit.values(), key=lambda r: (r.time, r.id), reverse=True)
        return AuditPage(items=tuple(items))

    async def close(self) -> None:
        return None


class LogKube(FakeKube):
    """FakeKube whose pods have logs: `logs` by pod name; a pod not in it is gone (404)."""

    def __init__(self) -> None:
        super().__init__()
        self.logs: dict[str, bytes] = {}
        self.reads: list[str] = []

    async def pod_log(
        self,
        namespace: str,
        pod: str,
        *,
        follow: bool = False,
        tail_lines: int | None = None,
        limit_bytes: int | None = None,
    ) -> AsyncIterator[bytes]:
        self.reads.append(pod)
        if pod not in self.logs:
            raise NotFound(f'pods "{pod}" not found', status=404, reason="NotFound")
        text = self.logs[pod]

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(0, len(text), 7):
                yield text[i : i + 7]

        return chunks()
