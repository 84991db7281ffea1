"""The operator's settings: built once from the command line and the environment, frozen.

Every flag has an environment variable (FLOW_*), so the chart can set either; a flag given
wins. Nothing reads flags or the environment after `Settings.parse` returns.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from flow_operator import metrics
from flow_operator.api.auth import Network, proxy_networks
from flow_operator.history.retention import parse_duration
from flow_operator.history.store import DEFAULT_LOG_CAP
from flow_operator.models.security import SecurityDefault
from flow_operator.reconcile.flowrun import Limits

DEFAULT_MAX_LOG_STREAMS = 100


@dataclass(frozen=True)
class HttpSettings:
    """Where the HTTP API and dashboard listen, and whose tokens they accept."""

    host: str = "0.0.0.0"
    port: int = 8080
    # "namespace/name" of the operator-wide token Secret ("" = $POD_NAMESPACE or default).
    token_secret: str = ""
    namespaces: Sequence[str] = ()  # what the operator watches; empty = all
    # "kubernetes": bearer tokens are Kubernetes tokens, each request authorized by a
    # SubjectAccessReview; "token": the values of `token_secret` (docs/security.md).
    auth_mode: str = "token"
    read_only: bool = False  # every action (cancel, rerun, Run) refused
    # Task-log answers under way at once (429 beyond), and the connections of the log
    # streams' own pool (docs/api.md, "Log streams").
    max_log_streams: int = DEFAULT_MAX_LOG_STREAMS
    # Proxies whose X-Forwarded-For the failed-authentication limiter believes (none: the
    # header is ignored; api/auth.py client_address, docs/security.md).
    trusted_proxies: tuple[Network, ...] = ()
    # PEM files: the API, the dashboard and the loop's /metrics over HTTPS only ("": HTTP)
    tls_cert: str = ""
    tls_key: str = ""
    # /metrics takes a Kubernetes token allowed `get` on the URL /metrics (api/scrape.py)
    metrics_auth: bool = False

    @property
    def tls(self) -> tuple[str, str] | None:
        return (self.tls_cert, self.tls_key) if self.tls_cert else None


AUTH_MODES = ("kubernetes", "token")  # api/identity.py's MODES (a unit test keeps them equal)
NO_HISTORY = "none"
DEFAULT_DATA_DIR = ".flow-operator"


def duration(text: str) -> timedelta | None:
    """A flag's duration (history.retention.parse_duration's forms), as argparse wants its
    refusals."""
    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def trusted_proxies(text: str) -> tuple[Network, ...]:
    """`--api-trusted-proxies`, as argparse wants its refusals."""
    try:
        return proxy_networks(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def positive(text: str) -> int:
    """A whole number of at least 1, as argparse wants its refusals."""
    if not (text.strip().isascii() and text.strip().isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a whole number of at least 1: {text!r}")
    return int(text)


def size(text: str) -> int:
    """ "2MiB", "512KiB", "1048576" (bytes): a positive number of bytes."""
    units = {"": 1, "b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1000, "mb": 1000**2}
    match = re.fullmatch(r"(\d+)\s*([a-z]*)", text.strip().lower())
    if match is None or match.group(2) not in units or int(match.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 2MiB, 512KiB, 65536)")
    return int(match.group(1)) * units[match.group(2)]


def security_default(text: str) -> SecurityDefault:
    """restricted or none, as argparse wants its refusals."""
    try:
        return SecurityDefault(text.strip().lower())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: restricted or none") from None


@dataclass(frozen=True)
class HistorySettings:
    """Where run history goes and how long runs stay (docs/history.md).

    The dataclass default is history off (`none`), what tests building `Settings()` want;
    `flow-operator run` defaults to a SQLite file in the data directory."""

    db: str = NO_HISTORY  # a DSN: sqlite:///PATH, postgresql://USER@HOST/DB; "none": off
    # A finished run leaves the cluster this long after it ended, once archived (None: never)
    finished_run_ttl: timedelta | None = timedelta(hours=1)
    retention: timedelta | None = timedelta(days=90)  # the store's runs, by age (None: all)
    keep_per_flow_status: int | None = None  # and the newest N per flow and status
    log_cap: int = DEFAULT_LOG_CAP  # bytes of log kept per task attempt (the tail)

    @property
    def enabled(self) -> bool:
        return self.db != NO_HISTORY


def default_history_db(data_dir: str) -> str:
    return f"sqlite:///{Path(data_dir).absolute() / 'history.db'}"


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
    # the client's requests a second and burst (kube/client.py RateLimit; 0: no limit)
    kube_qps: float = 200.0
    kube_burst: int = 400
    history: HistorySettings = field(default_factory=HistorySettings)
    metrics_port: int = metrics.DEFAULT_PORT  # 0: not served
    # What the pods of tasks and services get where their securityContexts say nothing.
    security: SecurityDefault = SecurityDefault.NONE
    verbose: bool = False
    trace: bool = False

    @property
    def metrics_on_loop(self) -> bool:
        """/metrics needs TLS or authentication: the HTTP API's host serves it
        (api/scrape.py) rather than prometheus_client's thread (metrics.serve)."""
        return bool(self.metrics_port) and (self.http.tls is not None or self.http.metrics_auth)

    @classmethod
    def parse(
        cls, argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
    ) -> Settings:
        """The settings of `flow-operator run ARGS`; exits with usage on a bad flag."""
        env = os.environ if env is None else env
        flags = parser(env)
        args = flags.parse_args(argv)
        if bool(args.tls_cert) != bool(args.tls_key):
            given, missing = ("--tls-cert", "--tls-key")[:: 1 if args.tls_cert else -1]
            flags.error(f"{given} is given without {missing}: TLS takes both files (or neither)")
        namespaces = tuple(args.namespace or ())
        return cls(
            namespaces=namespaces,
            leader_election=args.leader_election,
            leader_namespace=args.leader_namespace,
            identity=env.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}",
            http=HttpSettings(
                args.http_host,
                args.http_port,
                args.api_token_secret,
                namespaces,
                auth_mode=args.auth_mode,
                read_only=args.read_only,
                max_log_streams=args.max_log_streams,
                trusted_proxies=args.api_trusted_proxies,
                tls_cert=args.tls_cert,
                tls_key=args.tls_key,
                metrics_auth=args.metrics_auth,
            ),
            limits=Limits(
                running=args.max_running_runs or None,  # 0: no limit
                per_namespace=args.max_running_runs_per_namespace or None,
                grace=timedelta(seconds=args.crash_grace_seconds),
            ),
            workers=max(1, args.workers),
            kube_qps=max(0.0, args.kube_qps),
            kube_burst=max(1, args.kube_burst),
            history=HistorySettings(
                db=args.history_db or default_history_db(args.data_dir),
                finished_run_ttl=args.finished_run_ttl,
                retention=args.history_retention,
                keep_per_flow_status=args.history_keep_per_flow_status or None,
                log_cap=args.log_cap,
            ),
            metrics_port=args.metrics_port,
            security=args.default_security_context,
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
        "--auth-mode",
        choices=AUTH_MODES,
        default=env.get("FLOW_AUTH_MODE", "token"),
        help="who may call the operator-wide API: kubernetes (a Kubernetes bearer token, "
        "verified by TokenReview, each request authorized by SubjectAccessReview; the "
        "chart's default) or token (a value of --api-token-secret; the default here)",
    )
    run.add_argument(
        "--read-only",
        action="store_true",
        default=env.get("FLOW_READ_ONLY", "").lower() in ("1", "true", "yes"),
        help="refuse every action of the API (cancel, rerun, Run): 403 read-only",
    )
    run.add_argument(
        "--max-log-streams",
        type=positive,
        default=positive(env.get("FLOW_MAX_LOG_STREAMS", str(DEFAULT_MAX_LOG_STREAMS))),
        help="task logs the API streams at once, each on a connection of the log streams' "
        f"own pool; beyond, 429 with Retry-After (default {DEFAULT_MAX_LOG_STREAMS})",
    )
    run.add_argument(
        "--api-trusted-proxies",
        type=trusted_proxies,
        default=trusted_proxies(env.get("FLOW_API_TRUSTED_PROXIES", "")),
        metavar="CIDR[,CIDR...]",
        help="proxies (an ingress) whose X-Forwarded-For names the client the "
        "failed-authentication limiter counts (default: none, the header is ignored)",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=int(env.get("FLOW_METRICS_PORT", str(metrics.DEFAULT_PORT))),
        help=f"port of Prometheus /metrics (default {metrics.DEFAULT_PORT}; 0: not served)",
    )
    run.add_argument(
        "--metrics-auth",
        action="store_true",
        default=env.get("FLOW_METRICS_AUTH", "").lower() in ("1", "true", "yes"),
        help="/metrics takes a Kubernetes bearer token (TokenReview) whose user may get the "
        "non-resource URL /metrics (SubjectAccessReview), as kube-rbac-proxy does",
    )
    run.add_argument(
        "--tls-cert",
        default=env.get("FLOW_TLS_CERT", ""),
        help="PEM certificate (chain) file: the API, the dashboard and /metrics over HTTPS "
        "only (with --tls-key; default: plain HTTP)",
    )
    run.add_argument(
        "--tls-key",
        default=env.get("FLOW_TLS_KEY", ""),
        help="PEM private key file of --tls-cert",
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
        "--default-security-context",
        type=security_default,
        metavar="{restricted,none}",
        default=env.get("FLOW_DEFAULT_SECURITY_CONTEXT", SecurityDefault.NONE.value),
        help="what the pods of FlowRun tasks and Workflow services get where their "
        "podSecurityContext and containerSecurityContext leave a field out: restricted "
        "(runAsNonRoot, seccompProfile RuntimeDefault, allowPrivilegeEscalation false, "
        "capabilities drop ALL: Pod Security restricted; the chart's default) or none "
        "(the default here)",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=int(env.get("FLOW_WORKERS", "32")),
        help="concurrent reconciles per kind (default 32; async, so cheap)",
    )
    run.add_argument(
        "--kube-qps",
        type=float,
        default=float(env.get("FLOW_KUBE_QPS", "200")),
        help="requests a second the operator's API client sends on average (client-go's "
        "QPS; default 200, 0: no limit; docs/performance.md)",
    )
    run.add_argument(
        "--kube-burst",
        type=int,
        default=int(env.get("FLOW_KUBE_BURST", "400")),
        help="requests the API client may send at once after a quiet spell (client-go's "
        "burst; default 400)",
    )
    history = run.add_argument_group("run history (docs/history.md)")
    history.add_argument(
        "--data-dir",
        default=env.get("FLOW_DATA_DIR", DEFAULT_DATA_DIR),
        help=f"where the default SQLite history lives (default ./{DEFAULT_DATA_DIR})",
    )
    history.add_argument(
        "--history-db",
        default=env.get("FLOW_HISTORY_DB", ""),
        help="the run store: sqlite:///PATH, postgresql://USER:PASSWORD@HOST:PORT/DB, or "
        f"{NO_HISTORY} (history off: nothing recorded, no finished run deleted); default "
        "sqlite:///DATA_DIR/history.db",
    )
    history.add_argument(
        "--finished-run-ttl",
        type=duration,
        default=duration(env.get("FLOW_FINISHED_RUN_TTL", "1h")),
        help="a finished FlowRun (with its Jobs and pods) is deleted this long after it "
        "ended, once the store holds its final record and logs; a run's "
        "spec.ttlSecondsAfterFinished wins (default 1h; never: keep them)",
    )
    history.add_argument(
        "--history-retention",
        type=duration,
        default=duration(env.get("FLOW_HISTORY_RETENTION", "90d")),
        help="runs older than this leave the store (default 90d; never: keep all)",
    )
    history.add_argument(
        "--history-keep-per-flow-status",
        type=int,
        default=int(env.get("FLOW_HISTORY_KEEP_PER_FLOW_STATUS", "0")),
        help="and beyond the newest N runs per flow and status (default 0: no count limit)",
    )
    history.add_argument(
        "--log-cap",
        type=size,
        default=size(env.get("FLOW_LOG_CAP", "2MiB")),
        help="bytes of each task attempt's log the store keeps, the tail (default 2MiB)",
    )
    return top
