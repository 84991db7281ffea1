"""The checked-in CRDs are exactly what the models generate, are structural, and describe
every field (what `kubectl explain` prints)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from flow_operator import crds
from flow_operator.api.flowruns import RUN_STATES
from flow_operator.crds import files
from flow_operator.models import flow, flowrun, workflow

CRDS = Path(__file__).parents[3] / "crds"


def test_checked_in_crds_match_the_models() -> None:
    generated = files()
    on_disk = {p.name: p.read_text() for p in CRDS.glob("*.yaml")}
    assert on_disk == generated, "crds/ drifted from the models: run `make crds`"


def _walk(node: Any, path: str = "") -> list[str]:
    """Structural-schema violations: untyped nodes, unions, refs."""
    problems: list[str] = []
    if isinstance(node, dict):
        for bad in ("$ref", "anyOf", "oneOf", "allOf", "title"):
            if bad in node and not (bad == "anyOf" and node.get("x-kubernetes-int-or-string")):
                problems.append(f"{path}: {bad}")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{path}: properties with additionalProperties")
        for key in ("properties",):
            for name, child in (node.get(key) or {}).items():
                if "type" not in child and not child.get("x-kubernetes-int-or-string"):
                    problems.append(f"{path}.{name}: no type")
                problems += _walk(child, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            problems += _walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            problems += _walk(node["additionalProperties"], f"{path}{{}}")
    return problems


def test_schemas_are_structural() -> None:
    for name, text in files().items():
        crd = yaml.safe_load(text)
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert _walk(schema) == [], name


# The API server publishes these three with the standard TypeMeta and ObjectMeta texts.
STANDARD = {".apiVersion", ".kind", ".metadata"}


def _undescribed(node: Any, path: str = "") -> list[str]:
    """Every property (at any depth, in lists and maps too) without a description."""
    missing: list[str] = []
    if isinstance(node, dict):
        for name, child in (node.get("properties") or {}).items():
            if not child.get("description") and f"{path}.{name}" not in STANDARD:
                missing.append(f"{path}.{name}")
            missing += _undescribed(child, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            missing += _undescribed(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            missing += _undescribed(node["additionalProperties"], f"{path}{{}}")
    return missing


def test_every_field_has_a_description() -> None:
    for name, text in files().items():
        schema = yaml.safe_load(text)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert _undescribed(schema) == [], f"{name}: add Field(description=...) to the model"


def test_the_description_walk_finds_a_missing_one() -> None:
    schema = {"properties": {"spec": {"description": "s", "properties": {
        "tasks": {"description": "t", "items": {"properties": {"name": {"type": "string"}}}},
    }}}}  # fmt: skip
    assert _undescribed(schema) == [".spec.tasks[].name"]


def test_flowrun_tasks_are_explained() -> None:
    """What `kubectl explain flowrun.spec.tasks` prints comes from the model."""
    spec = _flowrun_version()["schema"]["openAPIV3Schema"]["properties"]["spec"]
    tasks = spec["properties"]["tasks"]
    assert tasks["description"].startswith("The run's steps, 1 to 50")
    assert "backoffLimit" in tasks["items"]["properties"]["retries"]["description"]


def test_workflow_crd_has_cel_rules_and_columns() -> None:
    crd = yaml.safe_load(files()["workflows.flowops.io.yaml"])
    version = crd["spec"]["versions"][0]
    rules = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"]
    assert any("SYNC" in r["rule"] and "stream" in r["rule"] for r in rules)
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Desired", "Mode", "Color", "Services", "Age",
    ]  # fmt: skip
    assert version["subresources"] == {"status": {}}


def _flowrun_version() -> dict[str, Any]:
    crd = yaml.safe_load(files()["flowruns.flowops.io.yaml"])
    assert crd["spec"]["names"]["plural"] == "flowruns"
    assert crd["spec"]["scope"] == "Namespaced"
    version: dict[str, Any] = crd["spec"]["versions"][0]
    return version


def test_flowrun_crd_columns_are_the_seed_table() -> None:
    version = _flowrun_version()
    assert [(c["name"].upper(), c["jsonPath"]) for c in version["additionalPrinterColumns"]] == [
        ("FLOW", ".spec.flowName"), ("VERSION", ".spec.version"), ("RUN TYPE", ".spec.runType"),
        ("STATUS", ".status.phase"), ("START", ".status.startTime"),
        ("DURATION", ".status.duration"), ("MESSAGE", ".status.message"),
    ]  # fmt: skip
    assert version["subresources"] == {"status": {}}


def test_flowrun_crd_refuses_at_admission_what_cel_can_judge() -> None:
    root = _flowrun_version()["schema"]["openAPIV3Schema"]
    spec = root["properties"]["spec"]
    rules = {r["message"]: r["rule"] for r in spec["x-kubernetes-validations"]}
    assert rules["spec.parentRun is required when spec.flowType is sub-flow"] == (
        "self.flowType != 'sub-flow' || has(self.parentRun)"
    )
    dependencies = rules["spec.tasks[].dependsOn must name tasks of this run"]
    assert "t.dependsOn.all(d, self.tasks.exists(u, u.name == d))" in dependencies
    tasks = spec["properties"]["tasks"]
    # Unique task names: the list is a map keyed by name, so the API server refuses repeats.
    assert tasks["x-kubernetes-list-type"] == "map"
    assert tasks["x-kubernetes-list-map-keys"] == ["name"]
    assert (tasks["minItems"], tasks["maxItems"]) == (1, 50)
    task = tasks["items"]
    assert task["properties"]["dependsOn"]["x-kubernetes-list-type"] == "set"
    assert task["x-kubernetes-validations"][0]["rule"] == "has(self.image) != has(self.subFlow)"
    retries = task["properties"]["retries"]
    assert (retries["minimum"], retries["maximum"], retries["default"]) == (0, 10, 0)
    for bounded in ("activeDeadlineSeconds", "queueTimeoutSeconds"):
        assert (spec["properties"][bounded]["minimum"], spec["properties"][bounded]["maximum"]) == (
            1, 604800,
        )  # fmt: skip
    phases = root["properties"]["status"]["properties"]["phase"]["enum"]
    assert phases == list(RUN_STATES)
    assert root["x-kubernetes-validations"][0]["rule"] == "size(self.metadata.name) <= 63"


def test_names_and_columns_come_from_the_model_modules() -> None:
    assert crds.KINDS == (workflow.CRD, flowrun.CRD, flow.CRD)
    for d in crds.KINDS:
        crd = yaml.safe_load(files()[f"{d.plural}.flowops.io.yaml"])
        assert crd["spec"]["names"]["shortNames"] == list(d.short_names)
        assert crd["spec"]["scope"] == d.scope
        columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        assert [c["jsonPath"] for c in columns] == [c.json_path for c in d.columns]
