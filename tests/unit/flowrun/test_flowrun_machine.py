"""The FlowRun state machine: every allowed transition, none forbidden, and the semantics
of issue 4 (DAG order, retries, deadlines, capacity signals, Workflow gating, cancel,
idempotency), each driven through `step` from the observed objects."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from flow_operator.flowrun.machine import (
    Capacity,
    Context,
    Decision,
    Event,
    Observed,
    WorkflowState,
    reject,
    step,
)
from flow_operator.models.flowrun import TERMINAL, FlowRun, Phase, TaskPhase
from flow_operator.models.workflow import Color, PublishingMode
from tests.unit.flowrun_objects import (
    at,
    child,
    failed_create,
    flowrun,
    job,
    pod,
    run_body,
    stamp,
    task,
)

S, Q, D = Phase.SUBMITTED, Phase.QUEUED, Phase.DEPLOYED
GREEN_ASYNC = WorkflowState(published=True, mode=PublishingMode.ASYNC, color=Color.GREEN)
ORANGE_ASYNC = WorkflowState(published=True, mode=PublishingMode.ASYNC, color=Color.ORANGE)
RED_SYNC = WorkflowState(published=True, mode=PublishingMode.SYNC, color=Color.RED)
FULL = Capacity(running=5, limit=5)
DAG = [task("extract"), task("train", "extract"), task("publish", "train")]


def advance(run: FlowRun, decision: Decision) -> FlowRun:
    """The run as the next step sees it, once the reconciler wrote the decided status."""
    return run.model_copy(update={"status": decision.status})


def go(run: FlowRun, observed: Observed | None = None, t: float = 0) -> tuple[FlowRun, Decision]:
    decision = step(run, observed or Observed(), Context(now=at(t)))
    return advance(run, decision), decision


def cancelled(run: FlowRun, cancel: bool = True) -> FlowRun:
    """The run after a user set (or cleared) spec.cancel."""
    return run.model_copy(update={"spec": run.spec.model_copy(update={"cancel": cancel})})


def reach(
    phase: Phase, tasks: list[dict[str, Any]] | None = None, *, cancel: bool = False, **spec: Any
) -> FlowRun:
    """A run walked to `phase` (Submitted, Queued or Deployed) at t=0, its Workflow GREEN;
    `cancel` is set once it is there."""
    run = flowrun(tasks, **spec)
    observed = Observed(workflow=GREEN_ASYNC)
    for _ in range((S, Q, D).index(phase) + 1):
        run, decision = go(run, observed)
    assert run.status is not None and run.status.phase is phase
    if decision.jobs_to_create:  # not made: its tasks are Pending again, to be created
        lines = [
            t.model_copy(update={"status": TaskPhase.PENDING, "job_name": None})
            if t.name in created(decision)
            else t
            for t in run.status.tasks
        ]
        run = run.model_copy(update={"status": run.status.model_copy(update={"tasks": lines})})
    return cancelled(run, cancel)


def tasks_of(decision: Decision) -> dict[str, TaskPhase]:
    return {t.name: t.status for t in decision.status.tasks}


def created(decision: Decision) -> list[str]:
    return [j["metadata"]["labels"]["flowops.io/task"] for j in decision.jobs_to_create]


# --- every allowed transition, by a scenario that makes it ------------------------------

Scenario = Callable[[], tuple[FlowRun, Observed, float]]

ALLOWED: dict[tuple[Phase | None, Phase], Scenario] = {
    (None, S): lambda: (flowrun(), Observed(), 0),
    (S, Q): lambda: (reach(S), Observed(), 0),
    (S, Phase.FAILED): lambda: (
        reach(S, workflowRef={"name": "live"}),
        Observed(workflow=RED_SYNC),
        0,
    ),
    (S, Phase.CANCELLED): lambda: (reach(S, cancel=True), Observed(), 0),
    (Q, D): lambda: (reach(Q), Observed(), 1),
    (Q, Phase.FAILED): lambda: (reach(Q, queueTimeoutSeconds=60), Observed(capacity=FULL), 60),
    (Q, Phase.CANCELLED): lambda: (reach(Q, cancel=True), Observed(), 1),
    (D, Phase.COMPLETED): lambda: (
        (run := reach(D)),
        Observed(jobs=[job(run, "extract", succeeded=1, done=30)]),
        31,
    ),
    (D, Phase.FAILED): lambda: (
        (run := reach(D)),
        Observed(jobs=[job(run, "extract", failed=1, done=30, failure="BackoffLimitExceeded")]),
        31,
    ),
    (D, Phase.CRASHED): lambda: (
        (run := reach(D)),
        Observed(
            jobs=[job(run, "extract", active=1)],
            pods=[pod(run, "extract", last_terminated=("OOMKilled", 137))],
        ),
        5,
    ),
    (D, Phase.CANCELLED): lambda: (reach(D, cancel=True), Observed(), 5),
}


@pytest.mark.parametrize("transition", list(ALLOWED), ids=lambda t: f"{t[0]}->{t[1]}")
def test_every_allowed_transition(transition: tuple[Phase | None, Phase]) -> None:
    run, observed, t = ALLOWED[transition]()
    before = run.status.phase if run.status else None
    decision = step(run, observed, Context(now=at(t)))
    assert (before, decision.status.phase) == transition
    last = decision.status.history[-1]
    assert (last.phase, last.time) == (transition[1], stamp(t))
    assert decision.events[-1].reason == decision.status.reason == last.reason


def _variations() -> dict[str, Callable[[FlowRun], Observed]]:
    """Observed inputs of every kind, for a run with a task named extract."""
    return {
        "nothing": lambda r: Observed(),
        "all done": lambda r: Observed(
            jobs=[job(r, t.name, succeeded=1, done=10) for t in r.spec.tasks]
        ),
        "failed": lambda r: Observed(
            jobs=[job(r, "extract", failed=1, done=10, failure="BackoffLimitExceeded")]
        ),
        "oom": lambda r: Observed(
            jobs=[job(r, "extract", active=1)],
            pods=[pod(r, "extract", last_terminated=("OOMKilled", 137))],
        ),
        "running": lambda r: Observed(jobs=[job(r, "extract", active=1)]),
        "unschedulable": lambda r: Observed(
            jobs=[job(r, "extract", active=1)], pods=[pod(r, "extract", unschedulable="0/1")]
        ),
        "refused": lambda r: Observed(errors={"extract": "exceeded quota: compute"}),
        "red sync": lambda r: Observed(workflow=RED_SYNC),
        "orange async": lambda r: Observed(workflow=ORANGE_ASYNC),
        "full": lambda r: Observed(capacity=FULL),
    }


NEXT: dict[Phase, set[Phase]] = {}
for _from, _to in ALLOWED:
    if _from is not None:
        NEXT.setdefault(_from, {_from}).add(_to)


@pytest.mark.parametrize("phase", [S, Q, D])
@pytest.mark.parametrize("name", list(_variations()))
@pytest.mark.parametrize("cancel", [False, True])
@pytest.mark.parametrize("t", [0, 59, 3600, 10**6])
def test_no_forbidden_transition(phase: Phase, name: str, cancel: bool, t: int) -> None:
    run = reach(phase, DAG, workflowRef={"name": "wf"}, activeDeadlineSeconds=600, cancel=cancel)
    decision = step(run, _variations()[name](run), Context(now=at(t)))
    assert decision.status.phase in NEXT[phase]
    assert (decision.status.phase is Phase.CANCELLED) == cancel


def _terminal(phase: Phase) -> FlowRun:
    """A run that reached `phase` through the machine."""
    scenario = next(s for (_, to), s in ALLOWED.items() if to is phase)
    run, observed, t = scenario()
    return advance(run, step(run, observed, Context(now=at(t))))


@pytest.mark.parametrize("phase", sorted(TERMINAL))
@pytest.mark.parametrize("name", list(_variations()))
@pytest.mark.parametrize("cancel", [False, True])
@pytest.mark.parametrize("t", [0, 3600, 10**6])
def test_nothing_leaves_a_terminal_phase(phase: Phase, name: str, cancel: bool, t: int) -> None:
    run = cancelled(_terminal(phase), cancel)
    decision = step(run, _variations()[name](run), Context(now=at(t)))
    assert decision.status == run.status
    assert decision.jobs_to_create == decision.children_to_create == []
    assert decision.events == []


# --- Submitted and Queued: admission ------------------------------------------------------


def test_a_new_run_is_submitted_with_every_task_pending() -> None:
    _, decision = go(flowrun(DAG))
    status = decision.status
    assert (status.phase, status.reason, status.message) == (S, "Submitted", "accepted: 3 tasks")
    assert tasks_of(decision) == dict.fromkeys(("extract", "train", "publish"), TaskPhase.PENDING)
    assert status.start_time is None and status.observed_generation == 1
    assert decision.events == [Event("Normal", "Submitted", "accepted: 3 tasks")]
    assert decision.jobs_to_create == []


def test_queued_then_deployed_with_the_root_tasks_created() -> None:
    run, queued = go(reach(S, DAG), t=1)
    assert (queued.status.phase, queued.status.reason) == (Q, "Admitted")
    _, deployed = go(run, t=2)
    assert deployed.status.phase is D and deployed.status.start_time == stamp(2)
    assert created(deployed) == ["extract"]
    assert deployed.status.message == "0 of 3 tasks done; running: extract"


def test_waits_for_capacity_until_a_slot_is_free() -> None:
    run = reach(Q)
    for capacity, reason in [
        (FULL, "waiting for capacity: 5/5 runs operator-wide"),
        (
            Capacity(namespace_running=2, namespace_limit=2),
            "waiting for capacity: 2/2 in namespace ml",
        ),
    ]:
        decision = step(run, Observed(capacity=capacity), Context(now=at(10)))
        assert (decision.status.phase, decision.status.message) == (Q, reason)
        assert decision.status.reason == "WaitingForCapacity"
        assert decision.jobs_to_create == [] and decision.events == []
        assert decision.requeue_after == 3600 - 10  # the queue timeout
    slot = Capacity(running=4, limit=5, namespace_running=1, namespace_limit=2)
    for capacity in (slot, Capacity(running=5, limit=5, holds_slot=True)):
        assert step(run, Observed(capacity=capacity), Context(now=at(10))).status.phase is D


def test_sub_flow_runs_do_not_wait_for_a_slot() -> None:
    """They run inside their parent's slot: waiting for another could deadlock."""
    run = reach(Q, flowType="sub-flow", parentRun="parent-1")
    assert step(run, Observed(capacity=FULL), Context(now=at(1))).status.phase is D


def test_queue_timeout_fails_the_run_with_the_reason_it_waited() -> None:
    run = reach(Q, queueTimeoutSeconds=120)
    waiting = step(run, Observed(capacity=FULL), Context(now=at(119)))
    assert waiting.status.phase is Q and waiting.requeue_after == 1
    failed = step(run, Observed(capacity=FULL), Context(now=at(120)))
    assert (failed.status.phase, failed.status.reason) == (Phase.FAILED, "QueueTimeout")
    assert failed.status.message == (
        "queued for more than 120s: waiting for capacity: 5/5 runs operator-wide"
    )
    assert set(tasks_of(failed).values()) == {TaskPhase.SKIPPED}
    assert failed.status.start_time is None and failed.status.end_time == stamp(120)


def test_async_workflow_makes_the_run_wait_until_green() -> None:
    run = reach(S, workflowRef={"name": "doc-indexing"})
    run, queued = go(run, Observed(workflow=ORANGE_ASYNC), t=1)
    assert (queued.status.phase, queued.status.reason) == (Q, "WaitingForWorkflow")
    assert queued.status.message == (
        "waiting for Workflow doc-indexing (ASYNC, ORANGE) to be YELLOW or GREEN"
    )
    still = step(run, Observed(workflow=ORANGE_ASYNC), Context(now=at(600)))
    assert still.status.phase is Q and still.jobs_to_create == []
    yellow = WorkflowState(published=True, mode=PublishingMode.ASYNC, color=Color.YELLOW)
    for workflow in (GREEN_ASYNC, yellow):
        proceeds = step(run, Observed(workflow=workflow), Context(now=at(601)))
        assert proceeds.status.phase is D and created(proceeds) == ["extract"]
    timed_out = step(run, Observed(workflow=ORANGE_ASYNC), Context(now=at(3601)))
    assert (timed_out.status.phase, timed_out.status.reason) == (Phase.FAILED, "QueueTimeout")


@pytest.mark.parametrize(
    ("workflow", "message"),
    [
        (RED_SYNC, "Workflow live is SYNC and RED: runs need it YELLOW or GREEN"),
        (
            WorkflowState(published=False, mode=PublishingMode.SYNC, color=Color.GREEN),
            "Workflow live is SYNC and unpublished: runs need it YELLOW or GREEN",
        ),
    ],
)
def test_sync_workflow_not_usable_fails_fast(workflow: WorkflowState, message: str) -> None:
    for phase in (S, Q):
        decision = step(
            reach(phase, workflowRef={"name": "live"}),
            Observed(workflow=workflow),
            Context(now=at(1)),
        )
        status = decision.status
        assert (status.phase, status.reason, status.message) == (
            Phase.FAILED,
            "WorkflowUnavailable",
            message,
        )
        assert decision.events[-1] == Event("Warning", "WorkflowUnavailable", message)


def test_a_missing_workflow_is_waited_for() -> None:
    decision = step(reach(Q, workflowRef={"name": "later"}), Observed(), Context(now=at(1)))
    assert (decision.status.phase, decision.status.message) == (
        Q,
        "waiting for Workflow later to exist",
    )


def test_a_queued_run_whose_jobs_exist_goes_on_without_creating_them_again() -> None:
    """The operator died after creating Jobs, before writing Deployed: no second Job."""
    run = reach(Q, DAG)
    observed = Observed(jobs=[job(run, "extract", active=1)], capacity=FULL)
    decision = step(run, observed, Context(now=at(5)))
    assert decision.status.phase is D and decision.jobs_to_create == []
    assert tasks_of(decision)["extract"] is TaskPhase.RUNNING


# --- Deployed: the DAG, task states, failures ---------------------------------------------


def simulate(run: FlowRun, durations: dict[str, int]) -> tuple[FlowRun, list[list[str]]]:
    """Step a Deployed run as a cluster would: each Job created runs for its duration, and
    the next step comes when the last one started has finished. Returns the rounds of
    Jobs created."""
    t, rounds = 0, []
    jobs: dict[str, dict[str, Any]] = {}
    while run.status is not None and run.status.phase not in TERMINAL:
        run, decision = go(run, Observed(jobs=list(jobs.values())), t)
        if decision.jobs_to_create:
            rounds.append(created(decision))
        for name in created(decision):
            jobs[name] = job(run, name, succeeded=1, start=t, done=t + durations[name])
        t = max([t, *(t + durations[name] for name in created(decision))])
    return run, rounds


def test_a_three_task_dag_runs_in_dependency_order() -> None:
    run, rounds = simulate(reach(D, DAG), {"extract": 188, "train": 568, "publish": 83})
    assert rounds == [["extract"], ["train"], ["publish"]]
    status = run.status
    assert status is not None
    assert (status.phase, status.message) == (Phase.COMPLETED, "all 3 tasks completed")
    assert (status.start_time, status.end_time, status.duration) == (
        stamp(0),
        stamp(188 + 568 + 83),
        "13m59s",
    )
    assert [(t.name, t.status, t.runtime) for t in status.tasks] == [
        ("extract", TaskPhase.SUCCEEDED, "3m8s"),
        ("train", TaskPhase.SUCCEEDED, "9m28s"),
        ("publish", TaskPhase.SUCCEEDED, "1m23s"),
    ]
    assert [h.phase for h in status.history] == [S, Q, D, Phase.COMPLETED]


def test_independent_tasks_start_together() -> None:
    diamond = [
        task("load"),
        task("left", "load"),
        task("right", "load"),
        task("join", "left", "right"),
    ]
    _, rounds = simulate(reach(D, diamond), {"load": 5, "left": 10, "right": 20, "join": 5})
    assert rounds == [["load"], ["left", "right"], ["join"]]


def test_the_same_observation_creates_nothing_twice() -> None:
    run = reach(D, DAG)
    first = step(run, Observed(), Context(now=at(1)))
    assert created(first) == ["extract"]
    run = advance(run, first)
    seen = Observed(jobs=[job(run, "extract", active=1)])
    for t in (2, 3):
        again = step(run, seen, Context(now=at(t)))
        assert again.jobs_to_create == [] and again.children_to_create == []
        run = advance(run, again)
    assert tasks_of(again)["extract"] is TaskPhase.RUNNING


def test_the_job_manifest_carries_retries_timeout_owner_and_labels() -> None:
    run = reach(D, [task("extract", retries=2, timeoutSeconds=300)])
    (manifest,) = step(run, Observed(), Context(now=at(1))).jobs_to_create
    assert manifest["metadata"]["name"] == "churn-7f3k-extract"
    assert manifest["spec"]["backoffLimit"] == 2
    assert manifest["spec"]["activeDeadlineSeconds"] == 300
    assert manifest["metadata"]["ownerReferences"][0]["uid"] == "run-uid"
    assert manifest["spec"]["template"]["metadata"]["labels"]["flowops.io/task"] == "extract"


def test_a_retrying_task_is_running_and_counts_attempts() -> None:
    run = reach(D, [task("extract", retries=2)])
    observed = Observed(
        jobs=[job(run, "extract", failed=1, active=1)],
        pods=[
            pod(run, "extract", "old", terminated=("Error", 1)),
            pod(run, "extract", "new", created=20),
        ],
    )
    decision = step(run, observed, Context(now=at(25)))
    (line,) = decision.status.tasks
    assert (line.status, line.attempts, line.pod_name) == (
        TaskPhase.RUNNING,
        2,
        "churn-7f3k-extract-new",
    )
    assert decision.status.phase is D


def test_a_task_failing_after_its_retries_fails_the_run_naming_it() -> None:
    run = reach(D, [*DAG[:2], task("report")])
    observed = Observed(
        jobs=[
            job(run, "extract", failed=3, done=40, failure="BackoffLimitExceeded"),
            job(run, "report", active=1),
        ],
        pods=[pod(run, "extract", "p3", created=30, terminated=("Error", 2))],
        logs={"extract": "reading input\n\nValueError: bad token\n"},
    )
    decision = step(run, observed, Context(now=at(41)))
    status = decision.status
    assert (status.phase, status.reason) == (Phase.FAILED, "TaskFailed")
    assert (
        status.message
        == "task extract failed: exit code 2 (Error) after 3 attempts: ValueError: bad token"
    )
    lines = {t.name: t for t in status.tasks}
    assert (
        lines["extract"].message
        == "exit code 2 (Error) after 3 attempts\nreading input\nValueError: bad token"
    )
    assert (lines["extract"].end_time, lines["extract"].runtime) == (stamp(40), "40s")
    assert lines["train"].status is TaskPhase.SKIPPED
    assert (lines["report"].status, lines["report"].message) == (
        TaskPhase.CANCELLED,
        "stopped: the run is Failed",
    )
    assert status.end_time == stamp(40)
    # The failed Job stays for its logs; the one still running is stopped.
    assert decision.jobs_to_delete == ["churn-7f3k-report"]
    assert [e.reason for e in decision.events] == ["TaskFailed", "TaskFailed"]
    assert all(e.type == "Warning" for e in decision.events)


@pytest.mark.parametrize(
    ("condition", "failure", "outcome"),
    [
        ("SuccessCriteriaMet", None, TaskPhase.SUCCEEDED),
        ("FailureTarget", "BackoffLimitExceeded", TaskPhase.FAILED),
    ],
)
def test_a_job_has_ended_while_its_pods_still_terminate(
    condition: str, failure: str | None, outcome: TaskPhase
) -> None:
    """The Job controller's first word (SuccessCriteriaMet, FailureTarget) is final, and
    the Job is one to keep for its logs when the run fails."""
    run = reach(D, [task("extract"), task("report"), task("last", "extract", "report")])
    ending = job(run, "extract", succeeded=1, done=9, failure=failure)
    ending["status"]["conditions"][0]["type"] = condition
    ending["status"].pop("completionTime", None)
    failing = job(run, "report", failed=1, done=9, failure="BackoffLimitExceeded")
    decision = step(run, Observed(jobs=[ending, failing]), Context(now=at(10)))
    assert decision.status.phase is Phase.FAILED
    assert (decision.status.tasks[0].status, decision.status.tasks[0].end_time) == (
        outcome,
        stamp(9),
    )
    assert decision.jobs_to_delete == []


def test_a_task_timeout_fails_the_run() -> None:
    run = reach(D, [task("extract", timeoutSeconds=30)])
    observed = Observed(jobs=[job(run, "extract", failed=1, done=30, failure="DeadlineExceeded")])
    status = step(run, observed, Context(now=at(31))).status
    assert status.phase is Phase.FAILED
    assert status.message == "task extract failed: timed out after 30s"


def test_the_run_deadline_fails_it_and_stops_running_jobs() -> None:
    run = reach(D, DAG, activeDeadlineSeconds=600)
    observed = Observed(jobs=[job(run, "extract", active=1)])
    running = step(run, observed, Context(now=at(599)))
    assert running.status.phase is D and running.requeue_after == 1
    decision = step(run, observed, Context(now=at(600)))
    status = decision.status
    assert (status.phase, status.reason) == (Phase.FAILED, "DeadlineExceeded")
    assert status.message == "run deadline of 600s exceeded; running: extract"
    assert decision.jobs_to_delete == ["churn-7f3k-extract"]
    assert status.duration == "10m0s"


@pytest.mark.parametrize("state", ["state", "last"])
def test_oomkilled_crashes_the_run_without_waiting_for_retries(state: str) -> None:
    run = reach(D, [task("train", retries=3, resources={"limits": {"memory": "64Mi"}})])
    oom = ("OOMKilled", 137)
    bad = (
        pod(run, "train", terminated=oom)
        if state == "state"
        else pod(run, "train", last_terminated=oom)
    )
    decision = step(
        run, Observed(jobs=[job(run, "train", active=1)], pods=[bad]), Context(now=at(9))
    )
    status = decision.status
    assert (status.phase, status.reason) == (Phase.CRASHED, "OOMKilled")
    assert (
        status.message == "task train crashed: OOMKilled: a container exceeded its memory of 64Mi"
    )
    assert status.conditions is not None
    assert {c.type: c.status.value for c in status.conditions} == {
        "Ready": "False",
        "Reconciling": "False",
        "Stalled": "True",
    }
    assert decision.jobs_to_delete == ["churn-7f3k-train"]


def test_an_unschedulable_pod_crashes_the_run_after_the_grace_period() -> None:
    run = reach(D, [task("train", resources={"requests": {"memory": "4Ti"}})])
    why = "0/1 nodes are available: 1 Insufficient memory."
    observed = Observed(
        jobs=[job(run, "train", active=1)], pods=[pod(run, "train", created=10, unschedulable=why)]
    )
    waiting = step(run, observed, Context(now=at(40)))
    assert waiting.status.phase is D and waiting.requeue_after == 30
    assert waiting.status.tasks[0].message == f"Unschedulable: {why}"
    crashed = step(run, observed, Context(now=at(70))).status
    assert (crashed.phase, crashed.reason) == (Phase.CRASHED, "Unschedulable")
    assert crashed.message == f"task train crashed: unschedulable for more than 1m0s: {why}"
    longer = Context(now=at(70), grace=timedelta(minutes=5))
    assert step(run, observed, longer).status.phase is D


def test_an_evicted_pod_crashes_the_run() -> None:
    run = reach(D)
    observed = Observed(
        jobs=[job(run, "extract", active=1)], pods=[pod(run, "extract", evicted=True)]
    )
    status = step(run, observed, Context(now=at(5))).status
    assert (status.phase, status.reason) == (Phase.CRASHED, "Evicted")
    assert status.message == "task extract crashed: evicted: The node was low on memory."


def test_a_quota_refusing_pods_crashes_the_run_after_the_grace_period() -> None:
    run = reach(D)
    extract = job(run, "extract")
    refusal = 'pods "churn-7f3k-extract-x" is forbidden: exceeded quota: compute, requested: cpu=4'
    observed = Observed(jobs=[extract], events=[failed_create(extract, refusal, first=1)])
    assert step(run, observed, Context(now=at(30))).status.phase is D
    status = step(run, observed, Context(now=at(61))).status
    assert (status.phase, status.reason) == (Phase.CRASHED, "QuotaExceeded")
    assert status.message == f"task extract crashed: pod refused: {refusal}"


@pytest.mark.parametrize(
    ("error", "phase", "reason"),
    [
        ('jobs.batch "x" is forbidden: exceeded quota: jobs', Phase.CRASHED, "QuotaExceeded"),
        ('admission webhook "policy" denied the request', Phase.FAILED, "TaskFailed"),
    ],
)
def test_a_refused_job_ends_the_run(error: str, phase: Phase, reason: str) -> None:
    status = step(reach(D), Observed(errors={"extract": error}), Context(now=at(1))).status
    assert (status.phase, status.reason) == (phase, reason)
    assert error in (status.message or "")


def test_an_image_that_cannot_be_pulled_fails_the_task_after_the_grace_period() -> None:
    run = reach(D)
    observed = Observed(
        jobs=[job(run, "extract", active=1)],
        pods=[pod(run, "extract", waiting=("ImagePullBackOff", "not found"))],
    )
    assert step(run, observed, Context(now=at(59))).status.phase is D
    status = step(run, observed, Context(now=at(60))).status
    assert status.message == "task extract failed: ImagePullBackOff: not found"


def test_a_job_deleted_while_running_fails_its_task() -> None:
    run = reach(D)
    run = advance(
        run, step(run, Observed(jobs=[job(run, "extract", active=1)]), Context(now=at(1)))
    )
    status = step(run, Observed(), Context(now=at(2))).status
    assert status.phase is Phase.FAILED
    assert (
        status.message
        == "task extract failed: its Job churn-7f3k-extract was deleted while running"
    )


def test_a_finished_task_keeps_its_state_when_its_job_is_gone() -> None:
    run = reach(D, DAG)
    run = advance(
        run,
        step(run, Observed(jobs=[job(run, "extract", succeeded=1, done=9)]), Context(now=at(10))),
    )
    # train's Job, created at 10, not shown by the watch yet: expected, so it runs
    decision = step(run, Observed(expected=frozenset({"churn-7f3k-train"})), Context(now=at(11)))
    assert tasks_of(decision)["extract"] is TaskPhase.SUCCEEDED
    assert tasks_of(decision)["train"] is TaskPhase.RUNNING and created(decision) == []


def test_a_task_is_running_from_the_create_of_its_job_and_an_expected_job_is_not_deleted() -> None:
    """One status write says a task started: the one that goes with its Job's create.
    Until the watch shows the Job it is expected (neither made again nor read as deleted);
    a Running task whose Job is neither there nor expected was deleted."""
    run = reach(D, DAG)
    decision = step(run, Observed(), Context(now=at(1)))
    assert created(decision) == ["extract"]
    (line,) = [t for t in decision.status.tasks if t.name == "extract"]
    assert (line.status, line.job_name) == (TaskPhase.RUNNING, "churn-7f3k-extract")
    run = advance(run, decision)
    waiting = step(run, Observed(expected=frozenset({"churn-7f3k-extract"})), Context(now=at(2)))
    assert waiting.status.phase is D and created(waiting) == []
    assert tasks_of(waiting)["extract"] is TaskPhase.RUNNING
    gone = step(run, Observed(), Context(now=at(2)))
    assert gone.status.phase is Phase.FAILED and "was deleted while running" in (
        gone.status.message or ""
    )


# --- cancel ---------------------------------------------------------------------------------


def test_cancel_deletes_every_job_and_cancels_children() -> None:
    tasks = [
        task("extract"),
        task("report"),
        {"name": "nested", "subFlow": {"flowName": "n", "version": "1", "tasks": [task("x")]}},
    ]
    run = reach(D, tasks, cancel=True)
    observed = Observed(
        jobs=[job(run, "extract", succeeded=1, done=5), job(run, "report", active=1)],
        children=[child(run, "nested", "Deployed")],
    )
    decision = step(run, observed, Context(now=at(9)))
    status = decision.status
    assert (status.phase, status.reason) == (Phase.CANCELLED, "CancelRequested")
    assert status.message == "cancelled on request (spec.cancel)"
    assert decision.jobs_to_delete == ["churn-7f3k-extract", "churn-7f3k-report"]
    assert decision.children_to_cancel == ["churn-7f3k-nested"]
    assert tasks_of(decision) == {
        "extract": TaskPhase.SUCCEEDED,
        "report": TaskPhase.CANCELLED,
        "nested": TaskPhase.CANCELLED,
    }
    assert decision.events[-1] == Event("Normal", "CancelRequested", status.message)
    # Cleanup goes on in the terminal phase until the Jobs are gone; deleting ones are left be.
    run = advance(run, decision)
    leftover = Observed(
        jobs=[job(run, "report", active=1), job(run, "extract", succeeded=1, done=5, deleting=True)]
    )
    later = step(run, leftover, Context(now=at(20)))
    assert later.jobs_to_delete == ["churn-7f3k-report"] and later.status == run.status


def test_a_failed_run_keeps_finished_jobs_for_their_logs() -> None:
    run = _terminal(Phase.FAILED)
    observed = Observed(
        jobs=[job(run, "extract", failed=1, done=30, failure="BackoffLimitExceeded")]
    )
    assert step(run, observed, Context(now=at(100))).jobs_to_delete == []


# --- sub-flows ------------------------------------------------------------------------------

SUB = {
    "name": "nested",
    "subFlow": {
        "flowName": "tagging",
        "version": "2",
        "tasks": [task("tokenize"), task("tag", "tokenize")],
    },
}


def test_a_sub_flow_task_launches_a_child_run() -> None:
    run = reach(
        D,
        [task("extract"), {**SUB, "dependsOn": ["extract"], "timeoutSeconds": 900}],
        configuration={"name": "prod", "parameters": {"REGION": "emea"}},
        workflowRef={"name": "wf"},
    )
    decision = step(
        run, Observed(jobs=[job(run, "extract", succeeded=1, done=5)]), Context(now=at(6))
    )
    (manifest,) = decision.children_to_create
    assert decision.jobs_to_create == []
    assert manifest["metadata"]["name"] == "churn-7f3k-nested"
    spec = manifest["spec"]
    assert (spec["flowType"], spec["parentRun"], spec["runType"]) == (
        "sub-flow",
        "churn-7f3k",
        "Triggered",
    )
    assert spec["configuration"] == {"name": "prod", "parameters": {"REGION": "emea"}}
    assert spec["workflowRef"] == {"name": "wf"} and spec["activeDeadlineSeconds"] == 900
    assert [t["name"] for t in spec["tasks"]] == ["tokenize", "tag"]
    FlowRun.from_body(manifest)  # a valid FlowRun


@pytest.mark.parametrize(
    ("phase", "run_phase", "task_phase"),
    [
        ("Deployed", D, TaskPhase.RUNNING),
        ("Completed", Phase.COMPLETED, TaskPhase.SUCCEEDED),
        ("Failed", Phase.FAILED, TaskPhase.FAILED),
        ("Cancelled", Phase.FAILED, TaskPhase.FAILED),
        ("Crashed", Phase.CRASHED, TaskPhase.CRASHED),
    ],
)
def test_a_sub_flow_task_follows_its_child(
    phase: str, run_phase: Phase, task_phase: TaskPhase
) -> None:
    run = reach(D, [SUB])
    kid = child(
        run,
        "nested",
        phase,
        message="task tag failed: exit code 1 (Error)",
        reason="TaskFailed",
        startTime=stamp(1),
        endTime=stamp(61),
        duration="1m0s",
    )
    decision = step(run, Observed(children=[kid]), Context(now=at(62)))
    assert decision.status.phase is run_phase
    (line,) = decision.status.tasks
    assert (line.status, line.child_run) == (task_phase, "churn-7f3k-nested")
    assert decision.children_to_create == []
    if run_phase is Phase.FAILED:
        assert decision.status.message == (
            f"task nested failed: sub-flow {phase}: task tag failed: exit code 1 (Error)"
        )


# --- status details -------------------------------------------------------------------------


def test_conditions_follow_kstatus_and_keep_their_transition_times() -> None:
    run = reach(S)
    assert run.status is not None and run.status.conditions is not None
    assert {c.type: (c.status.value, c.last_transition_time) for c in run.status.conditions} == {
        "Ready": ("False", stamp(0)),
        "Reconciling": ("True", stamp(0)),
        "Stalled": ("False", stamp(0)),
    }
    run, _ = go(run, t=5)
    run, _ = go(run, Observed(jobs=[job(run, "extract", succeeded=1, done=9)]), t=6)
    run, _ = go(run, Observed(jobs=[job(run, "extract", succeeded=1, done=9)]), t=10)
    assert run.status is not None and run.status.conditions is not None
    assert run.status.phase is Phase.COMPLETED
    assert {c.type: (c.status.value, c.last_transition_time) for c in run.status.conditions} == {
        "Ready": ("True", stamp(10)),
        "Reconciling": ("False", stamp(10)),
        "Stalled": ("False", stamp(0)),
    }


def test_task_events_announce_starts_and_ends() -> None:
    run = reach(D, DAG)
    run, _ = go(run, t=1)
    run, running = go(
        run,
        Observed(
            jobs=[job(run, "extract", active=1)],
            pods=[pod(run, "extract", waiting=("ContainerCreating", ""))],
        ),
        t=2,
    )
    assert running.events == []  # a task's start is in the status, not an Event
    assert running.status.tasks[0].message == "ContainerCreating"
    _, same = go(run, Observed(jobs=[job(run, "extract", active=1)]), t=3)
    assert same.events == []
    _, done = go(run, Observed(jobs=[job(run, "extract", succeeded=1, done=8)]), t=9)
    assert done.events == []  # nor its success (only failures are Events)
    assert done.status.message == "1 of 3 tasks done; running: train"


def test_a_finished_run_reports_a_newer_generation_as_observed() -> None:
    run = _terminal(Phase.COMPLETED)
    run.metadata.generation = 2
    status = step(run, Observed(), Context(now=at(99))).status
    assert status.observed_generation == 2
    assert status.conditions is not None and {c.observed_generation for c in status.conditions} == {
        2
    }
    assert status.model_copy(update={"observed_generation": 1, "conditions": None}) == (
        run.status.model_copy(update={"conditions": None}) if run.status else None
    )


# --- a spec only the model can refuse -------------------------------------------------------


def _invalid(body: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        FlowRun.from_body(body)
    return caught.value


def test_a_cyclic_run_is_failed_and_stalled_with_the_cycle_named() -> None:
    body = run_body([task("a", "c"), task("b", "a"), task("c", "b")])
    decision = reject(body, _invalid(body), Context(now=at(3)))
    status = decision.status
    assert (status.phase, status.reason) == (Phase.FAILED, "InvalidSpec")
    assert (
        status.message
        == "spec.tasks: dependsOn forms a cycle: a -> c -> b -> a (each depends on the next)"
    )
    assert status.conditions is not None
    assert [c.type for c in status.conditions if c.status.value == "True"] == ["Stalled"]
    assert decision.events == [Event("Warning", "InvalidSpec", status.message)]
    assert [h.phase for h in status.history] == [Phase.FAILED]


def test_rejecting_a_finished_run_changes_nothing() -> None:
    done = _terminal(Phase.COMPLETED)
    body = run_body([task("a", "a")])
    body["status"] = done.status.dump() if done.status else None
    decision = reject(body, _invalid(body), Context(now=at(50)))
    assert decision.status == done.status and decision.events == []
