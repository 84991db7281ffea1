"""StatusWrites: a reconciler's own status writes until the watch shows them, and the
rate limit on details-only changes (reconcile/writes.py)."""

from __future__ import annotations

from typing import Any

import pytest

from flow_operator.reconcile.writes import StatusWrites

KEY = ("ns", "w")


def body(version: str, status: Any = None) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": version}, "status": status}


def headline(status: Any) -> Any:
    return status["color"] if isinstance(status, dict) else status


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def writes(clock: Clock | None = None) -> StatusWrites[tuple[str, str]]:
    return StatusWrites(headline, interval=1.0, monotonic=clock or Clock())


def test_the_index_is_believed_when_nothing_was_written() -> None:
    w = writes()
    assert w.current(KEY, body("1"), "index") == "index"
    assert not w.unsent(KEY)


def test_our_write_is_read_back_until_the_index_shows_it_or_a_later_version() -> None:
    w = writes()
    w.record(KEY, body("1"), "ours", made="2")
    assert w.current(KEY, body("1"), "old") == "ours"  # the watch is behind
    assert w.current(KEY, body("2"), "ours, echoed") == "ours, echoed"  # it caught up
    assert w.current(KEY, body("1"), "old") == "old"  # the record is gone once shown


def test_a_late_echo_of_an_earlier_write_is_not_taken_for_the_present() -> None:
    w = writes()
    w.record(KEY, body("1"), "first", made="2")
    w.record(KEY, body("1"), "second", made="3")  # decided before the watch showed "first"
    assert w.current(KEY, body("2"), "first") == "second"  # the echo of the first write
    assert w.current(KEY, body("3"), "second") == "second"
    assert w.current(KEY, body("2"), "first") == "first"  # shown: the index is the truth


def test_a_kept_status_outlives_the_echo_of_the_write_before_it() -> None:
    w = writes()
    w.record(KEY, body("1"), "written", made="2")
    w.record(KEY, body("1"), "kept", made=None)
    assert w.unsent(KEY)
    assert w.current(KEY, body("2"), "written") == "kept"
    w.record(KEY, body("2"), "kept", made="3")
    assert not w.unsent(KEY)
    assert w.current(KEY, body("3"), "kept") == "kept"
    assert w.current(KEY, body("2"), "written") == "written"


def test_a_peek_leaves_the_record_for_the_keys_own_reconcile() -> None:
    w = writes()
    w.record(KEY, body("1"), "kept", made=None)
    assert w.current(KEY, body("9"), "foreign", peek=True) == "foreign"
    assert w.unsent(KEY)
    assert w.current(KEY, body("1"), "old") == "kept"


def test_details_alone_wait_for_the_interval_a_headline_change_does_not() -> None:
    clock = Clock()
    w = writes(clock)
    first = {"color": "ORANGE", "pods": 0}
    assert w.wait(KEY, first) == 0  # nothing written yet
    w.record(KEY, body("1"), first, made="2")
    clock.now += 5
    assert w.wait(KEY, {"color": "ORANGE", "pods": 1}) == 1.0  # kept an interval from now
    clock.now += 0.25
    assert w.wait(KEY, {"color": "ORANGE", "pods": 2}) == 0.75  # from the first change
    assert w.wait(KEY, {"color": "GREEN", "pods": 2}) == 0
    clock.now += 0.75
    assert w.wait(KEY, {"color": "ORANGE", "pods": 2}) == 0
    w.record(KEY, body("2"), {"color": "ORANGE", "pods": 2}, made="3")
    assert w.wait(KEY, {"color": "ORANGE", "pods": 3}) == 1.0  # a write starts anew


def test_a_change_undone_before_it_was_written_is_forgotten() -> None:
    clock = Clock()
    w = writes(clock)
    w.record(KEY, body("1"), {"color": "ORANGE", "pods": 0}, made="2")
    assert w.wait(KEY, {"color": "ORANGE", "pods": 1}) == 1.0
    w.settled(KEY)  # back to pods: 0 before the interval was over
    clock.now += 3
    assert w.wait(KEY, {"color": "ORANGE", "pods": 1}) == 1.0  # a new change, a new wait


def test_a_kept_status_does_not_restart_the_interval() -> None:
    clock = Clock()
    w = writes(clock)
    w.record(KEY, body("1"), {"color": "ORANGE", "pods": 0}, made="2")
    assert w.wait(KEY, {"color": "ORANGE", "pods": 1}) == 1.0
    w.record(KEY, body("1"), {"color": "ORANGE", "pods": 1}, made=None)
    clock.now += 0.5
    assert w.wait(KEY, {"color": "ORANGE", "pods": 2}) == 0.5


def test_forget_drops_both() -> None:
    w = writes()
    w.record(KEY, body("1"), {"color": "RED"}, made="2")
    w.forget(KEY)
    assert w.current(KEY, body("1"), "index") == "index"
    assert w.wait(KEY, {"color": "RED"}) == 0


def test_slow_writes_lengthen_the_interval_fast_ones_bring_it_back() -> None:
    clock = Clock()
    w = writes(clock)
    assert w.detail_interval == 1.0
    for _ in range(50):  # the API server answers a status write in 400 ms
        w.record(KEY, body("1"), {"color": "ORANGE"}, made="2", took=0.4)
    assert w.detail_interval == pytest.approx(4.0, abs=0.01)  # ten round trips
    assert w.wait(KEY, {"color": "ORANGE", "pods": 1}) == pytest.approx(4.0, abs=0.01)
    clock.now += 3.0
    assert w.wait(KEY, {"color": "ORANGE", "pods": 1}) == pytest.approx(1.0, abs=0.01)
    assert w.wait(KEY, {"color": "GREEN"}) == 0  # a headline change never waits
    for _ in range(50):  # overloaded: a write takes 5 s
        w.record(KEY, body("1"), {"color": "ORANGE"}, made="2", took=5.0)
    assert w.detail_interval == pytest.approx(10.0)  # at most `longest`
    for _ in range(50):  # idle again
        w.record(KEY, body("1"), {"color": "ORANGE"}, made="2", took=0.005)
    assert w.detail_interval == 1.0


def test_the_version_our_last_write_made_is_known_as_ours_until_forgotten() -> None:
    w = writes()
    assert not w.made_last(KEY, "7")
    w.record(KEY, body("5"), "green", made="7")
    assert w.made_last(KEY, "7") and not w.made_last(KEY, "5") and not w.made_last(KEY, "")
    w.record(KEY, body("7"), "yellow", made=None)  # kept, not written: the last made stays
    assert w.made_last(KEY, "7")
    w.record(KEY, body("7"), "red", made="9")
    assert w.made_last(KEY, "9") and not w.made_last(KEY, "7")
    w.forget(KEY)
    assert not w.made_last(KEY, "9")
