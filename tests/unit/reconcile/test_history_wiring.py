"""Run history in the operator, on the fakes with an injected clock: the recorder
coalesces records by run while the database is down and writes them when it returns; a
failed attempt's log is captured (capped), a pod already gone is recorded as lost and
counted; a finished run leaves the cluster only at its TTL and only once archived, and
not at all while the database is down."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from flow_operator import metrics
from flow_operator.history.record import record_of
from flow_operator.history.store import LOG_LOST_POD_DELETED
from flow_operator.models.flowrun import FlowRunStatus
from flow_operator.observers import RunChanged
from flow_operator.reconcile.flowrun import ARCHIVE_RECHECK, FlowRunReconciler, FlowRunView
from flow_operator.reconcile.history import (
    Attempt,
    History,
    LogCapture,
    Recorder,
    attempts_to_capture,
)
from flow_operator.settings import Settings
from tests.unit.flowrun_objects import T0, flowrun, pod, run_body, stamp, task
from tests.unit.history_fakes import LogKube, MemoryStore

Body = dict[str, Any]
Key = tuple[str, str]
KEY = ("ml", "churn-7f3k")


def finished(phase: str = "Completed", *, attempts: int = 1, ttl: int | None = None) -> Body:
    spec = {} if ttl is None else {"ttlSecondsAfterFinished": ttl}
    body = run_body([task("extract", retries=2)], **spec)
    body["metadata"].update(resourceVersion="20", creationTimestamp=stamp(0))
    ok = phase == "Completed"
    body["status"] = {
        "phase": phase,
        "reason": phase,
        "message": "the task completed" if ok else "task extract failed",
        "startTime": stamp(1),
        "endTime": stamp(10),
        "duration": "9s",
        "observedGeneration": 1,
        "history": [
            {"phase": "Submitted", "time": stamp(0), "reason": "Submitted"},
            {"phase": "Queued", "time": stamp(0), "reason": "Admitted"},
            {"phase": "Deployed", "time": stamp(1), "reason": "Deployed"},
            {"phase": phase, "time": stamp(10), "reason": phase},
        ],
        "tasks": [
            {
                "name": "extract",
                "version": "1.0",
                "status": "Succeeded" if ok else "Failed",
                "startTime": stamp(1),
                "endTime": stamp(10),
                "jobName": "churn-7f3k-extract",
                "podName": "churn-7f3k-extract-p2",
                "attempts": attempts,
            }
        ],
    }
    return body


def pods(n: int, phase: str = "Succeeded") -> list[Body]:
    run = flowrun([task("extract", retries=2)])
    out = []
    for i in range(1, n + 1):
        p = pod(run, "extract", suffix=f"p{i}", created=i, phase=phase)
        p["metadata"]["name"] = f"churn-7f3k-extract-p{i}"
        out.append(p)
    return out


class Clock:
    def __init__(self, seconds: float) -> None:
        self.now = T0 + timedelta(seconds=seconds)
        self.mono = 0.0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono


def wired(
    body: Body, pod_bodies: list[Body], clock: Clock, ttl: timedelta | None = timedelta(seconds=5)
) -> tuple[FlowRunReconciler, History, MemoryStore, LogKube]:
    store, kube = MemoryStore(), LogKube()
    for p in pod_bodies:
        kube.logs[p["metadata"]["name"]] = f"log of {p['metadata']['name']}\n".encode()
    recorder = Recorder(store, monotonic=clock.monotonic)
    history = History(store, recorder, LogCapture(store, kube, monotonic=clock.monotonic), ttl=ttl)
    view = FlowRunView(runs={KEY: [body]}, jobs={}, pods={KEY: pod_bodies}, children={},
                       workflows={})  # fmt: skip
    reconciler = FlowRunReconciler(view, kube, clock=clock, history=history)
    reconciler.publish = recorder.on_run
    return reconciler, history, store, kube


def deleted(kube: LogKube) -> list[tuple[str, str, str]]:
    return [d for d in kube.deleted if d[0] == "FlowRun"]


# --- the recorder ------------------------------------------------------------------------
def changed(body: Body, phase: str, transitions: int) -> RunChanged:
    status = FlowRunStatus.model_validate(
        {**body["status"], "phase": phase, "history": body["status"]["history"][:transitions]}
    )
    return RunChanged(KEY, "run-uid", body, None, status)


async def test_records_wait_coalesced_while_the_database_is_down_and_are_written_after() -> None:
    clock = Clock(0)
    store = MemoryStore()
    recorder = Recorder(store, monotonic=clock.monotonic, warn_after=60)
    sink = LogKube()
    recorder.events = sink
    body = finished()
    other = run_body(name="other")
    other["metadata"].update(uid="other-uid", creationTimestamp=stamp(0))
    store.down = True
    for n, phase in enumerate(("Submitted", "Queued", "Deployed", "Completed"), start=1):
        recorder.on_run(changed(body, phase, n))
        recorder.offer(record_of(other))
        assert not await recorder.flush()
    assert len(recorder) == 2  # one record per run, however many decisions
    assert recorder.pending["run-uid"].status == "Completed"
    assert sink.events == []  # not yet behind for warn_after
    clock.mono = 61
    assert not await recorder.flush()
    assert [e[0] for e in sink.events] == ["HistoryBehind"] and sink.events[0][2] == "Warning"
    clock.mono = 200
    assert not await recorder.flush()
    assert len(sink.events) == 1  # once per outage
    store.down = False
    stored: list[Key] = []
    recorder.on_final = stored.append
    assert await recorder.flush()
    assert store.runs["run-uid"].status == "Completed" and "other-uid" in store.runs
    assert len(recorder) == 0 and stored == [KEY]
    # an older decision replayed (a restarted operator) never moves the run back
    recorder.on_run(changed(body, "Deployed", 3))
    await recorder.flush()
    assert store.runs["run-uid"].status == "Completed"


async def test_the_same_record_offered_while_it_is_written_does_not_keep_the_run_waiting() -> None:
    """CI saw a finished run never deleted: each write's on_final started a reconcile whose
    (unchanged) record, offered while the write was in flight, replaced the one written,
    so the run was 'waiting' after every write, for ever. The same record is not queued
    twice: after the write nothing waits, and on_final fires once."""
    store = MemoryStore()
    recorder = Recorder(store)
    body = finished()
    upsert = store.upsert_run

    async def slow_upsert(record: Any) -> bool:
        recorder.on_run(changed(body, "Completed", 4))  # a reconcile meanwhile
        await asyncio.sleep(0)
        return await upsert(record)

    store.upsert_run = slow_upsert  # type: ignore[method-assign]
    finals: list[Key] = []
    recorder.on_final = finals.append
    recorder.on_run(changed(body, "Completed", 4))
    assert await recorder.flush()
    assert not recorder.waiting("run-uid") and finals == [KEY]
    recorder.on_run(changed(body, "Completed", 4))  # once stored: not queued again
    assert not recorder.waiting("run-uid")


def test_an_older_record_does_not_replace_a_newer_one_waiting() -> None:
    recorder = Recorder(MemoryStore())
    body = finished()
    recorder.on_run(changed(body, "Completed", 4))
    recorder.on_run(changed(body, "Deployed", 3))
    assert recorder.pending["run-uid"].status == "Completed"


async def test_the_writer_backs_off_while_the_database_is_down() -> None:
    store = MemoryStore()
    store.down = True
    recorder = Recorder(store)
    recorder.offer(record_of(finished()))
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 5:
            store.down = False
        await asyncio.sleep(0)

    task_ = asyncio.create_task(recorder.run(sleep))
    for _ in range(50):
        await asyncio.sleep(0)
        if "run-uid" in store.runs:
            break
    task_.cancel()
    assert "run-uid" in store.runs
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0]


# --- the attempts and their logs ---------------------------------------------------------
def test_attempts_are_numbered_from_the_newest_pod() -> None:
    status = FlowRunStatus.model_validate(finished("Failed", attempts=3)["status"])
    two = pods(3)[1:]  # the first pod is gone
    assert attempts_to_capture(status, two) == [
        Attempt("extract", 2, "churn-7f3k-extract-p2"),
        Attempt("extract", 3, "churn-7f3k-extract-p3"),
    ]
    # final: the attempt no pod shows is there too, to be recorded as lost
    assert attempts_to_capture(status, two, final=True)[0] == Attempt("extract", 1, None)
    running = pods(1, phase="Running")
    deployed = status.model_copy(update={"phase": "Deployed"})
    assert attempts_to_capture(deployed, running) == []


def test_a_retry_the_job_counts_before_its_pod_is_seen_takes_no_number() -> None:
    """The Job controller counts the failure and the retry's pod in one status write, often
    before the watch shows that pod: the failed pod, the newest seen, is attempt 1, not 2."""
    body = finished("Failed", attempts=2)
    body["status"]["phase"] = "Deployed"
    body["status"]["tasks"][0]["status"] = "Running"
    retrying = FlowRunStatus.model_validate(body["status"])
    first = pods(1, "Failed")
    assert attempts_to_capture(retrying, first) == []  # not yet: the retry is not seen
    both = [*pods(2, "Failed")[:1], pods(2, "Running")[1]]
    assert attempts_to_capture(retrying, both) == [Attempt("extract", 1, "churn-7f3k-extract-p1")]
    # the run over, every pod is numbered (the unseen one never comes)
    assert attempts_to_capture(retrying, first, final=True) == [
        Attempt("extract", 1, None),
        Attempt("extract", 2, "churn-7f3k-extract-p1"),
    ]


async def test_a_failed_attempts_log_is_captured_capped_and_a_deleted_pods_is_lost() -> None:
    store, kube = MemoryStore(), LogKube()
    kube.logs["churn-7f3k-extract-p2"] = b"x" * 100 + b"the end\n"
    capture = LogCapture(store, kube, cap=32)
    lost = metrics.HISTORY_LOGS_LOST._value.get()
    status = FlowRunStatus.model_validate(finished("Failed", attempts=2)["status"])
    capture.want("run-uid", KEY, attempts_to_capture(status, pods(2, "Failed")))
    assert await capture.flush()
    first, second = store.logs[("run-uid", "extract", 1)], store.logs[("run-uid", "extract", 2)]
    assert first.lost_reason == LOG_LOST_POD_DELETED and first.text == ""
    assert second.text.endswith("the end\n") and len(second.text) == 32 and second.truncated
    assert metrics.HISTORY_LOGS_LOST._value.get() == lost + 1
    # idempotent: asked again, nothing is read again
    reads = len(kube.reads)
    capture.want("run-uid", KEY, attempts_to_capture(status, pods(2, "Failed")))
    assert await capture.flush() and len(kube.reads) == reads


async def test_logs_wait_while_the_database_is_down() -> None:
    store, kube = MemoryStore(), LogKube()
    kube.logs["churn-7f3k-extract-p1"] = b"hello\n"
    capture = LogCapture(store, kube)
    status = FlowRunStatus.model_validate(finished()["status"])
    store.down = True
    capture.want("run-uid", KEY, attempts_to_capture(status, pods(1)))
    assert not await capture.flush() and capture.waiting("run-uid")
    store.down = False
    assert await capture.flush() and not capture.waiting("run-uid")
    assert store.logs[("run-uid", "extract", 1)].text == "hello\n"


# --- retention in the cluster ------------------------------------------------------------
async def test_a_finished_run_is_deleted_at_its_ttl_and_only_once_archived() -> None:
    clock = Clock(12)  # it ended at 10, the TTL is 5 s
    reconciler, history, store, kube = wired(finished(), pods(1), clock)
    assert await reconciler(KEY) == pytest.approx(3.0)  # a timer to the TTL, no polling
    assert deleted(kube) == []
    clock.now += timedelta(seconds=4)
    assert await reconciler(KEY) == ARCHIVE_RECHECK  # due, but nothing is stored yet
    assert not await history.archived("run-uid") and deleted(kube) == []
    assert await history.recorder.flush()
    assert not await history.archived("run-uid")  # the record, but not the log yet
    assert await history.capture.flush()
    assert await history.archived("run-uid")
    assert await reconciler(KEY) is None
    assert deleted(kube) == [("FlowRun", "ml", "churn-7f3k")]
    assert store.logs[("run-uid", "extract", 1)].text == "log of churn-7f3k-extract-p1\n"


async def test_the_runs_own_ttl_wins_and_no_ttl_keeps_it() -> None:
    clock = Clock(12)
    reconciler, *_ = wired(finished(ttl=100), pods(1), clock)
    assert await reconciler(KEY) == pytest.approx(98.0)
    reconciler, _, _, kube = wired(finished(), pods(1), Clock(10_000), ttl=None)
    assert await reconciler(KEY) is None and deleted(kube) == []


async def test_with_the_database_down_nothing_is_deleted() -> None:
    clock = Clock(100)
    reconciler, history, store, kube = wired(finished("Failed", attempts=2), pods(2, "Failed"),
                                             clock)  # fmt: skip
    store.down = True
    for _ in range(3):
        assert await reconciler(KEY) == ARCHIVE_RECHECK
        assert not await history.recorder.flush() and not await history.capture.flush()
    assert deleted(kube) == [] and len(history.recorder) == 1
    store.down = False
    assert await history.recorder.flush() and await history.capture.flush()
    assert await reconciler(KEY) is None
    assert deleted(kube) == [("FlowRun", "ml", "churn-7f3k")]
    assert store.upserts == 1  # the waiting record, written once


async def test_history_off_never_deletes() -> None:
    reconciler, history, _, kube = wired(finished(), pods(1), Clock(10_000))
    history.enabled = False
    assert await reconciler(KEY) == ARCHIVE_RECHECK and deleted(kube) == []


# --- settings ----------------------------------------------------------------------------
def test_history_flags() -> None:
    s = Settings.parse(["run"], {"FLOW_DATA_DIR": "/var/lib/flow"}).history
    assert s.db == "sqlite:////var/lib/flow/history.db" and s.enabled
    assert s.finished_run_ttl == timedelta(hours=1) and s.retention == timedelta(days=90)
    assert s.log_cap == 2 * 1024 * 1024
    s = Settings.parse(
        ["run", "--history-db", "none", "--finished-run-ttl", "never",
         "--history-retention", "1d12h", "--log-cap", "64KiB"], {},
    ).history  # fmt: skip
    assert not s.enabled and s.finished_run_ttl is None
    assert s.retention == timedelta(days=1, hours=12) and s.log_cap == 65536
    assert Settings().history.db == "none"  # tests building Settings() record nothing
    with pytest.raises(SystemExit):
        Settings.parse(["run", "--finished-run-ttl", "soon"], {})
