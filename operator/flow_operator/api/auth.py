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

Behind a proxy (an ingress) every caller has the proxy's address, and a few failures by
one would lock out everyone. `--api-trusted-proxies` names the proxies whose
X-Forwarded-For is believed (`client_address`); from anyone else the header is ignored.

Workflow keys come only from Secrets of type `flowops.io/api-key` (API_KEY_TYPE), each
value at least MIN_KEY_BYTES long (`api_keys`); any other Secret gives no key and a
message for the Workflow's status, so pointing a Workflow at an ordinary Secret tells
nothing about its values.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from flow_operator import metrics
from flow_operator.errors import Forbidden, NotFound
from flow_operator.ports import SecretData

log = logging.getLogger(__name__)

# (namespace, name) -> the Secret; raises NotFound, Forbidden (or another error).
SecretReader = Callable[[str, str], Awaitable[SecretData]]
API_KEY_TYPE = "flowops.io/api-key"  # the only Secret type apiKeySecretRef accepts
MIN_KEY_BYTES = 16  # 128 bits: a shorter value of an api-key Secret is refused as a key
ACCEPTED = "Accepted"  # the reason of an api-key Secret whose every key is accepted
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


def _decoded(data: Mapping[str, str] | None) -> dict[str, bytes]:
    """Each value of a Secret, decoded; a trailing newline (from `--from-file`) is not
    part of it, and an empty or undecodable value is no key."""
    out: dict[str, bytes] = {}
    for name, value in (data or {}).items():
        try:
            raw = base64.b64decode(value, validate=True)
        except (ValueError, TypeError):
            continue
        raw = raw.rstrip(b"\r\n")
        if raw:
            out[str(name)] = raw
    return out


def named_keys_from_data(data: Mapping[str, str] | None) -> dict[str, bytes]:
    """Each value of a Secret is one key, named by its data key."""
    return {name: digest(raw) for name, raw in _decoded(data).items()}


def keys_from_data(data: Mapping[str, str] | None) -> frozenset[bytes]:
    """Each value of a Secret is one key; a trailing newline (from `--from-file`) is not part."""
    return frozenset(named_keys_from_data(data).values())


@dataclass(frozen=True)
class ApiKeys:
    """The keys a Workflow's `apiKeySecretRef` gives (digests by data key) and the verdict
    on its Secret: `reason` (ACCEPTED, or why keys were refused) and a message for the
    Workflow's status that names the field and the fix, never a key."""

    named: dict[str, bytes] = field(default_factory=dict)
    reason: str = ACCEPTED
    message: str = ""


def api_keys(namespace: str, name: str, secret: SecretData | None, error: str = "") -> ApiKeys:
    """Pure: the keys of an api-key Secret. Only a Secret of type API_KEY_TYPE gives keys,
    and only its values of at least MIN_KEY_BYTES; an ordinary Secret gives none, so a
    Workflow pointed at one is no oracle for its values. `error` (NotFound, Forbidden, or
    another error's name) says why `secret` is None."""
    where = f"apiKeySecretRef: Secret {namespace}/{name}"
    fix = f"create it with type {API_KEY_TYPE} (docs/security.md)"
    if secret is None:
        if error == "NotFound":
            return ApiKeys(reason="SecretNotFound", message=f"{where} not found; {fix}")
        if error == "Forbidden":
            return ApiKeys(reason="SecretForbidden", message=(
                f"{where} cannot be read: the operator may not get Secrets in {namespace}; "
                "grant it (chart value rbac.apiKeySecrets, docs/security.md)"))  # fmt: skip
        return ApiKeys(reason="SecretUnreadable",
                       message=f"{where} could not be read ({error or 'no answer'}); "
                       "it is read again within a minute")  # fmt: skip
    if secret.type != API_KEY_TYPE:
        return ApiKeys(reason="WrongSecretType", message=f"{where} has type {secret.type}; {fix}")
    values = _decoded(secret.data)
    accepted = {k: digest(v) for k, v in values.items() if len(v) >= MIN_KEY_BYTES}
    short = sorted(set(values) - set(accepted))
    if short:
        return ApiKeys(accepted, "KeysTooShort", (
            f"{where}: the value of {', '.join(short)} is shorter than {MIN_KEY_BYTES} bytes "
            f"and is refused ({len(accepted)} of {len(values)} keys accepted); use a key of at "
            f"least {MIN_KEY_BYTES} bytes, e.g. `openssl rand -hex 16`"))  # fmt: skip
    if not accepted:
        return ApiKeys(reason="NoKeys", message=(
            f"{where} has no keys; add a value of at least {MIN_KEY_BYTES} bytes"))  # fmt: skip
    count = f"{len(accepted)} key{'s' if len(accepted) > 1 else ''}"
    return ApiKeys(accepted, ACCEPTED, f"{count} accepted from {namespace}/{name}")


@dataclass
class _Entry:
    named: dict[str, bytes]  # every value, any type: the operator's own token Secret
    api: ApiKeys  # as a Workflow's apiKeySecretRef
    expires: float

    @property
    def keys(self) -> frozenset[bytes]:
        return frozenset(self.named.values())


class SecretKeys:
    """Key digests of Secrets, read (a `get`) on first use and kept `ttl` seconds.

    Concurrent requests for one Secret share one read; an unreadable Secret (absent,
    forbidden) is cached as "no keys" for the same TTL, so failures cost no API calls.
    One instance serves the HTTP API and the Workflow reconciler's check of the Secret
    (`verdict`), so both cost one read per Secret per TTL."""

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
        self._inflight: dict[tuple[str, str], asyncio.Future[_Entry]] = {}

    async def keys(self, namespace: str, name: str) -> frozenset[bytes]:
        """The digests of the keys the Secret gives as a Workflow's apiKeySecretRef."""
        return frozenset((await self.api_keys(namespace, name)).named.values())

    async def named(self, namespace: str, name: str) -> dict[str, bytes]:
        """Every value's digest by data key, whatever the Secret's type (empty when it is
        unreadable): the operator's own token Secret."""
        return (await self._entry(namespace, name)).named

    async def api_keys(self, namespace: str, name: str) -> ApiKeys:
        """The Secret as a Workflow's apiKeySecretRef: only type API_KEY_TYPE gives keys."""
        return (await self._entry(namespace, name)).api

    async def verdict(self, namespace: str, name: str) -> tuple[str, str]:
        """(reason, message) of the Secret as an apiKeySecretRef, for the Workflow status."""
        found = await self.api_keys(namespace, name)
        return found.reason, found.message

    async def _entry(self, namespace: str, name: str) -> _Entry:
        ident = (namespace, name)
        entry = self._cache.get(ident)
        if entry is not None and entry.expires > self._clock():
            return entry
        pending = self._inflight.get(ident)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[_Entry] = asyncio.get_running_loop().create_future()
        self._inflight[ident] = future
        try:
            secret: SecretData | None = None
            error = ""
            try:
                secret = await self._read(namespace, name)
            except (NotFound, Forbidden) as e:
                error = type(e).__name__
            except Exception as e:  # never let a Secret read fail a request with 500
                error = type(e).__name__
                log.warning("could not read Secret %s/%s: %s", namespace, name, error)
            found = api_keys(namespace, name, secret, error)
            previous = self._cache.get(ident)
            if found.reason != ACCEPTED and (previous is None or previous.api != found):
                log.warning("%s", found.message)  # names the Secret and the fix, never a key
            entry = _Entry(
                named_keys_from_data(secret.data if secret else None),
                found,
                self._clock() + self._ttl,
            )
            self._cache[ident] = entry
            self._cache.move_to_end(ident)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
            future.set_result(entry)
            return entry
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # mark retrieved: waiters get it, nobody else logs it
            raise
        finally:
            del self._inflight[ident]

    def forget(self, namespace: str, name: str) -> None:
        self._cache.pop((namespace, name), None)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def proxy_networks(text: str) -> tuple[Network, ...]:
    """`--api-trusted-proxies`: comma-separated addresses or CIDRs (ValueError naming the
    bad one and the form)."""
    out = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"--api-trusted-proxies: {item!r} is not an address or CIDR "
                "(e.g. 10.0.0.0/8,fd00::/8)"
            ) from None
    return tuple(out)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_address(
    remote: str | None, forwarded_for: str | None, trusted: Sequence[Network] = ()
) -> str:
    """The address the limiter counts. The peer's, unless the peer is a trusted proxy:
    then the rightmost X-Forwarded-For address that is not a trusted proxy (a client can
    write anything at the header's left, only the proxies append on the right). With no
    trusted proxies the header is never read: anyone could pick their own bucket."""
    peer = remote or "unknown"
    if not trusted or not forwarded_for:
        return peer

    def is_trusted(text: str) -> bool:
        ip = _address(text)
        return ip is not None and any(ip in net for net in trusted)

    if not is_trusted(peer):
        return peer
    for hop in reversed(forwarded_for.split(",")):
        hop = hop.strip()
        if not is_trusted(hop):
            ip = _address(hop)
            return str(ip) if ip is not None else peer  # garbage: the proxy's own bucket
    return peer


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
