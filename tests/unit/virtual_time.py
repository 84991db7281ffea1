"""Virtual time for asyncio tests: sleeps, timers and timeouts cost no real time, and the
times a test measures are exact.

`VirtualTimeLoop.time()` only moves when nothing is ready to run: then it jumps to the
next timer (the loop's own wait for I/O, made with a zero timeout). A component reading
the loop's clock (`loop.time`, or a `clock` parameter given `loop.time`) sees the same
time as its timers; `hold` stands for code that keeps the loop busy. `@virtual_time` runs
an async test on such a loop.
"""

from __future__ import annotations

import asyncio
import functools
import selectors
from collections.abc import Callable, Coroutine
from typing import Any


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        super().__init__()
        self._virtual = 0.0
        real = self._selector.select

        def select(timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
            ready = real(0)
            if ready or timeout == 0:
                return ready
            if timeout is None:  # no timer at all: only I/O can wake the loop
                return real(None)
            # The next timer is due now: its own time, exactly (not now + timeout, which
            # float rounding may put a hair before it).
            due = self._scheduled[0].when() if self._scheduled else self._virtual + timeout
            self._virtual = max(self._virtual, due)
            return []

        self._selector.select = select  # type: ignore[method-assign]

    def time(self) -> float:
        return self._virtual

    def hold(self, seconds: float) -> None:
        """Code that keeps the loop busy for `seconds` (a long computation, a blocking
        call): time moves on and nothing else runs meanwhile."""
        self._virtual += seconds


def virtual_time(
    test: Callable[..., Coroutine[Any, Any, None]],
) -> Callable[..., None]:
    """Run the async test on a VirtualTimeLoop (fixtures are passed as usual)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        loop = VirtualTimeLoop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(test(*args, **kwargs))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            asyncio.set_event_loop(None)
            loop.close()

    return run
