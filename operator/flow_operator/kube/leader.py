"""Leader election on a coordination.k8s.io Lease, as client-go does it.

Every replica runs kopf's watches and keeps its indexes warm; only the Lease holder runs
the work queues, so a standby takes over with a full view at once. The timings are
client-go's defaults:

- the holder renews every `retry` (2 s);
- a standby takes the Lease over when it has seen no renewal for `duration` (15 s),
  timed on its own clock from the moment it saw the Lease change, so clock skew between
  nodes does not matter;
- a holder that has not renewed for `renew_deadline` (10 s, less than `duration`) stops
  acting at once (`valid()` turns False, which the work queues check before every
  reconcile) and then stops itself (SIGTERM): by the time a standby may take over, the
  old holder has been idle for `duration - renew_deadline` seconds. Each renewal attempt
  is bounded by the deadline, so a hung API call cannot keep a stale holder going.
- a holder stopping gracefully releases the Lease, and a standby takes over at its next try.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from kubernetes_asyncio import client

from flow_operator.errors import Conflict, NotFound
from flow_operator.kube.client import edge
from flow_operator.objects.times import parse_time, rfc3339_micro

log = logging.getLogger(__name__)


def _parse(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    return parse_time(str(value))


class Leases(Protocol):
    """The Lease calls of kubernetes_asyncio's CoordinationV1Api (client models out)."""

    async def read_namespaced_lease(self, name: str, namespace: str) -> Any: ...

    async def create_namespaced_lease(self, namespace: str, body: Any) -> Any: ...

    async def replace_namespaced_lease(self, name: str, namespace: str, body: Any) -> Any: ...


class LeaderElector:
    """One replica's part in the election: acquire, renew, release, and stop when lost."""

    def __init__(
        self,
        api: client.ApiClient | None,
        namespace: str,
        name: str,
        identity: str,
        duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry: float = 2.0,
        leases: Leases | None = None,
    ) -> None:
        if not retry < renew_deadline < duration:
            raise ValueError("leader election needs retry < renew_deadline < duration")
        # the Lease API of `api`, or `leases` given instead (tests)
        self.leases: Leases = leases if leases is not None else client.CoordinationV1Api(api)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.duration, self.renew_deadline, self.retry = duration, renew_deadline, retry
        self.leading = False
        self._renewed = 0.0  # loop time at the start of the last successful renewal
        # The Lease record as last seen (holder, renewTime, resourceVersion), and when.
        self._seen: tuple[Any, ...] | None = None
        self._seen_at = 0.0
        self._waiting_for: str | None = None
        self._released = False  # for good: this replica is stopping

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def valid(self) -> bool:
        """May this replica act now? It holds the Lease and renewed it in time."""
        return self.leading and self._now() - self._renewed < self.renew_deadline

    def _body(
        self, now: datetime, acquired: datetime, version: str | None, transitions: int
    ) -> Any:
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if version:
            meta["resourceVersion"] = version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.duration),
                "acquireTime": rfc3339_micro(acquired),
                "renewTime": rfc3339_micro(now),
                "leaseTransitions": transitions,
            },
        }

    def _expired(self, lease: Any) -> bool:
        """Has the Lease's holder gone quiet? Timed from when this replica saw it change."""
        spec = lease.spec
        record = (spec.holder_identity, str(spec.renew_time), lease.metadata.resource_version)
        if record != self._seen:
            self._seen, self._seen_at = record, self._now()
        if not spec.holder_identity:
            return True  # released
        duration = spec.lease_duration_seconds or self.duration
        return self._now() - self._seen_at > duration

    async def try_acquire(self) -> bool:
        """One attempt to acquire or renew; True when this replica holds the Lease."""
        now = datetime.now(UTC)
        try:
            with edge():
                lease = await self.leases.read_namespaced_lease(self.name, self.namespace)
        except NotFound:
            try:
                with edge():
                    await self.leases.create_namespaced_lease(
                        self.namespace, self._body(now, now, None, 0)
                    )
                return True
            except Conflict:
                return False
        spec = lease.spec
        holder = spec.holder_identity
        mine = holder == self.identity
        if self.leading and not mine:
            log.error("the leader Lease is held by %s now", holder or "nobody")
            self._renewed = float("-inf")  # another replica may act already: not us
            return False
        if not mine and not self._expired(lease):
            if holder != self._waiting_for:
                self._waiting_for = holder
                log.info("standing by: the leader Lease %s/%s is held by %s",
                         self.namespace, self.name, holder)  # fmt: skip
            return False
        acquired = (_parse(spec.acquire_time) if mine else None) or now
        transitions = (spec.lease_transitions or 0) + (0 if mine else 1)
        body = self._body(now, acquired, lease.metadata.resource_version, transitions)
        try:
            with edge():
                await self.leases.replace_namespaced_lease(self.name, self.namespace, body)
            return True
        except Conflict:  # someone else wrote it first
            return False

    async def release(self) -> None:
        """Give the Lease up (when stopping gracefully), so a standby need not wait it out.
        This replica never tries to lead again."""
        self._released = True
        if not self.leading:
            return
        self.leading = False
        try:
            lease = await self.leases.read_namespaced_lease(self.name, self.namespace)
            if lease.spec.holder_identity != self.identity:
                return
            now = datetime.now(UTC)
            body = self._body(now, now, lease.metadata.resource_version,
                              lease.spec.lease_transitions or 0)  # fmt: skip
            body["spec"]["holderIdentity"] = ""
            body["spec"]["leaseDurationSeconds"] = 1
            await self.leases.replace_namespaced_lease(self.name, self.namespace, body)
            log.info("released the leader Lease")
        except Exception as e:  # best effort: the Lease lapses anyway
            log.warning("could not release the leader Lease: %s", e)

    async def run(
        self, on_start: Callable[[], Awaitable[None]], on_stop: Callable[[], Awaitable[None]]
    ) -> None:
        while not self._released:
            started = self._now()
            # A leader's attempt may not outlast its deadline.
            limit = self.renew_deadline - (started - self._renewed)
            if not self.leading:
                limit = self.renew_deadline
            try:
                # asyncio.timeout, not wait_for: wait_for may swallow a cancellation (3.11)
                async with asyncio.timeout(max(limit, 0.1)):
                    ok = await self.try_acquire()
            except Exception as e:  # the API may be down or slow: try again until the deadline
                log.warning("leader election: %r", e)
                ok = False
            if ok:
                self._renewed = started
                if not self.leading:
                    self.leading = True
                    self._waiting_for = None
                    log.info("became the leader (%s)", self.identity)
                    await on_start()
            elif self.leading and not self.valid():
                log.error("lost the leader Lease; stopping so that only one replica acts")
                self.leading = False
                await on_stop()
                os.kill(os.getpid(), signal.SIGTERM)
                return
            await asyncio.sleep(max(0.0, self.retry - (self._now() - started)))
