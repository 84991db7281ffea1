"""The coalescing work queue: one reconcile for many events, never two at once per key.

Every test runs in virtual time (tests/unit/virtual_time.py), the queue's clock the
loop's: backoffs, delays and waits are checked to the exact second, in no real time."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from flow_operator.reconcile.workqueue import Key, Reconcile, WorkQueue
from tests.unit.virtual_time import virtual_time


def work_queue(name: str, reconcile: Reconcile, workers: int = 4) -> WorkQueue:
    """The queue under test, timing on the (virtual) loop's clock."""
    return WorkQueue(name, reconcile, workers, clock=asyncio.get_running_loop().time)


async def _settle(q: WorkQueue, rounds: int = 50) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0.005)


@virtual_time
async def test_many_events_one_reconcile() -> None:
    seen: list[Key] = []

    async def rec(key: Key) -> None:
        seen.append(key)

    q = work_queue("t", rec, workers=2)
    for _ in range(100):
        q.enqueue(("ns", "a"))
    q.enqueue(("ns", "b"))
    q.start()
    await _settle(q)
    await q.stop()
    assert sorted(seen) == [("ns", "a"), ("ns", "b")]


@virtual_time
async def test_event_during_reconcile_runs_it_again_never_concurrently() -> None:
    running, overlaps, runs = 0, 0, 0
    gate = asyncio.Event()

    async def rec(key: Key) -> None:
        nonlocal running, overlaps, runs
        running += 1
        overlaps = max(overlaps, running)
        runs += 1
        if runs == 1:
            await gate.wait()
        running -= 1

    q = work_queue("t", rec, workers=4)
    q.start()
    q.enqueue(("ns", "a"))
    await _settle(q, 5)
    q.enqueue(("ns", "a"))  # arrives while the first run is in progress
    q.enqueue(("ns", "a"))
    gate.set()
    await _settle(q)
    await q.stop()
    assert (runs, overlaps) == (2, 1)


@virtual_time
async def test_failure_is_retried_with_backoff() -> None:
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def rec(key: Key) -> None:
        times.append(loop.time())
        if len(times) < 4:
            raise RuntimeError("a bug")

    done: list[bool] = []
    q = work_queue("t", rec, workers=1)
    q.on_done = lambda key, seconds, ok: done.append(ok)
    q.start()
    q.enqueue(("ns", "a"))
    await asyncio.sleep(10)
    await q.stop()
    assert times == [0.0, 0.5, 1.5, 3.5]  # 0.5 s, doubled each time
    assert done == [False, False, False, True]


@virtual_time
async def test_requested_requeue_after_delay_keeps_the_earliest() -> None:
    times: list[float] = []
    loop = asyncio.get_running_loop()

    async def rec(key: Key) -> float | None:
        times.append(loop.time())
        return 0.2 if len(times) == 1 else None

    q = work_queue("t", rec, workers=1)
    q.start()
    q.enqueue(("ns", "a"))
    await asyncio.sleep(0.05)
    q.enqueue(("ns", "a"), delay=5)  # a later wake-up does not push the earlier one back
    await asyncio.sleep(0.4)
    await q.stop()
    assert times == [0.0, 0.2]


def test_api_unavailability_is_transient_and_bugs_are_not() -> None:
    """The client edge (flow_operator.kube) raises Unavailable for an API server that is
    away (5xx, 429, no connection, a timeout); the queue classifies the project's errors."""
    import aiohttp

    from flow_operator.errors import Unavailable, for_status
    from flow_operator.kube import edge
    from flow_operator.reconcile.workqueue import transient

    def at_the_edge(failure: Exception) -> BaseException:
        try:
            with edge():
                raise failure
        except Exception as e:
            return e
        raise AssertionError("edge() swallowed it")

    assert transient(at_the_edge(aiohttp.ClientConnectionError("refused")))
    assert transient(at_the_edge(aiohttp.ServerDisconnectedError()))
    assert transient(Unavailable("Cannot connect to host"))
    assert transient(TimeoutError())
    assert transient(ConnectionRefusedError())
    assert transient(for_status(503, "Service Unavailable", "paths not installed yet"))
    assert transient(for_status(429, "Too Many Requests", "storage is (re)initializing"))
    assert not transient(for_status(409, "Conflict"))
    assert not transient(for_status(403, "Forbidden"))
    assert not transient(for_status(422, "Invalid"))
    assert not transient(KeyError("a bug"))


@virtual_time
async def test_an_unreachable_api_is_retried_soon_however_long_it_lasts() -> None:
    """A key that failed because the API server was down gets no watch event when it
    returns; its backoff stays short (TRANSIENT_MAX), so catching up is quick."""
    from flow_operator.reconcile.workqueue import TRANSIENT_MAX

    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def rec(key: Key) -> None:
        times.append(loop.time())
        if len(times) < 8:
            raise ConnectionRefusedError("API server down")

    q = work_queue("t", rec, workers=1)
    q.start()
    q.enqueue(("ns", "a"))
    await asyncio.sleep(60)
    await q.stop()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert TRANSIENT_MAX == 5.0 and gaps == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0], gaps


def test_kopf_requests_retry_for_ever() -> None:
    from flow_operator.app import RetryForever

    backoffs = RetryForever()
    first = list(itertools.islice(backoffs, 1000))
    assert first[:3] == [0.5, 1.0, 2.0] and set(first[3:]) == {5.0}
    assert list(itertools.islice(backoffs, 3)) == [0.5, 1.0, 2.0]  # each request anew


@virtual_time
async def test_urgent_keys_go_first_and_a_waiting_key_moves_up() -> None:
    order: list[str] = []
    gate = asyncio.Event()

    async def rec(key: Key) -> None:
        order.append(key[1])
        if key[1] == "first":
            await gate.wait()

    q = work_queue("t", rec, workers=1)
    q.start()
    q.enqueue(("ns", "first"))
    await _settle(q, 2)  # the only worker is busy with it
    q.enqueue(("ns", "n1"))
    q.enqueue(("ns", "n2"))
    q.enqueue(("ns", "u1"), urgent=True)
    q.enqueue(("ns", "n2"), urgent=True)  # was waiting: moves up, behind u1
    q.enqueue(("ns", "u1"))  # a normal enqueue never moves an urgent key down
    q.enqueue(("ns", "first"), urgent=True)  # running: runs again afterwards, urgently
    assert len(q) == 3
    gate.set()
    await _settle(q)
    await q.stop()
    assert order == ["first", "u1", "n2", "first", "n1"]


@virtual_time
async def test_a_quarter_of_the_workers_wait_for_urgent_keys_only() -> None:
    gate = asyncio.Event()
    ran: list[str] = []

    async def rec(key: Key) -> None:
        ran.append(key[1])
        if key[1].startswith("slow"):
            await gate.wait()

    q = work_queue("t", rec, workers=4)  # 3 for anything, 1 for urgent keys only
    q.start()
    for i in range(5):
        q.enqueue(("ns", f"slow{i}"))
    await _settle(q, 4)
    assert sorted(ran) == ["slow0", "slow1", "slow2"]  # the urgent-only worker took none
    q.enqueue(("ns", "urgent"), urgent=True)
    await _settle(q, 4)
    assert ran[-1] == "urgent"  # not behind the slow ones
    gate.set()
    await _settle(q)
    await q.stop()
    assert sorted(ran) == ["slow0", "slow1", "slow2", "slow3", "slow4", "urgent"]


@virtual_time
async def test_a_follow_up_keeps_the_level_its_reconcile_was_taken_from() -> None:
    """A status write put off for a second (the reconcile asks to run again) is still the
    status following the cluster: it must not queue behind a wave of spec changes."""
    order: list[str] = []
    gate = asyncio.Event()
    calls: dict[str, int] = {}

    async def rec(key: Key) -> float | None:
        calls[key[1]] = calls.get(key[1], 0) + 1
        order.append(f"{key[1]}#{calls[key[1]]}")
        if key[1].startswith("busy"):
            await gate.wait()
        return 0.05 if key[1] == "status" and calls["status"] == 1 else None

    q = work_queue("t", rec, workers=2)  # 2 // 4 = none reserved for urgent keys
    q.start()
    q.enqueue(("ns", "status"), urgent=True)
    q.enqueue(("ns", "busy1"))
    q.enqueue(("ns", "busy2"))  # takes the worker "status" leaves: both are busy now
    await _settle(q, 2)
    for i in range(3):
        q.enqueue(("ns", f"spec{i}"))  # a wave of spec changes, waiting
    await asyncio.sleep(0.1)  # the follow-up's timer fires meanwhile, after the wave
    gate.set()
    await _settle(q)
    await q.stop()
    assert order.index("status#2") < order.index("spec0#1"), order


@virtual_time
async def test_a_change_waits_from_its_arrival_even_behind_a_running_reconcile() -> None:
    waits: list[tuple[float, bool]] = []
    gate = asyncio.Event()

    async def rec(key: Key) -> None:
        if not waits[1:]:
            await gate.wait()

    q = work_queue("t", rec, workers=1)
    q.on_wait = lambda seconds, urgent: waits.append((seconds, urgent))
    q.start()
    q.enqueue(("ns", "a"))
    await _settle(q, 2)
    q.enqueue(("ns", "a"), urgent=True)  # arrives while "a" runs
    await asyncio.sleep(0.1)
    gate.set()
    await _settle(q)
    await q.stop()
    assert len(waits) == 2 and waits[1][1] is True
    assert waits[1][0] == pytest.approx(0.1)  # the time behind the running reconcile counts


@virtual_time
async def test_a_waiting_change_joined_by_an_urgent_one_splits_its_wait() -> None:
    waits: list[tuple[float, bool]] = []
    gate = asyncio.Event()

    async def rec(key: Key) -> None:
        if key[1] == "busy":
            await gate.wait()

    q = work_queue("t", rec, workers=1)
    q.on_wait = lambda seconds, urgent: waits.append((seconds, urgent))
    q.start()
    q.enqueue(("ns", "busy"))
    await _settle(q, 2)
    q.enqueue(("ns", "a"))  # a spec change, waiting
    await asyncio.sleep(0.1)
    q.enqueue(("ns", "a"), urgent=True)  # its child changed: moves up
    gate.set()
    await _settle(q)
    await q.stop()
    normal, urgent = waits[1:]
    assert normal[1] is False and normal[0] == pytest.approx(0.1)  # its wait until then
    assert urgent == (0.0, True)  # the child's change did not wait: it went first at once


@virtual_time
async def test_trace_logs_each_start_with_its_wait(caplog: pytest.LogCaptureFixture) -> None:
    gate = asyncio.Event()

    async def rec(key: Key) -> None:
        if key[1] == "busy":
            await gate.wait()

    q = work_queue("t", rec, workers=1)
    q.start()
    with caplog.at_level(logging.DEBUG, logger="flow_operator.trace"):
        q.enqueue(("ns", "busy"))
        await _settle(q, 2)
        q.enqueue(("ns", "a"), urgent=True)
        await asyncio.sleep(0.1)
        gate.set()
        await _settle(q)
    await q.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "flow_operator.trace"]
    assert [line.split(" t=")[0] for line in lines] == ["start t ns/busy", "start t ns/a"]
    waited = float(lines[1].split("waited=")[1].split()[0])
    assert waited == 0.1 and lines[1].endswith("urgent=1")  # behind "busy"'s reconcile
