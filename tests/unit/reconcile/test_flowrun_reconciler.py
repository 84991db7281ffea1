"""The FlowRun reconciler on a fake API: capacity is never over-granted by concurrent
workers, its own status write is read back before the watch shows it, a refused Job
fails its task, an invalid spec is rejected without a Job, and a Job that exists is
not created twice, and a run naming its Flow (spec.flowRef) is resolved once or refused."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from copy import deepcopy
from datetime import datetime
from typing import Any

import pytest

from flow_operator.errors import Refused
from flow_operator.flowrun.slots import state_of
from flow_operator.flows.versions import revision_hash, revision_name
from flow_operator.models.flow import FlowSpec
from flow_operator.models.flowrun import FlowRun
from flow_operator.ports import Page, Resource
from flow_operator.reconcile.flowrun import (
    DETAILS_WINDOW,
    FlowRunReconciler,
    FlowRunView,
    Limits,
)
from tests.unit.flowrun_objects import T0, at, failed_create, job, run_body, task

Body = dict[str, Any]
Key = tuple[str, str]


class Kube:
    """The cluster's ports (flow_operator.reconcile.flowrun.FlowRunCluster): records every
    write; `refuse` maps an object name to a 422 message; `exists` holds names a create
    finds taken; `log_of` gives a pod's log."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self.where: list[str] = []  # the namespace of each created Job
        self.statuses: list[tuple[str, Body]] = []
        self.posted: list[str] = []
        self.refuse: dict[str, str] = {}
        self.exists: set[str] = set()
        self.log_of: Callable[[str], bytes] = lambda pod: b""

    async def apply(self, resource: Resource, body: Body) -> None:
        raise AssertionError("a FlowRun applies nothing")

    async def create(self, resource: Resource, body: Body) -> bool:
        name = body["metadata"]["name"]
        await asyncio.sleep(0)  # a real call yields to the other workers
        if name in self.refuse:
            raise Refused(self.refuse[name], status=422, reason="Invalid")
        if name in self.exists:
            return False
        self.created.append(name)
        self.where.append(body["metadata"]["namespace"])
        return True

    async def replace_status(
        self, resource: Resource, namespace: str, name: str, status: Body
    ) -> str:
        await asyncio.sleep(0)
        self.statuses.append((name, status))
        return str(100 + len(self.statuses))  # the resourceVersion the write made

    async def event(
        self,
        involved: Body,
        reason: str,
        message: str,
        type_: str = "Normal",
        at: datetime | None = None,
    ) -> None:
        await asyncio.sleep(0)
        self.posted.append(reason)

    async def delete(self, resource: Resource, namespace: str, name: str) -> None:
        raise AssertionError("nothing is deleted in these tests")

    async def merge_patch(self, resource: Resource, namespace: str, name: str, patch: Body) -> None:
        raise AssertionError("nothing is patched in these tests")

    async def get(self, resource: Resource, namespace: str, name: str) -> Body:
        raise AssertionError("a reconcile reads the indexes, not the API")

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        limit: int | None = None,
        continue_token: str = "",
        label_selector: str = "",
        field_selector: str = "",
    ) -> Page:
        return Page()  # no FailedCreate Events

    async def pod_log(
        self, namespace: str, pod: str, *, follow: bool = False, tail_lines: int | None = None
    ) -> AsyncIterator[bytes]:
        text = self.log_of(pod)

        async def chunks() -> AsyncIterator[bytes]:
            yield text

        return chunks()


def queued(name: str) -> Body:
    body = run_body([task("extract")], name=name)
    body["metadata"].update(uid=f"uid-{name}", resourceVersion="10")
    body["status"] = {
        "phase": "Queued",
        "history": [
            {"phase": "Submitted", "time": "2024-02-12T09:00:00Z", "reason": "Submitted"},
            {"phase": "Queued", "time": "2024-02-12T09:00:00Z", "reason": "Admitted"},
        ],
        "tasks": [{"name": "extract", "version": "1.0", "status": "Pending"}],
    }
    return body


def reconciler(runs: dict[Key, list[Body]], kube: Kube, **limits: Any) -> FlowRunReconciler:
    view = FlowRunView(runs=runs, jobs={}, pods={}, children={}, workflows={})
    return FlowRunReconciler(view, kube, Limits(**limits), clock=lambda: T0)


def last_status(kube: Kube, name: str) -> Body:
    return [s for n, s in kube.statuses if n == name][-1]


class Walked(dict[Key, list[Body]]):
    """A run index that counts the walks over all of it."""

    walks = 0

    def items(self) -> Any:
        self.walks += 1
        return super().items()

    def values(self) -> Any:
        self.walks += 1
        return super().values()

    def keys(self) -> Any:
        self.walks += 1
        return super().keys()

    def __iter__(self) -> Any:
        self.walks += 1
        return super().__iter__()


async def test_no_reconcile_walks_the_runs_to_count_slots() -> None:
    """Capacity is counted as runs change (flowrun/slots.py): with limits, deciding a Queued
    run's slot and a Deployed run's reconcile read the counts; no reconcile walks the index.
    (The reconciler built without the watch's counts lists its index once, at the start.)"""
    runs = Walked({("ml", f"r{i}"): [queued(f"r{i}")] for i in range(3)})
    kube = Kube()
    limited = reconciler(runs, kube, running=2, per_namespace=2)
    walks = runs.walks
    await limited(("ml", "r1"))
    assert last_status(kube, "r1")["phase"] == "Deployed"
    runs[("ml", "r1")] = [{**runs[("ml", "r1")][0], "status": last_status(kube, "r1")}]
    await limited(("ml", "r1"))  # Deployed: holds its slot
    await limited(("ml", "r0"))
    await limited(("ml", "r2"))  # the limit is reached: it waits
    assert [last_status(kube, n)["phase"] for n in ("r0", "r2")] == ["Deployed", "Queued"]
    assert runs.walks == walks


async def test_concurrent_workers_never_grant_more_slots_than_the_limit() -> None:
    runs = {("ml", f"r{i}"): [queued(f"r{i}")] for i in range(4)}
    kube = Kube()
    rec = reconciler(runs, kube, running=1)
    await asyncio.gather(*(rec(key) for key in runs))
    phases = {name: last_status(kube, name)["phase"] for name in ("r0", "r1", "r2", "r3")}
    assert sorted(phases.values()) == ["Deployed", "Queued", "Queued", "Queued"], phases
    assert len(kube.created) == 1
    waiting = [last_status(kube, n) for n, p in phases.items() if p == "Queued"]
    assert all(s["reason"] == "WaitingForCapacity" for s in waiting)
    assert all("1/1 runs operator-wide" in s["message"] for s in waiting)


class NoList(Kube):
    async def list(self, *args: Any, **kwargs: Any) -> Page:
        raise AssertionError("a FlowRun reconcile lists nothing: its Events are watched")

    def __init__(self) -> None:
        super().__init__()
        self.deleted: list[str] = []

    async def delete(self, resource: Resource, namespace: str, name: str) -> None:
        self.deleted.append(name)  # a crashed task's Job goes


async def test_a_quota_refusal_is_read_from_the_watched_events_never_listed() -> None:
    """A Job whose pods a quota refuses: the FailedCreate Event the watch holds (keyed by
    the Job's name) crashes the task once the grace period is over, with the API server's
    words; an Event about an earlier Job of the same name (another uid) is not read."""
    key = ("ml", "q")
    runs = {key: [queued("q")]}
    jobs: dict[Key, list[Body]] = {}
    refusals: dict[Key, list[Body]] = {}
    kube, now = NoList(), [T0]
    view = FlowRunView(runs=runs, jobs=jobs, pods={}, children={}, workflows={},
                       refusals=refusals)  # fmt: skip
    rec = FlowRunReconciler(view, kube, Limits(), clock=lambda: now[0])
    await rec(key)
    assert kube.created == ["q-extract"] and last_status(kube, "q")["phase"] == "Deployed"
    runs[key] = [{**runs[key][0], "status": last_status(kube, "q")}]
    made = job(FlowRun.from_body(runs[key][0]), "extract")
    made["metadata"]["uid"] = "uid-job"
    jobs[key] = [made]
    words = 'pods "q-extract-x" is forbidden: exceeded quota: compute, requested: cpu=4'
    stale = failed_create(made, "an earlier Job's words", first=0)
    stale["involvedObject"]["uid"] = "uid-earlier"
    current = failed_create(made, words, first=0)
    current["involvedObject"]["uid"] = "uid-job"
    refusals[("ml", "q-extract")] = [stale]
    now[0] = at(120)  # past the grace period (60 s)
    await rec(key)
    assert last_status(kube, "q")["phase"] == "Deployed"  # the other Job's Event: not read
    refusals[("ml", "q-extract")] = [stale, current]
    await rec(key)
    status = last_status(kube, "q")
    assert status["phase"] == "Crashed", status
    assert words in status["message"] and kube.deleted == ["q-extract"]


class Together(Kube):
    """Each create waits until `n` are under way at once (for at most a second)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.under_way, self.most = n, 0, 0
        self.all_in = asyncio.Event()

    async def create(self, resource: Resource, body: Body) -> bool:
        self.under_way += 1
        self.most = max(self.most, self.under_way)
        if self.under_way >= self.n:
            self.all_in.set()
        with contextlib.suppress(TimeoutError):  # one after another: each waits alone
            await asyncio.wait_for(self.all_in.wait(), 1.0)
        self.under_way -= 1
        return await super().create(resource, body)


async def test_the_ready_tasks_jobs_are_created_side_by_side() -> None:
    body = queued("wide")
    body["spec"]["tasks"] = [task("a"), task("b"), task("c")]
    body["status"]["tasks"] = [
        {"name": n, "version": "1.0", "status": "Pending"} for n in ("a", "b", "c")
    ]
    kube = Together(3)
    rec = reconciler({("ml", "wide"): [body]}, kube)
    await asyncio.wait_for(rec(("ml", "wide")), 2.5)
    assert kube.most == 3 and sorted(kube.created) == ["wide-a", "wide-b", "wide-c"]
    assert last_status(kube, "wide")["phase"] == "Deployed"


def waiting_for_capacity(name: str, made: str) -> Body:
    body = queued(name)
    body["metadata"]["creationTimestamp"] = made
    body["status"].update(reason="WaitingForCapacity", message="waiting for capacity")
    return body


async def test_a_freed_slot_goes_to_the_oldest_waiting_run_whoever_reconciles_first() -> None:
    busy = queued("busy")
    busy["status"]["phase"] = "Deployed"
    runs = {
        ("ml", "busy"): [busy],
        ("ml", "young"): [waiting_for_capacity("young", "2024-02-12T09:05:00Z")],
        ("ml", "old"): [waiting_for_capacity("old", "2024-02-12T09:01:00Z")],
    }
    kube = Kube()
    rec = reconciler(runs, kube, running=1)
    # the watch shows busy's end: its slot frees
    ended = {**busy, "status": {**busy["status"], "phase": "Completed"},
             "metadata": {**busy["metadata"], "resourceVersion": "30"}}  # fmt: skip
    runs[("ml", "busy")] = [ended]
    assert rec.counts.observe(("ml", "busy"), state_of(ended))
    assert rec.counts.next_for_capacity(1, None, "ml") == [("ml", "old")]
    await rec(("ml", "young"))  # reconciled first, but younger: it keeps waiting
    status = last_status(kube, "young")
    assert (status["phase"], status["reason"]) == ("Queued", "WaitingForCapacity")
    assert status["message"] == "waiting for capacity: 0/1 runs operator-wide (1 waiting ahead)"
    await rec(("ml", "old"))
    assert last_status(kube, "old")["phase"] == "Deployed"
    assert kube.created == ["old-extract"]


async def test_a_per_namespace_limit_leaves_other_namespaces_alone() -> None:
    def in_ns(ns: str, name: str) -> Body:
        body = queued(name)
        body["metadata"]["namespace"] = ns
        return body

    runs = {(ns, n): [in_ns(ns, n)] for ns, n in (("a", "r"), ("a", "s"), ("b", "r"))}
    kube = Kube()
    rec = reconciler(runs, kube, per_namespace=1)
    await asyncio.gather(*(rec(key) for key in runs))
    assert sorted(kube.where) == ["a", "b"]  # one in a, one in b


async def test_its_own_write_is_read_back_until_the_watch_shows_it() -> None:
    body = queued("r0")
    runs = {("ml", "r0"): [body]}
    kube = Kube()
    rec = reconciler(runs, kube)
    await rec(("ml", "r0"))
    assert last_status(kube, "r0")["phase"] == "Deployed"
    writes, posted = len(kube.statuses), list(kube.posted)
    # The watch has not delivered the write (same resourceVersion): nothing happens twice.
    kube.exists.add("r0-extract")
    await rec(("ml", "r0"))
    assert len(kube.statuses) == writes and kube.posted == posted
    # The watch delivers it: the index's status is used again.
    runs[("ml", "r0")] = [{**deepcopy(body), "status": last_status(kube, "r0"),
                           "metadata": {**body["metadata"], "resourceVersion": "11"}}]  # fmt: skip
    await rec(("ml", "r0"))
    assert kube.created == ["r0-extract"]  # created once, whatever the number of steps


async def test_a_refused_job_fails_its_task_and_the_run() -> None:
    runs = {("ml", "r0"): [queued("r0")]}
    kube = Kube()
    kube.refuse["r0-extract"] = "admission webhook denied the request: no busybox here"
    rec = reconciler(runs, kube)
    again = await rec(("ml", "r0"))
    assert again is not None and again < 1  # run again at once to record the refusal
    deployed = last_status(kube, "r0")
    runs[("ml", "r0")] = [{**queued("r0"), "status": deployed,
                           "metadata": {**queued("r0")["metadata"], "resourceVersion": "11"}}]  # fmt: skip
    await rec(("ml", "r0"))
    status = last_status(kube, "r0")
    assert status["phase"] == "Failed", status
    assert "no busybox here" in status["message"]


async def test_an_invalid_spec_is_rejected_without_a_job() -> None:
    body = run_body([task("a", "b"), task("b", "a")], name="loop")
    body["metadata"]["resourceVersion"] = "1"
    kube = Kube()
    await reconciler({("ml", "loop"): [body]}, kube)(("ml", "loop"))
    status = last_status(kube, "loop")
    assert status["phase"] == "Failed" and "cycle" in status["message"]
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and not kube.created


def submitted(name: str) -> Body:
    body = run_body([task("extract")], name=name)
    body["metadata"].update(uid=f"uid-{name}", resourceVersion="5")
    return body


async def test_a_new_run_is_deployed_in_one_reconcile_with_one_status_write() -> None:
    kube = Kube()
    rec = reconciler({("ml", "r0"): [submitted("r0")]}, kube)
    await rec(("ml", "r0"))
    assert [n for n, _ in kube.statuses] == ["r0"]  # one write, not one per phase
    status = last_status(kube, "r0")
    assert [h["phase"] for h in status["history"]] == ["Submitted", "Queued", "Deployed"]
    assert kube.created == ["r0-extract"]


async def test_a_new_run_without_a_slot_is_written_once_as_queued() -> None:
    runs = {("ml", "busy"): [queued("busy")], ("ml", "r0"): [submitted("r0")]}
    kube = Kube()
    rec = reconciler(runs, kube, running=1)
    await rec(("ml", "busy"))  # takes the only slot
    await rec(("ml", "r0"))
    assert [n for n, _ in kube.statuses] == ["busy", "r0"]
    status = last_status(kube, "r0")
    assert status["phase"] == "Queued" and status["reason"] == "WaitingForCapacity"
    assert [h["phase"] for h in status["history"]] == ["Submitted", "Queued"]
    assert kube.created == ["busy-extract"]
    # the watch has not shown the write yet: another reconcile writes nothing again
    await rec(("ml", "r0"))
    assert [n for n, _ in kube.statuses] == ["busy", "r0"]


async def test_a_change_of_task_details_only_waits_out_the_interval() -> None:
    from flow_operator.models.flowrun import FlowRun
    from tests.unit.flowrun_objects import job, pod

    now = [50.0]
    key = ("ml", "r0")
    runs = {key: [queued("r0")]}
    kube = Kube()
    rec = reconciler(runs, kube)
    rec.writes.monotonic = lambda: now[0]
    version = [10]

    def echo() -> None:  # the watch delivers the last write
        version[0] += 1
        body = queued("r0")
        body["metadata"]["resourceVersion"] = str(version[0])
        body["status"] = last_status(kube, "r0")
        runs[key] = [body]

    def task_line() -> tuple[str, str | None]:
        t = last_status(kube, "r0")["tasks"][0]
        return t["status"], t.get("message")

    await rec(key)  # Deployed, the Job created: the task is Running from its create
    assert task_line()[0] == "Running"
    writes = len(kube.statuses)
    echo()
    run = FlowRun.from_body(runs[key][0])
    rec.view.jobs = {key: [job(run, "extract", active=1)]}
    waiting = pod(run, "extract", phase="Pending", waiting=("ContainerCreating", ""))
    rec.view.pods = {key: [waiting]}
    again = await rec(key)  # the Job and its pod seen: details only, kept for the window
    assert len(kube.statuses) == writes and again == pytest.approx(DETAILS_WINDOW)
    now[0] += 0.4
    rec.view.pods = {key: [pod(run, "extract", phase="Running")]}
    assert await rec(key) == pytest.approx(DETAILS_WINDOW - 0.4)  # another event: still kept
    now[0] += DETAILS_WINDOW - 0.4
    await rec(key)  # the window is over: the latest details are written
    assert len(kube.statuses) == writes + 1 and task_line()[0] == "Running"
    assert kube.statuses[-1][1]["tasks"] != kube.statuses[-2][1]["tasks"]  # the details moved


async def test_a_late_echo_of_an_earlier_write_does_not_undo_a_later_one() -> None:
    """Two writes before the watch shows the first: when it does, the index holds the
    first write's status, which is older than what was written since; the reconciler
    keeps reading its own latest and neither writes nor posts anything again."""
    from flow_operator.models.flowrun import FlowRun
    from tests.unit.flowrun_objects import job, pod

    key = ("ml", "r0")
    first = queued("r0")
    runs = {key: [first]}
    kube = Kube()
    rec = reconciler(runs, kube)
    rec.writes.interval = rec.writes.longest = 0  # details written at once
    await rec(key)  # write 1: Deployed, the task Running (made version 101)
    run = FlowRun.from_body({**first, "status": last_status(kube, "r0")})
    rec.view.jobs = {key: [job(run, "extract", active=1)]}
    rec.view.pods = {key: [pod(run, "extract", phase="Running")]}
    await rec(key)  # write 2, over the same stale version 10: the task's Job and pod
    posted = list(kube.posted)
    assert len(kube.statuses) == 2 and posted.count("Deployed") == 1

    def delivered(write: int) -> None:
        runs[key] = [{**deepcopy(first), "status": kube.statuses[write - 1][1],
                      "metadata": {**first["metadata"], "resourceVersion": str(100 + write)}}]  # fmt: skip

    delivered(1)  # the watch shows write 1 only: older than write 2
    await rec(key)
    assert len(kube.statuses) == 2 and kube.posted == posted  # nothing posted again
    delivered(2)
    await rec(key)
    assert len(kube.statuses) == 2 and kube.posted == posted


@pytest.mark.parametrize("listed", ["oldest first", "newest first"])
async def test_a_failed_tasks_message_has_the_last_attempts_log(listed: str) -> None:
    """A task whose retry failed too: its message ends with the log of the last attempt,
    whatever order the pods index holds them in (after a restart, the list's: by name)."""
    from flow_operator.models.flowrun import FlowRun
    from tests.unit.flowrun_objects import job, pod

    key = ("ml", "r0")
    body = queued("r0")
    body["spec"]["tasks"] = [task("extract", retries=1)]
    runs = {key: [body]}
    kube = Kube()
    kube.log_of = lambda name: f"working\ndone: {name}\n".encode()
    rec = reconciler(runs, kube)
    await rec(key)  # Deployed, the Job created
    run = FlowRun.from_body({**body, "status": last_status(kube, "r0")})
    runs[key] = [{**body, "status": last_status(kube, "r0"),
                  "metadata": {**body["metadata"], "resourceVersion": "11"}}]  # fmt: skip
    # attempt 1 is "zz..." and attempt 2 "aa...": by name, the last attempt comes first
    attempts = [
        pod(run, "extract", "zzzzz", created=0, phase="Failed", terminated=("Error", 1)),
        pod(run, "extract", "aaaaa", created=12, phase="Failed", terminated=("Error", 1)),
    ]
    rec.view.jobs = {key: [job(run, "extract", failed=2, done=14, failure="BackoffLimitExceeded")]}  # fmt: skip
    rec.view.pods = {key: attempts if listed == "oldest first" else attempts[::-1]}
    await rec(key)
    line = last_status(kube, "r0")["tasks"][0]
    assert (line["status"], line["attempts"], line["podName"]) == ("Failed", 2, "r0-extract-aaaaa")
    assert line["message"].startswith("exit code 1 (Error) after 2 attempts\n"), line
    assert line["message"].endswith("\ndone: r0-extract-aaaaa"), line


def of_flow(body: Body, decision: str | None = None) -> Body:
    body["metadata"].setdefault("labels", {})["flowops.io/flow"] = "nightly"
    body["metadata"]["creationTimestamp"] = "2024-02-12T09:00:00Z"
    if decision:
        body["metadata"]["annotations"] = {"flowops.io/concurrency": decision}
    return body


async def test_a_run_made_under_queue_waits_for_its_flow_then_deploys() -> None:
    flow = {
        "apiVersion": "flowops.io/v1alpha1",
        "kind": "Flow",
        "metadata": {"name": "nightly", "namespace": "ml", "uid": "f"},
        "spec": {
            "tasks": [{"name": "extract", "image": "busybox:1.36"}],
            "concurrency": {"policy": "Queue"},
        },
    }
    running = of_flow(queued("first"))
    running["status"]["phase"] = "Deployed"
    waiting = of_flow(submitted("second"), "Queue")
    waiting["metadata"]["creationTimestamp"] = "2024-02-12T09:01:00Z"
    runs = {("ml", "first"): [running], ("ml", "second"): [waiting]}
    kube = Kube()
    view = FlowRunView(runs=runs, jobs={}, pods={}, children={}, workflows={},
                       flows={("ml", "nightly"): [flow]})  # fmt: skip
    rec = FlowRunReconciler(view, kube, Limits(), clock=lambda: T0)
    await rec(("ml", "second"))
    status = last_status(kube, "second")
    assert status["phase"] == "Queued" and status["reason"] == "WaitingForFlowConcurrency"
    assert kube.created == []
    running["status"]["phase"] = "Completed"  # the flow's slot frees: the watch says so
    running["metadata"]["resourceVersion"] = "20"
    assert rec.counts.observe(("ml", "first"), state_of(running))
    waiting["status"] = status  # the watch shows the Queued write
    await rec(("ml", "second"))
    assert last_status(kube, "second")["phase"] == "Deployed"
    assert kube.created == ["second-extract"]


def by_reference(name: str, **ref: Any) -> Body:
    """A FlowRun naming its Flow (spec.flowRef) instead of carrying tasks, as kubectl makes it."""
    return {
        "apiVersion": "flowops.io/v1alpha1",
        "kind": "FlowRun",
        "metadata": {"name": name, "namespace": "ml", "uid": f"uid-{name}", "generation": 1,
                     "resourceVersion": "5", "creationTimestamp": "2024-02-12T08:00:00Z"},
        "spec": {"flowRef": {"name": "etl", **ref}},
    }  # fmt: skip


def versioned_flow() -> Body:
    spec = {
        "tasks": [{"name": "extract", "image": "busybox:1.36"}],
        "parameters": [{"name": "REGION", "enum": ["eu", "us"], "default": "eu"}],
    }
    h = revision_hash(FlowSpec.model_validate(spec))
    version = {"version": 1, "revision": h, "revisionName": revision_name("etl", 1, h),
               "creationTime": "2024-02-12T07:00:00Z"}  # fmt: skip
    return {
        "apiVersion": "flowops.io/v1alpha1",
        "kind": "Flow",
        "metadata": {"name": "etl", "namespace": "ml", "uid": "f"},
        "spec": spec,
        "status": {"version": 1, "revision": h, "versions": [version]},
    }


def flow_view(runs: dict[Key, list[Body]]) -> FlowRunView:
    return FlowRunView(runs=runs, jobs={}, pods={}, children={}, workflows={},
                       flows={("ml", "etl"): [versioned_flow()]})  # fmt: skip


async def test_a_flow_ref_run_is_resolved_once_and_runs_its_flows_tasks() -> None:
    run = by_reference("r1", parameters={"REGION": "us"})
    kube = Kube()
    rec = FlowRunReconciler(flow_view({("ml", "r1"): [run]}), kube, Limits(), clock=lambda: T0)
    await rec(("ml", "r1"))
    status = last_status(kube, "r1")
    assert status["phase"] == "Deployed" and kube.created == ["r1-extract"]
    definition = status["definition"]
    assert (definition["flowName"], definition["version"]) == ("etl", 1)
    assert definition["configuration"] == {"name": "custom", "parameters": {"REGION": "us"}}
    assert [t["name"] for t in definition["tasks"]] == ["extract"]
    # The Flow is deleted: the run goes on from its recorded definition.
    run["status"] = status
    rec.view.flows = {}
    await rec(("ml", "r1"))
    assert last_status(kube, "r1")["definition"] == definition


async def test_a_flow_ref_run_with_a_bad_parameter_fails_with_invalid_spec() -> None:
    run = by_reference("r2", parameters={"REGION": "mars"})
    kube = Kube()
    rec = FlowRunReconciler(flow_view({("ml", "r2"): [run]}), kube, Limits(), clock=lambda: T0)
    await rec(("ml", "r2"))
    status = last_status(kube, "r2")
    assert (status["phase"], status["reason"]) == ("Failed", "InvalidSpec")
    assert (
        "spec.flowRef.parameters.REGION: parameter REGION must be one of eu, us"
        in (status["message"])
    )
    assert kube.created == [] and "definition" not in status
