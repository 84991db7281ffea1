"""A rerun keeps the run's Flow version (views/runs.rerun_body): a spec.flowRef run is
rerun from its recorded definition, inline; `latest` asks the operator for the Flow's
current version with the same request; a run of no Flow has no latest version."""

from __future__ import annotations

from typing import Any

import pytest

from flow_operator.models.flowrun import FlowRunSpec
from flow_operator.views.runs import rerun_body

TASKS = [{"name": "extract", "image": "busybox:1.36"}]
DEFINITION = {
    "flowName": "etl",
    "version": 1,
    "revision": "abc",
    "level": "organization",
    "configuration": {"name": "custom", "parameters": {"REGION": "us"}},
    "tasks": TASKS,
    "queueTimeoutSeconds": 120,
}


def _body(spec: dict[str, Any], labels: dict[str, str] | None = None, **status: Any) -> Any:
    meta = {"name": "r1", "namespace": "ml", "labels": labels or {}}
    return {"metadata": meta, "spec": spec, "status": status}


def test_a_flow_ref_run_is_rerun_from_its_recorded_definition() -> None:
    ref = {"name": "etl", "parameters": {"REGION": "us"}}
    new = rerun_body(_body({"flowRef": ref, "cancel": True}, definition=DEFINITION))
    spec = new["spec"]
    assert spec["tasks"] == TASKS and spec["version"] == "1" and spec["flowName"] == "etl"
    assert spec["flowRef"] == {"name": "etl", "version": 1}
    assert spec["configuration"] == DEFINITION["configuration"]
    assert (spec["level"], spec["queueTimeoutSeconds"], spec["runType"]) == (
        "organization",
        120,
        "Manual",
    )
    assert "cancel" not in spec
    FlowRunSpec.model_validate(spec)  # an ordinary run with tasks


def test_latest_repeats_the_request_without_the_version() -> None:
    ref = {"name": "etl", "version": 1, "configuration": "nightly", "parameters": {"DAY": "x"}}
    new = rerun_body(_body({"flowRef": ref}, definition=DEFINITION), latest=True)
    assert new["spec"] == {
        "flowRef": {"name": "etl", "configuration": "nightly", "parameters": {"DAY": "x"}},
        "runType": "Manual",
    }


def test_latest_of_a_run_the_flow_made_asks_with_its_configuration_and_values() -> None:
    spec = {"flowName": "etl", "version": "1", "tasks": TASKS, "level": "user",
            "runType": "Scheduled", "flowRef": {"name": "etl", "version": 1},
            "configuration": {"name": "nightly", "parameters": {"REGION": "us"}},
            "ttlSecondsAfterFinished": 60}  # fmt: skip
    labels = {"flowops.io/flow": "etl", "flowops.io/flow-version": "1"}
    new = rerun_body(_body(spec, labels), latest=True)
    assert new["spec"] == {
        "flowName": "etl",
        "runType": "Manual",
        "ttlSecondsAfterFinished": 60,
        "flowRef": {"name": "etl", "configuration": "nightly", "parameters": {"REGION": "us"}},
    }
    assert new["metadata"]["labels"] == {"flowops.io/flow": "etl"}
    FlowRunSpec.model_validate(new["spec"])
    same = rerun_body(_body(spec, labels))  # without latest: its tasks, as they were
    assert same["spec"]["tasks"] == TASKS and same["metadata"]["labels"] == labels


def test_an_inline_run_has_no_latest_version() -> None:
    with pytest.raises(ValueError, match="not made from a Flow"):
        rerun_body(_body({"flowName": "x", "version": "1", "tasks": TASKS}), latest=True)
