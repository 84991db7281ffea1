"""Prometheus metrics: what the operator knows about Workflows, FlowRuns and its own work.

One registry (`REGISTRY`, with the process/platform/GC collectors) is served on its own
port (`--metrics-port`, 9090; docs/operations.md lists each metric with a query). The
reconcilers never touch a metric object: they call the functions below, so the names and
labels live in this one module.

* Workflows: `observe_workflow` is the reconciler's status hook; a deleted Workflow
  (status None) takes its series with it, and so does a removed service.
* FlowRuns: `flowrun_transition`, `observe_run_duration`, `observe_task_duration`; a
  Flow's runs also by namespace and Flow (`observe_flow_run`: a few Flows per namespace,
  never a label per run; a deleted Flow's series go with it, `forget_flow`).
* API: `observe_status_write`, each status write's round trip.
* HTTP API: `auth_failed`; `log_stream_opened`/`_closed` (the open task-log streams) and
  `log_stream_refused` (429s past --max-log-streams).
* The process: `watch_loop_lag`, a task observing how late the event loop runs;
  `time_gc`, the garbage collector's pauses.
* Work queues: `track_queue` (depth, read at scrape time) and `reconcile_observer`, the
  queue's `on_done` hook (latency, and errors: reconciles that raised).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Callable, Sized
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

from flow_operator.models.flowrun import TERMINAL, FlowRunStatus, Phase
from flow_operator.models.workflow import Color, WorkflowStatus
from flow_operator.objects.times import parse_time

log = logging.getLogger(__name__)
trace = logging.getLogger("flow_operator.trace")  # `run --trace`
Key = tuple[str, str]
PREFIX = "flowops"
DEFAULT_PORT = 9090

REGISTRY = CollectorRegistry(auto_describe=True)
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

# Batch runs and tasks take seconds to hours; reconciles take milliseconds.
RUN_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400)
RECONCILE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

WORKFLOW_COLOR = Gauge(
    f"{PREFIX}_workflow_color",
    "1 for the Workflow's current color (status.actualStatus), 0 for the other colors",
    ["namespace", "workflow", "color"],
    registry=REGISTRY,
)
SERVICE_DESIRED = Gauge(
    f"{PREFIX}_workflow_service_desired_replicas",
    "Replicas a Workflow's service (or stream) should run",
    ["namespace", "workflow", "service"],
    registry=REGISTRY,
)
SERVICE_ACTUAL = Gauge(
    f"{PREFIX}_workflow_service_actual_replicas",
    "Replicas of a Workflow's service (or stream) that are ready and available",
    ["namespace", "workflow", "service"],
    registry=REGISTRY,
)
FLOWRUN_TRANSITIONS = Counter(
    f"{PREFIX}_flowrun_transitions",
    "FlowRun phase transitions, by the phase entered",
    ["namespace", "phase"],
    registry=REGISTRY,
)
RUN_DURATION = Histogram(
    f"{PREFIX}_flowrun_duration_seconds",
    "FlowRun wall time from submission to its final phase, by that phase",
    ["phase"],
    buckets=RUN_BUCKETS,
    registry=REGISTRY,
)
FLOW_RUN_DURATION = Histogram(
    f"{PREFIX}_flow_run_duration_seconds",
    "A Flow's runs, submission to final phase, by namespace, Flow and that phase (its count "
    "is the Flow's finished runs; inline runs are only in flowops_flowrun_duration_seconds)",
    ["namespace", "flow", "phase"],
    buckets=RUN_BUCKETS,
    registry=REGISTRY,
)
TASK_DURATION = Histogram(
    f"{PREFIX}_task_duration_seconds",
    "FlowRun task wall time from start to finish, by the task's final status",
    ["status"],
    buckets=RUN_BUCKETS,
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    f"{PREFIX}_workqueue_depth",
    "Keys waiting in a work queue (not counting those being reconciled)",
    ["queue"],
    registry=REGISTRY,
)
RECONCILE_DURATION = Histogram(
    f"{PREFIX}_reconcile_duration_seconds",
    "Time one reconcile took, errors included",
    ["queue"],
    buckets=RECONCILE_BUCKETS,
    registry=REGISTRY,
)
QUEUE_WAIT = Histogram(
    f"{PREFIX}_workqueue_wait_seconds",
    "Time a change waited before the reconcile that handles it started",
    ["queue", "level"],
    buckets=RECONCILE_BUCKETS,
    registry=REGISTRY,
)
STATUS_WRITE = Histogram(
    f"{PREFIX}_status_write_seconds",
    "Round trip of one status write to the API server (most of a reconcile that writes)",
    ["resource"],
    buckets=RECONCILE_BUCKETS,
    registry=REGISTRY,
)
LOOP_LAG = Histogram(
    f"{PREFIX}_event_loop_lag_seconds",
    "How late a timer of the operator's event loop fired: every watch event, API answer "
    "and reconcile of the process waits that long for its turn",
    buckets=RECONCILE_BUCKETS,
    registry=REGISTRY,
)
GC_PAUSE = Histogram(
    f"{PREFIX}_gc_pause_seconds",
    "How long one garbage collection of the Python process held everything (by generation)",
    ["generation"],
    buckets=RECONCILE_BUCKETS,
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    f"{PREFIX}_reconcile_errors",
    "Reconciles that raised (retried with backoff)",
    ["queue"],
    registry=REGISTRY,
)
HISTORY_PENDING = Gauge(
    f"{PREFIX}_history_pending",
    "Run records and task logs waiting to be written to the run store (by what)",
    ["what"],
    registry=REGISTRY,
)
HISTORY_WRITE_ERRORS = Counter(
    f"{PREFIX}_history_write_errors",
    "Writes to the run store that failed (retried while the database is down), by what",
    ["what"],
    registry=REGISTRY,
)
HISTORY_LOGS_LOST = Counter(
    f"{PREFIX}_history_logs_lost",
    "Task attempts whose pod was deleted before its log was captured",
    registry=REGISTRY,
)
HISTORY_RUNS_DELETED = Counter(
    f"{PREFIX}_history_runs_deleted",
    "Finished FlowRuns deleted from the cluster once archived, by why (ttl)",
    ["why"],
    registry=REGISTRY,
)
AUTH_FAILURES = Counter(
    f"{PREFIX}_api_auth_failures",
    "Failed authentications at the HTTP API, by credential (api_key, bearer) and whether "
    "the address had a bucket of its own or shared the global one (full table)",
    ["credential", "bucket"],
    registry=REGISTRY,
)

LOG_STREAMS = Gauge(
    f"{PREFIX}_api_log_streams",
    "Task-log answers the HTTP API is streaming now (each holds a connection of the log "
    "streams' own pool; at most --max-log-streams)",
    registry=REGISTRY,
)
LOG_STREAMS_REFUSED = Counter(
    f"{PREFIX}_api_log_streams_refused",
    "Task-log requests answered 429 because --max-log-streams were open",
    registry=REGISTRY,
)

_lock = threading.Lock()
_services: dict[Key, set[str]] = {}  # the service series each Workflow has, to drop stale ones


def observe_workflow(key: Key, status: WorkflowStatus | None) -> None:
    """The Workflow reconciler's status hook: color and replica gauges; None = deleted."""
    namespace, name = key
    with _lock:
        if status is None:
            for gauge in (WORKFLOW_COLOR, SERVICE_DESIRED, SERVICE_ACTUAL):
                gauge.remove_by_labels({"namespace": namespace, "workflow": name})
            _services.pop(key, None)
            return
        for color in Color:
            WORKFLOW_COLOR.labels(namespace, name, color.value).set(
                1 if color is status.actualStatus else 0
            )
        details = status.details
        components = ([details.stream] if details.stream else []) + list(details.services or [])
        now: set[str] = set()
        for c in components:
            SERVICE_DESIRED.labels(namespace, name, c.id).set(c.desired)
            SERVICE_ACTUAL.labels(namespace, name, c.id).set(c.actual)
            now.add(c.id)
        for gone in _services.get(key, set()) - now:
            SERVICE_DESIRED.remove(namespace, name, gone)
            SERVICE_ACTUAL.remove(namespace, name, gone)
        _services[key] = now


def flowrun_transition(namespace: str, phase: str) -> None:
    """Count a FlowRun entering `phase` (Submitted, Queued, Deployed, Completed, ...)."""
    FLOWRUN_TRANSITIONS.labels(namespace, phase).inc()


def observe_run_duration(seconds: float, phase: str) -> None:
    """A FlowRun reached its final `phase` (Completed, Failed, Crashed) after `seconds`."""
    RUN_DURATION.labels(phase).observe(max(seconds, 0.0))


def observe_task_duration(seconds: float, status: str) -> None:
    """A FlowRun task finished with `status` after `seconds`."""
    TASK_DURATION.labels(status).observe(max(seconds, 0.0))


def _run_seconds(status: FlowRunStatus) -> float | None:
    """A finished run's wall time, submission (its first transition) to endTime."""
    begin = parse_time(status.history[0].time) if status.history else None
    end = parse_time(status.end_time)
    return max((end - begin).total_seconds(), 0.0) if begin and end else None


def observe_flow_run(key: Key, old: Phase | None, status: FlowRunStatus, flow: str | None) -> None:
    """The Flow wiring's hook on the FlowRun reconciler's decisions: a run of `flow` (None:
    an inline run, not counted) that reached its final phase, by namespace and Flow."""
    if flow and old is not status.phase and status.phase in TERMINAL:
        seconds = _run_seconds(status)
        if seconds is not None:
            FLOW_RUN_DURATION.labels(key[0], flow, status.phase.value).observe(seconds)


def forget_flow(key: Key) -> None:
    """A deleted Flow: its per-Flow series go (a run of it that finishes later brings
    them back)."""
    FLOW_RUN_DURATION.remove_by_labels({"namespace": key[0], "flow": key[1]})


def observe_flowrun(key: Key, old: Phase | None, status: FlowRunStatus) -> None:
    """The FlowRun reconciler's status hook: a phase entered; on the final one, the run's
    and its tasks' durations."""
    if old is status.phase:
        return
    flowrun_transition(key[0], status.phase.value)
    if status.phase not in TERMINAL:
        return
    seconds = _run_seconds(status)
    if seconds is not None:
        observe_run_duration(seconds, status.phase.value)
    for task in status.tasks:
        started, ended = parse_time(task.start_time), parse_time(task.end_time)
        if started and ended:
            observe_task_duration((ended - started).total_seconds(), task.status.value)


def track_queue(name: str, queue: Sized) -> None:
    """Export `len(queue)` as the queue's depth, read at scrape time."""
    QUEUE_DEPTH.labels(name).set_function(lambda: len(queue))


def track_history(what: str, pending: Sized) -> None:
    """Export `len(pending)` as the records (or logs) waiting for the run store."""
    HISTORY_PENDING.labels(what).set_function(lambda: len(pending))


def history_write_error(what: str) -> None:
    HISTORY_WRITE_ERRORS.labels(what).inc()


def auth_failed(credential: str, shared: bool) -> None:
    AUTH_FAILURES.labels(credential, "global" if shared else "address").inc()


def log_stream_opened() -> None:
    LOG_STREAMS.inc()


def log_stream_closed() -> None:
    LOG_STREAMS.dec()


def log_stream_refused() -> None:
    LOG_STREAMS_REFUSED.inc()


def history_log_lost() -> None:
    HISTORY_LOGS_LOST.inc()


def history_run_deleted(why: str) -> None:
    HISTORY_RUNS_DELETED.labels(why).inc()


def wait_observer(queue: str) -> Callable[[float, bool], None]:
    """A work queue's `on_wait(seconds, urgent)` hook: how long a change waited for its
    reconcile, by level (`urgent`: a child changed; `normal`: a spec change, a timer)."""
    levels = {True: QUEUE_WAIT.labels(queue, "urgent"), False: QUEUE_WAIT.labels(queue, "normal")}

    def on_wait(seconds: float, urgent: bool) -> None:
        levels[urgent].observe(seconds)

    return on_wait


def observe_status_write(resource: str, seconds: float) -> None:
    """One status write's round trip (`Kube.replace_status`): what the API server makes
    every status change wait, the part of the status lag that is not the operator's."""
    STATUS_WRITE.labels(resource).observe(seconds)


async def watch_loop_lag(every: float = 0.25) -> None:
    """Observe the event loop's lag for ever: a timer of `every` seconds, and how much
    later than that it fired (one Python thread runs every watch, reconcile and API
    answer; a burst of work in one of them delays all the others)."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(every)
        late = max(0.0, loop.time() - start - every)
        LOOP_LAG.observe(late)
        if late >= 0.05 and trace.isEnabledFor(logging.DEBUG):
            trace.debug("stall t=%.3f late=%.3f", time.time(), late)


def time_gc() -> None:
    """Time every garbage collection (gc.callbacks): a full one walks every object the
    process holds, and the informers hold many; the event loop stands still meanwhile."""
    if _on_gc not in gc.callbacks:
        gc.callbacks.append(_on_gc)


_gc_started: list[float] = []


def _on_gc(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc_started[:] = [time.perf_counter()]
    elif _gc_started:
        pause = time.perf_counter() - _gc_started.pop()
        GC_PAUSE.labels(str(info.get("generation", ""))).observe(pause)
        if info.get("generation") == 2 and trace.isEnabledFor(logging.DEBUG):
            trace.debug("gc t=%.3f took=%.3f", time.time(), pause)


def reconcile_observer(queue: str) -> Callable[[Key, float, bool], None]:
    """A work queue's `on_done(key, seconds, ok)` hook: latency, and errors when not ok."""
    duration = RECONCILE_DURATION.labels(queue)
    errors = RECONCILE_ERRORS.labels(queue)

    def on_done(key: Key, seconds: float, ok: bool) -> None:
        duration.observe(seconds)
        if not ok:
            errors.inc()

    return on_done


def render() -> bytes:
    """The registry in the Prometheus text format (for a test, or another HTTP server)."""
    return generate_latest(REGISTRY)


def serve(port: int, addr: str = "0.0.0.0") -> WSGIServer | None:
    """Serve `/metrics` from a daemon thread; a port in use is logged, not fatal.

    Metrics are not worth stopping reconciliation for: a second operator on one host (a
    developer's, or an HA test's) finds the port taken and runs on without them.
    """
    try:
        server, _ = start_http_server(port, addr, registry=REGISTRY)
    except OSError as e:
        log.error("metrics not served: cannot listen on %s:%d (%s)", addr, port, e)
        return None
    log.info("metrics on http://%s:%d/metrics", addr, server.server_port)
    return server
