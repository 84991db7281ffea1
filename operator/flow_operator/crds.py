"""CustomResourceDefinitions generated from the pydantic models: the one source of truth.

`python -m flow_operator.crds crds/` writes one YAML file per kind; `--check` exits
non-zero when the checked-in files differ from what the models generate. The JSON
schema pydantic produces is rewritten into a Kubernetes *structural* schema: `$ref`s
inlined, `Optional[X]` collapsed to `X`, titles and `additionalProperties: false`
dropped (the API server prunes and, with strict field validation, rejects unknown
fields), and CEL rules attached where the models declare them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from flow_operator import GROUP, VERSION
from flow_operator.models import flow, flowrun, workflow

Schema = dict[str, Any]


@dataclass(frozen=True)
class Column:
    name: str
    json_path: str
    type: str = "string"
    priority: int = 0
    description: str = ""


@dataclass(frozen=True)
class Definition:
    kind: str
    plural: str
    short_names: list[str]
    spec_model: type[BaseModel]
    status_model: type[BaseModel]
    columns: list[Column]
    spec_rules: list[dict[str, str]] = field(default_factory=list)
    root_rules: list[dict[str, str]] = field(default_factory=list)
    categories: list[str] = field(default_factory=lambda: ["flowops"])


def _structural(node: Any, defs: Schema, keep_defaults: bool) -> Any:
    if isinstance(node, list):
        return [_structural(n, defs, keep_defaults) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs, keep_defaults)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(options) == 1:
            return _structural({**options[0], **rest}, defs, keep_defaults)
        if sorted(o.get("type", "") for o in options) == ["integer", "string"]:
            # Kubernetes' int-or-string, the one union a structural schema allows, and only
            # in its bare form. A CEL check of quantities costs too much for the budget
            # (50 services x 16 keys); the operator's model checks them (InvalidSpec).
            return {
                "x-kubernetes-int-or-string": True,
                "anyOf": [{"type": "integer"}, {"type": "string"}],
            }
        raise ValueError(f"union types are not structural: {node}")
    out: Schema = {}
    for key, value in node.items():
        if key in ("title", "$defs"):
            continue
        if key == "additionalProperties" and value is False:
            continue
        if key == "default" and (value is None or not keep_defaults):
            continue
        if key == "properties":
            out[key] = {k: _structural(v, defs, keep_defaults) for k, v in value.items()}
        else:
            out[key] = _structural(value, defs, keep_defaults)
    return out


def model_schema(model: type[BaseModel], mode: str, keep_defaults: bool) -> Schema:
    raw = model.model_json_schema(by_alias=True, mode=mode)  # type: ignore[arg-type]
    schema: Schema = _structural(raw, raw.get("$defs", {}), keep_defaults)
    return schema


def crd(d: Definition) -> Schema:
    spec = model_schema(d.spec_model, "validation", keep_defaults=True)
    if d.spec_rules:
        spec["x-kubernetes-validations"] = d.spec_rules
    status = model_schema(d.status_model, "serialization", keep_defaults=False)
    status.pop("required", None)  # status is written piecemeal by the operator
    root: Schema = {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    if d.root_rules:
        root["x-kubernetes-validations"] = d.root_rules
    columns = [
        {
            k: v
            for k, v in {
                "name": c.name,
                "type": c.type,
                "jsonPath": c.json_path,
                "priority": c.priority or None,
                "description": c.description or None,
            }.items()
            if v is not None
        }
        for c in d.columns
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{d.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": d.kind,
                "listKind": f"{d.kind}List",
                "plural": d.plural,
                "singular": d.kind.lower(),
                "shortNames": d.short_names,
                "categories": d.categories,
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


NAME_RULE = {
    "rule": "size(self.metadata.name) <= 63",
    "message": "metadata.name must be at most 63 characters (it is used in labels)",
}

DEFINITIONS: list[Definition] = [
    Definition(
        kind=workflow.KIND,
        plural=workflow.PLURAL,
        short_names=["wf"],
        spec_model=workflow.WorkflowSpec,
        status_model=workflow.WorkflowStatus,
        columns=[
            Column("Desired", ".spec.desiredStatus"),
            Column("Mode", ".spec.publishingMode"),
            Column("Color", ".status.actualStatus"),
            Column("Services", ".status.servicesReady", description="components at desired/total"),
            Column("Age", ".metadata.creationTimestamp", type="date"),
        ],
        spec_rules=workflow.SPEC_RULES,
        root_rules=[NAME_RULE],
    ),
    Definition(
        kind=flowrun.KIND,
        plural=flowrun.PLURAL,
        short_names=["fr"],
        spec_model=flowrun.FlowRunSpec,
        status_model=flowrun.FlowRunStatus,
        columns=[
            Column("Flow", ".spec.flowName"),
            Column("Version", ".spec.version"),
            Column("Run Type", ".spec.runType"),
            Column("Status", ".status.phase"),
            Column("Start", ".status.startTime", type="date"),
            Column("Duration", ".status.duration"),
            Column("Message", ".status.message"),
        ],
        spec_rules=flowrun.SPEC_RULES,
        root_rules=[NAME_RULE],
    ),
    Definition(
        kind=flow.KIND,
        plural=flow.PLURAL,
        short_names=["fl"],
        spec_model=flow.FlowSpec,
        status_model=flow.FlowStatus,
        columns=[
            Column("Version", ".status.version", type="integer"),
            Column("Level", ".spec.level"),
            # A column shows the first value of a list only, so the status spells them out.
            Column("Schedules", ".status.scheduleSummary"),
            Column("Last Run", ".status.lastRun.name"),
            Column("Last Status", ".status.lastRun.phase"),
            Column("Next Run", ".status.nextScheduleTime", description="the earliest next tick"),
            Column("Age", ".metadata.creationTimestamp", type="date"),
        ],
        spec_rules=flow.SPEC_RULES,
        root_rules=[NAME_RULE],
    ),
]


def render(d: Definition) -> str:
    header = "# Generated by `make crds` from operator/flow_operator/models: do not edit.\n"
    return header + yaml.safe_dump(crd(d), sort_keys=False, width=100)


def files() -> dict[str, str]:
    return {f"{d.plural}.{GROUP}.yaml": render(d) for d in DEFINITIONS}


def main(argv: list[str]) -> int:
    check = "--check" in argv
    args = [a for a in argv if not a.startswith("--")]
    out = Path(args[0] if args else "crds")
    stale = []
    for name, text in files().items():
        path = out / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(
            "CRDs drifted from the models (run `make crds`): " + ", ".join(stale), file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
