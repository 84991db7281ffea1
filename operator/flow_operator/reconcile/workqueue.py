"""A coalescing work queue: many events about one object become one reconcile.

Keys are `(namespace, name)`. A key enqueued while it waits is not queued twice; a key
enqueued while its reconcile runs is run once more afterwards (so no event is lost and
two reconciles of one object never overlap). A reconcile may ask to be run again after
a delay (deadlines, timeouts); a failing one is retried with exponential backoff.

Two levels, each first in, first out: a key enqueued `urgent` (its children changed: the
status has to follow the cluster) is taken before the others (its spec changed, a
retry), and a waiting key enqueued urgent again moves up. A reconcile's follow-up (it
asks to run again after a delay, or failed) keeps the level it was taken from: a status
write put off for a second is still the status following the cluster. A burst of new
objects, each reconcile a few writes to the API server, then no longer holds back the
status of objects whose pods just became ready (S1's status lag, docs/performance.md).
Urgent reconciles are mostly cheap (no write,
or one status write), so the others are not starved. A quarter of the workers take urgent
keys only, so an urgent key does not wait for a worker either while all the others are
in slow reconciles (a new object's applies on a busy API server).

A failure that only says the API server is unreachable or busy (connection refused or
reset, a timeout, 5xx, 429) backs off to at most TRANSIENT_MAX seconds and is logged in
one line: such a key gets no watch event to wake it when the API server returns, so a
long backoff would be a long catch-up after an outage. Other failures (bugs) back off to
a minute, with their traceback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from flow_operator.errors import Unavailable

log = logging.getLogger(__name__)
# `run --trace`: one line per reconcile started, for benchmarks (bench/run.py --trace)
trace = logging.getLogger("flow_operator.trace")
Key = tuple[str, str]
Reconcile = Callable[[Key], Awaitable[float | None]]
TRANSIENT_MAX = 5.0
OTHER_MAX = 60.0


def transient(error: BaseException) -> bool:
    """Does `error` only say that the API server is down, starting, overloaded or slow?
    (flow_operator.kube raises Unavailable for those: 5xx, 429, connection, timeout.)"""
    return isinstance(error, Unavailable | TimeoutError | ConnectionError)


class WorkQueue:
    """Coalesced keys, two levels (urgent first), run by workers with delays and backoff."""

    def __init__(
        self,
        name: str,
        reconcile: Reconcile,
        workers: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._reconcile = reconcile
        self._workers = workers
        self._clock = clock  # times waits and reconciles (timers run on the event loop's)
        # one token per waiting key; a worker holding a token takes the first urgent key,
        # else the first other one (dicts keep insertion order: FIFO with O(1) removal)
        self._tokens: asyncio.Queue[None] = asyncio.Queue()
        self._urgent_ready = asyncio.Event()  # wakes the workers reserved for urgent keys
        self._urgent: dict[Key, None] = {}
        self._normal: dict[Key, None] = {}
        self._running: set[Key] = set()
        self._dirty: dict[Key, bool] = {}  # enqueued while running -> urgent
        self._timers: dict[Key, tuple[asyncio.TimerHandle, bool]] = {}  # -> (timer, urgent)
        self._failures: dict[Key, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.on_done: Callable[[Key, float, bool], None] | None = None  # (key, seconds, ok)
        # (seconds, urgent): how long a change waited for its reconcile to start, the time
        # behind a running reconcile of the same key included
        self.on_wait: Callable[[float, bool], None] | None = None
        self._since: dict[Key, tuple[float, bool]] = {}  # a waiting change: arrived, urgent
        # Checked before every reconcile: False means "do not act now" (a leader whose Lease
        # has not been renewed in time); the key waits a second and is checked again.
        self.gate: Callable[[], bool] | None = None

    def enqueue(self, key: Key, delay: float = 0.0, urgent: bool = False) -> None:
        if delay > 0:
            timer, was_urgent = self._timers.get(key, (None, False))
            loop = asyncio.get_running_loop()
            due = loop.time() + delay
            if timer is not None and timer.when() <= due:
                if urgent and not was_urgent:
                    self._timers[key] = (timer, True)
                return  # an earlier wake-up is already set
            if timer is not None:
                timer.cancel()
            handle = loop.call_at(due, self._fire, key)
            self._timers[key] = (handle, urgent or was_urgent)
            return
        if key in self._running:
            self._dirty[key] = self._dirty.get(key, False) or urgent
            self._arrive(key, urgent)
        elif key in self._urgent:
            pass
        elif key in self._normal:
            if urgent:  # moves up, keeping its place in time
                del self._normal[key]
                self._urgent[key] = None
                self._arrive(key, urgent)
        else:
            (self._urgent if urgent else self._normal)[key] = None
            self._arrive(key, urgent)
            self._tokens.put_nowait(None)
        if self._urgent:
            self._urgent_ready.set()

    def _arrive(self, key: Key, urgent: bool) -> None:
        """A change arrived for `key`: its wait starts, unless one is waiting already.
        A waiting normal change that an urgent one joins has waited until now (as normal);
        the urgent wait starts now."""
        now = self._clock()
        waiting = self._since.get(key)
        if waiting is None:
            self._since[key] = (now, urgent)
        elif urgent and not waiting[1]:
            if self.on_wait is not None:
                self.on_wait(now - waiting[0], False)
            self._since[key] = (now, True)

    def _fire(self, key: Key) -> None:
        _, urgent = self._timers.pop(key, (None, False))
        self.enqueue(key, urgent=urgent)

    def __len__(self) -> int:
        return len(self._urgent) + len(self._normal)

    def _take(self) -> tuple[Key, bool]:
        level = self._urgent or self._normal
        key = next(iter(level))
        del level[key]
        return key, level is self._urgent

    def start(self) -> None:
        reserved = self._workers // 4
        for i in range(self._workers):
            work = self._work_urgent() if i < reserved else self._work()
            self._tasks.append(asyncio.create_task(work, name=f"{self.name}-{i}"))

    async def stop(self) -> None:
        for timer, _ in self._timers.values():
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _work(self) -> None:
        while True:
            await self._tokens.get()
            if self._urgent or self._normal:  # else a worker of urgent keys took it
                await self._run(*self._take())

    async def _work_urgent(self) -> None:
        while True:
            await self._urgent_ready.wait()
            if not self._urgent:
                self._urgent_ready.clear()
                continue
            await self._run(*self._take())  # its token stays: one spurious wake-up, harmless

    async def _run(self, key: Key, urgent: bool) -> None:
        waiting = self._since.pop(key, None)
        if self.on_wait is not None and waiting is not None:
            self.on_wait(self._clock() - waiting[0], waiting[1])
        if waiting is not None and trace.isEnabledFor(logging.DEBUG):
            trace.debug("start %s %s/%s t=%.3f waited=%.3f urgent=%d", self.name, *key,
                        time.time(), self._clock() - waiting[0], waiting[1])  # fmt: skip
        if self.gate is not None and not self.gate():
            self.enqueue(key, 1.0, urgent)
            return
        self._running.add(key)
        started = self._clock()
        ok = True
        try:
            again = await self._reconcile(key)
            self._failures.pop(key, None)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            ok = False
            n = self._failures[key] = self._failures.get(key, 0) + 1
            if transient(e):
                again = min(0.5 * 2 ** (n - 1), TRANSIENT_MAX)
                if n & (n - 1) == 0:  # the 1st, 2nd, 4th, 8th... time: no flood
                    log.warning("%s %s/%s: API unavailable (attempt %d), retry in %.1fs: %r",
                                self.name, *key, n, again, e)  # fmt: skip
            else:
                again = min(0.5 * 2 ** (n - 1), OTHER_MAX)
                log.exception(
                    "%s %s/%s failed (attempt %d), retry in %.1fs", self.name, *key, n, again
                )
        finally:
            self._running.discard(key)
        if self.on_done is not None:
            self.on_done(key, self._clock() - started, ok)
        if key in self._dirty:
            self.enqueue(key, urgent=self._dirty.pop(key))
        if again is not None:  # a follow-up (a timer, a retry) keeps the level it had
            self.enqueue(key, again, urgent)
