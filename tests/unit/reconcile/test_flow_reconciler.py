"""The Flow reconciler on the fakes, with an injected clock: versions recorded once, a
tick's run created once under its deterministic name (also when a crash lost the status
write), the answer the seconds to the next tick, a bad spec Stalled with the field named."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime
from typing import Any

from flow_operator.flows.schedule import FLOW_LABEL
from flow_operator.objects.times import rfc3339
from flow_operator.ports import Body, Resource
from flow_operator.reconcile.flow import FlowReconciler, FlowView
from tests.unit.fake_kube import FakeKube
from tests.unit.flows.conftest import Clock, flow_spec

NS, NAME = "team", "etl"
KEY = (NS, NAME)
T0 = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


class StoreKube(FakeKube):
    """Creates land in a store keyed by (plural, namespace, name): a second create of a
    name is AlreadyExists (False), as the API server answers."""

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str, str], Body] = {}

    async def create(self, resource: Resource, body: Body) -> bool:
        key = (resource.plural, body["metadata"]["namespace"], body["metadata"]["name"])
        if key in self.store:
            return False
        self.store[key] = body
        self.created.append(body)
        return True

    async def get(self, resource: Resource, namespace: str, name: str) -> Body:
        body = self.store.get((resource.plural, namespace, name))
        if body is None:
            return await super().get(resource, namespace, name)
        return {**body, "metadata": {**body["metadata"], "uid": f"uid-{name}"}}

    def of(self, plural: str) -> list[Body]:
        return [b for (p, _, _), b in self.store.items() if p == plural]


def flow_body(**spec: Any) -> Body:
    return {
        "apiVersion": "flowops.io/v1alpha1",
        "kind": "Flow",
        "metadata": {
            "name": NAME,
            "namespace": NS,
            "uid": "flow-uid",
            "generation": 1,
            "resourceVersion": "1",
            "creationTimestamp": rfc3339(T0),
        },
        "spec": flow_spec(**spec),
    }


class World:
    """The indexes as kopf would fill them, and the fake cluster behind them."""

    def __init__(self, body: Body, now: datetime) -> None:
        self.flows: dict[tuple[str, str], list[Body]] = {KEY: [body]}
        self.runs: dict[tuple[str, str], list[Body]] = {}
        self.kube = StoreKube()
        self.clock = Clock(now)
        self.reconciler = FlowReconciler(
            FlowView(self.flows, self.runs), self.kube, clock=lambda: self.clock.now
        )
        self.version = 1

    def restart(self) -> None:
        """A new process: the reconciler's memory of its writes is gone."""
        self.reconciler = FlowReconciler(
            FlowView(self.flows, self.runs), self.kube, clock=lambda: self.clock.now
        )

    def reconcile(self) -> float | None:
        return asyncio.run(self.reconciler(KEY))

    def watch_status(self) -> None:
        """The watch shows the last status written (a new resourceVersion)."""
        body = copy.deepcopy(self.flows[KEY][0])
        self.version += 1
        body["metadata"]["resourceVersion"] = str(self.version)
        body["status"] = self.kube.statuses[-1][3]
        self.flows[KEY] = [body]

    def watch_runs(self) -> None:
        """The runs index shows every run created, with its uid and creation time."""
        self.runs[KEY] = [
            {
                **b,
                "metadata": {
                    **b["metadata"],
                    "uid": f"uid-{b['metadata']['name']}",
                    "creationTimestamp": rfc3339(self.clock.now),
                },
            }
            for b in self.kube.of("flowruns")
            if b["metadata"]["labels"].get(FLOW_LABEL) == NAME
        ]


MINUTELY = [{"name": "minutely", "cron": "* * * * *"}]


def test_the_first_reconcile_records_version_1_and_waits_for_the_next_minute() -> None:
    w = World(flow_body(schedules=MINUTELY), T0.replace(second=30))
    assert w.reconcile() == 30.0  # 12:00:30 -> 12:01:00: a timer, not a poll
    (revision,) = w.kube.of("controllerrevisions")
    assert revision["revision"] == 1
    assert revision["metadata"]["ownerReferences"][0]["uid"] == "flow-uid"
    assert revision["data"]["tasks"][0]["name"] == "extract"
    status = w.kube.statuses[-1][3]
    assert status["version"] == 1
    assert status["schedules"][0]["nextScheduleTime"] == "2026-11-24T12:01:00Z"
    assert w.kube.of("flowruns") == []


def test_a_tick_creates_its_run_once_and_the_answer_is_the_next_tick() -> None:
    w = World(flow_body(schedules=MINUTELY), T0.replace(second=30))
    w.reconcile()
    w.watch_status()
    w.clock.set(T0.replace(minute=1))
    assert w.reconcile() == 60.0
    (run,) = w.kube.of("flowruns")
    assert run["metadata"]["name"].startswith("etl-minutely-202611241201-")
    assert run["spec"]["runType"] == "Scheduled"
    assert run["spec"]["flowRef"] == {"name": "etl", "version": 1}
    assert run["metadata"]["labels"]["flowops.io/flow-version"] == "1"
    assert "TickStarted" in {e[0] for e in w.kube.events}
    assert len(w.kube.of("controllerrevisions")) == 1  # the version is recorded once

    # A crash between the create and the status write: the index shows the old status
    # and (the watch being slower still) not the run. The replay creates nothing new.
    before = len(w.kube.store)
    w.kube.statuses.pop()
    w.kube.events.clear()
    w.restart()
    assert w.reconcile() == 60.0
    assert len(w.kube.store) == before
    assert "TickStarted" not in {e[0] for e in w.kube.events}  # not started twice
    assert w.kube.statuses[-1][3]["schedules"][0]["lastScheduleTime"] == "2026-11-24T12:01:00Z"
    # and once the run is seen, the same: its tick is not started again
    w.watch_runs()
    w.reconcile()
    w.watch_status()
    w.reconcile()
    assert len(w.kube.of("flowruns")) == 1
    assert w.kube.statuses[-1][3]["lastRun"]["name"] == run["metadata"]["name"]


def test_the_next_minute_makes_the_next_run() -> None:
    w = World(flow_body(schedules=MINUTELY), T0.replace(second=30))
    w.reconcile()
    for minute in (1, 2, 3):
        w.watch_status()
        w.clock.set(T0.replace(minute=minute, second=1))
        assert w.reconcile() == 59.0
        w.watch_runs()
    names = sorted(b["metadata"]["name"] for b in w.kube.of("flowruns"))
    assert [n.split("-")[2] for n in names] == ["202611241201", "202611241202", "202611241203"]


def test_a_flow_without_schedules_records_its_version_and_sets_no_timer() -> None:
    w = World(flow_body(), T0)
    assert w.reconcile() is None
    assert w.kube.statuses[-1][3]["version"] == 1


def test_a_spec_change_is_a_new_version() -> None:
    w = World(flow_body(), T0)
    w.reconcile()
    w.watch_status()
    body = copy.deepcopy(w.flows[KEY][0])
    body["spec"]["tasks"][0]["image"] = "busybox:1.37"
    body["metadata"]["generation"] = 2
    w.flows[KEY] = [body]
    w.reconcile()
    assert sorted(r["revision"] for r in w.kube.of("controllerrevisions")) == [1, 2]
    assert w.kube.statuses[-1][3]["version"] == 2


def test_a_spec_the_model_refuses_is_stalled_with_the_field_named() -> None:
    w = World(flow_body(schedules=[{"name": "bad", "cron": "61 * * * *"}]), T0)
    assert w.reconcile() is None
    status = w.kube.statuses[-1][3]
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "InvalidSpec"
    assert "schedule" in stalled["message"] and "bad" in stalled["message"]
    assert w.kube.of("flowruns") == []
    assert "InvalidSpec" in {e[0] for e in w.kube.events}


def test_finished_runs_past_the_history_are_not_deleted_until_archived() -> None:
    w = World(flow_body(schedules=MINUTELY, history={"successfulKept": 0}), T0.replace(second=30))
    w.reconcile()
    w.watch_status()
    w.clock.set(T0.replace(minute=1))
    w.reconcile()
    w.watch_runs()
    w.runs[KEY][0]["status"] = {"phase": "Completed", "endTime": "2026-11-24T12:01:10Z"}
    w.clock.set(T0.replace(minute=1, second=20))
    w.reconcile()
    assert w.kube.deleted == []  # the default: nothing counts as archived
    asked: list[str] = []

    async def archived(uid: str) -> bool:
        asked.append(uid)
        return True

    w.reconciler.archived = archived
    w.reconcile()
    (run,) = w.runs[KEY]
    assert asked == [run["metadata"]["uid"]]
    assert w.kube.deleted == [("FlowRun", run["metadata"]["namespace"], run["metadata"]["name"])]
