"""The checked-in CRDs are exactly what the models generate, and are structural."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from flow_operator.crds import files

CRDS = Path(__file__).parents[2] / "crds"


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


def test_workflow_crd_has_cel_rules_and_columns() -> None:
    crd = yaml.safe_load(files()["workflows.flowops.io.yaml"])
    version = crd["spec"]["versions"][0]
    rules = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"]
    assert any("SYNC" in r["rule"] and "stream" in r["rule"] for r in rules)
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Desired", "Mode", "Color", "Services", "Age",
    ]  # fmt: skip
    assert version["subresources"] == {"status": {}}
