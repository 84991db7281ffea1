"""Workflow color transitions in the SQL store, on both backends: stored once however often
they are recorded (the natural key uid, time, color), read by name over a window with the
last one before it, every uid the name had."""

from __future__ import annotations

from datetime import datetime, timedelta

from flow_operator.history.sql import SqlRunStore
from flow_operator.history.store import ColorTransition
from tests.unit.history.conftest import T0


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def move(
    minutes: float, to: str, before: str | None = None, *, uid: str = "u1", name: str = "shop"
) -> ColorTransition:
    return ColorTransition(
        uid=uid,
        namespace="ml",
        name=name,
        time=at(minutes),
        from_color=before,
        to_color=to,
        reason="Publishing" if to != "GREEN" else "Published",
    )


async def test_a_replay_stores_nothing_twice(store: SqlRunStore) -> None:
    first = [move(0, "GREEN"), move(10, "YELLOW", "GREEN"), move(12, "GREEN", "YELLOW")]
    assert await store.record_colors(first) == 3
    # the recorder's retry, and the rebuild at start (which knows no "from")
    assert await store.record_colors(first) == 0
    assert await store.record_colors([move(12, "GREEN"), move(20, "RED", "GREEN")]) == 1
    got = await store.color_history("ml", "shop", at(-60), at(60))
    assert got.before is None
    assert [(t.time, t.from_color, t.to_color) for t in got.transitions] == [
        (at(0), None, "GREEN"),
        (at(10), "GREEN", "YELLOW"),
        (at(12), "YELLOW", "GREEN"),  # the first write's "from" is kept
        (at(20), "GREEN", "RED"),
    ]
    assert got.transitions[1].reason == "Publishing"


async def test_a_window_and_the_color_it_starts_in(store: SqlRunStore) -> None:
    await store.record_colors(
        [move(0, "GREEN"), move(10, "YELLOW", "GREEN"), move(12, "GREEN", "YELLOW")]
    )
    await store.record_colors([move(11, "RED", uid="other", name="cart")])
    got = await store.color_history("ml", "shop", at(10), at(12))
    assert got.before == move(0, "GREEN")
    assert [t.to_color for t in got.transitions] == ["YELLOW"]  # since <= time < until
    empty = await store.color_history("ml", "nothing", at(0), at(60))
    assert empty.before is None and empty.transitions == ()


async def test_a_name_made_again_reads_as_one_history(store: SqlRunStore) -> None:
    await store.record_colors([move(0, "GREEN", uid="old"), move(30, "ORANGE", uid="new")])
    got = await store.color_history("ml", "shop", at(-1), at(60))
    assert [(t.uid, t.to_color) for t in got.transitions] == [("old", "GREEN"), ("new", "ORANGE")]
