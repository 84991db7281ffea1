"""Workflow wiring: index the Workflows and their children, enqueue on every change.

Every handler is `async def`: kopf runs a plain `def` in a thread pool, which costs a
thread hop per event and would touch the asyncio work queue from outside its loop.

Children are found by labels the builders set, and grouped by (namespace, workflow), so
a Pod event reaches its Workflow without an API call. kopf runs no handler before every
index is filled from the initial listing, so a restarted operator decides on a full view.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from flow_operator import GROUP, MANAGER, VERSION
from flow_operator.builders.naming import MANAGED_BY, WORKFLOW_LABEL
from flow_operator.handlers import slim
from flow_operator.models.workflow import PLURAL
from flow_operator.runtime import RUNTIME

QUEUE = "workflow"
OWNED: Mapping[str, Any] = {
    MANAGED_BY: MANAGER,
    WORKFLOW_LABEL: kopf.PRESENT,
}


def _key(namespace: str | None, labels: Mapping[str, str]) -> tuple[str, str]:
    return (namespace or "", labels[WORKFLOW_LABEL])


@kopf.index(GROUP, VERSION, PLURAL)
async def workflow_bodies(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> Any:
    return {(namespace or "", name): slim.custom_object(body)}


@kopf.index("apps", "v1", "deployments", labels=OWNED)
async def workflow_deployments(
    namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
) -> Any:
    return {_key(namespace, labels): slim.deployment(body)}


@kopf.index("apps", "v1", "replicasets", labels=OWNED)
async def workflow_replicasets(
    namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
) -> Any:
    return {_key(namespace, labels): slim.replicaset(body)}


@kopf.index("", "v1", "pods", labels=OWNED)
async def workflow_pods(
    namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
) -> Any:
    return {_key(namespace, labels): slim.pod(body)}


@kopf.index("", "v1", "services", labels=OWNED)
async def workflow_services(
    namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
) -> Any:
    return {_key(namespace, labels): slim.service(body)}


@kopf.on.event(GROUP, VERSION, PLURAL)
async def workflow_changed(namespace: str | None, name: str, **_: Any) -> None:
    RUNTIME.enqueue(QUEUE, (namespace or "", name))


@kopf.on.event("apps", "v1", "deployments", labels=OWNED)
@kopf.on.event("apps", "v1", "replicasets", labels=OWNED)
@kopf.on.event("", "v1", "pods", labels=OWNED)
@kopf.on.event("", "v1", "services", labels=OWNED)
async def child_changed(namespace: str | None, labels: Mapping[str, str], **_: Any) -> None:
    RUNTIME.enqueue(QUEUE, _key(namespace, labels))
