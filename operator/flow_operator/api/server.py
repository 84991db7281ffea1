"""The aiohttp application: routes, authentication, and starting/stopping the listener.

Two kinds of callers, two credentials (docs/api.md):

* the Workflow status endpoint takes `X-API-KEY`, one of the values of the Secret the
  Workflow names in `spec.apiKeySecretRef` (the reference API's contract);
* everything operator-wide (the Workflow list, flow runs, the dashboard's data) takes
  `Authorization: Bearer <token>`: a Kubernetes token (`--auth-mode kubernetes`), each
  request authorized by SubjectAccessReviews for what it does, lists filtered to the
  namespaces the caller may list; or a value of the operator's own token Secret
  (`--auth-mode token`). api/identity.py holds both modes, api/audit.py the audit.

A missing or wrong credential is always 401, checked before the Workflow's existence is
revealed; a missing permission is 403 naming it; repeated failures from one address are
answered 429. `--read-only` refuses every action (403).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from aiohttp import web

from flow_operator import metrics
from flow_operator.api import colors, flowstats
from flow_operator.api.audit import Audit, requesting
from flow_operator.api.auth import FailureLimiter, Network, SecretKeys, client_address, matches
from flow_operator.api.flowruns import (
    QUERY,
    BadQuery,
    FlowRunBackend,
    FlowRunError,
    StoredLog,
    prune_policy,
)
from flow_operator.api.flows import FlowBackend, FlowError
from flow_operator.api.identity import (
    ACTIONS,
    KUBERNETES,
    READ_AUDIT,
    Access,
    TokenAccess,
    Unauthenticated,
    Unverifiable,
    describe,
    first_missing,
    permissions,
    visible,
)
from flow_operator.api.limits import MAX_BODY_BYTES, PARSER_LIMITS, bounded, too_large
from flow_operator.api.openapi import document as openapi_document
from flow_operator.api.stream import BadScope, StreamHub, TooManyClients, scope_of
from flow_operator.api.stream import serve as serve_stream
from flow_operator.api.workflows import Key, WorkflowDirectory
from flow_operator.errors import KubeError
from flow_operator.history.store import MAX_PAGE, AuditQuery
from flow_operator.logsafe import printable
from flow_operator.ports import FLOWRUNS, FLOWS, WORKFLOWS, Identity, Permission, Resource
from flow_operator.views.flowstats import BadStatsQuery
from flow_operator.views.paging import BadCursor
from flow_operator.views.workflow_page import pods_document
from flow_operator.views.workflows import workflow_row

log = logging.getLogger(__name__)
STATIC_FILES = {
    "age.js": "text/javascript",
    "app.js": "text/javascript",
    "auth.js": "text/javascript",
    "stream.js": "text/javascript",
    "run.js": "text/javascript",
    "flows.js": "text/javascript",
    "workflow.js": "text/javascript",
    "namespaces.js": "text/javascript",
    # vendored libraries (api/static/vendor/MANIFEST.json, docs/dashboard.md)
    "vendor/dagre.min.js": "text/javascript",
    "vendor/uPlot.iife.min.js": "text/javascript",
    "vendor/uPlot.min.css": "text/css",
    "style.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


# The words /readyz may say: ready once indexed; not ready while starting, while the
# Workflow index misses some the API server listed, when the list is refused
# (forbidden) or fails (unreachable).
READY_REASONS = frozenset({"indexed", "starting", "indexing", "forbidden", "unreachable"})


@dataclass
class Readiness:
    """Ready once startup finished and the Workflow index holds what the cluster held.

    `reason` is one word (READY_REASONS), the only thing /readyz tells an unauthenticated
    caller; the details (counts, the API server's error) go to the operator's log.
    """

    ready: bool = False
    reason: str = "starting"

    def set(self, ready: bool, reason: str) -> None:
        self.ready, self.reason = ready, reason


DEFAULT_MAX_LOG_STREAMS = 100  # settings.DEFAULT_MAX_LOG_STREAMS (a unit test keeps them equal)
LOG_RETRY_AFTER = 5  # seconds a refused log request is told to wait (Retry-After)


class LogStreamSlots:
    """At most `limit` task-log answers under way at once (--max-log-streams): each holds
    a connection of the log reader's own pool while it streams. One past the limit is
    refused (`take` is False) rather than queued: a queue of streams would be a queue of
    connections, the very thing the log reader's own pool is there to keep away from the
    reconcilers. A slot is given back however its answer ends (done, failed, the client
    gone)."""

    def __init__(self, limit: int = DEFAULT_MAX_LOG_STREAMS) -> None:
        if limit < 1:
            raise ValueError(f"max log streams must be at least 1, not {limit}")
        self.limit = limit
        self.open = 0

    def take(self) -> bool:
        if self.open >= self.limit:
            metrics.log_stream_refused()
            return False
        self.open += 1
        metrics.log_stream_opened()
        return True

    def give_back(self) -> None:
        self.open -= 1
        metrics.log_stream_closed()


@dataclass
class Api:
    """What the handlers need; built once by `main.py` (or a test, with fakes)."""

    directory: WorkflowDirectory
    secrets: SecretKeys
    # The operator-wide token Secret (namespace, name), for Bearer authentication.
    token_secret: tuple[str, str] | None = None
    flowruns: FlowRunBackend | None = None
    flows: FlowBackend | None = None
    # The live updates (GET /api/v1/stream), fed by the operator's topics.
    stream: StreamHub | None = None
    limiter: FailureLimiter = field(default_factory=FailureLimiter)
    # whose X-Forwarded-For the limiter believes (--api-trusted-proxies; none: nobody's)
    trusted_proxies: Sequence[Network] = ()
    readiness: Readiness = field(default_factory=Readiness)
    # Who the bearer token is and what they may do (api/identity.py); None: token mode
    # over `token_secret`, as before.
    access: Access | None = None
    audit: Audit = field(default_factory=Audit)
    namespaces: Sequence[str] = ()  # the watched ones (empty: all; `me` asks about each seen)
    log_streams: LogStreamSlots = field(default_factory=LogStreamSlots)

    def __post_init__(self) -> None:
        if self.access is None:
            self.access = TokenAccess(self.token_keys)

    async def token_keys(self) -> Mapping[str, bytes]:
        return await self.secrets.named(*self.token_secret) if self.token_secret else {}

    @property
    def auth(self) -> Access:
        assert self.access is not None  # __post_init__ sets it
        return self.access


API = web.AppKey("api", Api)


def error(status: int, code: str, message: str, **headers: str) -> web.Response:
    return web.json_response(
        {"error": code, "message": message}, status=status, headers=headers or None
    )


def _client(request: web.Request) -> str:
    trusted = request.app[API].trusted_proxies
    return client_address(request.remote, request.headers.get("X-Forwarded-For"), trusted)


def _too_many(api: Api, request: web.Request) -> web.Response | None:
    wait = api.limiter.retry_after(_client(request))
    if wait <= 0:
        return None
    return error(
        429,
        "TooManyRequests",
        "too many failed authentications from this address; retry later",
        **{"Retry-After": str(max(1, round(wait)))},
    )


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, indent=2))


async def _workflow_keys(api: Api, key: Key) -> frozenset[bytes]:
    secret = api.directory.secret_name(key)
    return await api.secrets.keys(key[0], secret) if secret else frozenset()


async def workflow_status(request: web.Request) -> web.Response:
    api = request.app[API]
    limited = _too_many(api, request)
    if limited is not None:
        return limited
    workflow_id = request.match_info["workflowId"]
    given = request.headers.get("X-API-KEY")
    authorized = [
        key
        for key in api.directory.resolve(workflow_id)
        if matches(given, await _workflow_keys(api, key))
    ]
    if not authorized:
        matches(given, ())  # an unknown workflow costs a compare too: timing tells nothing
        api.limiter.failed(_client(request), "api_key")
        what = "missing" if not given else "not valid for this workflow"
        return error(401, "Unauthorized", f"X-API-KEY {what}")
    if len(authorized) > 1:
        return error(
            409,
            "Conflict",
            f"workflowId {workflow_id!r} names workflows in several namespaces; "
            "use the qualified form {namespace}.{name}",
        )
    status = api.directory.published(authorized[0])
    if status is None:
        return error(404, "NotFound", "the workflow is not published")
    return _json(api.directory.document(authorized[0], status))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CALLER = web.RequestKey("caller", Identity)  # the authenticated caller
CREATED = web.RequestKey("created", str)  # the name of the run an action created


def caller(request: web.Request) -> Identity:
    return request[CALLER]


def secured(
    action: str | None = None, *, lists: Resource | None = None, anyone: bool = False
) -> Callable[[Handler], Handler]:
    """Authenticate the bearer token, then authorize what the handler does:

    - `action` (identity.NEEDS): the permissions it takes in the path's namespace, all
      checked first (403 naming the missing one); an action (cancel, rerun, run) is
      refused under --read-only and audited, done or not;
    - `lists`: the handler lists `lists` and filters its answer (`visible_namespaces`);
    - `anyone`: any authenticated caller (`me`).

    In kubernetes mode a handler with none of these is refused (403): the API answers
    from the operator's caches, so an endpoint nobody wrote an access rule for must not
    answer with the operator's rights."""

    def wrap(handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            api = request.app[API]
            limited = _too_many(api, request)
            if limited is not None:
                return limited
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            token = token.strip() if scheme.lower() == "bearer" else ""
            try:
                who = await api.auth.authenticate(token)
            except Unauthenticated as e:
                api.limiter.failed(_client(request), "bearer")
                return error(
                    401,
                    "Unauthorized",
                    str(e),
                    **{"WWW-Authenticate": 'Bearer realm="flow-operator"'},
                )
            except Unverifiable as e:
                return error(503, "Unavailable", str(e))
            request[CALLER] = who
            if action is None and lists is None and not anyone and api.auth.mode == KUBERNETES:
                log.error("%s %s has no access rule: refused in kubernetes auth mode",
                          request.method, request.match_info.route.resource)  # fmt: skip
                return error(403, "Forbidden", "this endpoint has no access rule in kubernetes "
                             "auth mode (docs/security.md)")  # fmt: skip
            if action is None:
                return await handler(request)
            return await _authorized(api, request, who, action, handler)

        wrapped.__name__ = handler.__name__
        wrapped.__doc__ = handler.__doc__
        return wrapped

    return wrap


async def _authorized(
    api: Api, request: web.Request, who: Identity, action: str, handler: Handler
) -> web.StreamResponse:
    ns, name = request.match_info["namespace"], request.match_info["name"]
    audited = action in ACTIONS
    refusal: web.Response | None = None
    if audited and api.auth.read_only:
        refusal = error(403, "ReadOnly", f"the API is read-only (--read-only): {action} is refused")
    else:
        try:
            missing = await first_missing(api.auth, who, permissions(action, ns))
        except Unverifiable as e:
            return error(503, "Unavailable", str(e))
        if missing is not None:
            refusal = error(403, "Forbidden", f"{who.user} {missing.refusal()}")
    if refusal is not None:
        if audited:
            detail = json.loads(refusal.text or "{}").get("message", "")
            await api.audit.record(who, action, ns, name, refusal.status, detail=detail)
        return refusal
    if not audited:
        return await handler(request)
    with requesting(who.user):
        response = await handler(request)
    detail = ""
    if response.status >= 300 and isinstance(response, web.Response) and response.text:
        with contextlib.suppress(ValueError, AttributeError):
            detail = str(json.loads(response.text).get("message", ""))
    created = request.get(CREATED)
    await api.audit.record(who, action, ns, name, response.status, created=created, detail=detail)
    return response


bearer = secured()  # authentication only: refused in kubernetes mode (no access rule)


async def visible_namespaces(
    request: web.Request, resource: Resource, namespaces: Iterable[str]
) -> set[str] | None:
    """The namespaces among `namespaces` the caller may list `resource` in (None: all)."""
    api = request.app[API]
    try:
        return await visible(api.auth, caller(request), resource, namespaces)
    except Unverifiable as e:
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": "Unavailable", "message": str(e)}),
            content_type="application/json",
        ) from None


async def _seen_namespaces(api: Api) -> set[str]:
    """The namespaces `me` asks about: the watched ones, or every one the indexes (and the
    run store) hold. The runs' are read from their keys: making every live run's row to
    learn its namespace held the loop ~0.5 s at 5,000 runs (bench/loop.py)."""
    if api.namespaces:
        return set(api.namespaces)
    seen = {key[0] for key in api.directory.indexed()}
    if api.flowruns is not None:
        seen |= await api.flowruns.namespaces()
    if api.flows is not None:
        seen |= {str(r["namespace"]) for r in api.flows.list()}
    return seen


@secured(anyone=True)
async def me(request: web.Request) -> web.StreamResponse:
    """Who the token is, and per namespace what they may see and do."""
    api = request.app[API]
    try:
        return _json(await describe(api.auth, caller(request), await _seen_namespaces(api)))
    except Unverifiable as e:
        return error(503, "Unavailable", str(e))


@secured(lists=WORKFLOWS)
async def list_workflows(request: web.Request) -> web.StreamResponse:
    api = request.app[API]
    namespace = request.query.get("namespace")
    keys = [k for k in api.directory.indexed() if not namespace or k[0] == namespace]
    allowed = await visible_namespaces(request, WORKFLOWS, (k[0] for k in keys))
    shown = [k for k in keys if allowed is None or k[0] in allowed]
    # ~0.1 ms a row: many Workflows are made into rows (and JSON) in a worker thread, so
    # the list does not hold the loop (bench/loop.py); the directory is only read there.
    if len(shown) > OFF_LOOP_ROWS:
        return await asyncio.to_thread(_workflow_list, api.directory, shown)
    return _workflow_list(api.directory, shown)


OFF_LOOP_ROWS = 200


def _workflow_list(directory: WorkflowDirectory, keys: Iterable[Key]) -> web.Response:
    items = []
    for key in keys:
        status = directory.status(key)
        document = directory.document(key, status) if status is not None else None
        full = status.dump() if status is not None else None
        items.append(workflow_row(key, directory.body(key) or {}, full, document).dump())
    return _json({"items": items})


@secured("getWorkflow")
async def workflow_colors(request: web.Request) -> web.StreamResponse:
    """A Workflow's color transitions and time in each color over `since`..`until`, from
    the run store (api/colors.py); 404 when it is neither live nor stored."""
    api = request.app[API]
    ns, name = request.match_info["namespace"], request.match_info["name"]
    try:
        since, until = colors.window(request.query, api.directory.clock())
        history = await _backend(request).colors(ns, name, since, until)
    except colors.BadWindow as e:
        return error(400, "BadRequest", str(e))
    except FlowRunError as e:
        return error(e.status, e.code, str(e))
    live = api.directory.body((ns, name)) is not None
    if not live and history.before is None and not history.transitions:
        return error(404, "NotFound", f"no workflow {ns}/{name}, live or in the run store")
    return _json(colors.document(ns, name, history, since, until))


@secured("workflowPods")
async def workflow_pods(request: web.Request) -> web.StreamResponse:
    """The Workflow page's services and pods: each service's rollout (its Deployment's
    replica counts) and each pod with its state and the scheduler's message, from the
    operator's watches (views/workflow_page.py); `get workflows` and `list pods`."""
    api = request.app[API]
    key = (request.match_info["namespace"], request.match_info["name"])
    if api.directory.body(key) is None:
        return error(404, "NotFound", f"no workflow {key[0]}/{key[1]}")
    status = api.directory.status(key)
    return _json(
        pods_document(
            *key,
            status.dump() if status is not None else None,
            api.directory.pods_of(key),
            api.directory.deployments_of(key),
            api.directory.clock(),
        )
    )


@secured("workflowRuns")
async def workflow_runs(request: web.Request) -> web.StreamResponse:
    """The live runs that use the Workflow (spec.workflowRef, or their Flow version's),
    newest first; `get workflows` and `list flowruns`."""
    api = request.app[API]
    ns, name = request.match_info["namespace"], request.match_info["name"]
    if api.directory.body((ns, name)) is None:
        return error(404, "NotFound", f"no workflow {ns}/{name}")
    return _json({"items": _backend(request).using_workflow(ns, name)})


AUDIT_FILTERS = ("user", "namespace", "action")


@secured(anyone=True)
async def list_audit(request: web.Request) -> web.StreamResponse:
    """The API's audited actions from the run store, newest first, one page; filters
    `user`, `namespace`, `action` (exact). Admins only: `list audits.flowops.io`
    cluster-wide in kubernetes auth mode (identity.READ_AUDIT)."""
    api = request.app[API]
    who = caller(request)
    try:
        missing = await first_missing(api.auth, who, [READ_AUDIT])
    except Unverifiable as e:
        return error(503, "Unavailable", str(e))
    if missing is not None:
        return error(403, "Forbidden", f"{who.user} {missing.refusal()} (the audit is for "
                     "admins: docs/security.md)")  # fmt: skip
    query = AuditQuery(**{k: request.query[k] for k in AUDIT_FILTERS if request.query.get(k)})
    limit = int_query(request, "limit", 1, MAX_LIMIT)
    try:
        page = await _backend(request).audit(
            query, limit=limit, cursor=request.query.get("continue") or None
        )
    except FlowRunError as e:
        return error(e.status, e.code, str(e))
    return _json({"items": [r.dump() for r in page.items], "continue": page.next_cursor})


def _backend(request: web.Request) -> FlowRunBackend:
    backend = request.app[API].flowruns
    if backend is None:
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": "Unavailable", "message": "flow runs are not served"}),
            content_type="application/json",
        )
    return backend


FILTERS = tuple(QUERY)  # search, name, configuration, runType, status, flow, namespace, …
# A page holds at most this many runs; without `limit`, this many (then `continue`).
MAX_LIMIT = MAX_PAGE


@secured(lists=FLOWRUNS)
async def list_flowruns(request: web.Request) -> web.StreamResponse:
    """Live runs merged with the history, newest first, one page (api/flowrun_backend.py)."""
    backend = _backend(request)
    filters = {k: request.query[k] for k in FILTERS if request.query.get(k)}
    limit = int_query(request, "limit", 1, MAX_LIMIT) or MAX_LIMIT
    allowed = await visible_namespaces(request, FLOWRUNS, await backend.namespaces())
    try:
        page = await backend.page(
            filters, limit=limit, cursor=request.query.get("continue") or None, namespaces=allowed
        )
    except (BadCursor, BadQuery) as e:
        return error(400, "BadRequest", str(e))
    if len(page.items) > OFF_LOOP_ROWS:  # a long page's JSON is written off the loop
        return await asyncio.to_thread(_json, page.dump(lambda row: row))
    return _json(page.dump(lambda row: row))


@secured("getFlowRun")
async def get_flowrun(request: web.Request) -> web.StreamResponse:
    ns, name = request.match_info["namespace"], request.match_info["name"]
    try:
        run = await _backend(request).detail(ns, name)
    except FlowRunError as e:
        return error(e.status, e.code, str(e))
    if run is None:
        return error(404, "NotFound", f"no flow run {ns}/{name}")
    return _json(run)


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


MAX_TAIL_LINES = 1_000_000
MAX_LIMIT_BYTES = 1 << 30  # limitBytes at most 1 GiB (absent: the whole log)
MAX_ATTEMPT = 10_000


def int_query(request: web.Request, name: str, minimum: int, maximum: int) -> int | None:
    """An integer query parameter: absent or empty is None; anything but ASCII digits in
    [minimum, maximum] is a 400 naming the parameter and what it takes."""
    raw = request.query.get(name, "")
    if not raw:
        return None
    if raw.isascii() and raw.isdigit() and minimum <= int(raw) <= maximum:
        return int(raw)
    shown = raw if len(raw) <= 20 else raw[:20] + "…"
    raise web.HTTPBadRequest(
        text=json.dumps(
            {
                "error": "BadRequest",
                "message": f"query parameter {name} must be a whole number from {minimum} to "
                f"{maximum} in ASCII digits (e.g. {name}=100), not {shown!r}",
            },
            ensure_ascii=False,
        ),
        content_type="application/json",
    )


# A follow stream of a quiet pod writes nothing for minutes. A client that closed its
# connection is seen at once (aiohttp cancels the handler, RUNNER_OPTIONS); one that
# vanished without closing (a suspended laptop, a network gone) is found by TCP
# keepalive: probes after KEEPALIVE_IDLE s of silence, KEEPALIVE_INTERVAL s apart, and
# KEEPALIVE_COUNT unanswered ones close the connection (5 + 3 x 1 = 8 s); data written
# but unacknowledged for USER_TIMEOUT_MS closes it too.
KEEPALIVE_IDLE = 5
KEEPALIVE_INTERVAL = 1
KEEPALIVE_COUNT = 3
USER_TIMEOUT_MS = 8_000


def probe_idle_client(transport: Any) -> bool:
    """Turn on the keepalive probes above on the connection of `transport` (a TCP
    socket; anything else is left alone). True when they are on."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)] + [
        (socket.IPPROTO_TCP, getattr(socket, name), value)
        for name, value in (
            ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
            ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
            ("TCP_KEEPCNT", KEEPALIVE_COUNT),
            ("TCP_USER_TIMEOUT", USER_TIMEOUT_MS),
        )
        if hasattr(socket, name)
    ]
    try:
        for level, option, value in options:
            sock.setsockopt(level, option, value)
    except OSError as e:
        log.debug("no keepalive probes on a log stream: %s", e)
        return False
    return True


async def _close(chunks: object) -> None:
    """Release the upstream `pods/log` response now (its iterator's `aclose`), not when
    the garbage collector finds the iterator."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


@secured("logs")
async def task_logs(request: web.Request) -> web.StreamResponse:
    """A task's log: at most --max-log-streams at once (429 beyond), each through the log
    reader's own client; the upstream stream is released as soon as the client leaves."""
    api = request.app[API]
    backend = _backend(request)
    follow = _flag(request.query.get("follow"))
    tail = int_query(request, "tailLines", 1, MAX_TAIL_LINES)
    limit_bytes = int_query(request, "limitBytes", 1, MAX_LIMIT_BYTES)
    attempt = int_query(request, "attempt", 1, MAX_ATTEMPT)
    slots = api.log_streams
    if not slots.take():
        return error(
            429,
            "TooManyLogStreams",
            f"{slots.limit} task logs are being streamed, the most this operator serves at "
            f"once (--max-log-streams={slots.limit}); close a log you follow (a dashboard "
            f"tab, a flowctl logs -f) or retry in {LOG_RETRY_AFTER} s",
            **{"Retry-After": str(LOG_RETRY_AFTER)},
        )
    try:
        return await _stream_log(request, backend, follow, tail, limit_bytes, attempt)
    finally:
        slots.give_back()


async def _stream_log(
    request: web.Request,
    backend: FlowRunBackend,
    follow: bool,
    tail: int | None,
    limit_bytes: int | None,
    attempt: int | None,
) -> web.StreamResponse:
    ns, name = request.match_info["namespace"], request.match_info["name"]
    task = request.match_info["task"]
    try:
        chunks = await backend.logs(
            ns, name, task, follow=follow, tail_lines=tail, attempt=attempt,
            limit_bytes=limit_bytes,
        )  # fmt: skip
    except FlowRunError as e:
        return error(e.status, e.code, str(e))
    try:
        headers = {"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"}
        if isinstance(chunks, StoredLog):  # the pod is gone: the history's capture
            headers |= chunks.headers()
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        if follow:
            probe_idle_client(request.transport)
        try:
            async for chunk in chunks:
                await response.write(chunk)
        except (ConnectionResetError, FlowRunError, KubeError) as e:
            log.debug("log stream of %s/%s/%s ended: %s", *map(printable, (ns, name, task, e)))
        await response.write_eof()
        return response
    finally:
        # Done, failed, or cancelled because the client left: the upstream goes now.
        await _close(chunks)


def _action(verb: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        backend = _backend(request)
        ns, name = request.match_info["namespace"], request.match_info["name"]
        # rerun: absent, the run's own version; latest, the Flow's current one
        version = request.query.get("version") if verb == "rerun" else None
        if version not in (None, "latest"):
            return error(400, "BadRequest", "version: only 'latest', or absent")
        try:
            if verb == "cancel":
                run = await backend.cancel(ns, name)
            else:
                run = await backend.rerun(ns, name, latest=version == "latest")
        except FlowRunError as e:
            return error(e.status, e.code, str(e))
        if verb == "rerun":
            request[CREATED] = str(run.get("name"))
        return _json(run, status=200 if verb == "cancel" else 201)

    handler.__name__ = f"{verb}_flowrun"
    return secured(verb)(handler)


# What prune takes (kubernetes auth mode): a dry run lists every run, a prune deletes them.
PRUNE_NEEDS = {
    True: Permission("list", FLOWRUNS, None),
    False: Permission("deletecollection", FLOWRUNS, None),
}


@secured(anyone=True)
async def prune_history(request: web.Request) -> web.StreamResponse:
    """The store's retention now (flowctl history prune): by `maxAge` (a duration such as
    90d, or `never`) and `keepPerFlowStatus`, each the operator's setting when absent;
    `dryRun` reports what would go and deletes nothing. A prune is an action: refused under
    --read-only, audited; it needs `deletecollection flowruns` cluster-wide (a dry run
    `list`) in kubernetes auth mode."""
    api = request.app[API]
    who = caller(request)
    backend = _backend(request)
    dry_run = _flag(request.query.get("dryRun"))
    if not dry_run and api.auth.read_only:
        response = error(403, "ReadOnly", "the API is read-only (--read-only): prune is refused")
        return await _audited_prune(api, who, response)
    need = PRUNE_NEEDS[dry_run]
    try:
        missing = await first_missing(api.auth, who, [need])
    except Unverifiable as e:
        return error(503, "Unavailable", str(e))
    if missing is not None:
        response = error(403, "Forbidden", f"{who.user} {missing.refusal()}")
        return response if dry_run else await _audited_prune(api, who, response)
    try:
        policy = prune_policy(request.query, backend.retention)
        report = await backend.prune(policy, dry_run=dry_run)
    except ValueError as e:
        response = error(400, "BadRequest", str(e))
    except FlowRunError as e:
        response = error(e.status, e.code, str(e))
    else:
        response = _json({**report.dump(), "total": report.total})
    return response if dry_run else await _audited_prune(api, who, response)


async def _audited_prune(api: Api, who: Identity, response: web.Response) -> web.Response:
    detail = ""
    with contextlib.suppress(ValueError, AttributeError):
        doc = json.loads(response.text or "{}")
        detail = str(doc.get("message") or f"{doc.get('total', 0)} runs deleted")
    await api.audit.record(who, "pruneHistory", "", "", response.status, detail=detail)
    return response


def _flows(request: web.Request) -> FlowBackend:
    backend = request.app[API].flows
    if backend is None:
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": "Unavailable", "message": "flows are not served"}),
            content_type="application/json",
        )
    return backend


def _flow_error(e: FlowError) -> web.Response:
    body: dict[str, Any] = {"error": e.code, "message": str(e)}
    if e.status in (400, 422):
        body["errors"] = e.errors or [{"path": "body", "message": str(e)}]
    return web.json_response(body, status=e.status)


@secured(lists=FLOWS)
async def list_flows(request: web.Request) -> web.StreamResponse:
    rows = _flows(request).list(request.query.get("namespace") or None)
    allowed = await visible_namespaces(request, FLOWS, (str(r["namespace"]) for r in rows))
    if allowed is not None:
        rows = [r for r in rows if r["namespace"] in allowed]
    return _json({"items": rows})


@secured("getFlow")
async def get_flow(request: web.Request) -> web.StreamResponse:
    ns, name = request.match_info["namespace"], request.match_info["name"]
    flow = _flows(request).get(ns, name)
    if flow is None:
        return error(404, "NotFound", f"no flow {ns}/{name}")
    return _json(flow)


@secured("getFlow")
async def flow_stats(request: web.Request) -> web.StreamResponse:
    """A flow's success rate and p50/p95 duration per version and configuration over
    `window`, its last `last` runs' durations and the slower/failing flag (api/flowstats.py)."""
    ns, name = request.match_info["namespace"], request.match_info["name"]
    flow = _flows(request).get(ns, name)
    try:
        doc = await flowstats.stats(_backend(request), ns, name, request.query,
                                    request.app[API].directory.clock(), flow=flow)  # fmt: skip
    except (BadStatsQuery, BadQuery, BadCursor) as e:
        return error(400, "BadRequest", str(e))
    if doc is None:
        return error(404, "NotFound", f"no flow {ns}/{name}, live or with runs in the window")
    return _json(doc)


@secured("run")
async def run_flow(request: web.Request) -> web.StreamResponse:
    """The Run action: 201 with the new run, 200 with the one an idempotency key made."""
    backend = _flows(request)
    ns, name = request.match_info["namespace"], request.match_info["name"]
    raw = await request.read()
    try:
        asked = json.loads(raw) if raw.strip() else {}
    except ValueError as e:
        return _flow_error(
            FlowError(
                400,
                "BadRequest",
                f"the body is not JSON ({e}); send an object such as "
                '{"parameters": {"region": "eu"}}',
            )
        )
    try:
        created, run = await backend.run(ns, name, asked)
    except FlowError as e:
        return _flow_error(e)
    if created:
        request[CREATED] = str(run.get("name"))
    return _json(run, status=201 if created else 200)


# What a stream's kinds list: a namespace's changes reach a client who may list each.
STREAM_LISTS: dict[str, Resource] = {"run": FLOWRUNS, "workflow": WORKFLOWS}


@secured(anyone=True)
async def stream(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events of the runs and Workflows in the asked scope (api/stream.py), of
    the namespaces where the caller may list the asked kinds. Those are decided when the
    stream opens (the namespaces known then, or the asked one); a namespace that appears
    later, or a permission granted later, shows after the page reconnects."""
    api = request.app[API]
    hub = api.stream
    if hub is None:
        return error(503, "Unavailable", "live updates are not served")
    try:
        asked = scope_of(request.query)
    except BadScope as e:
        return error(400, "BadRequest", str(e))
    candidates = {asked.namespace} if asked.namespace else await _seen_namespaces(api)
    allowed = [
        await visible_namespaces(request, STREAM_LISTS[kind], candidates)
        for kind in sorted(asked.kinds)
    ]
    if all(a is None for a in allowed):
        scope = asked
    else:
        seen = set.intersection(*(a for a in allowed if a is not None))
        scope = scope_of(request.query, seen.__contains__)
    try:
        return await serve_stream(request, hub, scope)
    except TooManyClients as e:
        return error(429, "TooManyRequests", f"{e}; retry later", **{"Retry-After": "5"})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    readiness = request.app[API].readiness
    reason = readiness.reason if readiness.reason in READY_REASONS else "unknown"
    body = {"status": "ready" if readiness.ready else "not ready", "reason": reason}
    return web.json_response(body, status=200 if readiness.ready else 503)


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


def _static_bytes(name: str) -> bytes:
    return resources.files("flow_operator.api").joinpath("static", name).read_bytes()


async def dashboard(request: web.Request) -> web.Response:
    return web.Response(
        body=_static_bytes("index.html"),
        content_type="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": CSP, "X-Frame-Options": "DENY"},
    )


async def static(request: web.Request) -> web.Response:
    name = request.match_info["filename"]
    if name not in STATIC_FILES:
        return error(404, "NotFound", "no such file")
    return web.Response(
        body=_static_bytes(name),
        content_type=STATIC_FILES[name],
        headers={"Cache-Control": "no-cache"},
    )


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error is JSON with `error` and `message`; an unexpected one is logged, not shown."""
    try:
        response = await handler(request)
    except web.HTTPRequestEntityTooLarge:  # a body without Content-Length, read past the limit
        return too_large()
    except web.HTTPException as e:
        if e.content_type == "application/json":
            raise
        return error(e.status, e.reason.replace(" ", ""), e.reason, **_allow(e))
    except Exception:
        log.exception("%s %s failed", printable(request.method), printable(request.path))
        return error(500, "InternalError", "internal error (see the operator's log)")
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def _allow(e: web.HTTPException) -> dict[str, str]:
    allow = e.headers.get("Allow")
    return {"Allow": allow} if allow else {}


ROUTES: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
    ("GET", "/healthz", healthz),
    ("GET", "/readyz", readyz),
    ("GET", "/openapi.json", openapi),
    ("GET", "/", dashboard),
    ("GET", "/static/{filename:[A-Za-z0-9._/-]+}", static),
    ("GET", "/api/v1/runtime/workflow/{workflowId}/action/status", workflow_status),
    ("GET", "/api/v1/me", me),
    ("GET", "/api/v1/workflows", list_workflows),
    ("GET", "/api/v1/workflows/{namespace}/{name}/colors", workflow_colors),
    ("GET", "/api/v1/workflows/{namespace}/{name}/pods", workflow_pods),
    ("GET", "/api/v1/workflows/{namespace}/{name}/runs", workflow_runs),
    ("GET", "/api/v1/flowruns", list_flowruns),
    ("GET", "/api/v1/flowruns/{namespace}/{name}", get_flowrun),
    ("GET", "/api/v1/flowruns/{namespace}/{name}/tasks/{task}/logs", task_logs),
    ("POST", "/api/v1/flowruns/{namespace}/{name}/cancel", _action("cancel")),
    ("POST", "/api/v1/flowruns/{namespace}/{name}/rerun", _action("rerun")),
    ("POST", "/api/v1/history/prune", prune_history),
    ("GET", "/api/v1/audit", list_audit),
    ("GET", "/api/v1/flows", list_flows),
    ("GET", "/api/v1/flows/{namespace}/{name}", get_flow),
    ("GET", "/api/v1/flows/{namespace}/{name}/stats", flow_stats),
    ("POST", "/api/v1/flows/{namespace}/{name}/runs", run_flow),
    ("GET", "/api/v1/stream", stream),
]


def make_app(api: Api) -> web.Application:
    app = web.Application(middlewares=[bounded, json_errors], client_max_size=MAX_BODY_BYTES)
    app[API] = api
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    app.on_shutdown.append(_close_streams)
    return app


async def _close_streams(app: web.Application) -> None:
    hub = app[API].stream
    if hub is not None:
        hub.close()


# A handler whose client has gone is cancelled at once (an open stream costs nothing
# after its tab closes), and the parser's hard caps; TestServer takes the same options.
RUNNER_OPTIONS: dict[str, Any] = {"handler_cancellation": True, **PARSER_LIMITS}


class ApiServer:
    """The listener, started and stopped by the operator's startup/cleanup handlers."""

    def __init__(
        self, api: Api, host: str, port: int, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.api = api
        self.host, self.port = host, port
        self.ssl_context = ssl_context  # HTTPS only (api/tls.py); None: plain HTTP
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(
            make_app(self.api), access_log=None, handle_signals=False, **RUNNER_OPTIONS
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
        try:
            await site.start()
        except OSError as e:
            # Like the metrics port: a second operator on one host (an HA test) runs on.
            log.error("HTTP API not served: cannot listen on %s:%d (%s)", self.host, self.port, e)
            await self.stop()
            return
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])  # the real one, for --http-port 0
        scheme = "https" if self.ssl_context else "http"
        log.info("HTTP API listening on %s://%s:%d/", scheme, self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
