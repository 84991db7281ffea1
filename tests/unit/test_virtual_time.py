"""The virtual-time loop the timing tests run on: time moves by exactly what is awaited,
in no real time, and timers fire in order."""

from __future__ import annotations

import asyncio
import time

from tests.unit.virtual_time import virtual_time


@virtual_time
async def test_sleeps_timers_and_timeouts_take_their_virtual_time_exactly() -> None:
    loop = asyncio.get_running_loop()
    real = time.monotonic()
    fired: list[tuple[str, float]] = []
    loop.call_later(2.5, lambda: fired.append(("timer", loop.time())))
    await asyncio.sleep(1.0)
    assert loop.time() == 1.0
    await asyncio.sleep(3600)
    assert loop.time() == 3601.0 and fired == [("timer", 2.5)]
    try:
        async with asyncio.timeout(0.25):
            await asyncio.Event().wait()
    except TimeoutError:
        pass
    assert loop.time() == 3601.25
    await asyncio.sleep(0)  # a turn of the loop is no time at all
    assert loop.time() == 3601.25
    assert time.monotonic() - real < 1.0  # an hour went by in (much) less than a second
