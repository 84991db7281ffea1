"""Slots counted as the watch reports runs (flowrun/slots.py): a run that finishes or is
deleted gives its slot back, a stale or repeated event changes nothing, a re-list leaves
what a recount finds, and the waiting runs are served oldest first. The property tests
hold the incremental counts equal to a recount after any sequence of events."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flow_operator.flowrun.slots import Key, RunState, Slots, recount, state_of
from flow_operator.flows.admission import admission, admission_counted
from flow_operator.flows.concurrency import RunSlot
from flow_operator.models.flow import Concurrency, ConcurrencyPolicy

T0 = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def deployed(ns: str, name: str, version: int, minute: int = 0) -> RunState:
    return RunState((ns, name), at(minute), version, deployed=True)


def waiting(ns: str, name: str, version: int, minute: int = 0) -> RunState:
    return RunState((ns, name), at(minute), version, waiting=True)


def done(ns: str, name: str, version: int, minute: int = 0) -> RunState:
    return RunState((ns, name), at(minute), version)


def body(name: str, minute: int, phase: str | None = None, reason: str | None = None,
         decision: str | None = None, version: int = 1, ns: str = "ml") -> dict[str, Any]:  # fmt: skip
    status: dict[str, Any] = {"phase": phase} if phase else {}
    if reason:
        status["reason"] = reason
    return {
        "metadata": {
            "name": name,
            "namespace": ns,
            "resourceVersion": str(version),
            "creationTimestamp": f"2026-12-04T03:{minute:02d}:00Z",
            "labels": {"flowops.io/flow": "nightly"},
            "annotations": {"flowops.io/concurrency": decision} if decision else {},
        },
        "spec": {},
        "status": status,
    }


def check(slots: Slots) -> None:
    """The incremental counts are what a walk over every run kept finds."""
    assert slots.counts() == recount(slots._states.values(), slots._reserved)


def test_a_run_that_finishes_gives_its_slot_back() -> None:
    slots = Slots()
    assert slots.observe(("a", "r"), deployed("a", "r", 1))
    assert (slots.held, slots.held_in("a")) == (1, 1)
    assert slots.observe(("a", "r"), done("a", "r", 2))
    assert (slots.held, slots.held_in("a")) == (0, 0)
    check(slots)


def test_a_run_deleted_while_holding_a_slot_gives_it_back_and_stays_gone() -> None:
    slots = Slots()
    slots.observe(("a", "r"), deployed("a", "r", 5))
    slots.reserve(("a", "r"))
    assert slots.observe(("a", "r"), deployed("a", "r", 6), deleted=True)
    assert slots.held == 0 and not slots.reserved(("a", "r"))
    # a change from before the delete, delivered late, does not bring it back
    assert not slots.observe(("a", "r"), deployed("a", "r", 5))
    assert slots.held == 0
    # the same name made again is a new run (a later version)
    assert slots.observe(("a", "r"), deployed("a", "r", 9))
    assert slots.held == 1
    check(slots)


def test_an_older_state_after_a_newer_one_is_ignored() -> None:
    """Our own write (version 12) is counted before the watch shows the Queued state it
    replaced (version 11)."""
    slots = Slots()
    slots.observe(("a", "r"), deployed("a", "r", 12))
    assert not slots.observe(("a", "r"), waiting("a", "r", 11))
    assert slots.held == 1 and slots.counts().lines == {}


def test_the_same_event_twice_changes_nothing() -> None:
    slots = Slots()
    assert slots.observe(("a", "r"), deployed("a", "r", 3))
    before = slots.counts()
    assert not slots.observe(("a", "r"), deployed("a", "r", 3))
    assert slots.counts() == before and slots.held == 1


def test_a_relist_after_a_watch_restart_counts_what_a_recount_does() -> None:
    """Runs deleted while the watch was down vanish, the others take their listed state;
    a reconcile's reservation survives it."""
    slots = Slots()
    for i in range(4):
        slots.observe(("a", f"r{i}"), deployed("a", f"r{i}", i + 1))
    slots.observe(("b", "w"), waiting("b", "w", 9))
    slots.reserve(("b", "w"))
    listed = [deployed("a", "r0", 20), done("a", "r1", 21), waiting("b", "w", 9)]
    slots.relist(listed)
    assert slots.counts() == recount(listed, [("b", "w")])
    assert (slots.held, slots.held_in("a"), slots.held_in("b")) == (2, 1, 1)
    assert slots.observe(("a", "r2"), deployed("a", "r2", 3))  # no tombstone survives a list


def test_a_reserved_run_holds_its_slot_and_leaves_the_line_until_released() -> None:
    slots = Slots()
    slots.observe(("a", "w"), waiting("a", "w", 1))
    slots.reserve(("a", "w"))
    assert slots.held == 1 and slots.counts().lines == {}
    # a watch event while the write is under way keeps the reservation
    slots.observe(("a", "w"), waiting("a", "w", 2))
    assert slots.held == 1
    slots.observe(("a", "w"), deployed("a", "w", 3))  # our write, counted
    slots.release(("a", "w"))
    assert slots.held == 1
    check(slots)


def test_a_free_slot_goes_to_the_oldest_waiting_run() -> None:
    slots = Slots()
    slots.observe(("a", "run"), deployed("a", "run", 1))
    for name, minute in (("new", 3), ("old", 1), ("mid", 2)):
        slots.observe(("a", name), waiting("a", name, 2, minute))
    assert slots.next_for_capacity(1, None, "a") == []  # the one slot is held
    slots.observe(("a", "run"), done("a", "run", 3))
    assert slots.next_for_capacity(1, None, "a") == [("a", "old")]
    assert slots.next_for_capacity(2, None, "a") == [("a", "old"), ("a", "mid")]
    assert slots.standing(("a", "old"), 1, None).ahead == 0
    assert slots.standing(("a", "new"), 1, None).ahead == 2


def test_older_runs_of_a_full_namespace_do_not_hold_back_another() -> None:
    """Operator-wide 3, 1 per namespace: a's waiting runs wait for a's slot, b's oldest
    gets the free one."""
    slots = Slots()
    slots.observe(("a", "busy"), deployed("a", "busy", 1))
    for i in range(5):
        slots.observe(("a", f"a{i}"), waiting("a", f"a{i}", 2, i))
    slots.observe(("b", "b1"), waiting("b", "b1", 2, 20))
    slots.observe(("b", "b0"), waiting("b", "b0", 2, 10))
    slots.observe(("c", "c0"), waiting("c", "c0", 2, 15))
    assert slots.next_for_capacity(3, 1, "b") == [("b", "b0"), ("c", "c0")]
    standing = slots.standing(("b", "b0"), 3, 1)
    assert (standing.running, standing.ahead, standing.namespace_ahead) == (1, 0, 0)
    assert slots.standing(("b", "b1"), 3, 1).namespace_ahead == 1
    assert slots.standing(("c", "c0"), 3, 1).ahead == 1  # b0, not a's five
    # with a per-namespace limit only, a slot freed in a goes to a's oldest
    slots.observe(("a", "busy"), done("a", "busy", 3))
    assert slots.next_for_capacity(None, 1, "a") == [("a", "a0")]


def test_states_from_bodies() -> None:
    state = state_of(body("r", 5, "Queued", "WaitingForCapacity", version=42))
    assert state is not None
    assert (state.key, state.version, state.waiting, state.deployed) == (
        ("ml", "r"),
        42,
        True,
        False,
    )
    assert state.flow == "nightly" and state.flow_slot is not None and state.flow_slot.holding
    queued = state_of(body("q", 5, "Queued", "WaitingForFlowConcurrency", "Queue"))
    assert queued is not None and queued.flow_slot is not None and not queued.flow_slot.holding
    finished = state_of(body("f", 5, "Completed"))
    assert finished is not None and finished.flow_slot is None and not finished.deployed
    assert state_of({"metadata": {}}) is None


def test_the_flows_line_is_served_first_made_first() -> None:
    slots = Slots()
    for b in (body("a", 0, "Deployed"), body("c", 3, "Queued", "WaitingForFlowConcurrency",
              "Queue"), body("b", 2, None, None, "Queue")):  # fmt: skip
        state = state_of(b)
        assert state is not None
        slots.observe(state.key, state)
    assert slots.waiting_in_flow(("ml", "nightly")) == 2
    assert slots.next_in_flow(("ml", "nightly"), 1) == []
    assert slots.next_in_flow(("ml", "nightly"), 2) == [("ml", "b")]
    assert slots.next_in_flow(("ml", "nightly"), None) == [("ml", "b"), ("ml", "c")]
    holding, ahead = slots.flow_place(("ml", "c"), "nightly")
    assert [s.name for s in holding] == ["a"] and ahead == 1


# --- properties --------------------------------------------------------------------------

KEYS = [(ns, f"r{i}") for ns in ("a", "b") for i in range(4)]


@st.composite
def run_states(draw: st.DrawFn, key: Key, version: int) -> RunState:
    flow = draw(st.sampled_from([None, "f", "g"]))
    slot = None
    if flow is not None and draw(st.booleans()):
        created = at(draw(st.integers(0, 3)))
        slot = RunSlot(key[1], created, draw(st.booleans()), draw(st.booleans()))
    return RunState(
        key,
        at(draw(st.integers(0, 3))),
        version,
        deployed=draw(st.booleans()),
        waiting=draw(st.booleans()),
        flow=flow,
        flow_slot=slot,
        replacing=draw(st.booleans()),
    )


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[tuple[RunState, bool]], list[int]]:
    """Events with increasing versions (a delete among them), and an order of delivery
    with repeats: out of order, twice, or never."""
    events = []
    for version in range(1, draw(st.integers(1, 40)) + 1):
        key = draw(st.sampled_from(KEYS))
        events.append((draw(run_states(key, version)), draw(st.booleans()) and version % 3 == 0))
    order = list(draw(st.permutations(range(len(events)))))
    for _ in range(draw(st.integers(0, len(events)))):  # repeats, anywhere
        order.insert(draw(st.integers(0, len(order))), draw(st.integers(0, len(events) - 1)))
    return events, order


@settings(max_examples=100, deadline=None)
@given(histories())
def test_out_of_order_and_repeated_events_end_where_the_newest_states_do(
    history: tuple[list[tuple[RunState, bool]], list[int]],
) -> None:
    """Whatever the order and the repeats, the counts are those of each run's newest
    state (a run whose newest event is its delete counts for nothing)."""
    events, order = history
    slots = Slots()
    for i in order:
        state, deleted = events[i]
        slots.observe(state.key, state, deleted)
        check(slots)
    newest: dict[Key, tuple[RunState, bool]] = {}
    for state, deleted in events:
        newest[state.key] = (state, deleted)
    truth = [state for state, deleted in newest.values() if not deleted]
    assert slots.counts() == recount(truth)


OPS = st.one_of(
    st.tuples(st.just("observe"), st.sampled_from(KEYS), st.integers(0, 30), st.booleans()),
    st.tuples(st.just("reserve"), st.sampled_from(KEYS)),
    st.tuples(st.just("release"), st.sampled_from(KEYS)),
    st.tuples(st.just("relist"), st.lists(st.sampled_from(KEYS), unique=True)),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(OPS, max_size=60), st.data())
def test_the_count_equals_a_recount_after_any_sequence(ops: list[Any], data: st.DataObject) -> None:
    slots = Slots(tombstones=3)
    for op in ops:
        if op[0] == "observe":
            _, key, version, deleted = op
            slots.observe(key, data.draw(run_states(key, version)), deleted)
        elif op[0] == "reserve":
            slots.reserve(op[1])
        elif op[0] == "release":
            slots.release(op[1])
        else:
            slots.relist([data.draw(run_states(k, 0)) for k in op[1]])
        check(slots)
        standing = slots.standing(("a", "r0"), 2, 1)
        assert standing.running == slots.held - (slots._marks_of(("a", "r0")).holds)


FLOW_RUNS = st.lists(
    st.tuples(
        st.integers(0, 5),  # created (minute)
        st.sampled_from([None, "Submitted", "Queued", "Deployed", "Completed"]),
        st.sampled_from([None, "WaitingForFlowConcurrency", "ReplacingRuns", "Admitted"]),
        st.sampled_from([None, "Start", "Queue", "Replace"]),
        st.booleans(),  # cancel requested
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=100, deadline=None)
@given(FLOW_RUNS, st.sampled_from(["Queue", "Replace", "Forbid"]), st.integers(1, 3))
def test_admission_from_the_counts_is_admission_from_every_run(
    runs: list[tuple[int, str | None, str | None, str | None, bool]], policy: str, limit: int
) -> None:
    """The flow's say from the counts the slots keep is the one a walk over all its runs
    gives (flows/admission.py), for each run of the flow."""
    bodies = []
    for i, (minute, phase, reason, decision, cancel) in enumerate(runs):
        b = body(f"r{i}", minute, phase, reason, decision)
        b["spec"]["cancel"] = cancel
        bodies.append(b)
    slots = Slots()
    for b in bodies:
        state = state_of(b)
        assert state is not None
        slots.observe(state.key, state)
    concurrency = Concurrency(policy=ConcurrencyPolicy(policy), max_running=limit)
    for b in bodies:
        key = ("ml", b["metadata"]["name"])
        holding, ahead = slots.flow_place(key, "nightly")
        assert admission_counted(concurrency, b, holding, ahead) == admission(
            concurrency, b, bodies
        )


def test_a_reservation_holds_the_flows_slot_too() -> None:
    state = state_of(body("q", 1, "Queued", "WaitingForFlowConcurrency", "Queue"))
    assert state is not None
    slots = Slots()
    slots.observe(state.key, state)
    slots.reserve(state.key)
    holding, ahead = slots.flow_place(("ml", "other"), "nightly")
    assert [s.name for s in holding] == ["q"] and ahead == 0
    assert slots.counts().flow_lines == {}
    slots.release(state.key)
    assert slots.counts().flow_lines == {("ml", "nightly"): [(at(1), "q")]}
    assert replace(state, version=2) != state  # states are values: compared whole


def test_a_replace_run_waiting_for_the_run_it_replaces_is_woken_when_that_one_ends() -> None:
    """Queued with ReplacingRuns it counts as holding (FlowRunRecord.holding), so it is in
    no line; the flow's slot changing still names it."""
    slots = Slots()
    for b in (body("old", 0, "Deployed"), body("new", 1, "Queued", "ReplacingRuns", "Replace")):
        state = state_of(b)
        assert state is not None and state.replacing == (b["metadata"]["name"] == "new")
        slots.observe(state.key, state)
    assert slots.waiting_in_flow(("ml", "nightly")) == 1
    assert slots.next_in_flow(("ml", "nightly"), 1) == [("ml", "new")]
    ended = state_of(body("old", 0, "Cancelled", version=2))
    assert ended is not None and slots.observe(ended.key, ended)
    holding, ahead = slots.flow_place(("ml", "new"), "nightly")
    assert [s.name for s in holding] == [] and ahead == 0
    check(slots)
