"""The Jobs and child runs the operator creates for FlowRun tasks, against golden files.

Each scenario is a run (tests/golden/flowrun/<name>.json holds what the builder must
produce for it). After an intended change, regenerate them with
`UPDATE_GOLDEN=1 pytest tests/unit/builders/test_golden_flowrun_jobs.py` and review the diff.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from flow_operator.builders.job import desired_child_run, desired_job
from flow_operator.models.flowrun import FlowRun
from flow_operator.models.security import SecurityDefault
from tests.unit.flowrun_objects import run_body, task

GOLDEN = Path(__file__).parents[2] / "golden" / "flowrun"
EXAMPLE = Path(__file__).parents[3] / "examples" / "flowrun-dag.yaml"
Body = dict[str, Any]


def _example(name: str) -> Body:
    body: Body = yaml.safe_load(EXAMPLE.read_text())
    body["metadata"].update(namespace="analytics", uid="3f1c6a52-run")
    run = FlowRun.from_body(body)
    return desired_job(run, next(t for t in run.spec.tasks if t.name == name))


def _minimal() -> Body:
    run = FlowRun.from_body(run_body([task("extract")]))
    return desired_job(run, run.spec.tasks[0])


def _long_names() -> Body:
    body = run_body(
        [task("feature-engineering-with-a-rather-long-task-name")],
        name="nightly-customer-churn-prediction-2024-02-12",
    )
    run = FlowRun.from_body(body)
    return desired_job(run, run.spec.tasks[0])


def _child() -> Body:
    sub = {
        "flowName": "nlp-tagging",
        "version": "2",
        "tasks": [task("tokenize"), task("tag", "tokenize")],
    }
    body = run_body(
        [
            task("extract"),
            {"name": "tagging", "subFlow": sub, "dependsOn": ["extract"], "timeoutSeconds": 1800},
        ],
        configuration={"name": "default", "parameters": {"LANG": "en"}},
        workflowRef={"name": "nlp-services"},
        level="platform",
        runType="Scheduled",
    )
    run = FlowRun.from_body(body)
    return desired_child_run(run, run.spec.tasks[1])


def _restricted_default() -> Body:
    """A task that sets no securityContext, under --default-security-context=restricted."""
    run = FlowRun.from_body(run_body([task("extract")]))
    return desired_job(run, run.spec.tasks[0], SecurityDefault.RESTRICTED)


def _hardened() -> Body:
    """A task's own contexts over the restricted default, and env from a Secret and a
    ConfigMap: its fields win, capabilities merge add and drop, valueFrom passes as is."""
    hardened = task(
        "load",
        podSecurityContext={"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 2000},
        containerSecurityContext={
            "readOnlyRootFilesystem": True,
            "capabilities": {"add": ["NET_BIND_SERVICE"]},
        },
        env=[
            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
            {"name": "REGION", "valueFrom": {"configMapKeyRef": {"name": "site", "key": "region", "optional": True}}},
            {"name": "MODE", "value": ""},
        ],
    )  # fmt: skip
    run = FlowRun.from_body(run_body([hardened]))
    return desired_job(run, run.spec.tasks[0], SecurityDefault.RESTRICTED)


def _privileged_no_default() -> Body:
    """With --default-security-context=none, only what the task sets."""
    run = FlowRun.from_body(
        run_body([task("probe", containerSecurityContext={"privileged": True})])
    )
    return desired_job(run, run.spec.tasks[0], SecurityDefault.NONE)


SCENARIOS: dict[str, Callable[[], Body]] = {
    "job-restricted-default": _restricted_default,
    "job-security-contexts-and-secret-env": _hardened,
    "job-privileged-without-default": _privileged_no_default,
    "job-minimal": _minimal,
    "job-extract-with-configuration": lambda: _example("extract"),
    "job-publish-env-and-dependency": lambda: _example("publish"),
    "job-long-names": _long_names,
    "child-run": _child,
}


def test_every_golden_file_has_a_scenario() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.json")) == sorted(SCENARIOS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_builder_output_matches_golden(name: str) -> None:
    built = SCENARIOS[name]()
    path = GOLDEN / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(json.dumps(built, indent=2) + "\n")
    assert built == json.loads(path.read_text())
