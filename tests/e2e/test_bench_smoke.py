"""The benchmark harness (bench/run.py), small: 20 Workflows on a cluster of its own. It
checks what the figures claim (every Workflow GREEN, no writes when idle, none on an
unchanged re-apply, none spurious after a restart), never how fast: timing is
`make bench`'s job, and a loaded CI machine must not fail a test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, localcluster

pytestmark = pytest.mark.e2e
SIZE = 20


def test_s1_smoke(tmp_path: Path) -> None:
    state, results = tmp_path / "cluster", tmp_path / "results"
    try:
        done = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "run.py"), "--size", str(SIZE),
             "--nodes", "3", "--steady", "5", "--dir", str(state), "--results", str(results)],
            cwd=ROOT, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    finally:
        localcluster.Cluster(state).down(quiet=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (out,) = results.glob(f"s1-{SIZE}-*.json")
    figures = json.loads(out.read_text())
    print(json.dumps(figures, indent=2))
    assert figures["s1_green"] == SIZE
    assert figures["s1_convergence_s"] >= figures["s1_lower_bound_s"] > 0
    assert figures["steady_workflow_writes"] == 0
    assert figures["steady_deployment_writes"] == 0
    assert figures["reapply_deployment_writes"] == 0
    # (reapply_workflow_writes counts kubectl's own writes too: the first `kubectl apply`
    # of an object created by the API adds its last-applied annotation.)
    assert figures["restart_deployment_writes"] <= 1  # the probe's own change: one delete
    assert figures["restart_spurious_workflow_writes"] == 0
