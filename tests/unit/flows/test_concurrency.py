"""Concurrency per flow: Allow, Forbid (skip), Replace (cancel the oldest, then start) and
Queue (wait, first come first served), with maxRunning."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flow_operator.flows.concurrency import (
    FORBIDDEN,
    REPLACING,
    WAITING,
    Action,
    RunSlot,
    decide,
)
from flow_operator.models.flow import Concurrency, ConcurrencyPolicy
from tests.unit.flows.conftest import utc

T0 = utc("2026-11-24 12:00")


def run(name: str, minute: int, **state: bool) -> RunSlot:
    return RunSlot(name, T0 + timedelta(minutes=minute), **state)


NEW = run("new", 10)
ONE = [run("a", 1)]
TWO = [run("a", 1), run("b", 2)]


def policy(name: str, max_running: int | None = None) -> Concurrency:
    return Concurrency(policy=ConcurrencyPolicy(name), max_running=max_running)


@pytest.mark.parametrize(
    ("concurrency", "others", "action", "cancel"),
    [
        (policy("Allow"), TWO * 10, Action.START, ()),
        (policy("Forbid"), [], Action.START, ()),
        (policy("Forbid"), ONE, Action.SKIP, ()),
        (policy("Forbid", 2), ONE, Action.START, ()),
        (policy("Forbid", 2), TWO, Action.SKIP, ()),
        (policy("Replace"), [], Action.START, ()),
        (policy("Replace"), ONE, Action.REPLACE, ("a",)),
        (policy("Replace"), TWO, Action.REPLACE, ("a", "b")),  # maxRunning 1: both go
        (policy("Replace", 2), TWO, Action.REPLACE, ("a",)),  # the oldest makes room
        (policy("Replace", 3), TWO, Action.START, ()),
        (policy("Queue"), [], Action.START, ()),
        (policy("Queue"), ONE, Action.QUEUE, ()),
        (policy("Queue", 2), ONE, Action.START, ()),
        (policy("Queue", 2), TWO, Action.QUEUE, ()),
    ],
)
def test_decision_table(
    concurrency: Concurrency, others: list[RunSlot], action: Action, cancel: tuple[str, ...]
) -> None:
    d = decide(concurrency, NEW, others)
    assert (d.action, d.cancel) == (action, cancel)


def test_reasons_and_messages_name_the_policy_and_the_runs() -> None:
    skip = decide(policy("Forbid"), NEW, ONE)
    assert skip.reason == FORBIDDEN
    assert (
        skip.message == "skipped: the flow allows 1 unfinished run (concurrency Forbid) and has a"
    )
    queued = decide(policy("Queue", 2), NEW, TWO)
    assert queued.reason == WAITING
    assert (
        "allows 2 unfinished runs (concurrency Queue); 2 running, 0 waiting ahead" in queued.message
    )
    replace = decide(policy("Replace"), NEW, ONE)
    assert replace.reason == REPLACING and "a to be cancelled" in replace.message


def test_the_candidate_itself_is_not_counted_against_it() -> None:
    assert decide(policy("Forbid"), NEW, [NEW]).action is Action.START


def test_replace_cancels_once_then_waits_for_the_cancelled_run_to_finish() -> None:
    d = decide(policy("Replace"), NEW, [run("a", 1, cancelling=True)])
    assert (d.action, d.cancel) == (Action.REPLACE, ())  # nothing more to cancel; wait
    assert decide(policy("Replace"), NEW, []).action is Action.START  # a finished: start


def test_queue_is_first_come_first_served() -> None:
    running = run("a", 1)
    early, late = run("w1", 3, holding=False), run("w2", 5, holding=False)
    waiting = [running, early, late]
    # The slot is taken: both wait.
    assert decide(policy("Queue"), early, waiting).action is Action.QUEUE
    # The slot comes free: the earlier waiting run gets it, the later one keeps waiting.
    free = [early, late]
    assert decide(policy("Queue"), early, free).action is Action.START
    later = decide(policy("Queue"), late, free)
    assert later.action is Action.QUEUE and "0 running, 1 waiting ahead" in later.message
    # Two slots free: both start.
    assert decide(policy("Queue", 2), late, free).action is Action.START


def test_max_running_is_one_when_absent_and_none_for_allow() -> None:
    assert policy("Forbid").limit() == policy("Replace").limit() == policy("Queue").limit() == 1
    assert policy("Queue", 4).limit() == 4
    assert policy("Allow").limit() is None
