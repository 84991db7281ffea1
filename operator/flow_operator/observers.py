"""What the reconcilers tell the rest of the operator: "a run changed", "a Workflow changed".

A reconciler publishes one event per decision to a `Topic`; the subscribers (metrics, the
HTTP API's view, next the run store and the live-update stream) each get it in the order
they subscribed. An event carries the object (uid, spec, status), so a subscriber never
looks it up again. A subscriber that raises is logged and the others still run: a broken
metric must not stop a status from reaching the API.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from flow_operator.models.flowrun import FlowRunStatus, Phase
from flow_operator.models.workflow import WorkflowStatus

log = logging.getLogger(__name__)
Key = tuple[str, str]
E = TypeVar("E")


@dataclass(frozen=True)
class RunChanged:
    """A FlowRun's reconcile decided `status` (`old`: the phase it had before)."""

    key: Key
    uid: str
    body: Mapping[str, Any]  # the run as last seen (metadata, spec; status before this one)
    old: Phase | None
    status: FlowRunStatus


@dataclass(frozen=True)
class WorkflowChanged:
    """A Workflow's reconcile decided `status`; `status` None: the Workflow is gone."""

    key: Key
    uid: str
    body: Mapping[str, Any]  # the Workflow as last seen ({} once it is gone)
    status: WorkflowStatus | None


class Topic(Generic[E]):
    """Subscribers of one kind of event, called in order, each on its own."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._subscribers: list[Callable[[E], None]] = []

    def subscribe(self, subscriber: Callable[[E], None]) -> None:
        self._subscribers.append(subscriber)

    def publish(self, event: E) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:
                log.exception("%s subscriber %r failed", self.name, subscriber)

    def __len__(self) -> int:
        return len(self._subscribers)
