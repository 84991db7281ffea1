"""Metrics as Prometheus sees them: scraped over HTTP and parsed, not read from objects."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from flow_operator import metrics
from flow_operator.models.flowrun import FlowRunStatus, Phase
from flow_operator.models.workflow import WorkflowStatus
from flow_operator.reconcile.workqueue import WorkQueue
from tests.unit.virtual_time import VirtualTimeLoop, virtual_time

GOLDEN = Path(__file__).parent.parent / "golden" / "workflow"
Labels = dict[str, str]


def samples(text: str | None = None) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the registry (or of a scraped page): (name, labels) -> value."""
    text = metrics.render().decode() if text is None else text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(name: str, **labels: str) -> float | None:
    return samples().get((name, frozenset(labels.items())))


def series(name: str, **labels: str) -> list[Labels]:
    """The label sets of `name` whose labels include `labels`."""
    want = set(labels.items())
    return [dict(lbl) for (n, lbl) in samples() if n == name and want <= lbl]


def status(golden: str, **changes: Any) -> WorkflowStatus:
    doc = json.loads((GOLDEN / f"{golden}.json").read_text())
    doc.update(changes)
    return WorkflowStatus.model_validate(doc)


def test_workflow_color_is_one_hot_and_follows_the_status() -> None:
    key = ("shop", "colors")
    metrics.observe_workflow(key, status("sync-published-green"))
    colors = {c: value("flowops_workflow_color", namespace="shop", workflow="colors", color=c)
              for c in ("GREEN", "YELLOW", "ORANGE", "RED")}  # fmt: skip
    assert colors == {"GREEN": 1, "YELLOW": 0, "ORANGE": 0, "RED": 0}
    metrics.observe_workflow(key, status("sync-published-green", actualStatus="RED"))
    assert value("flowops_workflow_color", namespace="shop", workflow="colors", color="RED") == 1
    assert value("flowops_workflow_color", namespace="shop", workflow="colors", color="GREEN") == 0


def test_replica_gauges_per_service_and_stream() -> None:
    key = ("shop", "replicas")
    metrics.observe_workflow(key, status("async-publishing-orange"))
    doc = json.loads((GOLDEN / "async-publishing-orange.json").read_text())
    for svc in doc["details"]["services"]:
        labels = {"namespace": "shop", "workflow": "replicas", "service": svc["id"]}
        assert value("flowops_workflow_service_desired_replicas", **labels) == svc["desired"]
        assert value("flowops_workflow_service_actual_replicas", **labels) == svc["actual"]
    metrics.observe_workflow(("shop", "sync"), status("sync-published-green"))
    assert value("flowops_workflow_service_desired_replicas",
                 namespace="shop", workflow="sync", service="benthos") == 1  # fmt: skip


def test_removed_service_and_deleted_workflow_leave_no_series() -> None:
    key = ("shop", "gone")
    full = status("async-publishing-orange")
    metrics.observe_workflow(key, full)
    assert full.details.services and len(full.details.services) >= 2
    rest = full.details.services[1:]
    metrics.observe_workflow(key, full.model_copy(update={"details": full.details.model_copy(
        update={"services": rest})}))  # fmt: skip
    names = {s["service"] for s in series("flowops_workflow_service_desired_replicas",
                                          namespace="shop", workflow="gone")}  # fmt: skip
    assert names == {s.id for s in rest}
    metrics.observe_workflow(key, None)
    for name in ("flowops_workflow_color", "flowops_workflow_service_desired_replicas",
                 "flowops_workflow_service_actual_replicas"):  # fmt: skip
        assert series(name, namespace="shop", workflow="gone") == []


def test_flowrun_helpers() -> None:
    before = value("flowops_flowrun_transitions_total", namespace="runs", phase="Completed") or 0
    metrics.flowrun_transition("runs", "Completed")
    metrics.flowrun_transition("runs", "Completed")
    after = value("flowops_flowrun_transitions_total", namespace="runs", phase="Completed")
    assert after == before + 2

    count = value("flowops_flowrun_duration_seconds_count", phase="Failed") or 0
    metrics.observe_run_duration(42.0, "Failed")
    assert value("flowops_flowrun_duration_seconds_count", phase="Failed") == count + 1
    assert (value("flowops_flowrun_duration_seconds_bucket", phase="Failed", le="60.0") or 0) >= 1

    metrics.observe_task_duration(-1.0, "Succeeded")  # a clock step back is not negative time
    assert (value("flowops_task_duration_seconds_bucket", status="Succeeded", le="1.0") or 0) >= 1


@virtual_time
async def test_work_queue_depth_latency_and_errors() -> None:
    failed = asyncio.Event()
    calls = 0

    async def reconcile(key: tuple[str, str]) -> float | None:
        nonlocal calls
        calls += 1
        if calls == 1:
            failed.set()
            raise RuntimeError("boom")
        return None

    loop = asyncio.get_running_loop()
    queue = WorkQueue("metrics-test", reconcile, workers=1, clock=loop.time)
    queue.on_done = metrics.reconcile_observer("metrics-test")
    queue.on_wait = metrics.wait_observer("metrics-test")
    metrics.track_queue("metrics-test", queue)
    queue.enqueue(("ns", "a"))
    queue.enqueue(("ns", "b"))
    assert value("flowops_workqueue_depth", queue="metrics-test") == 2
    await asyncio.sleep(0.05)  # both wait at least this long before the workers start
    queue.start()
    await asyncio.wait_for(failed.wait(), 5)
    for _ in range(100):
        if (value("flowops_reconcile_duration_seconds_count", queue="metrics-test") or 0) >= 2:
            break
        await asyncio.sleep(0.01)
    await queue.stop()
    assert value("flowops_reconcile_duration_seconds_count", queue="metrics-test") == 2
    assert value("flowops_reconcile_errors_total", queue="metrics-test") == 1
    waited = {"queue": "metrics-test", "level": "normal"}  # neither was a child's change
    assert value("flowops_workqueue_wait_seconds_count", **waited) == 2
    assert value("flowops_workqueue_wait_seconds_sum", **waited) == pytest.approx(0.1)
    assert value("flowops_workqueue_depth", queue="metrics-test") == 0


def test_served_over_http_and_parsed() -> None:
    metrics.observe_workflow(("web", "scraped"), status("sync-published-green"))
    server = metrics.serve(0, "127.0.0.1")
    assert server is not None
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            text = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    scraped = samples(text)
    key = ("flowops_workflow_color", frozenset({"namespace": "web", "workflow": "scraped",
                                                "color": "GREEN"}.items()))  # fmt: skip
    assert scraped[key] == 1
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, kind in {
        "flowops_workflow_color": "gauge",
        "flowops_workflow_service_desired_replicas": "gauge",
        "flowops_workflow_service_actual_replicas": "gauge",
        "flowops_flowrun_transitions": "counter",
        "flowops_flowrun_duration_seconds": "histogram",
        "flowops_task_duration_seconds": "histogram",
        "flowops_workqueue_depth": "gauge",
        "flowops_reconcile_duration_seconds": "histogram",
        "flowops_reconcile_errors": "counter",
        "process_cpu_seconds": "counter",
    }.items():
        assert families[name].type == kind, name
        assert families[name].documentation, name


def test_port_in_use_is_logged_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR, logger="flow_operator.metrics"):
            assert metrics.serve(port, "127.0.0.1") is None
    assert "metrics not served" in caplog.text


@virtual_time
async def test_the_event_loop_lag_is_observed(caplog: pytest.LogCaptureFixture) -> None:
    def lag() -> tuple[float, float]:
        count = value("flowops_event_loop_lag_seconds_count") or 0.0
        return count, value("flowops_event_loop_lag_seconds_sum") or 0.0

    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    count0, sum0 = lag()
    with caplog.at_level(logging.DEBUG, logger="flow_operator.trace"):
        task = asyncio.create_task(metrics.watch_loop_lag(every=0.25))
        await asyncio.sleep(0.6)  # two timers on time (at 0.25 and 0.5 s)
        assert lag() == (count0 + 2, pytest.approx(sum0))
        loop.hold(0.3)  # something holds the loop from 0.6 to 0.9 s: the timer due at
        await asyncio.sleep(0.3)  # 0.75 s fires at 0.9 s, 0.15 s late; the next on time
        assert lag() == (count0 + 4, pytest.approx(sum0 + 0.15))
        await asyncio.sleep(0.18)
        loop.hold(0.04)  # 1.38 to 1.42 s: the timer due at 1.4 s is 20 ms late, lag but
        await asyncio.sleep(0.01)  # shorter than a stall (50 ms): no trace line
        task.cancel()
    assert lag() == (count0 + 5, pytest.approx(sum0 + 0.15 + 0.02))
    # `run --trace`: a stall of 50 ms or more is a line, with when it ended and how long
    stalls = [r.getMessage() for r in caplog.records if r.name == "flow_operator.trace"]
    assert len(stalls) == 1 and stalls[0].startswith("stall t="), stalls
    assert stalls[0].endswith(" late=0.150"), stalls


def test_garbage_collections_are_timed() -> None:
    import gc

    metrics.time_gc()
    metrics.time_gc()  # once is enough: a second call adds no second callback
    before = value("flowops_gc_pause_seconds_count", generation="2") or 0.0
    gc.collect()
    assert value("flowops_gc_pause_seconds_count", generation="2") == before + 1


def test_full_collections_are_traced(caplog: pytest.LogCaptureFixture) -> None:
    import gc

    metrics.time_gc()
    with caplog.at_level(logging.DEBUG, logger="flow_operator.trace"):
        gc.collect(1)  # not a full one: no line
        gc.collect()
    lines = [r.getMessage() for r in caplog.records if r.name == "flow_operator.trace"]
    assert len(lines) == 1 and lines[0].startswith("gc t=") and " took=" in lines[0]


def run_status(phase: str, seconds: int) -> FlowRunStatus:
    return FlowRunStatus.model_validate({
        "phase": phase, "endTime": f"2026-01-01T00:{seconds // 60:02d}:{seconds % 60:02d}Z",
        "history": [{"phase": "Submitted", "time": "2026-01-01T00:00:00Z", "reason": "Created"}],
    })  # fmt: skip


def test_a_flows_finished_runs_by_flow_and_phase() -> None:
    def count(phase: str, flow: str = "nightly") -> float:
        name = "flowops_flow_run_duration_seconds_count"
        return value(name, namespace="etl", flow=flow, phase=phase) or 0

    before = {p: count(p) for p in ("Completed", "Failed")}
    metrics.observe_flow_run(
        ("etl", "nightly-a"), Phase.DEPLOYED, run_status("Completed", 90), "nightly"
    )
    metrics.observe_flow_run(
        ("etl", "nightly-b"), Phase.DEPLOYED, run_status("Failed", 30), "nightly"
    )
    metrics.observe_flow_run(
        ("etl", "nightly-b"), Phase.FAILED, run_status("Failed", 30), "nightly"
    )
    assert {p: count(p) for p in before} == {"Completed": before["Completed"] + 1,
                                              "Failed": before["Failed"] + 1}  # fmt: skip
    le = {"namespace": "etl", "flow": "nightly", "phase": "Completed"}
    assert value("flowops_flow_run_duration_seconds_bucket", **le, le="60.0") == 0
    assert value("flowops_flow_run_duration_seconds_bucket", **le, le="120.0") == 1
    # An inline run is not a Flow's; no series has a run's name.
    metrics.observe_flow_run(("etl", "inline-x"), Phase.DEPLOYED, run_status("Completed", 5), None)
    flows = [s["flow"] for s in series("flowops_flow_run_duration_seconds_count", namespace="etl")]
    assert set(flows) == {"nightly"}


def test_a_deleted_flows_series_go_and_the_others_stay() -> None:
    done = run_status("Completed", 10)
    for flow in ("gone", "kept"):
        metrics.observe_flow_run(("del", f"{flow}-1"), Phase.DEPLOYED, done, flow)
    metrics.observe_flow_run(("del", "gone-2"), Phase.DEPLOYED, run_status("Failed", 3), "gone")
    assert {
        s["flow"] for s in series("flowops_flow_run_duration_seconds_count", namespace="del")
    } == {"gone", "kept"}
    metrics.forget_flow(("del", "gone"))
    assert {
        s["flow"] for s in series("flowops_flow_run_duration_seconds_count", namespace="del")
    } == {"kept"}
    assert series("flowops_flow_run_duration_seconds_bucket", namespace="del", flow="gone") == []
