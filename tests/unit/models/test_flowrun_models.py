"""The FlowRun model: what it accepts, and what it refuses with a message naming the fault
(the rules CEL cannot judge, a `dependsOn` cycle first)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from flow_operator.api.flowruns import RUN_STATES
from flow_operator.flowrun.machine import describe
from flow_operator.models import common, flow, flowrun, workflow
from flow_operator.models.flowrun import (
    TERMINAL,
    FlowRun,
    FlowType,
    Level,
    Phase,
    RunType,
    find_cycle,
)
from tests.unit.flowrun_objects import run_body, task

EXAMPLE = Path(__file__).parents[3] / "examples" / "flowrun-dag.yaml"


def refusal(body: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        FlowRun.from_body(body)
    return describe(caught.value)


def test_the_example_is_a_valid_three_task_dag() -> None:
    run = FlowRun.from_body(yaml.safe_load(EXAMPLE.read_text()))
    spec = run.spec
    assert [(t.name, t.depends_on) for t in spec.tasks] == [
        ("extract", None),
        ("train", ["extract"]),
        ("publish", ["train"]),
    ]
    assert (spec.level, spec.run_type, spec.flow_type) == (
        Level.ORGANIZATION,
        RunType.MANUAL,
        FlowType.STANDALONE,
    )
    assert run.status is None


def test_defaults_and_the_manifest_spelling() -> None:
    run = FlowRun.from_body({**run_body(), "status": {}})
    assert run.status is None
    assert run.spec.dump() == {
        "flowName": "churn",
        "version": "3",
        "level": "user",
        "runType": "Manual",
        "flowType": "standalone",
        "tasks": [{"name": "extract", "version": "1.0", "image": "busybox:extract", "retries": 0}],
        "queueTimeoutSeconds": 3600,
        "cancel": False,
    }


def test_the_phases_are_the_ones_the_api_serves() -> None:
    assert tuple(p.value for p in Phase) == RUN_STATES
    assert {p.value for p in TERMINAL} == {"Completed", "Failed", "Crashed", "Cancelled"}


@pytest.mark.parametrize(
    ("tasks", "cycle"),
    [
        ([task("a", "a")], "a -> a"),
        ([task("a", "b"), task("b", "a")], "a -> b -> a"),
        ([task("a"), task("b", "a", "d"), task("c", "b"), task("d", "c")], "b -> d -> c -> b"),
    ],
)
def test_a_dependency_cycle_is_refused_naming_it(tasks: list[dict[str, Any]], cycle: str) -> None:
    assert refusal(run_body(tasks)) == (
        f"spec.tasks: dependsOn forms a cycle: {cycle} (each depends on the next)"
    )


def test_find_cycle_on_a_dag_finds_none() -> None:
    assert find_cycle({"a": [], "b": ["a"], "c": ["a", "b"], "d": ["c", "b"]}) is None


def nested(*tasks: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A sub-flow task named `a` running `tasks` (one task `x` by default)."""
    sub = {"flowName": "f", "version": "1", "tasks": list(tasks) or [task("x")]}
    return {"name": "a", "subFlow": sub, **fields}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"flowType": "sub-flow"}, "spec.parentRun is required when spec.flowType is sub-flow"),
        ({"parentRun": "p"}, "spec.parentRun is only allowed when spec.flowType is sub-flow"),
        ({"tasks": [task("a"), task("a")]}, "spec.tasks[].name must be unique, repeated: a"),
        ({"tasks": [task("a", "ghost")]}, "spec.tasks: task a depends on unknown ghost"),
        ({"tasks": [{"name": "a"}]}, "spec.tasks.0: task a: needs either image (a Job) or subFlow (a child FlowRun)"),
        ({"tasks": [nested(image="busybox")]}, "spec.tasks.0: task a: needs either image (a Job) or subFlow (a child FlowRun)"),
        ({"tasks": [nested(command=["x"])]}, "spec.tasks.0: task a: a subFlow task takes no command, args, env, resources or retries"),
        ({"tasks": [nested(retries=1)]}, "spec.tasks.0: task a: a subFlow task takes no command, args, env, resources or retries"),
        ({"tasks": [nested({"name": "x"})]}, "spec.tasks.0.subFlow.tasks.0: sub-flow task x: image is required"),
        ({"tasks": [nested(task("x", "x"))]}, "spec.tasks.0.subFlow: subFlow.tasks: dependsOn forms a cycle: x -> x (each depends on the next)"),
        ({"configuration": {"name": "c", "parameters": {"OK_1": "v", "not ok": "v", "1X": "v"}}},
         "spec.configuration: configuration.parameters names must be environment variable names: 1X, not ok"),
        ({"tasks": [task("a", retries=-1)]}, "spec.tasks.0.retries: Input should be greater than or equal to 0"),
        ({"tasks": [task("A")]}, "spec.tasks.0.name: String should match pattern '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'"),
        ({"tasks": []}, "spec.tasks: List should have at least 1 item after validation, not 0"),
        ({"level": "team"}, "spec.level: Input should be 'user', 'organization' or 'platform'"),
        ({"runType": "Cron"}, "spec.runType: Input should be 'Manual', 'Scheduled', 'Triggered' or 'API'"),
        ({"activeDeadlineSeconds": 0}, "spec.activeDeadlineSeconds: Input should be greater than or equal to 1"),
        ({"typo": 1}, "spec.typo: Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_refused_specs_name_their_fault(spec: dict[str, Any], message: str) -> None:
    body = run_body()
    body["spec"].update(spec)
    assert refusal(body) == message


def test_a_sub_flow_with_its_parent_is_accepted() -> None:
    body = run_body([task("extract"), nested()], flowType="sub-flow", parentRun="churn-7f3k")
    run = FlowRun.from_body(body)
    assert run.spec.parent_run == "churn-7f3k"
    assert run.spec.tasks[1].sub_flow is not None


def test_a_status_round_trips() -> None:
    status = {
        "phase": "Failed",
        "reason": "TaskFailed",
        "message": "task a failed: exit code 2 (Error)",
        "startTime": "2024-02-12T08:30:00Z",
        "endTime": "2024-02-12T08:31:12Z",
        "duration": "1m12s",
        "observedGeneration": 1,
        "tasks": [{"name": "a", "status": "Failed", "jobName": "r-a", "attempts": 1}],
        "history": [
            {
                "phase": "Submitted",
                "time": "2024-02-12T08:29:58Z",
                "reason": "Submitted",
                "message": "",
            }
        ],
    }
    run = FlowRun.from_body({**run_body(), "status": status})
    assert run.status is not None and run.status.dump() == status


def test_one_object_meta_for_every_kind() -> None:
    assert flowrun.ObjectMeta is flow.ObjectMeta is workflow.ObjectMeta is common.ObjectMeta
    assert FlowRun.model_fields["metadata"].annotation is common.ObjectMeta
