"""Which changes of a Job or pod wake a FlowRun (flowrun/taskstate.py's significance): a
change a task's line cannot see wakes nobody, one it can see always does. Checked against
the line itself: whenever two bodies are alike in significance, job_reading reads the same
line from both."""

from __future__ import annotations

from copy import deepcopy
from datetime import timedelta
from typing import Any

from flow_operator.flowrun.taskstate import job_reading, job_significance, pod_significance
from tests.unit.flowrun_objects import at, flowrun, job, pod, task

RUN = flowrun([task("extract")])
TASK = RUN.spec.tasks[0]


def line(job_body: Any, pods: list[Any]) -> Any:
    return job_reading(TASK, job_body, pods, [], None, at(30), timedelta(seconds=60)).status


def test_a_jobs_ready_and_uncounted_pods_change_nothing_its_counts_and_conditions_do() -> None:
    running = job(RUN, "extract", active=1)
    ready = deepcopy(running)
    ready["status"].update(ready=1, terminating=0, uncountedTerminatedPods={"succeeded": ["u"]})
    ready["metadata"]["resourceVersion"] = "99"
    assert job_significance(ready) == job_significance(running)
    assert line(ready, []) == line(running, [])
    for changed in (
        job(RUN, "extract", active=1, succeeded=1),
        job(RUN, "extract", done=5),
        job(RUN, "extract", done=5, failure="BackoffLimitExceeded"),
        job(RUN, "extract", active=1, deleting=True),
    ):
        assert job_significance(changed) != job_significance(running)


def test_a_pods_readiness_alone_changes_nothing_its_phase_and_containers_do() -> None:
    started = pod(RUN, "extract", phase="Running")
    ready = deepcopy(started)
    ready["status"]["conditions"] += [
        {"type": "ContainersReady", "status": "True", "lastTransitionTime": "x"},
        {"type": "Initialized", "status": "True"},
    ]
    assert pod_significance(ready) == pod_significance(started)
    j = job(RUN, "extract", active=1)
    assert line(j, [ready]) == line(j, [started])
    for changed in (
        pod(RUN, "extract", phase="Succeeded", terminated=("Completed", 0)),
        pod(RUN, "extract", phase="Running", waiting=("CrashLoopBackOff", "back-off")),
        pod(RUN, "extract", last_terminated=("OOMKilled", 137)),
        pod(RUN, "extract", unschedulable="0/3 nodes are available"),
        pod(RUN, "extract", evicted=True),
        pod(RUN, "extract", created=3),  # another start
    ):
        assert pod_significance(changed) != pod_significance(started)
