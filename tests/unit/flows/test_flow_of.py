"""A run applied by hand with spec.flowRef belongs to its Flow as much as the runs the
Flow makes: the flow's concurrency, its last run and the run history count it."""

from __future__ import annotations

from typing import Any

from flow_operator.flows.admission import admission
from flow_operator.flows.runs import FlowRunRecord, flow_of, version_of
from flow_operator.history.record import record_of
from flow_operator.models.flow import Concurrency, ConcurrencyPolicy


def by_hand(phase: str | None = "Deployed", version: int | None = 3) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if phase:
        status["phase"] = phase
    if version is not None:
        status["definition"] = {"flowName": "nightly", "version": version, "revision": "abc",
                                "tasks": []}  # fmt: skip
    return {
        "metadata": {
            "name": "mine",
            "namespace": "ns",
            "uid": "u-mine",
            "creationTimestamp": "2026-12-03T10:00:00Z",
            "resourceVersion": "7",
        },
        "spec": {"flowRef": {"name": "nightly"}},
        "status": status,
    }


def test_the_flow_is_the_label_else_the_flow_ref() -> None:
    labelled = {"metadata": {"labels": {"flowops.io/flow": "weekly"}},
                "spec": {"flowRef": {"name": "nightly"}}}  # fmt: skip
    assert flow_of(labelled) == "weekly"
    assert flow_of(by_hand()) == "nightly"
    assert flow_of({"metadata": {}, "spec": {"tasks": []}}) is None
    assert flow_of({"spec": {"flowRef": "nightly"}}) is None  # not a ref: refused elsewhere


def test_the_version_is_the_label_the_spec_or_the_resolved_one() -> None:
    assert version_of(by_hand(version=3)) == "3"
    assert version_of(by_hand(version=None)) is None
    assert version_of({"metadata": {"labels": {"flowops.io/flow-version": "2"}}}) == "2"
    assert version_of({"spec": {"version": "v1.4"}}) == "v1.4"


def test_a_flow_ref_run_is_one_of_the_flows_runs() -> None:
    record = FlowRunRecord.from_body(by_hand())
    assert record is not None and record.name == "mine" and record.version == 3
    assert not record.finished and record.slot().holding


def test_a_flow_ref_run_holds_a_slot_against_a_queued_run() -> None:
    queued = {
        "metadata": {
            "name": "next",
            "creationTimestamp": "2026-12-03T10:05:00Z",
            "labels": {"flowops.io/flow": "nightly"},
            "annotations": {"flowops.io/concurrency": "Queue"},
        },
        "spec": {},
        "status": {"phase": "Queued", "reason": "WaitingForFlowConcurrency"},
    }
    policy = Concurrency(policy=ConcurrencyPolicy.QUEUE)
    hold = admission(policy, queued, [by_hand(), queued])
    assert hold is not None and "1 running" in hold.message
    assert admission(policy, queued, [by_hand("Completed"), queued]) is None


def test_its_record_names_the_flow_and_the_resolved_version() -> None:
    record = record_of(by_hand("Completed", version=3))
    assert (record.flow_name, record.version) == ("nightly", "3")


def test_of_two_runs_made_in_the_same_second_the_unfinished_one_is_the_last() -> None:
    """CI: a run applied by hand, replaced within its second by the Run action's run; the
    creation time's one-second grain cannot order them, the name ordered them wrongly."""
    from datetime import UTC, datetime

    from flow_operator.flows.plan import _last_run

    replaced = FlowRunRecord.from_body({**by_hand("Cancelled"), "metadata": {
        **by_hand()["metadata"], "name": "swap-by-hand"}})  # fmt: skip
    new = FlowRunRecord.from_body({**by_hand("Deployed"), "metadata": {
        **by_hand()["metadata"], "name": "swap-a2w9s"}})  # fmt: skip
    assert replaced is not None and new is not None and replaced.created == new.created
    last = _last_run([replaced, new], [], None, datetime(2026, 12, 3, tzinfo=UTC).isoformat())
    assert last is not None and last.name == "swap-a2w9s"
