"""The audit of the API's actions (cancel, rerun, Run): who did what to which object, when,
and how it ended (docs/security.md#audit).

Each action is recorded three ways:

* a structured log line (logger `flow_operator.audit`, one JSON object: user, groups,
  action, target, time, result), refused and failed attempts included; the record also
  carries the `Entry` (attribute `audit`), which the run store's sink on that logger
  (handlers/history.py) queues for the audit table (GET /api/v1/audit), so a request
  never waits for the database and the API knows nothing of the store's writer;
* a Kubernetes Event on the object that names the user (`cancelled by
  system:serviceaccount:team-a:alice`), through the operator's EventSink (its background
  recorder), for an action that was done;
* the annotation `flowops.io/requested-by` on a run the action created: `Stamped` wraps
  the backends' client and adds it to a FlowRun created while a request of a known caller
  is being served (`requesting`, a context variable: aiohttp serves each request in a
  task of its own), so the run carries it from its first version on.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from flow_operator import GROUP
from flow_operator.history.store import AuditRecord
from flow_operator.objects.body import Body
from flow_operator.objects.times import rfc3339
from flow_operator.ports import FLOWRUNS, FLOWS, EventSink, Identity, Resource

log = logging.getLogger("flow_operator.audit")
AUDIT_ATTRIBUTE = "audit"  # the log record's attribute holding the Entry
REQUESTED_BY = f"{GROUP}/requested-by"
_requester: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "flowops_requested_by", default=None
)

# action -> (the kind of its target, the Event's reason, the Event's message)
EVENTS: dict[str, tuple[Resource, str, str]] = {
    "cancel": (FLOWRUNS, "CancelRequested", "cancelled by {user}"),
    "rerun": (FLOWRUNS, "RerunRequested", "rerun as {created} by {user}"),
    "run": (FLOWS, "RunRequested", "run {created} started by {user}"),
}


@dataclass(frozen=True)
class Entry:
    """One audited action."""

    user: str
    groups: tuple[str, ...]
    action: str
    namespace: str
    name: str
    time: datetime
    status: int  # the HTTP status answered
    created: str | None = None  # the run an action made
    detail: str = ""  # why it was refused or failed
    # Made once per action: the run store's audit table stores it once however often
    # the history's writer retries it.
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def result(self) -> str:
        if self.status < 300:
            return "done"
        return "refused" if self.status in (401, 403) else "failed"

    def dump(self) -> dict[str, object]:
        out: dict[str, object] = {
            "user": self.user,
            "groups": list(self.groups),
            "action": self.action,
            "target": f"{self.namespace}/{self.name}",
            "time": rfc3339(self.time),
            "result": self.result,
            "status": self.status,
        }
        if self.created:
            out["created"] = f"{self.namespace}/{self.created}"
        if self.detail:
            out["detail"] = self.detail
        return out

    def stored(self) -> AuditRecord:
        """The row of the run store's audit table."""
        described = EVENTS.get(self.action)
        return AuditRecord(
            id=self.id,
            time=self.time,
            user=self.user,
            groups=self.groups,
            action=self.action,
            namespace=self.namespace,
            kind=described[0].kind if described is not None else "",
            name=self.name,
            result=self.result,
            status=self.status,
            created=self.created,
            detail=self.detail,
        )


# (resource, namespace, name) -> the object as the operator's index holds it, or None
Lookup = Callable[[Resource, str, str], Body | None]


class Audit:
    """Writes each Entry to the log and, for an action done, an Event on its object."""

    def __init__(
        self,
        events: EventSink | None = None,
        lookup: Lookup | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.events, self.lookup, self.clock = events, lookup, clock

    async def record(
        self,
        who: Identity,
        action: str,
        namespace: str,
        name: str,
        status: int,
        *,
        created: str | None = None,
        detail: str = "",
    ) -> Entry:
        entry = Entry(
            who.user, who.groups, action, namespace, name, self.clock(), status, created, detail
        )
        # `audit` carries the entry itself to the log's other sinks: the run store's
        # (handlers/history.py AuditSink) writes it to the audit table, off the request.
        log.info("audit %s", json.dumps(entry.dump(), ensure_ascii=True, sort_keys=True),
                 extra={AUDIT_ATTRIBUTE: entry})  # fmt: skip
        described = EVENTS.get(action)
        if entry.result == "done" and described is not None and self.events is not None:
            resource, reason, message = described
            involved = self._involved(resource, namespace, name)
            text = message.format(user=who.user, created=created or "?")
            await self.events.event(involved, reason, text, "Normal", entry.time)
        return entry

    def _involved(self, resource: Resource, namespace: str, name: str) -> Body:
        """The object as the operator's index holds it (its uid ties the Event to it, so
        `kubectl describe` shows it); its name alone when it is not there."""
        found = self.lookup(resource, namespace, name) if self.lookup is not None else None
        if found is not None:
            return found
        return {
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": {"namespace": namespace, "name": name},
        }


@contextlib.contextmanager
def requesting(user: str) -> Iterator[None]:
    """While this block runs (in this task), FlowRuns created through `Stamped` carry
    `flowops.io/requested-by: <user>`."""
    token = _requester.set(user)
    try:
        yield
    finally:
        _requester.reset(token)


def stamp(resource: Resource, body: Body) -> Body:
    """`body` with the requester's annotation, when it is a FlowRun made for a request."""
    user = _requester.get()
    if user is None or resource != FLOWRUNS:
        return body
    meta = dict(body.get("metadata") or {})
    meta["annotations"] = {**(meta.get("annotations") or {}), REQUESTED_BY: user}
    return {**body, "metadata": meta}


class RunActions(Protocol):
    """What the flow-run and Flow backends ask of the cluster (both protocols in one)."""

    async def get(self, resource: Resource, namespace: str, name: str) -> Body: ...

    async def merge_patch(
        self, resource: Resource, namespace: str, name: str, patch: Body
    ) -> None: ...

    async def create_returning(self, resource: Resource, body: Body) -> Body: ...

    async def pod_log(
        self,
        namespace: str,
        pod: str,
        *,
        follow: bool = False,
        tail_lines: int | None = None,
        limit_bytes: int | None = None,
    ) -> AsyncIterator[bytes]: ...


class Stamped:
    """The backends' client, with `stamp` applied to every object it creates."""

    def __init__(self, kube: RunActions) -> None:
        self.kube = kube

    async def get(self, resource: Resource, namespace: str, name: str) -> Body:
        return await self.kube.get(resource, namespace, name)

    async def merge_patch(self, resource: Resource, namespace: str, name: str, patch: Body) -> None:
        await self.kube.merge_patch(resource, namespace, name, patch)

    async def create_returning(self, resource: Resource, body: Body) -> Body:
        return await self.kube.create_returning(resource, stamp(resource, body))

    async def pod_log(
        self,
        namespace: str,
        pod: str,
        *,
        follow: bool = False,
        tail_lines: int | None = None,
        limit_bytes: int | None = None,
    ) -> AsyncIterator[bytes]:
        return await self.kube.pod_log(
            namespace, pod, follow=follow, tail_lines=tail_lines, limit_bytes=limit_bytes
        )
