"""Hosting the HTTP API in the operator process: built from the operator's parts, started
and stopped with it (handlers/http.py wires it; api/server.py is the aiohttp app itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from flow_operator.api.audit import Audit, Lookup
from flow_operator.api.auth import Network, SecretKeys
from flow_operator.api.flowruns import FlowRunBackend
from flow_operator.api.flows import FlowBackend
from flow_operator.api.identity import KUBERNETES, Access, KubernetesAccess, TokenAccess
from flow_operator.api.scrape import MetricsServer
from flow_operator.api.server import Api, ApiServer, LogStreamSlots, Readiness
from flow_operator.api.stream import StreamHub
from flow_operator.api.tls import follow, server_context
from flow_operator.api.workflows import Key, WorkflowDirectory
from flow_operator.errors import Forbidden
from flow_operator.ports import (
    WORKFLOWS,
    Authenticator,
    Authorizer,
    EventSink,
    Reader,
    SecretReader,
)

log = logging.getLogger(__name__)
DEFAULT_TOKEN_SECRET = "flow-operator-api"


def token_secret(value: str) -> tuple[str, str]:
    if "/" in value:
        ns, _, name = value.partition("/")
        return ns, name
    return os.environ.get("POD_NAMESPACE", "default"), value or DEFAULT_TOKEN_SECRET


async def list_workflow_keys(kube: Reader, namespaces: Sequence[str]) -> set[Key]:
    """The Workflows the API server holds now (names only), for the readiness check."""
    keys: set[Key] = set()
    scopes: list[str | None] = list(namespaces) or [None]
    for ns in scopes:
        token = ""
        while True:
            page = await kube.list(WORKFLOWS, ns, limit=500, continue_token=token)
            for item in page.items:
                meta = item.get("metadata") or {}
                keys.add((meta.get("namespace", ""), meta.get("name", "")))
            token = page.continue_token
            if not token:
                break
    return keys


async def track_readiness(
    readiness: Readiness,
    directory: WorkflowDirectory,
    list_keys: Callable[[], Awaitable[set[Key]]],
    poll: float = 0.2,
    relist: float = 5.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Ready once every Workflow the API server listed is in the index (re-listed now and
    then, so one deleted meanwhile does not hold readiness back). The reason is a word
    (server.READY_REASONS); what lies behind it is logged."""
    loop = asyncio.get_running_loop()
    wanted: set[Key] | None = None
    listed_at = 0.0
    while True:
        if wanted is None or loop.time() - listed_at > relist:
            try:
                wanted = await list_keys()
                listed_at = loop.time()
            except Exception as e:
                readiness.set(False, "forbidden" if isinstance(e, Forbidden) else "unreachable")
                log.warning("not ready: cannot list Workflows: %s: %s", type(e).__name__, e)
                await sleep(relist)
                continue
        missing = wanted - set(directory.indexed())
        if not missing:
            readiness.set(True, "indexed")
            log.info("ready: %d workflows indexed", len(wanted))
            return
        if readiness.reason != "indexing":
            log.info("not ready: %d of %d workflows not indexed yet", len(missing), len(wanted))
        readiness.set(False, "indexing")
        await sleep(poll)


class HostCluster(Reader, SecretReader, Authenticator, Authorizer, Protocol):
    """What the hosted API asks of the cluster itself (the FlowRun backend has its own):
    Workflows and Secrets, and in kubernetes auth mode the token and access reviews."""


class HttpHost:
    """The HTTP server of the operator process: built at start, stopped at cleanup. The
    directory exists from the start, so it can follow the Workflow statuses (`on_status`)
    before the server listens."""

    def __init__(
        self,
        kube: HostCluster,
        workflows: Mapping[Key, Any],
        pods: Mapping[Key, Any],
        flowruns: FlowRunBackend | None = None,
        flows: FlowBackend | None = None,
        events: EventSink | None = None,
        lookup: Lookup | None = None,
        secrets: SecretKeys | None = None,
        deployments: Mapping[Key, Any] | None = None,
    ) -> None:
        self.kube = kube
        # shared with the Workflow reconciler's check of apiKeySecretRef: one read per TTL
        self.secrets = secrets or SecretKeys(kube.read_secret)
        self.events, self.lookup = events, lookup
        self.directory = WorkflowDirectory(workflows, pods, deployments=deployments)
        self.stream = StreamHub()  # fed by the topics from the start, like the directory
        self.flowruns = flowruns
        self.flows = flows
        self.server: ApiServer | None = None
        self.metrics: MetricsServer | None = None
        self._ready_task: asyncio.Task[None] | None = None
        self._tls_task: asyncio.Task[None] | None = None

    async def start(
        self,
        host: str,
        port: int,
        token_secret_name: str,
        namespaces: Sequence[str],
        *,
        auth_mode: str = "token",
        read_only: bool = False,
        max_log_streams: int | None = None,
        trusted_proxies: Sequence[Network] = (),
        tls: tuple[str, str] | None = None,
        metrics_port: int = 0,
        metrics_auth: bool = False,
    ) -> None:
        """Listen; with `tls` (certificate and key files) over HTTPS only. With
        `metrics_port`, /metrics is served here too (with TLS, and with `metrics_auth` a
        Kubernetes token allowed `get /metrics`: api/scrape.py)."""
        api = Api(
            directory=self.directory,
            secrets=self.secrets,
            token_secret=token_secret(token_secret_name),
            flowruns=self.flowruns,
            flows=self.flows,
            namespaces=namespaces,
            audit=Audit(self.events, self.lookup),
            stream=self.stream,
            trusted_proxies=trusted_proxies,
        )
        if max_log_streams is not None:
            api.log_streams = LogStreamSlots(max_log_streams)
        access: Access = (
            KubernetesAccess(self.kube, self.kube, read_only=read_only)
            if auth_mode == KUBERNETES
            else TokenAccess(api.token_keys, read_only=read_only)
        )
        api.access = access
        log.info("HTTP API auth mode: %s%s", auth_mode, " (read-only)" if read_only else "")
        context = server_context(*tls) if tls else None
        if context is not None and tls:
            # one context serves the API and /metrics, so one reload renews both
            self._tls_task = asyncio.create_task(follow(context, *tls))
        self.server = ApiServer(api, host, port, context)
        await self.server.start()
        if metrics_port:
            scrapers: Access | None = None
            if metrics_auth:
                scrapers = (
                    access if access.mode == KUBERNETES else KubernetesAccess(self.kube, self.kube)
                )
            self.metrics = MetricsServer(scrapers, host, metrics_port, context)
            await self.metrics.start()
        self._ready_task = asyncio.create_task(
            track_readiness(
                api.readiness, self.directory, lambda: list_workflow_keys(self.kube, namespaces)
            )
        )

    async def stop(self) -> None:
        if self._tls_task is not None:
            self._tls_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tls_task
            self._tls_task = None
        if self._ready_task is not None:
            self._ready_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ready_task
            self._ready_task = None
        if self.server is not None:
            await self.server.stop()
            self.server = None
        if self.metrics is not None:
            await self.metrics.stop()
            self.metrics = None
