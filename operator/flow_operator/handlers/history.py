"""Run history wiring (docs/history.md): the run store from `--history-db`, the recorder
of the runs the FlowRun reconciler decides and of the Workflows' color transitions, the
capture of task logs, and the store's own retention. Provides `History` to the later
build steps: the FlowRun reconciler (logs, TTL deletions), the HTTP API (reads) and the
Flow reconciler (`archived`).

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
            if report.total:
                log.info("history: pruned %d runs (%d by age, %d by count)",
                         report.total, report.by_age, report.by_count)  # fmt: skip
        except StoreUnavailable as e:
            log.warning("history: prune skipped: %s", e)
        except HistoryError:
            log.exception("history: prune failed")
        await asyncio.sleep(PRUNE_EVERY)


def setup(app: Operator) -> None:
    settings = app.settings.history
    store: RunStore = _store(settings.db, settings.log_cap) if settings.enabled else NullRunStore()
    recorder = Recorder(store)
    colors = ColorRecorder(store)
    parts: list[History] = []

    @app.on_build
    def build(ctx: Started) -> None:
        capture = LogCapture(store, ctx.kube, cap=settings.log_cap)
        history = History(
            store,
            recorder,
            capture,
            colors=colors,
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
            if history.recorder.pending or history.capture.pending or colors.pending:
                log.warning("history: %d runs, %d logs and %d color transitions not written "
                            "at stop (the live objects are recorded again at the next start)",
                            len(history.recorder), len(history.capture),
                            len(colors))  # fmt: skip
        parts.clear()
        await store.close()
