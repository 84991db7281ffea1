"""Informers for the operator's children: list, then watch, keep a slim copy of each object
in memory grouped by the key of the Workflow or FlowRun it belongs to, and say which key
changed.

kopf watches the operator's own resources (Workflows, FlowRuns). The children
(Deployments, ReplicaSets, Pods, Services, Jobs) are many more, and for them two of
kopf's costs dominate at scale: every event goes through kopf's per-object machinery (a
worker task, causes, diff bases, deep copies), and on a restart its index pre-population
is quadratic in the number of objects (each object's worker waits on one condition that
every other object's arrival notifies). An informer costs a JSON decode, a projection and
a dict update per event. The measurements are in docs/performance.md.

Like client-go's reflector: the list is paginated; the watch resumes from the last
resourceVersion it saw (bookmarks included), relists only when that version has expired
(410), and retries for ever with a capped backoff, so an API server outage of any length
ends in a watch that resumes, never in a dead operator.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any

import aiohttp

from flow_operator.errors import Gone, for_status
from flow_operator.kube.client import read_json
from flow_operator.objects.body import Body

log = logging.getLogger(__name__)
Key = tuple[str, str]
Lister = Callable[..., Awaitable[Any]]  # Kube.lister(resource, namespace): list or watch
PAGE = 500
BACKOFF_MAX = 5.0


class Informer(Mapping[Key, Sequence[Body]]):
    """One list+watch of one kind (in one namespace, or all), filtered by a label selector.

    As a Mapping it is the view the reconcilers read: key -> the slim bodies of that key's
    objects (a tuple, safe to hold across an await)."""

    def __init__(
        self,
        name: str,
        lister: Lister,
        selector: str,
        key_of: Callable[[Body], Key | None],
        project: Callable[[Body], Body],
        on_change: Callable[[Key], None],
        timeout: int = 300,
        field_selector: str = "",
    ) -> None:
        self.name = name
        self._lister = lister
        self._selector = selector
        self._fields = field_selector
        self._key_of = key_of
        self._project = project
        self._on_change = on_change
        self._timeout = timeout
        self._store: dict[Key, dict[str, Body]] = {}
        self._where: dict[str, Key] = {}  # uid -> key
        self.version = ""  # "" = list first
        self.synced = asyncio.Event()  # set once the first list is in the store
        self.events = 0  # watch events applied (for tests and logs)
        # What of an object its owner's reconcile reads (None: all of its projection): a
        # MODIFIED event that leaves it alike updates the store and wakes nobody.
        self.significant: Callable[[Body], Any] | None = None
        self.quiet = 0  # events that woke nobody (for tests and logs)

    # --- the Mapping the reconcilers read ---
    def __getitem__(self, key: Key) -> Sequence[Body]:
        return tuple(self._store[key].values())

    def __iter__(self) -> Iterator[Key]:
        return iter(list(self._store))

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, key: object) -> bool:
        return key in self._store

    def key_of_uid(self, uid: str) -> Key | None:
        """The key the object with this uid is stored under (None: not seen, or gone)."""
        return self._where.get(uid)

    # --- list and watch ---
    async def run(self) -> None:
        failures = 0
        while True:
            try:
                if not self.version:
                    await self._list()
                await self._watch()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Gone:
                self.version = ""  # expired: relist at once
                continue
            except Exception as e:
                failures += 1
                delay = min(0.5 * 2 ** (failures - 1), BACKOFF_MAX)
                if failures & (failures - 1) == 0:  # 1st, 2nd, 4th, 8th... time: no flood
                    log.warning("watch of %s failed (attempt %d), again in %.1fs: %r",
                                self.name, failures, delay, e)  # fmt: skip
                await asyncio.sleep(delay)

    async def _list(self) -> None:
        items: list[Body] = []
        token = ""
        version = ""
        while True:
            kwargs: dict[str, Any] = {"label_selector": self._selector, "limit": PAGE}
            if self._fields:
                kwargs["field_selector"] = self._fields
            if token:
                kwargs["_continue"] = token
            page = await read_json(await self._lister(**kwargs, _preload_content=False))
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            version = meta.get("resourceVersion") or version
            token = meta.get("continue") or ""
            if not token:
                break
        store: dict[Key, dict[str, Body]] = {}
        where: dict[str, Key] = {}
        for obj in items:
            key = self._key_of(obj)
            uid = (obj.get("metadata") or {}).get("uid", "")
            if key is not None:
                store.setdefault(key, {})[uid] = self._project(obj)
                where[uid] = key
        old, self._store, self._where = self._store, store, where
        self.version = version
        if self.synced.is_set():  # a relist: tell what it changed
            for key in old.keys() | store.keys():
                if old.get(key) != store.get(key):
                    self._on_change(key)
        self.synced.set()

    async def _watch(self) -> None:
        fields = {"field_selector": self._fields} if self._fields else {}
        response = await self._lister(
            label_selector=self._selector,
            **fields,
            watch=True,
            resource_version=self.version,
            allow_watch_bookmarks=True,
            timeout_seconds=self._timeout,
            _preload_content=False,
            # the server ends the watch after timeout_seconds; a silent connection beyond
            # that is dead
            _request_timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=10, sock_read=self._timeout + 30
            ),
        )
        await read_json(response, body=False)  # raises for a refused watch (410 included)
        try:
            async for line in response.content:
                if line.strip():
                    self.apply(json.loads(line))
                    # A line already buffered is read without a pause: a burst of events
                    # would hold the loop, and every API answer and reconcile with it.
                    await asyncio.sleep(0)
        finally:
            response.release()

    def apply(self, event: Body) -> None:
        """One watch event into the store; the keys it concerns are told."""
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            reason, message = str(obj.get("reason") or ""), str(obj.get("message") or "")
            raise for_status(obj.get("code"), reason, message)
        meta = obj.get("metadata") or {}
        self.version = meta.get("resourceVersion") or self.version
        if kind == "BOOKMARK":
            return
        self.events += 1
        uid = meta.get("uid", "")
        old = self._where.get(uid)
        new = None if kind == "DELETED" else self._key_of(obj)
        if old is not None and old != new:
            bucket = self._store.get(old, {})
            bucket.pop(uid, None)
            if not bucket:
                self._store.pop(old, None)
            del self._where[uid]
        before = self._store.get(new, {}).get(uid) if new is not None and old == new else None
        if new is not None:
            body = self._store.setdefault(new, {})[uid] = self._project(obj)
            self._where[uid] = new
            if (
                before is not None
                and self.significant is not None
                and self.significant(before) == self.significant(body)
            ):
                self.quiet += 1
                return  # nothing its owner reads changed
        if old is not None:
            self._on_change(old)
        if new is not None and new != old:
            self._on_change(new)


class Merged(Mapping[Key, Sequence[Body]]):
    """Several informers of one kind (one per watched namespace) read as one: their keys
    are disjoint, since a key starts with its namespace."""

    def __init__(self, informers: Sequence[Informer]) -> None:
        self.informers = list(informers)

    def __getitem__(self, key: Key) -> Sequence[Body]:
        for informer in self.informers:
            if key in informer:
                return informer[key]
        raise KeyError(key)

    def __iter__(self) -> Iterator[Key]:
        for informer in self.informers:
            yield from informer

    def __len__(self) -> int:
        return sum(len(i) for i in self.informers)

    def __contains__(self, key: object) -> bool:
        return any(key in i for i in self.informers)

    def key_of_uid(self, uid: str) -> Key | None:
        for informer in self.informers:
            if (key := informer.key_of_uid(uid)) is not None:
                return key
        return None
