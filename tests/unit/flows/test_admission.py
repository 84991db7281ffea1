"""Queue and Replace runs wait in Queued until their flow's concurrency admits them."""

from __future__ import annotations

from typing import Any

from flow_operator.flows.admission import Hold, admission
from flow_operator.models.flow import Concurrency, ConcurrencyPolicy

QUEUE = Concurrency(policy=ConcurrencyPolicy.QUEUE)
REPLACE = Concurrency(policy=ConcurrencyPolicy.REPLACE)


def run(name: str, minute: int, phase: str | None = None, decision: str | None = None,
        reason: str | None = None, cancel: bool = False) -> dict[str, Any]:  # fmt: skip
    notes = {"flowops.io/concurrency": decision} if decision else {}
    status: dict[str, Any] = {"phase": phase} if phase else {}
    if reason:
        status["reason"] = reason
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "creationTimestamp": f"2026-12-03T10:{minute:02d}:00Z",
            "labels": {"flowops.io/flow": "nightly"},
            "annotations": notes,
        },
        "spec": {"cancel": cancel},
        "status": status,
    }


def test_a_run_made_under_start_or_of_no_flow_is_never_held() -> None:
    running = run("a", 0, "Deployed")
    assert admission(QUEUE, run("b", 1, "Queued", "Start"), [running]) is None
    inline = {"metadata": {"name": "x", "creationTimestamp": "2026-12-03T10:00:00Z"}}
    assert admission(QUEUE, inline, [running]) is None


def test_a_queued_run_waits_while_another_runs_and_starts_once_it_finished() -> None:
    waiting = run("b", 1, "Queued", "Queue", "WaitingForFlowConcurrency")
    hold = admission(QUEUE, waiting, [run("a", 0, "Deployed"), waiting])
    assert isinstance(hold, Hold) and hold.reason == "WaitingForFlowConcurrency"
    assert "1 running, 0 waiting ahead" in hold.message
    assert admission(QUEUE, waiting, [run("a", 0, "Completed"), waiting]) is None


def test_waiting_runs_start_in_the_order_they_were_made() -> None:
    first = run("b", 1, "Queued", "Queue", "WaitingForFlowConcurrency")
    second = run("c", 2, "Submitted", "Queue")
    others = [run("a", 0, "Failed"), first, second]
    assert admission(QUEUE, first, others) is None
    hold = admission(QUEUE, second, others)
    assert hold is not None and "1 waiting ahead" in hold.message


def test_a_replacing_run_waits_until_the_replaced_run_has_finished() -> None:
    new = run("b", 1, "Submitted", "Replace")
    leaving = run("a", 0, "Deployed", cancel=True)
    hold = admission(REPLACE, new, [leaving, new])
    assert hold is not None and hold.reason == "ReplacingRuns" and "a" in hold.message
    assert admission(REPLACE, new, [run("a", 0, "Cancelled", cancel=True), new]) is None


def test_the_flow_gone_holds_nothing() -> None:
    waiting = run("b", 1, "Queued", "Queue", "WaitingForFlowConcurrency")
    assert admission(None, waiting, [run("a", 0, "Deployed")]) is None
