"""What the reconcilers and the HTTP API ask of the cluster, as small protocols.

flow_operator.kube.Kube implements them all against the API server; the unit tests' fakes
implement them in memory. Writes and reads are generic over a `Resource` value (group,
version, plural), so deleting a FlowRun is the same call as deleting a Job. Failures are
the project's own errors (flow_operator.errors). Pure: nothing here talks to a cluster.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from flow_operator import GROUP, VERSION
from flow_operator.objects.body import Body


@dataclass(frozen=True)
class Resource:
    """A kind of object as the API server addresses it: `group` is "" for the core group."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
REPLICASETS = Resource("apps", "v1", "replicasets", "ReplicaSet")
SERVICES = Resource("", "v1", "services", "Service")
PODS = Resource("", "v1", "pods", "Pod")
EVENTS = Resource("", "v1", "events", "Event")
SECRETS = Resource("", "v1", "secrets", "Secret")
JOBS = Resource("batch", "v1", "jobs", "Job")
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
WORKFLOWS = Resource(GROUP, VERSION, "workflows", "Workflow")
FLOWRUNS = Resource(GROUP, VERSION, "flowruns", "FlowRun")
FLOWS = Resource(GROUP, VERSION, "flows", "Flow")
CONTROLLERREVISIONS = Resource("apps", "v1", "controllerrevisions", "ControllerRevision")
TOKENREVIEWS = Resource(
    "authentication.k8s.io", "v1", "tokenreviews", "TokenReview", namespaced=False
)
SUBJECTACCESSREVIEWS = Resource(
    "authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", namespaced=False
)


@dataclass(frozen=True)
class Page:
    """One page of a list: its items, the token of the next page ("" on the last), and the
    resourceVersion the list was read at."""

    items: list[Body] = field(default_factory=list)
    continue_token: str = ""
    resource_version: str = ""


class Writer(Protocol):
    """Writes of objects (child-object writes share a cap; status writes pass it)."""

    async def apply(self, resource: Resource, body: Body) -> None:
        """Server-side apply as the operator's field manager, forcing its fields."""
        ...

    async def create(self, resource: Resource, body: Body) -> bool:
        """Create; False (not an error) when an object of that name exists already."""
        ...

    async def delete(self, resource: Resource, namespace: str, name: str) -> None:
        """Delete in the background; an object already gone is fine."""
        ...

    async def merge_patch(self, resource: Resource, namespace: str, name: str, patch: Body) -> None:
        """A JSON merge patch of the object (NotFound when it is gone)."""
        ...

    async def replace_status(
        self, resource: Resource, namespace: str, name: str, status: Body
    ) -> str:
        """Write the whole status; returns the resourceVersion the write made."""
        ...


class Reader(Protocol):
    async def get(self, resource: Resource, namespace: str, name: str) -> Body:
        """One object (NotFound when there is none)."""
        ...

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        limit: int | None = None,
        continue_token: str = "",
        label_selector: str = "",
        field_selector: str = "",
    ) -> Page:
        """One page of objects, in one namespace or (None) all of them."""
        ...


class LogReader(Protocol):
    async def pod_log(
        self,
        namespace: str,
        pod: str,
        *,
        follow: bool = False,
        tail_lines: int | None = None,
        limit_bytes: int | None = None,
    ) -> AsyncIterator[bytes]:
        """A pod's log, as chunks while it lasts, at most `limit_bytes` (Refused when there
        is none yet). The iterator is an async generator: `aclose` releases the stream."""
        ...


class LogStreams(LogReader, Protocol):
    """The HTTP API's log reader, a client of its own (kube.PodLogs), closed at stop."""

    async def close(self) -> None: ...


@dataclass(frozen=True)
class SecretData:
    """What the operator keeps of a Secret it read: its type and `data` (base64 values)."""

    type: str
    data: dict[str, str] = field(default_factory=dict)


class SecretReader(Protocol):
    async def read_secret(self, namespace: str, name: str) -> SecretData:
        """A Secret's type and `data`; NotFound, or Forbidden when not allowed."""
        ...


class EventSink(Protocol):
    async def event(
        self,
        involved: Body,
        reason: str,
        message: str,
        type_: str = "Normal",
        at: datetime | None = None,
    ) -> None:
        """Post a core/v1 Event about `involved`; best effort, never raises."""
        ...


@dataclass(frozen=True)
class Identity:
    """Who a credential belongs to, as the API server's TokenReview says (or, in token
    mode, the name of the token's key): user name, groups, uid, extra attributes."""

    user: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Permission:
    """One thing a request does, as RBAC names it: a verb on a resource (and subresource)
    of an API group, in a namespace (None: in every namespace, cluster-wide); or, with
    `path`, a verb on a non-resource URL (`get` `/metrics`, as kube-rbac-proxy asks;
    `resource` is then NON_RESOURCE)."""

    verb: str
    resource: Resource
    namespace: str | None
    subresource: str = ""
    path: str = ""

    @property
    def what(self) -> str:
        """`pods/log`, `flowruns`, `/metrics`: the resource (or URL) as RBAC rules write it."""
        if self.path:
            return self.path
        name = self.resource.plural
        return f"{name}/{self.subresource}" if self.subresource else name

    def refusal(self) -> str:
        """`cannot patch flowruns in team-b` (or `... cluster-wide`, or `cannot get /metrics`)."""
        if self.path:
            return f"cannot {self.verb} {self.path}"
        where = f"in {self.namespace}" if self.namespace else "cluster-wide"
        return f"cannot {self.verb} {self.what} {where}"


NON_RESOURCE = Resource("", "", "", "NonResourceURL", namespaced=False)


def url_permission(verb: str, path: str) -> Permission:
    """A verb on a non-resource URL (RBAC's nonResourceURLs)."""
    return Permission(verb, NON_RESOURCE, None, path=path)


class Authenticator(Protocol):
    async def review_token(self, token: str) -> Identity | None:
        """The identity of a bearer token (a TokenReview); None when it is not valid.
        Raises the project's errors when the review itself could not be made."""
        ...


class Authorizer(Protocol):
    async def can(self, who: Identity, permission: Permission) -> bool:
        """May `who` do it? (a SubjectAccessReview). Raises when it could not be asked."""
        ...
