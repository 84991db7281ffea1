"""Task and service env (a value, or a Secret's or ConfigMap's key) and securityContexts:
what the models refuse, with the field named, and the CEL rules the CRDs carry for it."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from flow_operator.crds import files
from flow_operator.flowrun.machine import describe
from flow_operator.models.flowrun import FlowRun
from flow_operator.models.workflow import Workflow
from tests.unit.flowrun_objects import run_body, task

SECRET = {"secretKeyRef": {"name": "db", "key": "password"}}


def refusal(tasks: list[dict[str, Any]]) -> str:
    with pytest.raises(ValidationError) as caught:
        FlowRun.from_body(run_body(tasks))
    return describe(caught.value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"name": "A"}, 'spec.tasks.0.env.0: env A: takes exactly one of value or valueFrom (value: "" for an empty one)'),
        ({"name": "A", "value": "x", "valueFrom": SECRET}, "spec.tasks.0.env.0: env A: takes exactly one of value or valueFrom"),
        ({"name": "A", "valueFrom": {}}, "spec.tasks.0.env.0.valueFrom: valueFrom takes exactly one of secretKeyRef or configMapKeyRef"),
        ({"name": "A", "valueFrom": {**SECRET, "configMapKeyRef": {"name": "c", "key": "k"}}},
         "spec.tasks.0.env.0.valueFrom: valueFrom takes exactly one of secretKeyRef or configMapKeyRef"),
        ({"name": "A", "valueFrom": {"secretKeyRef": {"name": "db"}}}, "spec.tasks.0.env.0.valueFrom.secretKeyRef.key: Field required"),
        ({"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}, "spec.tasks.0.env.0.valueFrom.fieldRef: Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_env_takes_exactly_one_of_value_or_value_from(env: dict[str, Any], message: str) -> None:
    assert refusal([task("a", env=[env])]).startswith(message)


def test_env_from_a_secret_or_an_empty_value_is_accepted() -> None:
    run = FlowRun.from_body(
        run_body([task("a", env=[{"name": "P", "valueFrom": SECRET}, {"name": "E", "value": ""}])])
    )
    env = run.spec.tasks[0].env or []
    assert [e.dump() for e in env] == [
        {"name": "P", "valueFrom": SECRET},
        {"name": "E", "value": ""},
    ]


def test_a_services_env_follows_the_same_rule() -> None:
    body = {"metadata": {"name": "w"}, "spec": {"desiredStatus": "PUBLISHED",
            "services": [{"id": "s", "image": "i", "env": [{"name": "A", "value": "1", "valueFrom": SECRET}]}]}}  # fmt: skip
    with pytest.raises(ValidationError) as caught:
        Workflow.from_body(body)
    assert "spec.services.0.env.0: env A: takes exactly one of value or valueFrom" in describe(
        caught.value
    )


def test_security_contexts_are_refused_naming_the_field() -> None:
    bad = task(
        "a", containerSecurityContext={"privileged": True, "allowPrivilegeEscalation": False}
    )
    assert refusal([bad]) == (
        "spec.tasks.0.containerSecurityContext: containerSecurityContext.allowPrivilegeEscalation "
        "cannot be false with privileged: true or capabilities.add SYS_ADMIN"
    )
    typo = task("a", podSecurityContext={"runAsNonroot": True})
    assert (
        refusal([typo])
        == "spec.tasks.0.podSecurityContext.runAsNonroot: Extra inputs are not permitted"
    )


def test_a_sub_flow_task_takes_no_security_context_its_tasks_do() -> None:
    sub = {
        "flowName": "f",
        "version": "1",
        "tasks": [task("x", podSecurityContext={"runAsUser": 7})],
    }
    FlowRun.from_body(run_body([{"name": "a", "subFlow": sub}]))
    assert refusal([{"name": "a", "subFlow": sub, "podSecurityContext": {"runAsUser": 7}}]) == (
        "spec.tasks.0: task a: a subFlow task takes no podSecurityContext or "
        "containerSecurityContext: its sub-flow's tasks carry their own"
    )


def _rules_and_env(node: Any) -> tuple[set[str], list[Any]]:
    """Every CEL rule in a schema, and every env item's `value` schema."""
    rules: set[str] = set()
    values: list[Any] = []
    if isinstance(node, dict):
        rules |= {r["rule"] for r in node.get("x-kubernetes-validations", ())}
        props = node.get("properties") or {}
        if "valueFrom" in props:
            values.append(props["value"])
        for child in node.values():
            r, v = _rules_and_env(child)
            rules, values = rules | r, values + v
    elif isinstance(node, list):
        for child in node:
            r, v = _rules_and_env(child)
            rules, values = rules | r, values + v
    return rules, values


@pytest.mark.parametrize(
    "crd", ["flowruns.flowops.io.yaml", "flows.flowops.io.yaml", "workflows.flowops.io.yaml"]
)
def test_every_crd_refuses_the_same_at_admission(crd: str) -> None:
    rules, values = _rules_and_env(yaml.safe_load(files()[crd]))
    assert {
        "has(self.value) != has(self.valueFrom)",
        "has(self.secretKeyRef) != has(self.configMapKeyRef)",
        "self.type == 'Localhost' ? has(self.localhostProfile) : !has(self.localhostProfile)",
    } <= rules
    # no default value: the API server would fill one in beside a valueFrom
    assert values and all("default" not in v for v in values)
