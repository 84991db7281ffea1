"""The Flow model and its CRD: defaults, bad input refused with the field named (what CEL
cannot judge included), the columns, and the CEL rules the API server runs."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from flow_operator.crds import files
from flow_operator.flows.schedule import summary
from flow_operator.models.flow import Flow, FlowSpec
from tests.unit.flows.conftest import flow_spec, task

PARAM = {"name": "REGION", "enum": ["eu", "us"], "default": "eu"}


def test_defaults() -> None:
    s = FlowSpec.model_validate(flow_spec(schedules=[{"name": "n", "cron": "@daily"}]))
    assert (s.level, s.flow_type, s.revision_history_limit, s.suspend) == (
        "user", "standalone", 10, False,
    )  # fmt: skip
    assert (s.concurrency.policy, s.concurrency.limit()) == ("Allow", None)
    (sched,) = s.schedules or []
    assert (sched.time_zone, sched.catch_up, sched.suspend) == ("UTC", "Latest", False)


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("cycle", flow_spec(tasks=[task("a", dependsOn=["b"]), task("b", dependsOn=["a"])]), "dependsOn forms a cycle: a -> b -> a"),
    ("unknown-dependency", flow_spec(tasks=[task("a", dependsOn=["z"])]), "task a depends on unknown z"),
    ("image-and-subflow", flow_spec(tasks=[{"name": "a"}]), "needs either image"),
    ("enum-and-pattern", flow_spec(parameters=[{"name": "R", "enum": ["a"], "pattern": "a"}]), "either enum or pattern"),
    ("required-with-default", flow_spec(parameters=[{"name": "R", "required": True, "default": "a"}]), "required parameter takes no default"),
    ("default-outside-enum", flow_spec(parameters=[{"name": "R", "enum": ["a"], "default": "b"}]), "not one of its enum values"),
    ("bad-pattern", flow_spec(parameters=[{"name": "R", "pattern": "(unclosed"}]), "parameter R: pattern is not a regular expression"),
    ("default-outside-pattern", flow_spec(parameters=[{"name": "R", "pattern": "[0-9]+", "default": "x"}]), "does not match its pattern"),
    ("parameter-name", flow_spec(parameters=[{"name": "1R"}]), "parameters.0.name"),
    ("configuration-undeclared", flow_spec(parameters=[PARAM], configurations=[{"name": "c", "parameters": {"COLOR": "x"}}]), "spec.configurations[c] sets undeclared parameters: COLOR"),
    ("schedule-configuration", flow_spec(configurations=[{"name": "c"}], schedules=[{"name": "s", "cron": "@daily", "configuration": "d"}]), "spec.schedules[s].configuration 'd' is not one of spec.configurations"),
    ("schedule-parameters", flow_spec(schedules=[{"name": "s", "cron": "@daily", "parameters": {"X": "1"}}]), "spec.schedules[s].parameters sets undeclared parameters: X"),
    ("cron-fields", flow_spec(schedules=[{"name": "s", "cron": "* * *"}]), "schedule s: cron '* * *' must have five fields"),
    ("cron-value", flow_spec(schedules=[{"name": "s", "cron": "0 25 * * *"}]), "schedule s: cron '0 25 * * *' is not a cron expression"),
    ("cron-macro", flow_spec(schedules=[{"name": "s", "cron": "@fortnightly"}]), "unknown cron shorthand"),
    ("time-zone", flow_spec(schedules=[{"name": "s", "cron": "@daily", "timeZone": "Europe/Atlantis"}]), "timeZone 'Europe/Atlantis' is not an IANA time zone"),
    ("catch-up", flow_spec(schedules=[{"name": "s", "cron": "@daily", "catchUp": "Some"}]), "schedules.0.catchUp"),
    ("schedule-name", flow_spec(schedules=[{"name": "S_1", "cron": "@daily"}]), "schedules.0.name"),
    ("max-running-allow", flow_spec(concurrency={"policy": "Allow", "maxRunning": 2}), "Allow has no limit"),
    ("max-running-zero", flow_spec(concurrency={"policy": "Queue", "maxRunning": 0}), "concurrency.maxRunning"),
    ("sub-flow-scheduled", flow_spec(flowType="sub-flow", schedules=[{"name": "s", "cron": "@daily"}]), "a sub-flow runs under a parent run only"),
    ("history-limit", flow_spec(revisionHistoryLimit=0), "revisionHistoryLimit"),
    ("unknown-field", flow_spec(colour="red"), "colour"),
    ("no-tasks", flow_spec(tasks=[]), "tasks"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "spec", "fragment"), BAD, ids=[c for c, _, _ in BAD])
def test_bad_spec_is_refused_naming_the_field(
    case: str, spec: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ValidationError) as info:
        FlowSpec.model_validate(spec)
    assert fragment in str(info.value), case


def test_from_body_drops_an_unreadable_status_but_not_a_bad_spec() -> None:
    body = {"metadata": {"name": "etl"}, "spec": flow_spec(), "status": {"versions": "garbage"}}
    assert Flow.from_body(body).status is None
    assert Flow.from_body({**body, "status": {"version": 2}}).status.version == 2  # type: ignore[union-attr]
    with pytest.raises(ValidationError):
        Flow.from_body({**body, "spec": {"tasks": []}})


def test_schedule_summary() -> None:
    schedules = [
        {"name": "nightly", "cron": "@daily"},
        {"name": "hourly", "cron": "@hourly", "suspend": True},
    ]
    assert (
        summary(FlowSpec.model_validate(flow_spec(schedules=schedules)))
        == "nightly,hourly(suspended)"
    )
    both = FlowSpec.model_validate(flow_spec(schedules=schedules, suspend=True))
    assert summary(both) == "nightly(suspended),hourly(suspended)"
    assert summary(FlowSpec.model_validate(flow_spec())) == "-"


def _crd() -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load(files()["flows.flowops.io.yaml"])
    return crd


def test_flow_crd_columns_names_and_scope() -> None:
    crd = _crd()
    assert (crd["spec"]["scope"], crd["spec"]["names"]["plural"]) == ("Namespaced", "flows")
    version = crd["spec"]["versions"][0]
    assert [(c["name"].upper(), c["jsonPath"]) for c in version["additionalPrinterColumns"]] == [
        ("VERSION", ".status.version"), ("LEVEL", ".spec.level"),
        ("SCHEDULES", ".status.scheduleSummary"), ("LAST RUN", ".status.lastRun.name"),
        ("LAST STATUS", ".status.lastRun.phase"), ("NEXT RUN", ".status.nextScheduleTime"),
        ("AGE", ".metadata.creationTimestamp"),
    ]  # fmt: skip
    assert version["subresources"] == {"status": {}}


def test_flow_crd_refuses_at_admission_what_cel_can_judge() -> None:
    root = _crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = root["properties"]["spec"]
    rules = {r["message"] for r in spec["x-kubernetes-validations"]}
    assert rules == {
        "spec.tasks[].dependsOn must name tasks of this flow",
        "spec.schedules[].configuration must name one of spec.configurations",
        "spec.schedules: a sub-flow runs under a parent run only",
    }
    props = spec["properties"]
    for named in ("tasks", "parameters", "configurations", "schedules"):
        assert props[named]["x-kubernetes-list-type"] == "map", named
        assert props[named]["x-kubernetes-list-map-keys"] == ["name"], named
    parameter = props["parameters"]["items"]
    assert [r["rule"] for r in parameter["x-kubernetes-validations"]] == [
        "!(has(self.enum) && has(self.pattern))",
        "!(self.required && has(self.default))",
        "!has(self.default) || !has(self.enum) || self.default in self.enum",
    ]
    concurrency = props["concurrency"]
    assert concurrency["properties"]["policy"]["enum"] == ["Allow", "Forbid", "Replace", "Queue"]
    assert concurrency["x-kubernetes-validations"][0]["rule"] == (
        "self.policy != 'Allow' || !has(self.maxRunning)"
    )
    schedule = props["schedules"]["items"]["properties"]
    assert schedule["catchUp"]["enum"] == ["None", "Latest", "All"]
    assert schedule["catchUp"]["default"] == "Latest"
    assert props["revisionHistoryLimit"]["default"] == 10
    assert props["tasks"]["items"]["x-kubernetes-validations"][0]["rule"] == (
        "has(self.image) != has(self.subFlow)"
    )
    assert root["x-kubernetes-validations"][0]["rule"] == "size(self.metadata.name) <= 63"


def test_every_new_field_is_described_for_kubectl_explain() -> None:
    spec = _crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    props = spec["properties"]
    missing = [k for k, v in props.items() if not v.get("description")]
    for nested in ("parameters", "schedules"):
        missing += [
            f"{nested}.{k}"
            for k, v in props[nested]["items"]["properties"].items()
            if not v.get("description")
        ]
    missing += [
        f"concurrency.{k}"
        for k, v in props["concurrency"]["properties"].items()
        if not v.get("description")
    ]
    assert missing == []


def test_the_example_in_docs_flows_md_is_a_valid_flow() -> None:
    import re
    from pathlib import Path

    doc = (Path(__file__).parents[3] / "docs" / "flows.md").read_text()
    example = re.search(r"```yaml\n(.*?)```", doc, re.S)
    assert example, "docs/flows.md lost its example"
    flow = Flow.model_validate(yaml.safe_load(example.group(1)))
    assert flow.spec.concurrency.limit() == 2 and summary(flow.spec) == "nightly"
