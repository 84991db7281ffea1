"""EventRecorder: Events are posted in the background, in order per object, stamped with
the moment they were recorded (flow_operator/events.py). Timing tests run in virtual
time (tests/unit/virtual_time.py) with the recorder's clock injected."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flow_operator.events import EventRecorder
from tests.unit.virtual_time import virtual_time


def obj(name: str) -> dict[str, Any]:
    return {"kind": "Workflow", "metadata": {"namespace": "ns", "name": name}}


class SlowSink:
    """An API server that takes `delay` seconds per Event."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.posted: list[tuple[str, str, datetime | None]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def event(
        self, involved: dict[str, Any], reason: str, message: str, type_: str = "Normal",
        at: datetime | None = None,
    ) -> None:  # fmt: skip
        await self.gate.wait()
        await asyncio.sleep(self.delay)
        self.posted.append((involved["metadata"]["name"], message, at))


@virtual_time
async def test_recording_returns_at_once_and_the_events_follow_in_order() -> None:
    sink = SlowSink(delay=0.3)  # a slow API server: 0.3 s per Event
    recorder = EventRecorder(sink, lanes=4)
    recorder.start()
    loop = asyncio.get_running_loop()
    for i in range(5):
        await recorder.event(obj("a"), "ColorChanged", f"a{i}")
        await recorder.event(obj("b"), "ColorChanged", f"b{i}")
    assert loop.time() == 0  # nothing waited for the API server
    assert sink.posted == []
    await recorder.stop()  # drains what is queued
    for name in ("a", "b"):
        assert [m for n, m, _ in sink.posted if n == name] == [f"{name}{i}" for i in range(5)]


@virtual_time
async def test_an_event_keeps_the_moment_it_was_recorded() -> None:
    now = [datetime(2024, 2, 12, 9, 0, tzinfo=UTC)]
    sink = SlowSink()
    sink.gate.clear()  # the API server does not answer yet
    recorder = EventRecorder(sink, clock=lambda: now[0])
    recorder.start()
    recorded = now[0]
    await recorder.event(obj("a"), "ColorChanged", "ORANGE -> GREEN")
    now[0] += timedelta(seconds=5)  # it is posted 5 s later
    await asyncio.sleep(5)
    sink.gate.set()
    await recorder.stop()
    assert sink.posted == [("a", "ORANGE -> GREEN", recorded)]  # when recorded, not posted
    at = datetime(2024, 2, 12, 8, 0, tzinfo=UTC)
    await recorder.event(obj("a"), "TaskStarted", "late", at=at)  # an explicit moment wins
    assert sink.posted[-1] == ("a", "late", at)


async def test_a_full_lane_drops_new_events_and_counts_them() -> None:
    sink = SlowSink()
    sink.gate.clear()
    recorder = EventRecorder(sink, lanes=1, capacity=2)
    recorder.start()
    for i in range(5):
        await recorder.event(obj("a"), "TaskStarted", f"t{i}")
    await asyncio.sleep(0)  # the lane's task takes the first one off the queue
    assert recorder.dropped >= 2
    sink.gate.set()
    await recorder.stop()
    assert [m for _, m, _ in sink.posted] == [f"t{i}" for i in range(5 - recorder.dropped)]


async def test_not_started_it_posts_inline() -> None:
    sink = SlowSink()
    await EventRecorder(sink).event(obj("a"), "InvalidSpec", "spec.x: bad", "Warning")
    assert [m for _, m, _ in sink.posted] == ["spec.x: bad"]


async def test_a_failing_sink_does_not_end_the_lane(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    class Failing:
        async def event(self, involved: Any, reason: str, message: str, type_: str = "Normal",
                        at: datetime | None = None) -> None:  # fmt: skip
            calls.append(message)
            if message == "first":
                raise RuntimeError("boom")

    recorder = EventRecorder(Failing(), lanes=1)
    recorder.start()
    await recorder.event(obj("a"), "R", "first")
    await recorder.event(obj("a"), "R", "second")
    await recorder.stop()
    assert calls == ["first", "second"]
    assert "posting event R failed" in caplog.text
