"""CustomResourceDefinitions generated from the pydantic models: the one source of truth.

`python -m flow_operator.crds crds/` writes one YAML file per kind; `--check` exits
non-zero when the checked-in files differ from what the models generate. The JSON
schema pydantic produces is rewritten into a Kubernetes *structural* schema: `$ref`s
inlined, `Optional[X]` collapsed to `X`, titles and `additionalProperties: false`
dropped (the API server prunes and, with strict field validation, rejects unknown
fields), and CEL rules attached where the models declare them. Field descriptions
(`Field(description=...)`, class docstrings for objects) are kept: `kubectl explain` prints
them. Names, columns and rules are each model module's `CRD` (models/crd.py); this module
knows no kind beyond the list `KINDS`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from flow_operator import GROUP, VERSION
from flow_operator.models import flow, flowrun, workflow
from flow_operator.models.crd import CrdDefinition

Schema = dict[str, Any]


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


def crd(d: CrdDefinition) -> Schema:
    spec = model_schema(d.spec_model, "validation", keep_defaults=True)
    if d.spec_rules:
        spec["x-kubernetes-validations"] = [dict(r) for r in d.spec_rules]
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
        root["x-kubernetes-validations"] = [dict(r) for r in d.root_rules]
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
            "scope": d.scope,
            "names": {
                "kind": d.kind,
                "listKind": f"{d.kind}List",
                "plural": d.plural,
                "singular": d.kind.lower(),
                "shortNames": list(d.short_names),
                "categories": list(d.categories),
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


# Every kind the operator serves; a new kind's model module exports its `CRD` and joins here.
KINDS: tuple[CrdDefinition, ...] = (workflow.CRD, flowrun.CRD, flow.CRD)


def render(d: CrdDefinition) -> str:
    header = "# Generated by `make crds` from operator/flow_operator/models: do not edit.\n"
    return header + yaml.safe_dump(crd(d), sort_keys=False, width=100)


def files() -> dict[str, str]:
    return {f"{d.plural}.{GROUP}.yaml": render(d) for d in KINDS}


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
