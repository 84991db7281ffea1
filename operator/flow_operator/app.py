"""The composition root: one `Operator` object owns every part of the running operator.

It is built once from `Settings` and a list of kinds (main.KINDS). Each kind's
`handlers/<kind>.setup(app)` registers its kopf handlers on `app.registry`, declares its
work queue, and adds a build step; nothing else knows a kind. At kopf's startup the
operator connects, runs every build step (each declares the children it watches, makes
its reconciler and binds it to its queue, subscribes to the topics), checks that every
declared queue got a reconciler, lists the children, then starts the queues (now, or on
leadership) and the serve steps (the HTTP API). kopf's cleanup stops it all in reverse.

kopf is handed the object as `memo`; its per-object shallow copies are the object itself
(`__copy__`), so there is one operator, never a stale copy of one.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import kopf

from flow_operator import MANAGER, gcpolicy, metrics
from flow_operator.builders.naming import MANAGED_BY
from flow_operator.events import EventRecorder
from flow_operator.kube import Kube, PodLogs
from flow_operator.kube.informer import Informer, Key, Merged
from flow_operator.kube.leader import LeaderElector
from flow_operator.objects.body import Body
from flow_operator.observers import RunChanged, Topic, WorkflowChanged
from flow_operator.ports import LogStreams, Resource
from flow_operator.reconcile.workqueue import Reconcile, WorkQueue
from flow_operator.settings import Settings

log = logging.getLogger("flow_operator")
T = TypeVar("T")


class WiringError(RuntimeError):
    """A kind's setup is inconsistent (a queue declared twice, or never bound): the
    operator refuses to start rather than drop that kind's events."""


class Queue:
    """A work queue a kind declared at setup, by name; bound to its reconciler at start."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.work: WorkQueue | None = None

    def enqueue(self, key: Key, delay: float = 0.0, urgent: bool = False) -> None:
        if self.work is None:
            raise WiringError(f"queue {self.name!r} was enqueued before its reconciler was bound")
        self.work.enqueue(key, delay, urgent)


class Queues:
    """Every declared queue; `bind` gives one its reconciler, `unbound` is checked at start."""

    def __init__(self) -> None:
        self._queues: dict[str, Queue] = {}

    def declare(self, name: str) -> Queue:
        if name in self._queues:
            raise WiringError(f"queue {name!r} is declared twice")
        queue = self._queues[name] = Queue(name)
        return queue

    def __getitem__(self, name: str) -> Queue:
        try:
            return self._queues[name]
        except KeyError:
            known = ", ".join(sorted(self._queues)) or "none"
            raise WiringError(f"no queue {name!r} (declared: {known})") from None

    def bind(self, queue: Queue, reconcile: Reconcile, workers: int) -> WorkQueue:
        if queue.work is not None:
            raise WiringError(f"queue {queue.name!r} is bound twice")
        work = queue.work = WorkQueue(queue.name, reconcile, workers=workers)
        work.on_done = metrics.reconcile_observer(queue.name)
        work.on_wait = metrics.wait_observer(queue.name)
        metrics.track_queue(queue.name, work)
        return work

    def unbound(self) -> list[str]:
        return sorted(name for name, q in self._queues.items() if q.work is None)

    def bound(self) -> list[WorkQueue]:
        return [q.work for q in self._queues.values() if q.work is not None]

    async def start(self) -> None:
        for work in self.bound():
            work.start()

    async def stop(self) -> None:
        for work in self.bound():
            await work.stop()


def _keyed_by(label: str) -> Callable[[Body], Key | None]:
    def key_of(obj: Body) -> Key | None:
        meta = obj.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(label)
        return (meta.get("namespace") or "", owner) if owner else None

    return key_of


@dataclass
class Started:
    """What a kind's build step works with: the connected client and kopf's indexes, and
    the HTTP API's log reader (a client and pool of its own, never the reconcilers')."""

    app: Operator
    kube: Kube
    indexes: Mapping[str, Any]
    informers: list[Informer] = field(default_factory=list)
    provided: dict[type, object] = field(default_factory=dict)
    logs: LogStreams | None = None

    def log_reader(self) -> LogStreams:
        """The log streams' own client (Operator.start made it beside `kube`)."""
        if self.logs is None:
            raise WiringError("no log reader: the operator was started without one")
        return self.logs

    def provide(self, value: object) -> None:
        """Offer a built part (a kind's view, say) to the build steps after this one."""
        self.provided[type(value)] = value

    def need(self, kind: type[T]) -> T:
        """A part an earlier build step provided; a missing one fails here, by name."""
        value = self.provided.get(kind)
        if not isinstance(value, kind):
            raise WiringError(
                f"no {kind.__name__} was provided by an earlier kind (main.KINDS order)"
            )
        return value

    def index(self, name: str) -> Any:
        """kopf's index `name` (a kopf.Index); a name no handler registered fails here."""
        try:
            return self.indexes[name]
        except KeyError:
            known = ", ".join(sorted(self.indexes)) or "none"
            raise WiringError(f"no kopf index {name!r} (registered: {known})") from None

    def watch(
        self, name: str, resource: Resource, label: str, project: Callable[[Body], Body],
        queue: Queue,
    ) -> Merged:  # fmt: skip
        """The operator's children of one kind, found by `label` (their owner's name):
        cluster-wide or one informer per namespace watched. A change enqueues the owner
        urgently (its status has to follow the cluster). Started with the others."""
        namespaces = self.app.settings.namespaces
        scopes = (
            [(name, self.kube.lister(resource))]
            if not namespaces
            else [(f"{name} in {ns}", self.kube.lister(resource, ns)) for ns in namespaces]
        )
        selector = f"{MANAGED_BY}={MANAGER},{label}"
        wake = functools.partial(queue.enqueue, urgent=True)
        informers = [
            Informer(scope, lister, selector, _keyed_by(label), project, wake)
            for scope, lister in scopes
        ]
        self.informers.extend(informers)
        return Merged(informers)


Build = Callable[[Started], None]
Serve = Callable[[Started], Awaitable[None]]
Stop = Callable[[], Awaitable[None]]


class Operator:
    """The application: the client, queues, topics, watches and servers of one process."""

    def __init__(
        self,
        settings: Settings,
        kinds: tuple[Callable[[Operator], None], ...],
        connect: Callable[[], Awaitable[Kube]] = Kube.connect,
        connect_logs: Callable[[Kube, int], LogStreams] = PodLogs.beside,
    ) -> None:
        self.settings = settings
        self.registry = kopf.OperatorRegistry()
        self.queues = Queues()
        self.runs: Topic[RunChanged] = Topic("run changed")
        self.workflows: Topic[WorkflowChanged] = Topic("workflow changed")
        self._connect = connect
        self._connect_logs = connect_logs
        self._builds: list[Build] = []
        self._serves: list[Serve] = []
        self._stops: list[Stop] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.kube: Kube | None = None
        self.logs: LogStreams | None = None
        self.events: EventRecorder | None = None
        self.elector: LeaderElector | None = None
        for setup in kinds:
            setup(self)
        # kopf's default registry logs in through the client library's config (kubeconfig
        # or the pod's ServiceAccount); a registry of our own has to ask for it.
        kopf.on.login(registry=self.registry)(kopf.login_via_client)
        kopf.on.startup(registry=self.registry)(self._startup)
        kopf.on.cleanup(registry=self.registry)(self._cleanup)

    def __copy__(self) -> Operator:
        return self  # kopf copies its memo per object: there is one operator

    # --- what a kind's setup registers ---
    def on_build(self, build: Build) -> Build:
        self._builds.append(build)
        return build

    def on_serve(self, serve: Serve) -> Serve:
        self._serves.append(serve)
        return serve

    def on_stop(self, stop: Stop) -> Stop:
        self._stops.append(stop)
        return stop

    def spawn(self, coro: Awaitable[None], name: str) -> None:
        """A background task of the operator's lifetime, cancelled at cleanup."""
        self._tasks.append(asyncio.ensure_future(coro))
        self._tasks[-1].set_name(name)

    @property
    def recorder(self) -> EventRecorder:
        if self.events is None:
            raise WiringError("the event recorder exists only once the operator started")
        return self.events

    # --- kopf's lifecycle ---
    async def _startup(self, settings: kopf.OperatorSettings, **kwargs: Any) -> None:
        configure_kopf(settings)
        await self.start(kwargs)

    async def _cleanup(self, **_: Any) -> None:
        await self.stop()

    async def start(self, indexes: Mapping[str, Any]) -> None:
        """Connect, build every kind, list the children, then act (or wait to lead)."""
        kube = self.kube = await self._connect()
        # The HTTP API's log streams get a client and connection pool of their own, one
        # connection per stream the cap allows (--max-log-streams): a hundred followed
        # logs never queue a status write behind them (issue 21, docs/api.md).
        logs = self.logs = self._connect_logs(kube, self.settings.http.max_log_streams)
        # Events are posted in the background (flow_operator.events): no reconcile waits
        self.events = EventRecorder(kube)
        self.events.start()
        started = Started(self, kube, indexes, logs=logs)
        for build in self._builds:
            build(started)
        if unbound := self.queues.unbound():
            raise WiringError(f"queues declared but given no reconciler: {', '.join(unbound)}")
        await self._list(started.informers)
        self.spawn(metrics.watch_loop_lag(), "loop lag")
        metrics.time_gc()
        # the informers' objects are long-lived: full collections must not walk them all
        self.spawn(gcpolicy.keep_collections_short(), "gc")
        if self.settings.leader_election:
            # Events queue up while this replica waits; the workers start on leadership.
            elector = self.elector = LeaderElector(
                kube.api, self.settings.leader_namespace, "flow-operator", self.settings.identity
            )
            for work in self.queues.bound():
                work.gate = elector.valid  # a leader that missed its renewal acts no more
            self.spawn(elector.run(self.queues.start, self.queues.stop), "leader election")
        else:
            await self.queues.start()
        for serve in self._serves:
            await serve(started)
        log.info("operator ready")

    async def _list(self, informers: list[Informer]) -> None:
        """Start every informer and wait until each has its first list in memory, so no
        reconcile decides on a partial view (a restarted operator must not write a status
        computed before the pods were listed)."""
        t0 = time.monotonic()
        for informer in informers:
            self.spawn(informer.run(), f"informer {informer.name}")
        await asyncio.gather(*(i.synced.wait() for i in informers))
        objects = sum(len(bodies) for i in informers for bodies in i.values())
        log.info("listed %d children in %d informers in %.1fs", objects, len(informers),
                 time.monotonic() - t0)  # fmt: skip

    async def stop(self) -> None:
        """Stop in reverse: servers, background tasks, queues, events, the Lease, clients."""
        for stop in reversed(self._stops):
            await stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.queues.stop()
        if self.events is not None:
            await self.events.stop()  # what the last reconciles recorded is still posted
            self.events = None
        if self.elector is not None:
            await self.elector.release()  # the standby takes over now, not when it lapses
            self.elector = None
        if self.logs is not None:
            await self.logs.close()
            self.logs = None
        if self.kube is not None:
            await self.kube.close()
            self.kube = None


class RetryForever:
    """Backoffs for kopf's API requests that never run out: 0.5, 1, 2, then 5 s for ever."""

    def __iter__(self) -> Iterator[float]:
        return itertools.chain((0.5, 1.0, 2.0), itertools.repeat(5.0))


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    """kopf's settings for this operator (why each, below)."""
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
