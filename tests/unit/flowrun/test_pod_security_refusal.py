"""A pod the namespace's Pod Security enforce level refuses (the Job controller's
FailedCreate Event) Fails its task with reason PodSecurity and the API server's words,
after the grace period; a quota's refusal still Crashes it (test_flowrun_machine.py)."""

from __future__ import annotations

from flow_operator.flowrun.machine import Context, Observed, step
from flow_operator.models.flowrun import Phase, TaskPhase
from tests.unit.flowrun_objects import at, failed_create, flowrun, job, task

REFUSAL = (
    'Error creating: pods "churn-7f3k-extract-x" is forbidden: violates PodSecurity '
    '"restricted:latest": privileged (container "extract" must not set '
    "securityContext.privileged=true)"
)


def test_a_pod_security_refusal_fails_the_task_naming_it() -> None:
    run = flowrun([task("extract")])
    for t in range(3):  # Submitted, Queued, Deployed
        run = run.model_copy(update={"status": step(run, Observed(), Context(now=at(t))).status})
    assert run.status is not None and run.status.phase is Phase.DEPLOYED
    extract = job(run, "extract")
    observed = Observed(jobs=[extract], events=[failed_create(extract, REFUSAL, first=1)])
    assert step(run, observed, Context(now=at(30))).status.phase is Phase.DEPLOYED
    status = step(run, observed, Context(now=at(61))).status
    assert (status.phase, status.reason) == (Phase.FAILED, "TaskFailed")
    assert status.message == f"task extract failed: pod refused by Pod Security: {REFUSAL}"
    line = status.tasks[0]
    assert (line.status, line.reason) == (TaskPhase.FAILED, "PodSecurity")
