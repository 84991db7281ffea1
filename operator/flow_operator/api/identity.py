"""Who is asking the operator-wide API, and may they: the two auth modes (docs/security.md).

* `kubernetes`: the bearer token is a Kubernetes credential (a ServiceAccount token from
  `kubectl create token`, or an OIDC token the API server accepts). A TokenReview says
  whose it is; the answer is kept at most TOKEN_TTL seconds under the token's SHA-256
  digest (the token itself is never kept nor logged), so a deleted ServiceAccount's token
  is refused within that time. Each request is then authorized with SubjectAccessReviews
  for exactly what it does (NEEDS), decisions kept DECISION_TTL seconds per (who, verb,
  resource, namespace). The API answers from the operator's caches, so the check is the
  API's own: an endpoint without an access rule is refused in this mode (fail closed).
* `token`: today's shared token Secret. Each of its keys is a named caller (`token:<key>`)
  who may do everything, as before; the name is what the audit records.

In both modes `--read-only` refuses every action. Time is injected (`clock`): the caches
are tested without sleeping.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from typing import Generic, Protocol, TypeVar

from flow_operator import GROUP, VERSION
from flow_operator.api.auth import which
from flow_operator.errors import KubeError
from flow_operator.ports import (
    FLOWRUNS,
    FLOWS,
    PODS,
    WORKFLOWS,
    Authenticator,
    Authorizer,
    Identity,
    Permission,
    Resource,
)

KUBERNETES, TOKEN = "kubernetes", "token"
MODES = (KUBERNETES, TOKEN)
TOKEN_TTL = 60.0  # a token's review is trusted this long (the bound)
REFUSED_TTL = 10.0  # a token refused is refused without asking again this long
DECISION_TTL = 10.0  # an access decision is kept this long
MAX_ENTRIES = 10_000
TOKEN_GROUP = "flowops.io:token-callers"

# What each endpoint does, as RBAC verbs on resources in the request's namespace. An
# action reads its object (its answer shows it) and writes it; logs read the run and the
# pod's log. The dashboard's buttons follow the same table (through `me`).
Need = tuple[str, Resource, str]  # verb, resource, subresource
NEEDS: dict[str, tuple[Need, ...]] = {
    "getFlowRun": (("get", FLOWRUNS, ""),),
    "logs": (("get", FLOWRUNS, ""), ("get", PODS, "log")),
    "cancel": (("get", FLOWRUNS, ""), ("patch", FLOWRUNS, "")),
    "rerun": (("get", FLOWRUNS, ""), ("create", FLOWRUNS, "")),
    "getFlow": (("get", FLOWS, ""),),
    "getWorkflow": (("get", WORKFLOWS, ""),),
    "workflowPods": (("get", WORKFLOWS, ""), ("list", PODS, "")),
    "workflowRuns": (("get", WORKFLOWS, ""), ("list", FLOWRUNS, "")),
    "run": (("get", FLOWS, ""), ("create", FLOWRUNS, "")),
}
# GET /api/v1/audit is for admins: `list` on this virtual resource, cluster-wide (no such
# kind exists; RBAC grants it all the same: rbac.py USER_ADMIN, aggregated into admin).
AUDITS = Resource(GROUP, VERSION, "audits", "Audit", namespaced=False)
READ_AUDIT = Permission("list", AUDITS, None)
ACTIONS = frozenset({"cancel", "rerun", "run"})  # what --read-only refuses; what is audited
# What `me` reports per namespace: the lists, then the per-object abilities.
LISTS: dict[str, Resource] = {"flowruns": FLOWRUNS, "workflows": WORKFLOWS, "flows": FLOWS}
ABILITIES = ("logs", "cancel", "rerun", "run")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Unauthenticated(Exception):
    """401: no token, or one that is not (or no longer) valid."""


class Unverifiable(Exception):
    """503: the TokenReview or SubjectAccessReview could not be made (the operator lacks
    the RBAC for it, or the API server is away): not the caller's fault."""


class TtlCache(Generic[K, V]):
    """A bounded map whose entries expire `ttl` seconds after they were put (the oldest
    put is dropped first when full)."""

    def __init__(self, clock: Callable[[], float], max_entries: int = MAX_ENTRIES) -> None:
        self._clock = clock
        self._max = max_entries
        self._items: OrderedDict[K, tuple[V, float]] = OrderedDict()

    def get(self, key: K) -> tuple[bool, V | None]:
        found = self._items.get(key)
        if found is None:
            return False, None
        value, expires = found
        if expires <= self._clock():
            del self._items[key]
            return False, None
        return True, value

    def put(self, key: K, value: V, ttl: float) -> None:
        self._items[key] = (value, self._clock() + ttl)
        self._items.move_to_end(key)
        while len(self._items) > self._max:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Access(Protocol):
    """What the HTTP layer asks: whose token is it, and may they do this."""

    mode: str
    read_only: bool

    async def authenticate(self, token: str) -> Identity:
        """The caller; Unauthenticated (401) or Unverifiable (503)."""
        ...

    async def can(self, who: Identity, permission: Permission) -> bool:
        """Unverifiable (503) when it cannot be decided now."""
        ...


class KubernetesAccess:
    """TokenReview and SubjectAccessReview through the API server, cached briefly."""

    mode = KUBERNETES

    def __init__(
        self,
        authenticator: Authenticator,
        authorizer: Authorizer,
        *,
        read_only: bool = False,
        clock: Callable[[], float] = time.monotonic,
        token_ttl: float = TOKEN_TTL,
        decision_ttl: float = DECISION_TTL,
    ) -> None:
        self.authenticator, self.authorizer = authenticator, authorizer
        self.read_only = read_only
        self.token_ttl = min(token_ttl, TOKEN_TTL)
        self.decision_ttl = min(decision_ttl, DECISION_TTL)
        self.tokens: TtlCache[bytes, Identity | None] = TtlCache(clock)
        self.decisions: TtlCache[tuple[Identity, Permission], bool] = TtlCache(clock)

    async def authenticate(self, token: str) -> Identity:
        if not token:
            raise Unauthenticated("a bearer token is required (a Kubernetes token)")
        key = token_digest(token)
        hit, who = self.tokens.get(key)
        if not hit:
            try:
                who = await self.authenticator.review_token(token)
            except KubeError as e:
                raise Unverifiable(f"the token could not be reviewed: {e.message}") from None
            self.tokens.put(key, who, self.token_ttl if who else min(REFUSED_TTL, self.token_ttl))
        if who is None:
            raise Unauthenticated("the bearer token is not valid (unknown or expired)")
        return who

    async def can(self, who: Identity, permission: Permission) -> bool:
        key = (who, permission)
        hit, allowed = self.decisions.get(key)
        if hit and allowed is not None:
            return allowed
        try:
            allowed = await self.authorizer.can(who, permission)
        except KubeError as e:
            raise Unverifiable(f"the permission could not be checked: {e.message}") from None
        self.decisions.put(key, allowed, self.decision_ttl)
        return allowed


NamedKeys = Callable[[], Awaitable[Mapping[str, bytes]]]


class TokenAccess:
    """The shared token Secret: each key is a caller named after it, allowed everything."""

    mode = TOKEN

    def __init__(self, keys: NamedKeys, *, read_only: bool = False) -> None:
        self._keys = keys
        self.read_only = read_only

    async def authenticate(self, token: str) -> Identity:
        name = which(token, await self._keys())
        if name is None:
            raise Unauthenticated("a bearer token from the operator's token Secret is required")
        return Identity(user=f"token:{name}", groups=(TOKEN_GROUP,))

    async def can(self, who: Identity, permission: Permission) -> bool:
        return True


def permissions(action: str, namespace: str) -> list[Permission]:
    return [Permission(verb, res, namespace, sub) for verb, res, sub in NEEDS[action]]


async def first_missing(
    access: Access, who: Identity, wanted: Iterable[Permission]
) -> Permission | None:
    """The first permission (in order) `who` lacks, asked concurrently; None: all granted."""
    wanted = list(wanted)
    answers = await asyncio.gather(*(access.can(who, p) for p in wanted))
    return next((p for p, ok in zip(wanted, answers, strict=True) if not ok), None)


async def visible(
    access: Access, who: Identity, resource: Resource, namespaces: Iterable[str]
) -> set[str] | None:
    """The namespaces among `namespaces` where `who` may list `resource`; None: all of
    them, because a cluster-wide list is allowed."""
    if await access.can(who, Permission("list", resource, None)):
        return None
    candidates = sorted(set(namespaces))
    answers = await asyncio.gather(
        *(access.can(who, Permission("list", resource, ns)) for ns in candidates)
    )
    return {ns for ns, ok in zip(candidates, answers, strict=True) if ok}


async def describe(access: Access, who: Identity, namespaces: Iterable[str]) -> dict[str, object]:
    """`GET /api/v1/me`: the caller, and per namespace what they may see and do."""
    candidates = sorted(set(namespaces))
    cluster_wide = {
        name: await access.can(who, Permission("list", res, None)) for name, res in LISTS.items()
    }

    async def in_namespace(ns: str) -> list[str]:
        lists = [
            n for n, res in LISTS.items() if await access.can(who, Permission("list", res, ns))
        ]
        abilities = [
            a
            for a in ABILITIES
            if not (access.read_only and a in ACTIONS)
            and await first_missing(access, who, permissions(a, ns)) is None
        ]
        return lists + abilities

    per_namespace = await asyncio.gather(*(in_namespace(ns) for ns in candidates))
    return {
        "user": who.user,
        "groups": list(who.groups),
        "authMode": access.mode,
        "readOnly": access.read_only,
        "clusterWide": [name for name, ok in cluster_wide.items() if ok],
        "namespaces": [
            {"namespace": ns, "actions": actions}
            for ns, actions in zip(candidates, per_namespace, strict=True)
            if actions
        ],
    }
