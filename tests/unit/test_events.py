"""EventRecorder: Events are posted in the background, in order per object, stamped with
the moment they were recorded (flow_operator/events.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from flow_operator.events import EventRecorder


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


async def test_recording_returns_at_once_and_the_events_follow_in_order() -> None:
    sink = SlowSink(delay=0.01)
    recorder = EventRecorder(sink, lanes=4)
    recorder.start()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for i in range(5):
        await recorder.event(obj("a"), "ColorChanged", f"a{i}")
        await recorder.event(obj("b"), "ColorChanged", f"b{i}")
    assert loop.time() - t0 < 0.01  # nothing waited for the API server
    assert sink.posted == []
    await recorder.stop()  # drains what is queued
    for name in ("a", "b"):
        assert [m for n, m, _ in sink.posted if n == name] == [f"{name}{i}" for i in range(5)]


async def test_an_event_keeps_the_moment_it_was_recorded() -> None:
    sink = SlowSink()
    sink.gate.clear()  # the API server does not answer yet
    recorder = EventRecorder(sink)
    recorder.start()
    before = datetime.now(UTC)
    await recorder.event(obj("a"), "ColorChanged", "ORANGE -> GREEN")
    await asyncio.sleep(0.05)
    sink.gate.set()
    await recorder.stop()
    ((_, _, at),) = sink.posted
    assert at is not None and 0 <= (at - before).total_seconds() < 0.04  # when recorded
    assert (datetime.now(UTC) - at).total_seconds() >= 0.05  # not when posted


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
