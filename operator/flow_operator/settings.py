"""The operator's settings: built once from the command line and the environment, frozen.

Every flag has an environment variable (FLOW_*), so the chart can set either; a flag given
wins. Nothing reads flags or the environment after `Settings.parse` returns.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from flow_operator import metrics
from flow_operator.reconcile.flowrun import Limits


@dataclass(frozen=True)
class HttpSettings:
    """Where the HTTP API and dashboard listen, and whose tokens they accept."""

    host: str = "0.0.0.0"
    port: int = 8080
    # "namespace/name" of the operator-wide token Secret ("" = $POD_NAMESPACE or default).
    token_secret: str = ""
    namespaces: Sequence[str] = ()  # what the operator watches; empty = all


@dataclass(frozen=True)
class Settings:
    """Everything `flow-operator run` was told, in one value."""

    namespaces: tuple[str, ...] = ()  # () = all
    leader_election: bool = False
    leader_namespace: str = "default"
    identity: str = "flow-operator"  # this replica's name in the Lease
    http: HttpSettings = field(default_factory=HttpSettings)
    limits: Limits = field(default_factory=Limits)
    workers: int = 32
    metrics_port: int = metrics.DEFAULT_PORT  # 0: not served
    verbose: bool = False
    trace: bool = False

    @classmethod
    def parse(
        cls, argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
    ) -> Settings:
        """The settings of `flow-operator run ARGS`; exits with usage on a bad flag."""
        env = os.environ if env is None else env
        args = parser(env).parse_args(argv)
        namespaces = tuple(args.namespace or ())
        return cls(
            namespaces=namespaces,
            leader_election=args.leader_election,
            leader_namespace=args.leader_namespace,
            identity=env.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}",
            http=HttpSettings(args.http_host, args.http_port, args.api_token_secret, namespaces),
            limits=Limits(
                running=args.max_running_runs or None,  # 0: no limit
                per_namespace=args.max_running_runs_per_namespace or None,
                grace=timedelta(seconds=args.crash_grace_seconds),
            ),
            workers=max(1, args.workers),
            metrics_port=args.metrics_port,
            verbose=args.verbose,
            trace=args.trace,
        )


def parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    """`flow-operator run`'s flags, with defaults from `env`."""
    top = argparse.ArgumentParser(
        prog="flow-operator", description="Flow Operator: Workflows and FlowRuns on Kubernetes."
    )
    sub = top.add_subparsers(dest="command", required=True)
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
        default=env.get("POD_NAMESPACE", "default"),
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
    run.add_argument(
        "--http-host",
        default=env.get("FLOW_HTTP_HOST", "0.0.0.0"),
        help="address of the HTTP API and dashboard (default 0.0.0.0)",
    )
    run.add_argument(
        "--http-port",
        type=int,
        default=int(env.get("FLOW_HTTP_PORT", "8080")),
        help="port of the HTTP API and dashboard (default 8080; 0: any free)",
    )
    run.add_argument(
        "--api-token-secret",
        default=env.get("FLOW_API_TOKEN_SECRET", ""),
        help="[NAMESPACE/]NAME of the Secret whose values are the bearer tokens "
        "of the operator-wide API (default: flow-operator-api in $POD_NAMESPACE "
        "or default)",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=int(env.get("FLOW_METRICS_PORT", str(metrics.DEFAULT_PORT))),
        help=f"port of Prometheus /metrics (default {metrics.DEFAULT_PORT}; 0: not served)",
    )
    run.add_argument(
        "--max-running-runs",
        type=int,
        default=int(env.get("FLOW_MAX_RUNNING_RUNS", "0")) or None,
        help="at most this many FlowRuns Deployed at once, operator-wide (default, 0: no limit)",
    )
    run.add_argument(
        "--max-running-runs-per-namespace",
        type=int,
        default=int(env.get("FLOW_MAX_RUNNING_RUNS_PER_NAMESPACE", "0")) or None,
        help="at most this many FlowRuns Deployed at once in one namespace (default: no limit)",
    )
    run.add_argument(
        "--crash-grace-seconds",
        type=float,
        default=float(env.get("FLOW_CRASH_GRACE_SECONDS", "60")),
        help="how long a task's pod may stay unschedulable, unpullable or refused (a bad "
        "image, a missing ConfigMap) before the run is Crashed (default 60)",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=int(env.get("FLOW_WORKERS", "32")),
        help="concurrent reconciles per kind (default 32; async, so cheap)",
    )
    return top
