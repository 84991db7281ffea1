"""Events posted in the background, as client-go's event recorder does: a reconcile never
waits for a notification.

An Event is a POST to the API server like any write; posted inline it held the reconcile,
its key and a worker for one more round trip (a long one on a saturated API server), so the
next change of the same object waited for a message about the previous one (a FlowRun's
next Job was created only after the Events of the task before it). `EventRecorder.event`
queues the Event, stamped with the moment it happened, and returns; LANES tasks post them.
The Events of one object go through one lane, in the order they were recorded. A lane that
has CAPACITY Events waiting drops new ones (logged, counted), as client-go's recorder
does: an Event is best effort, the status is the record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from flow_operator.objects.body import Body
from flow_operator.ports import EventSink

log = logging.getLogger(__name__)
__all__ = ["CAPACITY", "LANES", "EventRecorder", "EventSink"]
LANES = 8
CAPACITY = 1000


def _now() -> datetime:
    return datetime.now(UTC)


class EventRecorder:
    """An EventSink that queues each Event and posts it in the background to `sink`."""

    def __init__(
        self,
        sink: EventSink,
        lanes: int = LANES,
        capacity: int = CAPACITY,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.sink = sink
        self._clock = clock  # stamps an Event with the moment it was recorded
        self._lanes: list[asyncio.Queue[tuple[Body, str, str, str, datetime]]] = [
            asyncio.Queue(capacity) for _ in range(lanes)
        ]
        self._tasks: list[asyncio.Task[None]] = []
        self.dropped = 0

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._post(lane), name=f"events-{i}")
            for i, lane in enumerate(self._lanes)
        ]

    async def stop(self, grace: float = 5.0) -> None:
        """Post what is queued (for at most `grace` seconds), then stop."""
        try:
            async with asyncio.timeout(grace):
                await asyncio.gather(*(lane.join() for lane in self._lanes))
        except TimeoutError:
            log.warning("%d events not posted at shutdown", sum(q.qsize() for q in self._lanes))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def event(
        self,
        involved: Body,
        reason: str,
        message: str,
        type_: str = "Normal",
        at: datetime | None = None,
    ) -> None:
        """Queue an Event about `involved` and return; posted inline if not started."""
        at = at or self._clock()
        if not self._tasks:
            await self.sink.event(involved, reason, message, type_, at)
            return
        meta = involved.get("metadata") or {}
        lane = self._lanes[hash((meta.get("namespace"), meta.get("name"))) % len(self._lanes)]
        try:
            lane.put_nowait((involved, reason, message, type_, at))
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped & (self.dropped - 1) == 0:  # the 1st, 2nd, 4th... time: no flood
                log.warning("event %s on %s/%s dropped: %d waiting to be posted (%d dropped)",
                            reason, meta.get("namespace"), meta.get("name"), lane.qsize(),
                            self.dropped)  # fmt: skip

    async def _post(self, lane: asyncio.Queue[tuple[Body, str, str, str, datetime]]) -> None:
        while True:
            involved, reason, message, type_, at = await lane.get()
            try:
                await self.sink.event(involved, reason, message, type_, at)
            except Exception:  # the sink logs API errors; anything else must not end the lane
                log.exception("posting event %s failed", reason)
            finally:
                lane.task_done()
