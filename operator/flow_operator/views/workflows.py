"""Workflows as the API, the dashboard and flowctl show them: list rows and the seed's
Workflow status document.

The document is `WorkflowStatus.document()` (the reference API's fields, nothing more)
with each replica's `age` as of now, from its pod's creationTimestamp: the stored age is
the age at the last status write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from flow_operator.models.workflow import WorkflowStatus
from flow_operator.objects.body import Body
from flow_operator.objects.durations import since
from flow_operator.objects.times import parse_time


def parse_status(raw: Mapping[str, Any] | None) -> WorkflowStatus | None:
    """A Workflow's status subresource as the model; None when absent or not one."""
    if not raw:
        return None
    try:
        return WorkflowStatus.model_validate(raw)
    except ValidationError:
        return None


def ready_message(status: Mapping[str, Any] | None) -> str:
    """The message of the Ready condition of a (dumped) status, or ''."""
    for cond in (status or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("message") or "")
    return ""


def live_document(status: WorkflowStatus, pods: Iterable[Body], now: datetime) -> dict[str, Any]:
    """The seed's status document, each replica's `age` recomputed from its pod's creation."""
    created: dict[str, datetime] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        at = parse_time(meta.get("creationTimestamp"))
        if at is not None and meta.get("name"):
            created[meta["name"]] = at
    doc = status.document()
    for svc in doc.get("details", {}).get("services", []):
        for replica in svc.get("replicasDetail", []):
            at = created.get(replica.get("name", ""))
            if at is not None:
                replica["age"] = since(at, now)
    return doc


class WorkflowRow(BaseModel):
    """One line of the Workflow list (the dashboard's card, flowctl's table)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    namespace: str
    name: str
    desiredStatus: str
    publishingMode: str
    actualStatus: str | None
    servicesReady: str | None
    published: bool
    message: str
    status: dict[str, Any] | None  # the status document, when the list serves it

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def key_of(body: Mapping[str, Any]) -> tuple[str, str]:
    meta = body.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def workflow_row(
    key: tuple[str, str],
    body: Mapping[str, Any],
    status: Mapping[str, Any] | None,
    document: dict[str, Any] | None = None,
) -> WorkflowRow:
    """The row of the Workflow `key` = (namespace, name) and its `body`, with `status` (a
    dumped WorkflowStatus, or the raw subresource) and the status `document` if the
    caller computed one."""
    namespace, name = key
    spec = body.get("spec") or {}
    full = status or {}
    return WorkflowRow(
        id=f"{namespace}.{name}",
        namespace=namespace,
        name=name,
        desiredStatus=str(spec.get("desiredStatus", "PUBLISHED")),
        publishingMode=str(spec.get("publishingMode", "ASYNC")),
        actualStatus=full.get("actualStatus"),
        servicesReady=full.get("servicesReady"),
        published=bool(full.get("firstPublishedAt")),
        message=ready_message(full),
        status=document,
    )
