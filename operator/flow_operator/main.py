"""Operator entry point: kopf settings, startup/cleanup, and `python -m flow_operator run`."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import kopf

from flow_operator import gcpolicy, metrics
from flow_operator.api.flowrun_backend import IndexedFlowRuns
from flow_operator.api.serve import HTTP_API, HttpOptions
from flow_operator.events import EventRecorder
from flow_operator.handlers import children as children_handlers
from flow_operator.handlers import flowrun as flowrun_handlers
from flow_operator.handlers import workflow as workflow_handlers
from flow_operator.kube import Kube
from flow_operator.leader import LeaderElector
from flow_operator.reconcile.flowrun import FlowRunReconciler, FlowRunView, Limits
from flow_operator.reconcile.workflow import WorkflowReconciler, WorkflowView
from flow_operator.reconcile.workqueue import WorkQueue
from flow_operator.runtime import RUNTIME

log = logging.getLogger("flow_operator")


class Options(argparse.Namespace):
    leader_election: bool = False
    leader_namespace: str = "default"
    http: HttpOptions = HttpOptions()
    limits: Limits = Limits()
    workers: int = 32
    namespaces: tuple[str, ...] = ()  # () = all


OPTIONS = Options()


class RetryForever:
    """Backoffs for kopf's API requests that never run out: 0.5, 1, 2, then 5 s for ever."""

    def __iter__(self) -> Iterator[float]:
        return itertools.chain((0.5, 1.0, 2.0), itertools.repeat(5.0))


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **kwargs: Any) -> None:
    # The operator posts its own, meaningful events; kopf's per-handler ones are noise.
    settings.posting.enabled = False
    settings.watching.server_timeout = 300
    # kopf escalates a request whose retries ran out, and an escalated watch stops the
    # operator: an API server down for longer than the retries (or answering 503 while it
    # starts) would kill it. Watches, like client-go's reflectors, retry for ever.
    settings.networking.error_backoffs = RetryForever()
    # kopf's namespace and CRD observers count on a 403 escalating (with too little RBAC
    # to list namespaces they fall back to the namespaces given): with retries for ever
    # they would wait for ever. They are not needed: the namespaces are given by name (or
    # all), and the CRDs are installed before the operator starts.
    settings.scanning.disabled = True
    kube = await Kube.connect()
    RUNTIME.kube = kube
    # The children's informers (handlers/children.py); the queues exist before they run, so
    # no change is dropped, and start only once every informer has listed.
    children = children_handlers.build(
        kube, OPTIONS.namespaces, workflow_handlers.QUEUE, flowrun_handlers.QUEUE
    )
    view = WorkflowView(
        workflows=kwargs["workflow_bodies"],
        deployments=children.workflow_deployments,
        replicasets=children.workflow_replicasets,
        pods=children.workflow_pods,
        services=children.workflow_services,
    )
    # Events are posted in the background (flow_operator.events): no reconcile waits on one
    events = RUNTIME.events = EventRecorder(kube)
    events.start()
    reconciler = WorkflowReconciler(view, kube, events=events)
    queue = WorkQueue(workflow_handlers.QUEUE, reconciler, workers=OPTIONS.workers)
    # --- metrics (flow_operator.metrics, docs/operations.md#metrics) ---
    reconciler.on_status = metrics.observe_workflow
    queue.on_done = metrics.reconcile_observer(queue.name)
    queue.on_wait = metrics.wait_observer(queue.name)
    metrics.track_queue(queue.name, queue)
    # --- end metrics ---
    RUNTIME.queues[workflow_handlers.QUEUE] = queue
    runs = FlowRunReconciler(
        FlowRunView(
            runs=kwargs["flowrun_bodies"],
            jobs=children.flowrun_jobs,
            pods=children.flowrun_pods,
            children=kwargs["flowrun_children"],
            workflows=kwargs["workflow_bodies"],
        ),
        kube,
        OPTIONS.limits,
        on_status=metrics.observe_flowrun,
        events=events,
    )
    run_queue = WorkQueue(flowrun_handlers.QUEUE, runs, workers=OPTIONS.workers)
    run_queue.on_done = metrics.reconcile_observer(run_queue.name)
    run_queue.on_wait = metrics.wait_observer(run_queue.name)
    metrics.track_queue(run_queue.name, run_queue)
    RUNTIME.queues[flowrun_handlers.QUEUE] = run_queue
    RUNTIME.tasks.extend(await children_handlers.start(children))
    RUNTIME.tasks.append(asyncio.create_task(metrics.watch_loop_lag(), name="loop lag"))
    metrics.time_gc()
    # the informers' objects are long-lived: full collections must not walk them all
    RUNTIME.tasks.append(asyncio.create_task(gcpolicy.keep_collections_short(), name="gc"))
    if OPTIONS.leader_election:
        # Events queue up while this replica waits; the workers start on leadership.
        identity = os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
        elector = LeaderElector(kube.api, OPTIONS.leader_namespace, "flow-operator", identity)
        for q in RUNTIME.queues.values():
            q.gate = elector.valid  # a leader that missed its renewal acts no more
        RUNTIME.elector = elector
        RUNTIME.tasks.append(asyncio.create_task(elector.run(_start_queues, _stop_queues)))
    else:
        await _start_queues()
    # --- HTTP API: status API, flow runs, dashboard (flow_operator.api, docs/api.md) ---
    flowruns = IndexedFlowRuns(kwargs["flowrun_bodies"], kube)
    await HTTP_API.start(
        OPTIONS.http, kube, kwargs["workflow_bodies"], children.workflow_pods, reconciler, flowruns
    )
    # --- end HTTP API ---
    log.info("operator ready")


async def _start_queues() -> None:
    for queue in RUNTIME.queues.values():
        queue.start()


async def _stop_queues() -> None:
    for queue in RUNTIME.queues.values():
        await queue.stop()


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    await HTTP_API.stop()  # HTTP API (flow_operator.api)
    for task in RUNTIME.tasks:
        task.cancel()
    await asyncio.gather(*RUNTIME.tasks, return_exceptions=True)
    RUNTIME.tasks.clear()
    await _stop_queues()
    RUNTIME.queues.clear()
    if RUNTIME.events is not None:
        await RUNTIME.events.stop()  # what the last reconciles recorded is still posted
        RUNTIME.events = None
    if RUNTIME.elector is not None:
        await RUNTIME.elector.release()  # the standby takes over now, not when it lapses
        RUNTIME.elector = None
    if RUNTIME.kube is not None:
        await RUNTIME.kube.close()
        RUNTIME.kube = None


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="flow-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the operator in the foreground")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    scope.add_argument("-n", "--namespace", action="append", help="watch this namespace (repeat)")
    run.add_argument(
        "--leader-election",
        action="store_true",
        help="for several replicas: only the holder of a Lease acts (the others stay warm)",
    )
    run.add_argument(
        "--leader-election-namespace",
        dest="leader_namespace",
        default=os.environ.get("POD_NAMESPACE", "default"),
        help="namespace of the Lease (default: $POD_NAMESPACE or default)",
    )
    run.add_argument("--verbose", action="store_true")
    run.add_argument(
        "--trace",
        action="store_true",
        help="log each reconcile's start, Workflow status write, full garbage collection "
        "and event-loop stall, with timestamps (logger flow_operator.trace; for "
        "benchmarks: bench/run.py --trace)",
    )
    # --- HTTP API flags (flow_operator.api, docs/api.md) ---
    env = os.environ.get
    run.add_argument(
        "--http-host",
        default=env("FLOW_HTTP_HOST", "0.0.0.0"),
        help="address of the HTTP API and dashboard (default 0.0.0.0)",
    )
    run.add_argument(
        "--http-port",
        type=int,
        default=int(env("FLOW_HTTP_PORT", "8080")),
        help="port of the HTTP API and dashboard (default 8080; 0: any free)",
    )
    run.add_argument(
        "--api-token-secret",
        default=env("FLOW_API_TOKEN_SECRET", ""),
        help="[NAMESPACE/]NAME of the Secret whose values are the bearer tokens "
        "of the operator-wide API (default: flow-operator-api in $POD_NAMESPACE "
        "or default)",
    )
    # --- end HTTP API flags ---
    run.add_argument(
        "--metrics-port",
        type=int,
        default=int(env("FLOW_METRICS_PORT", str(metrics.DEFAULT_PORT))),
        help=f"port of Prometheus /metrics (default {metrics.DEFAULT_PORT}; 0: not served)",
    )
    run.add_argument(
        "--max-running-runs",
        type=int,
        default=int(env("FLOW_MAX_RUNNING_RUNS", "0")) or None,
        help="at most this many FlowRuns Deployed at once, operator-wide (default, 0: no limit)",
    )
    run.add_argument(
        "--max-running-runs-per-namespace",
        type=int,
        default=int(env("FLOW_MAX_RUNNING_RUNS_PER_NAMESPACE", "0")) or None,
        help="at most this many FlowRuns Deployed at once in one namespace (default: no limit)",
    )
    run.add_argument(
        "--crash-grace-seconds",
        type=float,
        default=float(env("FLOW_CRASH_GRACE_SECONDS", "60")),
        help="how long a task's pod may stay unschedulable or refused before the run is "
        "Crashed (default 60)",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=int(env("FLOW_WORKERS", "32")),
        help="concurrent reconciles per kind (default 32; async, so cheap)",
    )
    args = parser.parse_args(argv)
    OPTIONS.workers = max(1, args.workers)
    OPTIONS.limits = Limits(
        running=args.max_running_runs or None,  # 0: no limit
        per_namespace=args.max_running_runs_per_namespace or None,
        grace=timedelta(seconds=args.crash_grace_seconds),
    )
    OPTIONS.http = HttpOptions(
        args.http_host, args.http_port, args.api_token_secret, tuple(args.namespace or ())
    )
    OPTIONS.leader_election = args.leader_election
    OPTIONS.namespaces = tuple(args.namespace or ())
    OPTIONS.leader_namespace = args.leader_namespace
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("kopf").setLevel(logging.WARNING)
        logging.getLogger("kopf.activities.startup").setLevel(logging.INFO)
    if args.trace:
        logging.getLogger("flow_operator.trace").setLevel(logging.DEBUG)
    if args.metrics_port:
        metrics.serve(args.metrics_port)
    asyncio.run(
        kopf.operator(
            clusterwide=not args.namespace,
            namespaces=args.namespace or (),
            standalone=True,
        )
    )
