"""The benchmark harness (bench/run.py), small, each scenario on a cluster of its own: S1
with 20 Workflows, S2 with 10 FlowRuns. They check what the figures claim (S1: every
Workflow GREEN, no writes when idle, none on an unchanged re-apply, none spurious after a
restart; S2: every run Completed through each phase once, exactly one Job per task, the
Job controller's baseline complete), never how fast: timing is `make bench`'s job, and a
loaded CI machine must not fail a test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, localcluster

pytestmark = pytest.mark.e2e
SIZE = 20
RUNS = 10


def bench(tmp_path: Path, scenario: str, *args: str) -> dict[str, Any]:
    """Run one scenario on 3 nodes in tmp_path; its figures (the JSON it wrote)."""
    state, results = tmp_path / "cluster", tmp_path / "results"
    try:
        done = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "run.py"), "--scenario", scenario, *args,
             "--nodes", "3", "--dir", str(state), "--results", str(results)],
            cwd=ROOT, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    finally:
        localcluster.Cluster(state).down(quiet=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (out,) = results.glob(f"{scenario}-*.json")
    figures: dict[str, Any] = json.loads(out.read_text())
    print(json.dumps(figures, indent=2))
    return figures


def test_s1_smoke(tmp_path: Path) -> None:
    figures = bench(tmp_path, "s1", "--size", str(SIZE), "--steady", "5", "--trace")
    assert figures["s1_green"] == SIZE
    # --trace: the slowest Workflows' lag, step by step from the operator's trace lines
    # (a GREEN write, and the start of the reconcile that made it, found for each); the
    # steps add up to the lag the benchmark measured (each rounded to 0.1 ms)
    assert len(figures["s1_tail"]) == 5
    for row in figures["s1_tail"]:
        assert row["write_ms"] > 0 and row["work_ms"] >= 0 and row["wait_ms"] >= 0, row
        steps = ("arrive_ms", "wait_ms", "work_ms", "write_ms", "seen_ms")
        assert sum(row[s] for s in steps) == pytest.approx(row["lag_ms"], abs=2), row
    assert figures["s1_convergence_s"] >= figures["s1_lower_bound_s"] > 0
    assert figures["steady_workflow_writes"] == 0
    assert figures["steady_deployment_writes"] == 0
    assert figures["reapply_objects"] == SIZE  # every Workflow went through kubectl apply
    assert figures["reapply_deployment_writes"] == 0
    # (reapply_workflow_writes counts kubectl's own writes too: the first `kubectl apply`
    # of an object created by the API adds its last-applied annotation.)
    assert figures["restart_deployment_writes"] <= 1  # the probe's own change: one delete
    assert figures["restart_spurious_workflow_writes"] == 0


def test_s2_smoke(tmp_path: Path) -> None:
    figures = bench(tmp_path, "s2", "--runs", str(RUNS))
    assert figures["s2_completed"] == RUNS
    # one Job per task: none created twice (distinct uids), none deleted, all there
    assert figures["s2_jobs_created"] == figures["s2_jobs_expected"] == RUNS * 5
    assert figures["s2_jobs_listed"] == RUNS * 5
    assert figures["s2_jobs_deleted"] == 0
    assert figures["s2_jobs_complete"] == RUNS * 5
    assert figures["s2_duplicate_history_runs"] == 0
    assert figures["s2_unexpected_history_runs"] == 0  # Submitted, Queued, Deployed, Completed
    assert figures["baseline_jobs_complete"] == figures["baseline_jobs"] == RUNS * 5
    # The verdict is made from measured figures (both throughputs), against the bound it
    # states, and names the bottleneck those figures point to, whatever it is on this machine.
    assert figures["s2_jobs_per_min"] > 0 and figures["baseline_jobs_per_min"] > 0
    bound = max(figures["baseline_window_s"], figures["run_alone_s"])
    assert figures["s2_lower_bound_s"] == bound > 0
    ratio = figures["s2_window_s"] / bound
    assert figures["s2_ratio"] == pytest.approx(ratio, abs=1e-3)
    verdict = figures["bottleneck"]
    if figures["s2_cpu_pct"]["machine"] >= 0.9 * (os.cpu_count() or 1) * 100:
        assert verdict.startswith(f"the machine's {os.cpu_count()} cores: "), verdict
    elif ratio <= 1.25:
        assert verdict.startswith("Kubernetes (Job controller, scheduler, kwok)"), verdict
    else:
        assert verdict.startswith("the operator: "), verdict
    assert f"{ratio:.2f}x the {bound} s" in verdict, verdict
    # issue 21's figures: the API server's own request counts per run, the oracle, the goals
    asked = figures["s2_api_requests_per_run"]
    assert asked["POST jobs"] == pytest.approx(5.0)  # the operator's creates: one per task
    assert asked["PATCH flowruns/status"] > 0 and "LIST events" not in asked  # watched
    assert figures["baseline_api_requests_per_run"]["POST jobs"] == pytest.approx(5.0)
    assert figures["oracle_runs_complete"] == RUNS and figures["oracle_runs_per_min"] > 0
    assert figures["oracle_api_requests_per_run"]["POST jobs"] == pytest.approx(5.0)
    assert "PATCH flowruns/status" not in figures["oracle_api_requests_per_run"]
    bound_rpm = figures["baseline_runs_per_min_bound"]
    assert figures["s2_vs_bound"] == pytest.approx(figures["s2_runs_per_min"] / bound_rpm, abs=1e-3)
    assert figures["s2_vs_oracle"] == pytest.approx(
        figures["s2_runs_per_min"] / figures["oracle_runs_per_min"], abs=1e-3
    )
    goal = figures["goal_runs_per_min_0_8x_bound"]
    assert goal["met"] == (goal["measured"] >= goal["target"])
    assert figures["s2_events_by_reason_per_run"].get("FlowRun Normal Completed") == 1.0
    assert figures["s2_operator_cpu_ms_per_run"] > 0
