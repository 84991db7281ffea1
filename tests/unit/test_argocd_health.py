"""Argo CD health scripts, run by a real Lua 5.1 interpreter (Argo CD's gopher-lua is 5.1)
on statuses the operator's own aggregation produces, and on hand-made edge cases."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

lupa = pytest.importorskip("lupa.lua51")

from flow_operator.models.workflow import Workflow  # noqa: E402
from flow_operator.status.aggregate import Observed, aggregate  # noqa: E402
from tests.unit.kube_objects import deployment, workflow  # noqa: E402

CHART = Path(__file__).parent.parent.parent / "charts" / "flow-operator"
SCRIPTS = CHART / "files" / "argocd"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
Body = dict[str, Any]


def health(kind: str, obj: Body) -> tuple[str, str]:
    """Run the kind's script as Argo CD does: `obj` global in, `{status, message}` out."""
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    env = lua.globals()
    for unsafe in ("os", "io", "require", "dofile", "loadfile", "load", "loadstring"):
        env[unsafe] = None  # Argo CD's sandbox has none of these: the scripts must not need them
    env.obj = lua.table_from(obj, recursive=True)
    hs = lua.execute((SCRIPTS / f"{kind}.lua").read_text())
    assert hs.status in ("Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown")
    return str(hs.status), str(hs.message)


def reconciled(body: Body, deployments: dict[str, Body]) -> Body:
    """The Workflow with the status the operator would write for these Deployments."""
    status = aggregate(Workflow.from_body(body), Observed(deployments=deployments), NOW)
    return {**body, "status": status.dump()}


# --- Workflow -------------------------------------------------------------------------------


def test_green_and_ready_is_healthy() -> None:
    wf = reconciled(workflow(services=[("a", 2)]), {"a": deployment("a", replicas=2, available=2)})
    assert wf["status"]["actualStatus"] == "GREEN"
    assert health("workflow", wf) == ("Healthy", "GREEN: every component runs its desired replicas")


def test_orange_and_yellow_are_progressing() -> None:
    services = [("a", 2), ("b", 1)]
    orange = reconciled(workflow(services=services), {})
    assert orange["status"]["actualStatus"] == "ORANGE"
    assert health("workflow", orange)[0] == "Progressing"
    yellow = reconciled(workflow(services=services), {
        "a": deployment("a", replicas=2, available=1),
        "b": deployment("b", replicas=1, available=0, total=1),
    })  # fmt: skip
    yellow["status"]["actualStatus"] = "YELLOW"  # the color alone decides, whatever the mix
    assert health("workflow", yellow)[0] == "Progressing"


def test_red_and_stalled_are_degraded() -> None:
    failed = reconciled(
        workflow(services=[("a", 1)]),
        {"a": deployment("a", replicas=1, available=0, deadline_exceeded=True)},
    )
    assert failed["status"]["actualStatus"] == "RED"
    status, message = health("workflow", failed)
    assert status == "Degraded"
    assert "progress deadline" in message

    sync_down = reconciled(workflow(mode="SYNC", services=[("a", 1)], stream=("s", 1)), {})
    assert sync_down["status"]["actualStatus"] == "RED"
    assert health("workflow", sync_down)[0] == "Degraded"


def test_invalid_spec_goes_stalled_and_degraded() -> None:
    wf = workflow(status={
        "actualStatus": "RED", "observedGeneration": 1,
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "InvalidSpec", "message": "spec.x: bad"},
            {"type": "Stalled", "status": "True", "reason": "InvalidSpec", "message": "spec.x: bad"},
        ],
    })  # fmt: skip
    assert health("workflow", wf) == ("Degraded", "RED: spec.x: bad")


def test_green_while_rollout_runs_is_progressing() -> None:
    wf = workflow(status={
        "actualStatus": "GREEN", "observedGeneration": 1,
        "conditions": [{"type": "Ready", "status": "False", "reason": "Publishing"}],
    })  # fmt: skip
    assert health("workflow", wf)[0] == "Progressing"


@pytest.mark.parametrize(
    "status",
    [
        None,
        {},
        {"actualStatus": "GREEN", "conditions": [{"type": "Ready", "status": "True"}]},
        {"actualStatus": "GREEN", "observedGeneration": 1,
         "conditions": [{"type": "Ready", "status": "True"}]},
    ],
    ids=["no status", "empty status", "no observedGeneration", "older generation"],
)  # fmt: skip
def test_not_yet_observed_is_progressing(status: Body | None) -> None:
    wf = workflow(generation=2, status=status)
    assert health("workflow", wf)[0] == "Progressing"


def test_unpublished_and_gone_is_healthy() -> None:
    wf = reconciled(workflow(desired="UNPUBLISHED"), {})
    assert health("workflow", wf)[0] == "Healthy"
    tearing_down = reconciled(workflow(desired="UNPUBLISHED"), {"svc": deployment("svc")})
    assert health("workflow", tearing_down)[0] == "Progressing"


# --- FlowRun --------------------------------------------------------------------------------


def flowrun(status: Body | None, generation: int = 1) -> Body:
    body: Body = {
        "apiVersion": "flowops.io/v1alpha1",
        "kind": "FlowRun",
        "metadata": {"name": "run", "namespace": "ns", "generation": generation},
        "spec": {},
    }
    if status is not None:
        body["status"] = status
    return body


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        ("Submitted", "Progressing"),
        ("Queued", "Progressing"),
        ("Deployed", "Progressing"),
        ("Completed", "Healthy"),
        ("Failed", "Degraded"),
        ("Crashed", "Degraded"),
        ("Cancelled", "Degraded"),
    ],
)
def test_flowrun_phase(phase: str, expected: str) -> None:
    assert health("flowrun", flowrun({"phase": phase, "observedGeneration": 1}))[0] == expected


def test_flowrun_edge_cases() -> None:
    assert health("flowrun", flowrun(None))[0] == "Progressing"
    assert health("flowrun", flowrun({"conditions": []}))[0] == "Progressing"
    older = flowrun({"phase": "Completed", "observedGeneration": 1}, generation=2)
    assert health("flowrun", older)[0] == "Progressing"
    stalled = flowrun({"phase": "Queued", "conditions": [
        {"type": "Stalled", "status": "True", "message": "no such task image"}]})  # fmt: skip
    assert health("flowrun", stalled) == ("Degraded", "Queued: no such task image")
    failed = flowrun({"phase": "Failed", "message": "task b exited 1"})
    assert health("flowrun", failed) == ("Degraded", "Failed: task b exited 1")


# --- shipped as argocd-cm keys ----------------------------------------------------------------


def test_chart_ships_the_scripts_as_argocd_cm_keys(render: Any) -> None:
    docs = render("--set", "argocd.healthConfigMap.enabled=true")
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith(
        "-argocd-health")]  # fmt: skip
    for kind in ("Workflow", "FlowRun"):
        script = (SCRIPTS / f"{kind.lower()}.lua").read_text()
        assert cm["data"][f"resource.customizations.health.flowops.io_{kind}"] == script
    assert not [d for d in render() if d["kind"] == "ConfigMap"]


@pytest.fixture
def render() -> Any:
    from tests.unit.test_chart import helm_template

    def run(*args: str) -> list[Body]:
        return [d for d in yaml.safe_load_all(helm_template(*args)) if d]

    return run
