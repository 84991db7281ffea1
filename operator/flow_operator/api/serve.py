"""Building the API from the operator's parts, and its lifecycle in the operator process.

`main.py` calls `start()` at the end of its startup handler and `stop()` in cleanup; this
module is the only place that knows which kopf indexes and clients the API reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from flow_operator import GROUP, VERSION
from flow_operator.api.auth import SecretKeys
from flow_operator.api.flowruns import FlowRunBackend
from flow_operator.api.server import Api, ApiServer, Readiness
from flow_operator.api.workflows import Key, WorkflowDirectory
from flow_operator.kube import Kube
from flow_operator.models.workflow import PLURAL, WorkflowStatus
from flow_operator.reconcile.workflow import WorkflowReconciler

log = logging.getLogger(__name__)
DEFAULT_TOKEN_SECRET = "flow-operator-api"
StatusHook = Callable[[Key, WorkflowStatus | None], None]


@dataclass
class HttpOptions:
    host: str = "0.0.0.0"
    port: int = 8080
    # "namespace/name" of the operator-wide token Secret ("" = $POD_NAMESPACE or default).
    token_secret: str = ""
    namespaces: Sequence[str] = ()  # what the operator watches; empty = all


def token_secret(value: str) -> tuple[str, str]:
    if "/" in value:
        ns, _, name = value.partition("/")
        return ns, name
    return os.environ.get("POD_NAMESPACE", "default"), value or DEFAULT_TOKEN_SECRET


def secret_reader(kube: Kube) -> Callable[[str, str], Awaitable[Mapping[str, str] | None]]:
    async def read(namespace: str, name: str) -> Mapping[str, str] | None:
        try:
            secret = await kube.core.read_namespaced_secret(name, namespace)
        except ApiException as e:
            if e.status in (403, 404):
                log.warning("API key Secret %s/%s: %s", namespace, name, e.reason)
                return None
            raise
        return dict(secret.data or {})

    return read


async def list_workflow_keys(kube: Kube, namespaces: Sequence[str]) -> set[Key]:
    """The Workflows the API server holds now (names only), for the readiness check."""
    keys: set[Key] = set()
    scopes: list[str | None] = list(namespaces) or [None]
    for ns in scopes:
        token = None
        while True:
            kwargs: dict[str, Any] = {"limit": 500}
            if token:
                kwargs["_continue"] = token
            if ns is None:
                page = await kube.custom.list_cluster_custom_object(
                    GROUP, VERSION, PLURAL, **kwargs
                )
            else:
                page = await kube.custom.list_namespaced_custom_object(
                    GROUP, VERSION, ns, PLURAL, **kwargs
                )
            for item in page.get("items", []):
                meta = item.get("metadata") or {}
                keys.add((meta.get("namespace", ""), meta.get("name", "")))
            token = (page.get("metadata") or {}).get("continue")
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
                refused = isinstance(e, ApiException) and e.status in (401, 403)
                readiness.set(False, "forbidden" if refused else "unreachable")
                log.warning("not ready: cannot list Workflows: %s", e)
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


def _chain(reconciler: WorkflowReconciler, hook: StatusHook) -> None:
    """Add `hook` to the reconciler's `on_status`, keeping one already set."""
    previous = reconciler.on_status

    def both(key: Key, status: WorkflowStatus | None) -> None:
        if previous is not None:
            previous(key, status)
        hook(key, status)

    reconciler.on_status = both


class HttpApi:
    """The HTTP server of the operator process: built at startup, stopped at cleanup."""

    def __init__(self) -> None:
        self.server: ApiServer | None = None
        self.directory: WorkflowDirectory | None = None
        self._ready_task: asyncio.Task[None] | None = None

    async def start(
        self,
        options: HttpOptions,
        kube: Kube,
        workflows: Mapping[Key, Any],
        pods: Mapping[Key, Any],
        reconciler: WorkflowReconciler | None,
        flowruns: FlowRunBackend | None = None,
    ) -> None:
        directory = WorkflowDirectory(workflows, pods)
        if reconciler is not None:
            _chain(reconciler, directory.on_status)
        api = Api(
            directory=directory,
            secrets=SecretKeys(secret_reader(kube)),
            token_secret=token_secret(options.token_secret),
            flowruns=flowruns,
        )
        self.directory = directory
        self.server = ApiServer(api, options.host, options.port)
        await self.server.start()
        self._ready_task = asyncio.create_task(
            track_readiness(
                api.readiness, directory, lambda: list_workflow_keys(kube, options.namespaces)
            )
        )

    async def stop(self) -> None:
        if self._ready_task is not None:
            self._ready_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ready_task
            self._ready_task = None
        if self.server is not None:
            await self.server.stop()
            self.server = None


HTTP_API = HttpApi()
