"""The Flow planner driven through time: its plans applied to a fake set of runs, with the
status written or lost, so the guarantees (one run per tick, none twice) are checked over
many passes and not only per golden file."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flow_operator.flows.concurrency import Action
from flow_operator.flows.params import Resolution
from flow_operator.flows.plan import Plan, plan
from flow_operator.flows.runs import (
    DECISION_ANNOTATION,
    FlowRunRecord,
    build_run,
    manual_run_name,
)
from flow_operator.flows.schedule import FLOW_LABEL
from flow_operator.models.flow import Flow, FlowStatus, FlowVersion
from flow_operator.models.flowrun import RunType
from flow_operator.objects.times import rfc3339
from tests.unit.flows.conftest import Clock, flow_spec, utc

Body = dict[str, Any]


def _flow(status: FlowStatus | None = None, **spec: Any) -> Flow:
    body: Body = {
        "metadata": {
            "name": "etl",
            "namespace": "data",
            "uid": "flow-uid",
            "creationTimestamp": "2026-11-24T11:59:30Z",
        },
        "spec": flow_spec(**spec),
    }
    flow = Flow.from_body(body)
    flow.status = status
    return flow


def _apply(p: Plan, cluster: dict[str, Body], now: datetime) -> None:
    """What the edge does with the creates: AlreadyExists is done."""
    for c in p.create:
        if c.name not in cluster:
            body = dict(c.body)
            body["metadata"] = {**c.body["metadata"], "creationTimestamp": rfc3339(now)}
            cluster[c.name] = body


def _records(cluster: dict[str, Body]) -> list[FlowRunRecord]:
    return [r for b in cluster.values() if (r := FlowRunRecord.from_body(b)) is not None]


MINUTELY = [{"name": "minutely", "cron": "* * * * *"}]


def test_one_run_per_minute_over_ten_minutes_with_the_status_written(clock: Clock) -> None:
    cluster: dict[str, Body] = {}
    status = None
    clock.set(utc("2026-11-24 11:59:31"))
    for _ in range(11):  # the first pass, at 11:59:31, has nothing due
        p = plan(_flow(status, schedules=MINUTELY), _records(cluster), clock.now)
        _apply(p, cluster, clock.now)
        status = p.status
        assert p.requeue_at is not None
        clock.set(p.requeue_at)  # the edge's timer fires on time
        clock.advance(seconds=1)
    ticks = sorted(b["metadata"]["labels"]["flowops.io/scheduled-time"] for b in cluster.values())
    assert ticks == [f"2026112412{m:02d}" for m in range(10)]


def test_a_lost_status_write_creates_nothing_twice(clock: Clock) -> None:
    cluster: dict[str, Body] = {}
    clock.set(utc("2026-11-24 12:00:05"))
    first = plan(_flow(schedules=MINUTELY), [], clock.now)
    _apply(first, cluster, clock.now)
    # The operator dies before the status write; a new leader plans from the old status.
    clock.advance(seconds=20)
    again = plan(_flow(schedules=MINUTELY), _records(cluster), clock.now)
    assert again.create == ()
    assert again.status.schedules[0].last_run == first.create[0].name
    # The same inputs twice give the same plan, names included.
    assert plan(_flow(schedules=MINUTELY), [], utc("2026-11-24 12:00:05")) == first


def test_catch_up_all_after_a_lost_status_does_not_replay_ticks_it_has_runs_for(
    clock: Clock,
) -> None:
    schedules = [{"name": "minutely", "cron": "* * * * *", "catchUp": "All"}]
    cluster: dict[str, Body] = {}
    clock.set(utc("2026-11-24 12:05:10"))
    p = plan(_flow(schedules=schedules), [], clock.now)
    assert len(p.create) == 6  # 12:00 to 12:05, after the Flow's creation at 11:59:30
    _apply(p, cluster, clock.now)
    clock.advance(minutes=1)
    again = plan(_flow(schedules=schedules), _records(cluster), clock.now)
    assert [c.tick for c in again.create] == [utc("2026-11-24 12:06")]


def test_a_record_from_a_built_body() -> None:
    flow = _flow()
    body = build_run(
        flow="etl",
        namespace="data",
        definition=flow.spec,
        version=FlowVersion(version=3, revision="abc", creation_time="2026-11-24T00:00:00Z"),
        name="etl-x1",
        run_type=RunType.API,
        resolution=Resolution(values={"A": "1"}),
        decision=Action.QUEUE,
    )
    assert body["metadata"]["labels"][FLOW_LABEL] == "etl"
    assert body["metadata"]["annotations"][DECISION_ANNOTATION] == "Queue"
    assert body["spec"]["configuration"] == {"name": "custom", "parameters": {"A": "1"}}
    body["metadata"]["creationTimestamp"] = "2026-11-24T12:00:00Z"
    record = FlowRunRecord.from_body(body)
    assert record is not None
    assert (record.version, record.decision, record.holding) == (3, Action.QUEUE, False)
    body["status"] = {"phase": "Deployed"}
    admitted = FlowRunRecord.from_body(body)
    assert admitted is not None and admitted.holding
    assert FlowRunRecord.from_body({"metadata": {"name": "inline"}}) is None


def test_manual_names_are_deterministic_and_fit_a_label() -> None:
    assert manual_run_name("etl", key="k1") == manual_run_name("etl", key="k1")
    assert manual_run_name("etl", key="k1") != manual_run_name("etl", key="k2")
    assert manual_run_name("etl", suffix="x7k2q") == "etl-x7k2q"
    assert len(manual_run_name("f" * 63, key="k")) == 63
    for bad in ("", "UPPER", "a" * 17, None):
        try:
            manual_run_name("etl", suffix=bad)
        except ValueError as e:
            assert "idempotency key or a suffix" in str(e)
        else:
            raise AssertionError(bad)
