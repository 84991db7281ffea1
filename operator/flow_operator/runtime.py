"""The operator's process-wide parts, built at startup: the API client and work queues.

kopf handlers are plain module functions, so they reach these through one object set up
by the startup handler (main.py) rather than through scattered globals.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from flow_operator.events import EventRecorder
from flow_operator.kube import Kube
from flow_operator.leader import LeaderElector
from flow_operator.reconcile.workqueue import Key, WorkQueue


@dataclass
class Runtime:
    kube: Kube | None = None
    queues: dict[str, WorkQueue] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    elector: LeaderElector | None = None  # with --leader-election
    events: EventRecorder | None = None

    def enqueue(self, queue: str, key: Key, delay: float = 0.0, urgent: bool = False) -> None:
        q = self.queues.get(queue)
        if q is not None:
            q.enqueue(key, delay, urgent)


RUNTIME = Runtime()
