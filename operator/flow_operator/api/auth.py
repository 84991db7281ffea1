"""API keys: Secret-backed key sets, constant-time matching, and a limit on failed attempts.

Keys are held only as SHA-256 digests: comparing digests keeps `hmac.compare_digest`
constant-time whatever the lengths, and no key is kept in memory in the clear. A caller
that fails authentication too often (per client address) gets 429 for every attempt
until its bucket refills, whether its key is right or not: answering a right key with
200 while refusing wrong ones would let the limit be probed.

The limiter's table is bounded, and rotating through more addresses than it holds must
not buy fresh buckets (the bypass Argo CD fixed as CVE-2024-21662): buckets that have
refilled are dropped (they are the same as none), and when the table is still full every
new address shares one global bucket. A flood from many addresses then slows all new
addresses, never the ones already known.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from flow_operator import metrics

log = logging.getLogger(__name__)

# (namespace, name) -> the Secret's `data` (base64 values), or None when it is unreadable.
SecretReader = Callable[[str, str], Awaitable[Mapping[str, str] | None]]
_DUMMY = hashlib.sha256(secrets.token_bytes(32)).digest()


def digest(key: str | bytes) -> bytes:
    raw = key.encode() if isinstance(key, str) else key
    return hashlib.sha256(raw).digest()


def matches(given: str | None, accepted: Iterable[bytes]) -> bool:
    """Does `given` equal one of the accepted digests? Compares against all, always."""
    probe = digest(given or "")
    ok = False
    compared = False
    for candidate in accepted:
        ok |= hmac.compare_digest(probe, candidate)
        compared = True
    if not compared:
        hmac.compare_digest(probe, _DUMMY)  # same work for "no keys" as for "wrong key"
    return ok and bool(given)


def which(given: str | None, named: Mapping[str, bytes]) -> str | None:
    """The name of the key `given` equals, or None. Compares against all, always."""
    probe = digest(given or "")
    found: str | None = None
    for name, candidate in sorted(named.items()):
        if hmac.compare_digest(probe, candidate) and found is None:
            found = name
    if not named:
        hmac.compare_digest(probe, _DUMMY)
    return found if given else None


def named_keys_from_data(data: Mapping[str, str] | None) -> dict[str, bytes]:
    """Each value of a Secret is one key, named by its data key; a trailing newline (from
    `--from-file`) is not part of it."""
    out: dict[str, bytes] = {}
    for name, value in (data or {}).items():
        try:
            raw = base64.b64decode(value, validate=True)
        except (ValueError, TypeError):
            continue
        raw = raw.rstrip(b"\r\n")
        if raw:
            out[str(name)] = digest(raw)
    return out


def keys_from_data(data: Mapping[str, str] | None) -> frozenset[bytes]:
    """Each value of a Secret is one key; a trailing newline (from `--from-file`) is not part."""
    return frozenset(named_keys_from_data(data).values())


@dataclass
class _Entry:
    named: dict[str, bytes]
    expires: float

    @property
    def keys(self) -> frozenset[bytes]:
        return frozenset(self.named.values())


class SecretKeys:
    """Key digests of Secrets, read on first use and kept `ttl` seconds.

    Concurrent requests for one Secret share one read; an unreadable Secret (absent,
    forbidden) is cached as "no keys" for the same TTL, so failures cost no API calls.
    """

    def __init__(
        self,
        read: SecretReader,
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 4096,
    ) -> None:
        self._read = read
        self._ttl = ttl
        self._clock = clock
        self._max = max_entries
        self._cache: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._inflight: dict[tuple[str, str], asyncio.Future[dict[str, bytes]]] = {}

    async def keys(self, namespace: str, name: str) -> frozenset[bytes]:
        return frozenset((await self.named(namespace, name)).values())

    async def named(self, namespace: str, name: str) -> dict[str, bytes]:
        """The Secret's key digests by data key (empty when it is unreadable)."""
        ident = (namespace, name)
        entry = self._cache.get(ident)
        if entry is not None and entry.expires > self._clock():
            return entry.named
        pending = self._inflight.get(ident)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[dict[str, bytes]] = asyncio.get_running_loop().create_future()
        self._inflight[ident] = future
        try:
            try:
                data = await self._read(namespace, name)
            except Exception as e:  # never let a Secret read fail a request with 500
                log.warning("could not read Secret %s/%s: %s", namespace, name, type(e).__name__)
                data = None
            keys = named_keys_from_data(data)
            self._cache[ident] = _Entry(keys, self._clock() + self._ttl)
            self._cache.move_to_end(ident)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
            future.set_result(keys)
            return keys
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # mark retrieved: waiters get it, nobody else logs it
            raise
        finally:
            del self._inflight[ident]

    def forget(self, namespace: str, name: str) -> None:
        self._cache.pop((namespace, name), None)


GLOBAL = "*"  # the bucket every new address shares while the table is full


class FailureLimiter:
    """A token bucket per client address, spent by failed authentications only; bounded
    (`max_clients`) without letting address rotation buy fresh buckets."""

    def __init__(
        self,
        burst: int = 10,
        per_second: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self.burst = burst
        self.rate = per_second
        self._clock = clock
        self._max = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # tokens, at
        self._swept = float("-inf")
        self.failures = 0

    def _tokens(self, bucket: str) -> float:
        tokens, at = self._buckets.get(bucket, (float(self.burst), self._clock()))
        return min(float(self.burst), tokens + (self._clock() - at) * self.rate)

    def bucket(self, client: str) -> str:
        """The bucket `client` spends: its own, or the global one while the table is full."""
        if client in self._buckets or client == GLOBAL:
            return client
        if len(self._buckets) >= self._max:
            self._sweep()
        return client if len(self._buckets) < self._max else GLOBAL

    def _sweep(self) -> None:
        """Drop the buckets that have refilled (at most once a second: a sweep is O(n))."""
        now = self._clock()
        if now - self._swept < 1.0:
            return
        self._swept = now
        full = [b for b in self._buckets if b != GLOBAL and self._tokens(b) >= self.burst]
        for b in full:
            del self._buckets[b]

    def retry_after(self, client: str) -> float:
        """0 when `client` may try; else seconds until its next attempt is allowed."""
        bucket = self.bucket(client)
        if bucket not in self._buckets:
            return 0.0
        tokens = self._tokens(bucket)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def failed(self, client: str, credential: str = "bearer") -> None:
        """Spend a token of `client`'s bucket; counted in a metric, logged without the key."""
        bucket = self.bucket(client)
        self._buckets[bucket] = (self._tokens(bucket) - 1, self._clock())
        self.failures += 1
        metrics.auth_failed(credential, bucket == GLOBAL)
        if self.failures & (self.failures - 1) == 0:  # the 1st, 2nd, 4th... time: no flood
            log.warning(
                "failed %s authentication from %s (%d failures so far, %d addresses tracked%s)",
                credential,
                client,
                self.failures,
                len(self._buckets),
                "; table full: new addresses share one bucket" if bucket == GLOBAL else "",
            )

    def __len__(self) -> int:
        return len(self._buckets)
