"""API keys: Secret-backed key sets, constant-time matching, and a limit on failed attempts.

Keys are held only as SHA-256 digests: comparing digests keeps `hmac.compare_digest`
constant-time whatever the lengths, and no key is kept in memory in the clear. A caller
that fails authentication too often (per client address) gets 429 for every attempt
until its bucket refills, whether its key is right or not: answering a right key with
200 while refusing wrong ones would let the limit be probed.
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


def keys_from_data(data: Mapping[str, str] | None) -> frozenset[bytes]:
    """Each value of a Secret is one key; a trailing newline (from `--from-file`) is not part."""
    out: set[bytes] = set()
    for value in (data or {}).values():
        try:
            raw = base64.b64decode(value, validate=True)
        except (ValueError, TypeError):
            continue
        raw = raw.rstrip(b"\r\n")
        if raw:
            out.add(digest(raw))
    return frozenset(out)


@dataclass
class _Entry:
    keys: frozenset[bytes]
    expires: float


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
        self._inflight: dict[tuple[str, str], asyncio.Future[frozenset[bytes]]] = {}

    async def keys(self, namespace: str, name: str) -> frozenset[bytes]:
        ident = (namespace, name)
        entry = self._cache.get(ident)
        if entry is not None and entry.expires > self._clock():
            return entry.keys
        pending = self._inflight.get(ident)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[frozenset[bytes]] = asyncio.get_running_loop().create_future()
        self._inflight[ident] = future
        try:
            try:
                data = await self._read(namespace, name)
            except Exception as e:  # never let a Secret read fail a request with 500
                log.warning("could not read Secret %s/%s: %s", namespace, name, type(e).__name__)
                data = None
            keys = keys_from_data(data)
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


class FailureLimiter:
    """A token bucket per client address, spent by failed authentications only."""

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
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def _tokens(self, client: str) -> float:
        tokens, at = self._buckets.get(client, (float(self.burst), self._clock()))
        return min(float(self.burst), tokens + (self._clock() - at) * self.rate)

    def retry_after(self, client: str) -> float:
        """0 when `client` may try; else seconds until its next attempt is allowed."""
        if client not in self._buckets:
            return 0.0
        tokens = self._tokens(client)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def failed(self, client: str) -> None:
        self._buckets[client] = (self._tokens(client) - 1, self._clock())
        self._buckets.move_to_end(client)
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
