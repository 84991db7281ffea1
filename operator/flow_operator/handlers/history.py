"""Run history wiring (docs/history.md): the run store from `--history-db`, the recorder
of the runs the FlowRun reconciler decides and of the Workflows' color transitions, the
capture of task logs, the API's audit (a sink on its log), and the store's own retention.
Provides `History` to the later build steps: the FlowRun reconciler (logs, TTL
deletions), the HTTP API (reads) and the Flow reconciler (`archived`).

The store opens on first use (migrations run then), so a database down at start does not
stop the operator: records wait, and no finished run leaves the cluster. `none` is history
off: a NullRunStore, nothing recorded, nothing ever archived (so nothing deleted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from flow_operator import metrics
from flow_operator.api.audit import AUDIT_ATTRIBUTE, Entry
from flow_operator.api.audit import log as audit_log
from flow_operator.app import Operator, Started
from flow_operator.history import sql
from flow_operator.history.store import (
    HistoryError,
    NullRunStore,
    PrunePolicy,
    RunStore,
    StoreUnavailable,
)
from flow_operator.reconcile.history import (
    AuditRecorder,
    ColorRecorder,
    History,
    LogCapture,
    OpeningStore,
    Recorder,
)

log = logging.getLogger(__name__)
# The store's own retention runs this often (the first pass a minute after start).
PRUNE_EVERY = 3600.0
PRUNE_FIRST = 60.0
# At stop, what is waiting gets this long to be written.
STOP_GRACE = 5.0


def _store(dsn: str, log_cap: int) -> RunStore:
    url = sql.async_url(dsn)  # a bad DSN fails the start, by name
    if url.get_backend_name() == "sqlite" and url.database:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)

    async def open_() -> RunStore:
        return await sql.open_store(dsn, log_cap=log_cap)

    return OpeningStore(open_)


async def _prune(store: RunStore, policy: PrunePolicy) -> None:
    await asyncio.sleep(PRUNE_FIRST)
    while True:
        try:
            report = await store.prune(policy)
            if report.total or report.color_transitions or report.audit_records:
                log.info("history: pruned %d runs (%d by age, %d by count), %d color "
                         "transitions and %d audit records", report.total, report.by_age,
                         report.by_count, report.color_transitions,
                         report.audit_records)  # fmt: skip
        except StoreUnavailable as e:
            log.warning("history: prune skipped: %s", e)
        except HistoryError:
            log.exception("history: prune failed")
        await asyncio.sleep(PRUNE_EVERY)


class AuditSink(logging.Handler):
    """The run store's sink on the audit log (api/audit.py): each record's `Entry` goes
    to the audit table through the AuditRecorder's queue (never blocking the request)."""

    def __init__(self, recorder: AuditRecorder) -> None:
        super().__init__(logging.INFO)
        self.recorder = recorder

    def emit(self, record: logging.LogRecord) -> None:
        entry = getattr(record, AUDIT_ATTRIBUTE, None)
        if isinstance(entry, Entry):
            self.recorder.offer(entry.stored())

    def attach(self) -> None:
        """On the audit log, which logs at INFO whatever the root's level (else a quiet
        operator would make no record for the table)."""
        if not audit_log.isEnabledFor(logging.INFO):
            audit_log.setLevel(logging.INFO)
        audit_log.addHandler(self)

    def detach(self) -> None:
        audit_log.removeHandler(self)


def setup(app: Operator) -> None:
    settings = app.settings.history
    store: RunStore = _store(settings.db, settings.log_cap) if settings.enabled else NullRunStore()
    recorder = Recorder(store)
    colors = ColorRecorder(store)
    audits = AuditRecorder(store)
    sink = AuditSink(audits)
    parts: list[History] = []

    @app.on_build
    def build(ctx: Started) -> None:
        capture = LogCapture(store, ctx.kube, cap=settings.log_cap)
        history = History(
            store,
            recorder,
            capture,
            colors=colors,
            audit=audits,
            ttl=settings.finished_run_ttl,
            enabled=settings.enabled,
        )
        parts.append(history)
        ctx.provide(history)
        if not settings.enabled:
            return
        recorder.events = app.recorder
        app.runs.subscribe(recorder.on_run)
        metrics.track_history("runs", recorder)
        metrics.track_history("logs", capture)
        # the Workflows' color transitions, from their reconciles' decisions
        app.workflows.subscribe(colors.on_workflow)
        metrics.track_history("colors", colors)
        app.spawn(recorder.run(), "history recorder")
        app.spawn(colors.run(), "history colors")
        # the API's audit (api/audit.py logs each action with its Entry)
        sink.attach()
        metrics.track_history("audit", audits)
        app.spawn(audits.run(), "history audit")
        app.spawn(capture.run(), "history logs")
        policy = PrunePolicy(
            max_age=settings.retention, keep_per_flow_status=settings.keep_per_flow_status
        )
        if policy.max_age is not None or policy.keep_per_flow_status is not None:
            app.spawn(_prune(store, policy), "history prune")

    @app.on_stop
    async def stop() -> None:
        for history in parts:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_GRACE):
                    await history.recorder.flush()
                    await history.capture.flush()
                    await colors.flush()
                    await audits.flush()
            if audits.pending:
                # not in the live objects: said here, each one, so none is lost silently
                metrics.history_write_error("audit")
                for waiting in audits.pending.values():
                    log.error("history: audit record not written at stop: %s",
                              waiting.model_dump_json())  # fmt: skip
            if history.recorder.pending or history.capture.pending or colors.pending:
                log.warning("history: %d runs, %d logs and %d color transitions not written "
                            "at stop (the live objects are recorded again at the next start)",
                            len(history.recorder), len(history.capture),
                            len(colors))  # fmt: skip
        parts.clear()
        sink.detach()
        await store.close()
