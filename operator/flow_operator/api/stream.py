"""Live updates for the dashboard: Server-Sent Events fed by the operator's own topics.

The operator already decides every run's and Workflow's status; the hub turns each
decision into an event (`publish`) and hands it to the pages that show that object:

* every event takes the next number of one sequence (its SSE `id`), starting from the
  hub's creation time in microseconds, so the numbers of a restarted operator are higher
  than any its predecessor gave out;
* the last `ring` events are kept; a client that reconnects with `Last-Event-ID` gets the
  ones it missed in its scope. When that id is older than the ring (or newer than the
  sequence: another operator process), the client gets one `reset` event instead and the
  page fetches its data again;
* a client names its scope (namespace, run, kinds) and only sees what is in it, and only
  namespaces `may_see` allows (the caller's);
* each client has a bounded buffer: a client that falls that far behind is not fed
  without end, its buffer is dropped and it gets a `reset`;
* at most `max_clients` connect at once (the route answers 429 above that); a client that
  leaves is removed at once (the server cancels its handler, whose `finally` disconnects
  it), and publishing costs one scope check per connected client, nothing per gone one;
* `close` ends every stream when the server stops, so stopping does not wait for them.

`publish` is synchronous and never waits: the reconcilers call it through the topics.
The route itself is in api/server.py (`GET /api/v1/stream`), the wiring in
handlers/http.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from flow_operator.observers import RunChanged, WorkflowChanged
from flow_operator.views.runs import row_of

KINDS = frozenset({"run", "workflow"})
RING = 4096
MAX_CLIENTS = 200
CLIENT_BUFFER = 2048


@dataclass(frozen=True)
class Change:
    """One event: what changed (kind, namespace, name) and its new state (`data`)."""

    id: int
    kind: str
    namespace: str
    name: str
    data: Mapping[str, Any]

    def frame(self) -> bytes:
        body = json.dumps(
            {"kind": self.kind, "namespace": self.namespace, "name": self.name, **self.data},
            separators=(",", ":"),
        )
        return f"id: {self.id}\nevent: {self.kind}\ndata: {body}\n\n".encode()


def reset_frame(last: int, reason: str) -> bytes:
    """Tell the page to fetch again; `id` moves its Last-Event-ID to the newest event."""
    return f"id: {last}\nevent: reset\ndata: {json.dumps({'reason': reason})}\n\n".encode()


def ready_frame(last: int) -> bytes:
    """The first frame of a fresh connection: the stream is on, from this id."""
    return f"id: {last}\nevent: ready\ndata: {json.dumps({'id': last})}\n\n".encode()


def _everything(namespace: str) -> bool:
    return True


@dataclass(frozen=True)
class Scope:
    """What a page shows: one namespace (None: all), one run in it, some kinds."""

    namespace: str | None = None
    run: str | None = None
    kinds: frozenset[str] = KINDS
    may_see: Callable[[str], bool] = _everything

    def matches(self, change: Change) -> bool:
        if change.kind not in self.kinds or not self.may_see(change.namespace):
            return False
        if self.namespace is not None and change.namespace != self.namespace:
            return False
        return self.run is None or (change.kind == "run" and change.name == self.run)


class TooManyClients(Exception):
    """The hub has `max_clients` connected already."""


@dataclass(eq=False)
class Client:
    """One connected page: its scope and the frames waiting to be written to it."""

    scope: Scope
    limit: int
    frames: deque[bytes] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    overflowed: bool = False
    closed: bool = False

    def offer(self, frame: bytes) -> None:
        if self.overflowed:
            return
        if len(self.frames) >= self.limit:
            self.frames.clear()  # too far behind: it refetches instead
            self.overflowed = True
        else:
            self.frames.append(frame)
        self.wake.set()

    def take(self, last: int) -> list[bytes]:
        """The frames ready to write now (a `reset` if the buffer overflowed)."""
        if self.overflowed:
            self.overflowed = False
            self.frames.clear()
            taken = [reset_frame(last, "behind")]
        else:
            taken = list(self.frames)
            self.frames.clear()
        self.wake.clear()
        return taken

    async def wait(self, within: float) -> bool:
        """Until something is waiting (True) or `within` seconds passed (False)."""
        if self.frames or self.overflowed or self.closed:
            return True
        try:
            await asyncio.wait_for(self.wake.wait(), within)
        except TimeoutError:
            return False
        return True


class StreamHub:
    """The changes of the operator's topics, numbered, kept in a ring, fanned out."""

    def __init__(
        self,
        *,
        ring: int = RING,
        max_clients: int = MAX_CLIENTS,
        client_buffer: int = CLIENT_BUFFER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_clients = max_clients
        self.client_buffer = client_buffer
        self._ring: deque[Change] = deque(maxlen=ring)
        self._next = int(clock() * 1_000_000)
        self._clients: set[Client] = set()
        # What each object's last event said: a reconcile that decided the same again is
        # no change to a page (and a redraw under a reader's cursor), so it is not sent.
        self._said: OrderedDict[tuple[str, str, str], Mapping[str, Any]] = OrderedDict()
        self._said_max = ring

    @property
    def last_id(self) -> int:
        """The id of the newest event (one below the first id before any)."""
        return self._next - 1

    @property
    def clients(self) -> int:
        return len(self._clients)

    def publish(self, kind: str, namespace: str, name: str, data: Mapping[str, Any]) -> Change:
        change = Change(self._next, kind, namespace, name, data)
        self._next += 1
        self._ring.append(change)
        frame: bytes | None = None
        for client in self._clients:
            if client.scope.matches(change):
                frame = frame or change.frame()
                client.offer(frame)
        return change

    def _changed(self, kind: str, namespace: str, name: str, data: Mapping[str, Any]) -> None:
        """Publish `data` unless it is what this object's last event said already."""
        key = (kind, namespace, name)
        if self._said.get(key) == data:
            self._said.move_to_end(key)
            return
        self._said[key] = data
        self._said.move_to_end(key)
        while len(self._said) > self._said_max:
            self._said.popitem(last=False)
        self.publish(kind, namespace, name, data)

    def on_run(self, event: RunChanged) -> None:
        """A RunChanged from the operator's topic: the run as the run page shows it."""
        body = {**event.body, "status": event.status.dump()}
        self._changed("run", event.key[0], event.key[1], {"run": row_of(body).dump()})

    def on_workflow(self, event: WorkflowChanged) -> None:
        status = event.status
        data: dict[str, Any] = {"gone": status is None}
        if status is not None:
            data["actualStatus"] = status.actualStatus.value
        self._changed("workflow", event.key[0], event.key[1], data)

    def connect(self, scope: Scope, last_event_id: str | None = None) -> Client:
        """A new client; with `last_event_id`, what it missed is waiting in it already."""
        if len(self._clients) >= self.max_clients:
            raise TooManyClients(f"{self.max_clients} clients are connected")
        client = Client(scope, self.client_buffer)
        for frame in self._backlog(scope, last_event_id):
            client.frames.append(frame)
        self._clients.add(client)
        return client

    def disconnect(self, client: Client) -> None:
        self._clients.discard(client)

    def close(self) -> None:
        """The server stops: every client's stream ends now (not at the shutdown timeout)."""
        for client in self._clients:
            client.closed = True
            client.wake.set()

    def _backlog(self, scope: Scope, last_event_id: str | None) -> Iterable[bytes]:
        if last_event_id is None:
            return [ready_frame(self.last_id)]
        raw = last_event_id.strip()
        if not (raw.isascii() and raw.isdigit()):
            return [reset_frame(self.last_id, "unknown id")]
        last = int(raw)
        oldest = self._ring[0].id if self._ring else self._next
        if last > self.last_id or last < oldest - 1:
            return [reset_frame(self.last_id, "too old" if last < oldest else "unknown id")]
        return [c.frame() for c in self._ring if c.id > last and scope.matches(c)]


HEARTBEAT = 15.0  # seconds between keep-alive comments when nothing happens
KIND_NAMES = {"runs": "run", "workflows": "workflow"}


class BadScope(ValueError):
    """A query that names no scope the stream has."""


def scope_of(query: Mapping[str, str], may_see: Callable[[str], bool] = _everything) -> Scope:
    """The scope a request asks for: `namespace`, `run` (needs `namespace`), `kinds`
    (`runs`, `workflows`, comma-separated; default both)."""
    namespace = query.get("namespace") or None
    run = query.get("run") or None
    if run is not None and namespace is None:
        raise BadScope("query parameter run needs namespace (a run name is per namespace)")
    raw = [k.strip() for k in (query.get("kinds") or "runs,workflows").split(",") if k.strip()]
    unknown = [k for k in raw if k not in KIND_NAMES]
    if unknown or not raw:
        raise BadScope(
            f"query parameter kinds takes runs and/or workflows, comma-separated, not {unknown!r}"
        )
    return Scope(namespace, run, frozenset(KIND_NAMES[k] for k in raw), may_see)


async def serve(
    request: web.Request, hub: StreamHub, scope: Scope, heartbeat: float = HEARTBEAT
) -> web.StreamResponse:
    """Write `hub`'s events in `scope` to the request's connection until it goes (or the
    server stops). Raises TooManyClients before anything is written."""
    client = hub.connect(scope, request.headers.get("Last-Event-ID"))
    try:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # a proxy in front must not hold the events back
            }
        )
        await response.prepare(request)
        await response.write(b"retry: 2000\n\n")
        while not client.closed:
            if await client.wait(heartbeat):
                for frame in client.take(hub.last_id):
                    await response.write(frame)
            else:
                await response.write(b": keepalive\n\n")
        return response
    except ConnectionResetError:
        return response
    finally:
        hub.disconnect(client)
