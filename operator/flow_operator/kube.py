"""The operator's own Kubernetes calls (kopf does the watching): async, via kubernetes_asyncio.

Responses of writes are not deserialised into client models (`_preload_content=False`):
the operator never reads them, and model building is the client's main CPU cost. But then
kubernetes_asyncio returns the raw response whatever its status, 409, 422 or 503 alike
(only a preloaded response is checked), so every raw response goes through `_check`,
which raises ApiException for a non-2xx answer as the preloaded path would.

*Status before objects.* At most OBJECT_WRITES writes of child objects (applies, creates,
deletes) are under way at once; status writes and Events are not counted. A wave of new
Workflows (1,000 at once: 3,000 applies) would otherwise fill the client's connection
pool (100) and the API server's queue with applies, and every status write, the one that
says a Workflow turned GREEN included, would wait behind them. The API server is the
limit of such a wave either way (docs/performance.md): a few writes in flight keep it
busy, more only make the queue longer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from flow_operator import GROUP, MANAGER, VERSION, metrics

log = logging.getLogger(__name__)
Body = dict[str, Any]
APPLY = "application/apply-patch+yaml"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
OBJECT_WRITES = 16  # child-object writes under way at once (status writes not counted)


class Kube:
    """A thin async facade over the few API calls the reconcilers make."""

    def __init__(self, api: client.ApiClient, object_writes: int = OBJECT_WRITES) -> None:
        self.api = api
        self.object_writes = asyncio.Semaphore(object_writes)
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    @classmethod
    async def connect(cls) -> Kube:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            await config.load_kube_config()
        api = client.ApiClient()
        direct(api)
        return cls(api)

    async def close(self) -> None:
        await self.api.close()

    @staticmethod
    async def _check(response: Any) -> None:
        """Raise ApiException (status, reason, body: the API server's Status) for a raw
        response that is not a success; release it then."""
        status = getattr(response, "status", None)
        if not isinstance(status, int) or 200 <= status <= 299:
            return
        try:
            body = await response.read()
        finally:
            await Kube._release(response)
        error = ApiException(status=status, reason=getattr(response, "reason", None))
        error.body = body
        error.headers = getattr(response, "headers", None)
        raise error

    @staticmethod
    async def _release(response: Any) -> None:
        release = getattr(response, "release", None)
        if release is not None:
            release()

    @staticmethod
    async def _done(response: Any) -> None:
        """A write's raw response: raise if it was refused, else release it unread."""
        await Kube._check(response)
        await Kube._release(response)

    async def apply(self, body: Body) -> None:
        """Server-side apply as the operator's field manager (force: it owns these fields)."""
        meta = body["metadata"]
        kwargs: dict[str, Any] = {
            "field_manager": MANAGER,
            "force": True,
            "_content_type": APPLY,
            "_preload_content": False,
        }
        if body["kind"] == "Deployment":
            call = self.apps.patch_namespaced_deployment
        elif body["kind"] == "Service":
            call = self.core.patch_namespaced_service
        else:
            raise ValueError(f"no apply for kind {body['kind']}")
        async with self.object_writes:
            await self._done(await call(meta["name"], meta["namespace"], body, **kwargs))

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        """Delete, with background propagation; an object already gone is fine."""
        calls = {
            "Deployment": self.apps.delete_namespaced_deployment,
            "Service": self.core.delete_namespaced_service,
            "Job": self.batch.delete_namespaced_job,
        }
        try:
            async with self.object_writes:
                await self._done(
                    await calls[kind](
                        name, namespace, propagation_policy="Background", _preload_content=False
                    )
                )
        except ApiException as e:
            if e.status != 404:
                raise

    async def replace_status(
        self, plural: str, namespace: str, name: str, status: Body, group: str, version: str
    ) -> str:
        """Write the whole status (JSON patch `add` replaces it, and removes stale keys);
        returns the resourceVersion the write made (the watch will show it later)."""
        patch = [{"op": "add", "path": "/status", "value": status}]
        t0 = time.monotonic()
        written = await read_json(
            await self.custom.patch_namespaced_custom_object_status(
                group,
                version,
                namespace,
                plural,
                name,
                patch,
                _content_type=JSON_PATCH,
                _preload_content=False,
            )
        )
        metrics.observe_status_write(plural, time.monotonic() - t0)
        return str(((written or {}).get("metadata") or {}).get("resourceVersion", ""))

    async def create(self, body: Body) -> bool:
        """Create a Job; False when it exists already (names are deterministic, so a
        restarted operator that creates again never makes a second one)."""
        meta = body["metadata"]
        if body["kind"] != "Job":
            raise ValueError(f"no create for kind {body['kind']}")
        try:
            async with self.object_writes:
                await self._done(
                    await self.batch.create_namespaced_job(
                        meta["namespace"], body, field_manager=MANAGER, _preload_content=False
                    )
                )
        except ApiException as e:
            if e.status == 409:
                return False
            raise
        return True

    async def create_custom(self, plural: str, namespace: str, body: Body) -> Body:
        """Create one of our custom objects; returns it as the API server stored it."""
        response = await self.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, body,
            field_manager=MANAGER, _preload_content=False,
        )  # fmt: skip
        created: Body = await read_json(response)
        return created

    async def merge_patch_custom(self, plural: str, namespace: str, name: str, patch: Body) -> None:
        await self._done(
            await self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name, patch,
                field_manager=MANAGER, _content_type=MERGE_PATCH, _preload_content=False,
            )
        )  # fmt: skip

    async def pod_log(
        self, namespace: str, pod: str, *, follow: bool = False, tail_lines: int | None = None
    ) -> AsyncIterator[bytes]:
        """A pod's log through the API server (`pods/log`), as chunks while it lasts."""
        kwargs: dict[str, Any] = {"follow": follow, "_preload_content": False}
        if tail_lines is not None:
            kwargs["tail_lines"] = tail_lines
        response = await self.core.read_namespaced_pod_log(pod, namespace, **kwargs)
        await self._check(response)  # a pod without a log yet: 400, not its error as the log

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.content.iter_any():
                    yield chunk
            finally:
                await self._release(response)

        return chunks()

    async def list_events(self, namespace: str, field_selector: str) -> list[Body]:
        """Events matching a field selector (e.g. a Job's FailedCreate), as plain dicts."""
        response = await self.core.list_namespaced_event(
            namespace, field_selector=field_selector, _preload_content=False
        )
        items: list[Body] = (await read_json(response)).get("items", [])
        return items

    async def event(
        self,
        involved: Body,
        reason: str,
        message: str,
        type_: str = "Normal",
        at: datetime | None = None,
    ) -> None:
        """Post a core/v1 Event about `involved` (that happened `at`, default now); failures
        are logged, never raised."""
        meta = involved.get("metadata") or {}
        now = (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        event = {
            "metadata": {
                "generateName": f"{meta.get('name', 'flow')}.",
                "namespace": meta.get("namespace"),
            },
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": {"component": MANAGER},
            "firstTimestamp": now[:19] + "Z",
            "lastTimestamp": now[:19] + "Z",
            "count": 1,
            "reportingComponent": MANAGER,
            "reportingInstance": MANAGER,
        }
        try:
            await self._done(
                await self.core.create_namespaced_event(
                    meta.get("namespace"), event, _preload_content=False
                )
            )
        except ApiException as e:  # an event is best effort: never fail a reconcile on it
            message = api_error(e)
            # A namespace being deleted refuses new objects (403): nothing to tell.
            level = logging.DEBUG if "being terminated" in message else logging.WARNING
            log.log(level, "could not post event %s on %s: %s %s: %s",
                    reason, meta.get("name"), e.status, e.reason, message)  # fmt: skip


def direct(api: client.ApiClient) -> None:
    """Read the environment's proxy for the API server once, here, not on every request.

    kubernetes_asyncio's session trusts the environment, so aiohttp looks up the proxy
    variables and ~/.netrc on every request, each in a worker thread: two thread hops per
    API call (~5% of the operator's CPU in S1 at N = 1,000, docs/performance.md). The same
    proxy ($HTTPS_PROXY, unless $NO_PROXY names the host) is set on the client instead."""
    rest = api.rest_client
    host = urlsplit(api.configuration.host).hostname or ""
    proxy = urllib.request.getproxies().get("https")
    if proxy and not rest.proxy and not urllib.request.proxy_bypass(host):
        rest.proxy = proxy
    rest.pool_manager._trust_env = False  # aiohttp's own attribute behind `trust_env`


async def read_json(response: Any, body: bool = True) -> Any:
    """A raw (`_preload_content=False`) response: raise ApiException if it is not a
    success; else its JSON, released (with body=False: nothing; the caller streams it)."""
    await Kube._check(response)
    if not body:
        return None
    try:
        return json.loads(await response.read())
    finally:
        await Kube._release(response)


def api_error(e: ApiException) -> str:
    """The API server's own message (it names the field), not the whole HTTP dump."""
    try:
        return str(json.loads(e.body or b"").get("message") or e.reason)
    except (TypeError, ValueError):
        return str(e.reason)
