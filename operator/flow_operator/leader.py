"""Leader election on a coordination.k8s.io Lease, as client-go does it.

Every replica runs kopf's watches and keeps its indexes warm; only the Lease holder runs
the work queues, so a standby takes over with a full view at once. The holder renews
every `renew` seconds; a Lease not renewed for `duration` seconds is taken over. A holder
that cannot renew in time stops itself (SIGTERM) rather than risk two active replicas.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

log = logging.getLogger(__name__)


def _micro(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class LeaderElector:
    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        name: str,
        identity: str,
        duration: float = 25.0,
        renew: float = 5.0,
    ) -> None:
        self.leases = client.CoordinationV1Api(api)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.duration, self.renew = duration, renew
        self.leading = False

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
                "acquireTime": _micro(acquired),
                "renewTime": _micro(now),
                "leaseTransitions": transitions,
            },
        }

    async def try_acquire(self) -> bool:
        """One attempt to acquire or renew; True when this replica holds the Lease."""
        now = datetime.now(UTC)
        try:
            lease = await self.leases.read_namespaced_lease(self.name, self.namespace)
        except ApiException as e:
            if e.status != 404:
                raise
            try:
                await self.leases.create_namespaced_lease(
                    self.namespace, self._body(now, now, None, 0)
                )
                return True
            except ApiException as e2:
                if e2.status == 409:
                    return False
                raise
        spec = lease.spec
        holder = spec.holder_identity
        renewed = _parse(spec.renew_time) or datetime.min.replace(tzinfo=UTC)
        duration = timedelta(seconds=spec.lease_duration_seconds or self.duration)
        if holder and holder != self.identity and renewed + duration > now:
            return False
        mine = holder == self.identity
        acquired = (_parse(spec.acquire_time) if mine else None) or now
        transitions = (spec.lease_transitions or 0) + (0 if mine else 1)
        body = self._body(now, acquired, lease.metadata.resource_version, transitions)
        try:
            await self.leases.replace_namespaced_lease(self.name, self.namespace, body)
            return True
        except ApiException as e:
            if e.status == 409:  # someone else wrote it first
                return False
            raise

    async def run(
        self, on_start: Callable[[], Awaitable[None]], on_stop: Callable[[], Awaitable[None]]
    ) -> None:
        last_renewal = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                ok = await self.try_acquire()
            except Exception as e:  # the API may be down: keep trying until the lease lapses
                log.warning("leader election: %s", e)
                ok = False
            if ok:
                last_renewal = loop.time()
                if not self.leading:
                    self.leading = True
                    log.info("became the leader (%s)", self.identity)
                    await on_start()
            elif self.leading and loop.time() - last_renewal > self.duration:
                log.error("lost the leader lease; stopping so that only one replica acts")
                self.leading = False
                await on_stop()
                os.kill(os.getpid(), signal.SIGTERM)
                return
            await asyncio.sleep(self.renew if self.leading else self.renew / 2)
