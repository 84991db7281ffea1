"""The Workflow reconciler's color transitions on their way to the run store
(reconcile/history.py ColorRecorder): recorded from its decisions, waiting while the
database is down, stored once however often seen, rebuilt from the live status at start."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from flow_operator.history.store import ColorTransition
from flow_operator.reconcile.history import ColorRecorder
from tests.unit.history_fakes import MemoryStore
from tests.unit.kube_objects import workflow
from tests.unit.reconcile.test_workflow_reconciler import KEY, NOW, Cluster


def _wired(store: MemoryStore) -> tuple[Cluster, ColorRecorder, list[float]]:
    c = Cluster(workflow(services=[("a", 2)]))
    now = [0.0]
    c.rec.clock = lambda: NOW + timedelta(seconds=now[0])
    colors = ColorRecorder(store)
    c.rec.publish = colors.on_workflow
    return c, colors, now


def _stored(store: MemoryStore) -> list[tuple[str | None, str, float]]:
    return sorted(
        ((t.from_color, t.to_color, (t.time - NOW).total_seconds()) for t in store.colors.values()),
        key=lambda m: m[2],
    )


async def test_transitions_wait_while_the_database_is_down_then_are_written_once() -> None:
    store = MemoryStore()
    store.down = True
    c, colors, now = _wired(store)
    await c.rec(KEY)  # ORANGE: nothing available yet
    now[0] = 10
    c.sync()
    await c.rec(KEY)  # GREEN
    now[0] = 20
    c.sync(available=False)
    await c.rec(KEY)  # all gone: ORANGE again
    now[0] = 30
    c.sync()
    await c.rec(KEY)  # GREEN
    for _ in range(3):
        await c.rec(KEY)  # nothing changed: nothing more waits
    assert len(colors) == 4
    assert not await colors.flush() and len(colors) == 4  # still down: they wait
    store.down = False
    assert await colors.flush() and len(colors) == 0
    assert _stored(store) == [
        (None, "ORANGE", 0.0),
        ("ORANGE", "GREEN", 10.0),
        ("GREEN", "ORANGE", 20.0),
        ("ORANGE", "GREEN", 30.0),
    ]
    assert {t.reason for t in store.colors.values()} == {"Publishing", "Published"}


async def test_a_restart_rebuilds_the_last_transition_from_the_status_and_adds_nothing_twice() -> (
    None
):
    store = MemoryStore()
    c, colors, now = _wired(store)
    await c.rec(KEY)
    now[0] = 10
    c.sync()
    await c.rec(KEY)
    c.sync()
    # kill -9 before the writer ran: the recorder's queue is gone with the process
    assert len(colors) == 2 and store.colors == {}
    restarted = ColorRecorder(store)
    c.rec.publish = restarted.on_workflow
    now[0] = 50
    await c.rec(KEY)  # the first decision after the start: GREEN since 10 s, as held
    assert await restarted.flush()
    assert _stored(store) == [(None, "GREEN", 10.0)]
    # the earlier process's queue written after all: no duplicate, the first write kept
    assert await colors.flush()
    assert _stored(store) == [(None, "ORANGE", 0.0), (None, "GREEN", 10.0)]


async def test_a_deleted_workflow_is_forgotten_and_the_writer_backs_off() -> None:
    store = MemoryStore()
    store.down = True
    c, colors, _ = _wired(store)
    await c.rec(KEY)
    c.view.workflows = {}
    await c.rec(KEY)  # gone: seen anew if made again
    assert colors._seen == {}
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            store.down = False
        await asyncio.sleep(0)

    writer = asyncio.create_task(colors.run(sleep))
    for _ in range(50):
        await asyncio.sleep(0)
        if store.colors:
            break
    writer.cancel()
    assert waits == [0.5, 1.0, 2.0] and len(store.colors) == 1


def test_the_queue_is_bounded_and_says_what_it_drops() -> None:
    colors = ColorRecorder(MemoryStore(), limit=2)
    moves = [
        ColorTransition(uid="u", namespace="ns", name="wf", time=NOW + timedelta(seconds=i),
                        to_color=color)
        for i, color in enumerate(("RED", "GREEN", "YELLOW"))
    ]  # fmt: skip
    for t in moves + moves[1:]:
        colors.offer(t)
    assert list(colors.pending.values()) == moves[1:]
