"""The FlowRun machine's Jobs carry `--default-security-context` (through Context.security)
under the task's own securityContexts."""

from __future__ import annotations

from flow_operator.flowrun.machine import Context, Decision, Observed, step
from flow_operator.models.flowrun import FlowRun
from flow_operator.models.security import SecurityDefault
from tests.unit.flowrun_objects import at, flowrun, task


def deploy(run: FlowRun, security: SecurityDefault) -> Decision:
    """Steps until the run is Deployed and its first Jobs are decided."""
    for t in range(5):
        decision = step(run, Observed(), Context(now=at(t), security=security))
        run = run.model_copy(update={"status": decision.status})
        if decision.jobs_to_create:
            return decision
    raise AssertionError("no Job was decided")


def test_the_runs_jobs_carry_the_default() -> None:
    run = flowrun([task("extract", podSecurityContext={"runAsUser": 1000})])
    pod = deploy(run, SecurityDefault.RESTRICTED).jobs_to_create[0]["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
        "runAsUser": 1000,
    }
    assert pod["containers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    plain = deploy(run, SecurityDefault.NONE).jobs_to_create[0]["spec"]["template"]["spec"]
    assert plain["securityContext"] == {"runAsUser": 1000}
    assert "securityContext" not in plain["containers"][0]
