"""Workflow wiring: index the Workflows, enqueue on every change (their children's
informers are in handlers/children.py).

Every handler is `async def`: kopf runs a plain `def` in a thread pool, which costs a
thread hop per event and would touch the asyncio work queue from outside its loop.

kopf runs no handler before its index is filled from the initial listing, and the work
queue starts only once the children's informers have listed too, so a restarted operator
decides on a full view.
"""

from __future__ import annotations

from typing import Any

import kopf

from flow_operator import GROUP, VERSION
from flow_operator.handlers import slim
from flow_operator.models.workflow import PLURAL
from flow_operator.runtime import RUNTIME

QUEUE = "workflow"


@kopf.index(GROUP, VERSION, PLURAL)
async def workflow_bodies(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> Any:
    return {(namespace or "", name): slim.custom_object(body)}


@kopf.on.event(GROUP, VERSION, PLURAL)
async def workflow_changed(namespace: str | None, name: str, **_: Any) -> None:
    RUNTIME.enqueue(QUEUE, (namespace or "", name))
