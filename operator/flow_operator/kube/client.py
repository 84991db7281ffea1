"""The operator's own Kubernetes calls (kopf does the watching): async, via kubernetes_asyncio.

Every call is generic over a `Resource` (flow_operator.ports): the path is built from its
group, version and plural, and the request goes through the client's ApiClient, so
deleting a FlowRun or a Job is the same call. Failures leave this module as the project's
own errors (flow_operator.errors): an HTTP status as NotFound, Conflict, Refused, Gone or
Unavailable with the API server's message, a refused or broken connection or a timeout as
Unavailable.

Responses are not deserialised into client models (`_preload_content=False`): the
operator never reads a write's answer, and model building is the client's main CPU cost.
But then kubernetes_asyncio returns the raw response whatever its status, 409, 422 or 503
alike (only a preloaded response is checked), so every raw response goes through `_check`,
which raises for a non-2xx answer as the preloaded path would.

*Status before objects.* At most OBJECT_WRITES writes of child objects (applies, creates,
deletes) are under way at once; status writes, patches and Events are not counted. A
wave of new Workflows (thousands of applies) would otherwise fill the client's connection
pool and the API server's queue with applies, and every status write, the one that says a
Workflow turned GREEN included, would wait behind them. The API server is the limit of
such a wave either way (docs/performance.md): a few writes in flight keep it busy, more
only make the queue longer.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import copy
import json
import logging
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from flow_operator import MANAGER, metrics
from flow_operator.errors import KubeError, Unavailable, for_status, status_message
from flow_operator.objects.body import Body, resource_version
from flow_operator.objects.times import rfc3339_micro
from flow_operator.ports import (
    EVENTS,
    PODS,
    SECRETS,
    SUBJECTACCESSREVIEWS,
    TOKENREVIEWS,
    Identity,
    Page,
    Permission,
    Resource,
    SecretData,
)

log = logging.getLogger(__name__)
APPLY = "application/apply-patch+yaml"
JSON = "application/json"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
OBJECT_WRITES = 16  # child-object writes under way at once (status writes not counted)
# Requests a second the client sends on average, and at once after a quiet spell
# (client-go's QPS and burst; its defaults, 5 and 10, are for kubectl, not controllers).
# Above S2's peak on the local cluster (docs/performance.md): a ceiling on what one
# operator may ask of a shared API server, not a brake on the work it has.
QPS = 200.0
BURST = 400
Query = list[tuple[str, Any]]


class ListWatch(Protocol):
    """A list (or, with watch=True, a watch) of one Resource in one namespace or all, with
    kubernetes_asyncio's keyword names; answers the raw response, unchecked."""

    def __call__(
        self,
        *,
        label_selector: str = "",
        limit: int | None = None,
        _continue: str = "",
        watch: bool = False,
        resource_version: str = "",
        allow_watch_bookmarks: bool = False,
        timeout_seconds: int | None = None,
        _preload_content: bool = False,
        _request_timeout: Any = None,
    ) -> Awaitable[Any]: ...


def path(
    resource: Resource,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """The REST path of a collection (name None) or an object, in a namespace or (None,
    or a cluster-scoped resource) across all."""
    parts = [f"/apis/{resource.group}" if resource.group else "/api", resource.version]
    if resource.namespaced and namespace is not None:
        parts += ["namespaces", quote(namespace, safe="")]
    parts.append(resource.plural)
    if name is not None:
        parts.append(quote(name, safe=""))
    if subresource:
        parts.append(subresource)
    return "/".join(parts)


def from_api_exception(e: ApiException) -> KubeError:
    """The project's error for the client library's: status, reason, the server's message."""
    reason = str(e.reason or "")
    return for_status(e.status or None, reason, status_message(e.body, reason))


@contextlib.contextmanager
def edge() -> Iterator[None]:
    """Turn the client library's and aiohttp's failures into the project's errors."""
    try:
        yield
    except KubeError:
        raise
    except ApiException as e:
        raise from_api_exception(e) from e
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError,
            ConnectionError) as e:  # fmt: skip
        raise Unavailable(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__) from e


class RateLimit:
    """A token bucket, as client-go's flowcontrol: `qps` tokens a second, at most `burst`
    held. A request takes one; with none left it reserves the next and sleeps until then
    (timed to that moment, no polling), so waiters go in the order they came. qps <= 0:
    no limit."""

    def __init__(
        self,
        qps: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.qps, self.burst = qps, max(1, burst)
        self._clock, self._sleep = clock, sleep
        self._tokens, self._at = float(self.burst), clock()
        self.waited = 0  # requests that had to wait (for tests and logs)

    async def take(self) -> None:
        if self.qps <= 0:
            return
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.qps)
        self._at = now
        self._tokens -= 1
        if self._tokens < 0:
            self.waited += 1
            await self._sleep(-self._tokens / self.qps)


class Kube:
    """A thin async facade over the API calls the operator makes; implements the ports
    (flow_operator.ports: Writer, Reader, LogReader, SecretReader, EventSink, Authenticator,
    Authorizer)."""

    def __init__(
        self,
        api: client.ApiClient,
        object_writes: int = OBJECT_WRITES,
        qps: float = QPS,
        burst: int = BURST,
    ) -> None:
        self.api = api
        self.object_writes = asyncio.Semaphore(object_writes)
        self.rate = RateLimit(qps, burst)  # every request, watches included (at their start)
        # The generated clients, for the callers not yet on Resources (api/serve.py's
        # Secret and Workflow list, handlers/children.py's listers): the lead removes them.
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    @classmethod
    async def connect(cls, qps: float = QPS, burst: int = BURST) -> Kube:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            await config.load_kube_config()
        api = client.ApiClient()
        direct(api)
        return cls(api, qps=qps, burst=burst)

    async def close(self) -> None:
        await self.api.close()

    # --- raw requests --------------------------------------------------------------------
    async def _send(
        self,
        method: str,
        url: str,
        query: Query | None = None,
        body: Any = None,
        content_type: str = JSON,
        request_timeout: Any = None,
    ) -> Any:
        """One request; the raw response, unchecked (a connection failure raises)."""
        headers = {"Accept": JSON, "Content-Type": content_type}
        await self.rate.take()
        with edge():
            return await self.api.call_api(
                url,
                method,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=request_timeout,
            )

    async def _json(self, method: str, url: str, query: Query | None = None, body: Any = None,
                    content_type: str = JSON) -> Any:  # fmt: skip
        return await read_json(await self._send(method, url, query, body, content_type))

    async def _done(self, method: str, url: str, query: Query | None = None, body: Any = None,
                    content_type: str = JSON) -> None:  # fmt: skip
        """A write: raise if it was refused, else release its response unread."""
        response = await self._send(method, url, query, body, content_type)
        await _check(response)
        await _release(response)

    # --- Writer --------------------------------------------------------------------------
    async def apply(self, resource: Resource, body: Body) -> None:
        """Server-side apply as the operator's field manager (force: it owns these fields)."""
        meta = body["metadata"]
        url = path(resource, meta.get("namespace"), meta["name"])
        query: Query = [("fieldManager", MANAGER), ("force", True)]
        async with self.object_writes:
            await self._done("PATCH", url, query, body, APPLY)

    async def create(self, resource: Resource, body: Body) -> bool:
        """Create; False when it exists already (a Job's name is deterministic, so a
        restarted operator that creates again never makes a second one)."""
        url = path(resource, (body.get("metadata") or {}).get("namespace"))
        try:
            async with self.object_writes:
                await self._done("POST", url, [("fieldManager", MANAGER)], body)
        except KubeError as e:
            if e.status == 409:
                return False
            raise
        return True

    async def create_returning(self, resource: Resource, body: Body) -> Body:
        """Create (a name may be generated); the object as the API server stored it.
        Conflict when it exists already."""
        url = path(resource, (body.get("metadata") or {}).get("namespace"))
        created: Body = await self._json("POST", url, [("fieldManager", MANAGER)], body)
        return created

    async def delete(self, resource: Resource, namespace: str, name: str) -> None:
        """Delete, with background propagation; an object already gone is fine."""
        url = path(resource, namespace, name)
        try:
            async with self.object_writes:
                await self._done("DELETE", url, [("propagationPolicy", "Background")])
        except KubeError as e:
            if e.status != 404:
                raise

    async def merge_patch(self, resource: Resource, namespace: str, name: str, patch: Body) -> None:
        url = path(resource, namespace, name)
        await self._done("PATCH", url, [("fieldManager", MANAGER)], patch, MERGE_PATCH)

    async def replace_status(
        self, resource: Resource, namespace: str, name: str, status: Body
    ) -> str:
        """Write the whole status (JSON patch `add` replaces it, and removes stale keys);
        returns the resourceVersion the write made (the watch will show it later)."""
        patch = [{"op": "add", "path": "/status", "value": status}]
        url = path(resource, namespace, name, "status")
        t0 = time.monotonic()
        written = await self._json("PATCH", url, None, patch, JSON_PATCH)
        metrics.observe_status_write(resource.plural, time.monotonic() - t0)
        return resource_version(written)

    # --- Reader, SecretReader, LogReader ---------------------------------------------------
    async def get(self, resource: Resource, namespace: str, name: str) -> Body:
        found: Body = await self._json("GET", path(resource, namespace, name))
        return found

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        limit: int | None = None,
        continue_token: str = "",
        label_selector: str = "",
        field_selector: str = "",
    ) -> Page:
        """One page of objects (as plain dicts), in one namespace or all of them."""
        query: Query = []
        for key, value in (("labelSelector", label_selector), ("fieldSelector", field_selector),
                           ("limit", limit), ("continue", continue_token)):  # fmt: skip
            if value:
                query.append((key, value))
        page = await self._json("GET", path(resource, namespace), query)
        meta = page.get("metadata") or {}
        return Page(
            items=list(page.get("items") or []),
            continue_token=str(meta.get("continue") or ""),
            resource_version=str(meta.get("resourceVersion") or ""),
        )

    async def read_secret(self, namespace: str, name: str) -> SecretData:
        """A Secret's type (Opaque when unset, as the API server defaults it) and `data`
        (base64 values, as stored)."""
        secret = await self.get(SECRETS, namespace, name)
        data = {str(k): str(v) for k, v in (secret.get("data") or {}).items()}
        return SecretData(str(secret.get("type") or "Opaque"), data)

    async def list_events(self, namespace: str, field_selector: str) -> builtins.list[Body]:
        """Events matching a field selector (e.g. a Job's FailedCreate), as plain dicts."""
        return (await self.list(EVENTS, namespace, field_selector=field_selector)).items

    async def pod_log(
        self,
        namespace: str,
        pod: str,
        *,
        follow: bool = False,
        tail_lines: int | None = None,
        limit_bytes: int | None = None,
    ) -> AsyncIterator[bytes]:
        """A pod's log through the API server (`pods/log`), as chunks while it lasts (at
        most `limit_bytes`, the API server's own cut). Closing the iterator (`aclose`)
        releases the response, and with it the connection, at once."""
        query: Query = [("follow", follow)]
        if tail_lines is not None:
            query.append(("tailLines", tail_lines))
        if limit_bytes is not None:
            query.append(("limitBytes", limit_bytes))
        url = path(PODS, namespace, pod, "log")
        response = await self._send("GET", url, query)
        await _check(response)  # a pod without a log yet: 400, not its error as the log

        async def chunks() -> AsyncIterator[bytes]:
            try:
                with edge():
                    async for chunk in response.content.iter_any():
                        yield chunk
            finally:
                await _release(response)

        return chunks()

    def lister(self, resource: Resource, namespace: str | None = None) -> ListWatch:
        """The list/watch call of `resource` in one namespace or all (for the informers)."""
        url = path(resource, namespace)

        async def call(
            *,
            label_selector: str = "",
            field_selector: str = "",
            limit: int | None = None,
            _continue: str = "",
            watch: bool = False,
            resource_version: str = "",
            allow_watch_bookmarks: bool = False,
            timeout_seconds: int | None = None,
            _preload_content: bool = False,  # always raw: read_json reads it
            _request_timeout: Any = None,
        ) -> Any:
            query: Query = []
            for key, value in (
                ("labelSelector", label_selector),
                ("fieldSelector", field_selector),
                ("limit", limit),
                ("continue", _continue),
                ("watch", watch),
                ("resourceVersion", resource_version),
                ("allowWatchBookmarks", allow_watch_bookmarks),
                ("timeoutSeconds", timeout_seconds),
            ):
                if value:
                    query.append((key, value))
            return await self._send("GET", url, query, request_timeout=_request_timeout)

        return call

    # --- Authenticator, Authorizer ----------------------------------------------------------
    async def review_token(self, token: str) -> Identity | None:
        """A TokenReview of a bearer token: who it is, or None when the API server does
        not accept it (the token is sent, never logged)."""
        review = {
            "apiVersion": TOKENREVIEWS.api_version,
            "kind": TOKENREVIEWS.kind,
            "spec": {"token": token},
        }
        answer = await self._json("POST", path(TOKENREVIEWS), None, review)
        return identity_of(answer)

    async def can(self, who: Identity, permission: Permission) -> bool:
        """A SubjectAccessReview: may `who` do `permission`?"""
        answer = await self._json(
            "POST", path(SUBJECTACCESSREVIEWS), None, access_review(who, permission)
        )
        return bool((answer.get("status") or {}).get("allowed"))

    # --- EventSink -----------------------------------------------------------------------
    async def event(
        self,
        involved: Body,
        reason: str,
        message: str,
        type_: str = "Normal",
        at: datetime | None = None,
    ) -> None:
        """Post a core/v1 Event about `involved` (that happened `at`, default now); an
        answer refusing it is logged, never raised."""
        meta = involved.get("metadata") or {}
        now = rfc3339_micro(at or datetime.now(UTC))
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
            await self._done("POST", path(EVENTS, meta.get("namespace")), None, event)
        except KubeError as e:  # an event is best effort: never fail a reconcile on it
            if e.status is None:
                raise  # no answer at all: the recorder logs it
            # A namespace being deleted refuses new objects (403): nothing to tell.
            level = logging.DEBUG if "being terminated" in e.message else logging.WARNING
            log.log(level, "could not post event %s on %s: %s %s: %s",
                    reason, meta.get("name"), e.status, e.reason, e.message)  # fmt: skip


class PodLogs:
    """The HTTP API's log reader: `pods/log` through a client and connection pool of its
    own (a second ApiClient, the same cluster and credentials as `kube`'s), so open log
    streams never hold a connection, or a place in a connection queue, that a reconciler's
    status write needs (issue 21). At most `connections` streams at once: the API refuses
    more (429) before they get here, so none waits for a connection either."""

    def __init__(self, kube: Kube, connections: int) -> None:
        self._kube = kube
        self.connections = connections

    @classmethod
    def beside(cls, kube: Kube, connections: int) -> PodLogs:
        """A reader on `kube`'s configuration, with a pool of `connections` of its own."""
        configuration = copy.deepcopy(kube.api.configuration)
        configuration.connection_pool_maxsize = connections
        api = client.ApiClient(configuration)
        direct(api)
        return cls(Kube(api), connections)

    @property
    def api(self) -> client.ApiClient:
        return self._kube.api

    async def pod_log(
        self,
        namespace: str,
        pod: str,
        *,
        follow: bool = False,
        tail_lines: int | None = None,
        limit_bytes: int | None = None,
    ) -> AsyncIterator[bytes]:
        return await self._kube.pod_log(
            namespace, pod, follow=follow, tail_lines=tail_lines, limit_bytes=limit_bytes
        )

    async def close(self) -> None:
        await self._kube.close()


def identity_of(review: Body) -> Identity | None:
    """The user of a TokenReview's answer; None unless it says `authenticated`."""
    status = review.get("status") or {}
    user = status.get("user") or {}
    if not status.get("authenticated") or not user.get("username"):
        return None
    extra = tuple(
        sorted(
            (str(k), tuple(str(x) for x in v or ())) for k, v in (user.get("extra") or {}).items()
        )
    )
    return Identity(
        user=str(user["username"]),
        groups=tuple(str(g) for g in user.get("groups") or ()),
        uid=str(user.get("uid") or ""),
        extra=extra,
    )


def access_review(who: Identity, permission: Permission) -> Body:
    """The SubjectAccessReview asking whether `who` may do `permission`."""
    spec: Body = {"user": who.user, "groups": list(who.groups)}
    if permission.path:  # a non-resource URL: /metrics
        spec["nonResourceAttributes"] = {"path": permission.path, "verb": permission.verb}
    else:
        attributes: Body = {
            "verb": permission.verb,
            "group": permission.resource.group,
            "resource": permission.resource.plural,
        }
        if permission.subresource:
            attributes["subresource"] = permission.subresource
        if permission.namespace:
            attributes["namespace"] = permission.namespace
        spec["resourceAttributes"] = attributes
    if who.uid:
        spec["uid"] = who.uid
    if who.extra:
        spec["extra"] = {k: list(v) for k, v in who.extra}
    return {
        "apiVersion": SUBJECTACCESSREVIEWS.api_version,
        "kind": SUBJECTACCESSREVIEWS.kind,
        "spec": spec,
    }


def direct(api: client.ApiClient) -> None:
    """Read the environment's proxy for the API server once, here, not on every request.

    kubernetes_asyncio's session trusts the environment, so aiohttp looks up the proxy
    variables and ~/.netrc on every request, each in a worker thread: two thread hops per
    API call (docs/performance.md). The same proxy ($HTTPS_PROXY, unless $NO_PROXY names
    the host) is set on the client instead."""
    rest = api.rest_client
    host = urlsplit(api.configuration.host).hostname or ""
    proxy = urllib.request.getproxies().get("https")
    if proxy and not rest.proxy and not urllib.request.proxy_bypass(host):
        rest.proxy = proxy
    rest.pool_manager._trust_env = False  # aiohttp's own attribute behind `trust_env`


async def _check(response: Any) -> None:
    """Raise the project's error (status, reason, the API server's Status message) for a
    raw response that is not a success; release it then."""
    status = getattr(response, "status", None)
    if not isinstance(status, int) or 200 <= status <= 299:
        return
    try:
        with edge():
            body = await response.read()
    finally:
        await _release(response)
    reason = str(getattr(response, "reason", None) or "")
    raise for_status(status, reason, status_message(body, reason))


async def _release(response: Any) -> None:
    release = getattr(response, "release", None)
    if release is not None:
        release()


async def read_json(response: Any, body: bool = True) -> Any:
    """A raw (`_preload_content=False`) response: raise if it is not a success; else its
    JSON, released (with body=False: nothing; the caller streams it)."""
    await _check(response)
    if not body:
        return None
    try:
        with edge():
            return json.loads(await response.read())
    finally:
        await _release(response)


__all__ = [
    "OBJECT_WRITES",
    "Kube",
    "ListWatch",
    "PodLogs",
    "access_review",
    "direct",
    "edge",
    "identity_of",
    "path",
    "read_json",
]
