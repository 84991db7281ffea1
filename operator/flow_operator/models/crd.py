"""What a kind's CustomResourceDefinition says beyond its schema: names, scope, columns, rules.

Each model module exports one `CRD` value beside its models, so adding a kind is writing
its module and naming its `CRD` in the list `flow_operator.crds` renders; that renderer
holds no knowledge of any kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

Rule = Mapping[str, str]

# Every kind's names go into labels, which take at most 63 characters.
NAME_RULE: Rule = {
    "rule": "size(self.metadata.name) <= 63",
    "message": "metadata.name must be at most 63 characters (it is used in labels)",
}


@dataclass(frozen=True)
class Column:
    """One `kubectl get` column (an additionalPrinterColumn)."""

    name: str
    json_path: str
    type: str = "string"
    priority: int = 0
    description: str = ""


@dataclass(frozen=True)
class CrdDefinition:
    """A kind's CRD: its names, its spec and status models, printer columns and CEL rules."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec_model: type[BaseModel]
    status_model: type[BaseModel]
    columns: tuple[Column, ...]
    spec_rules: tuple[Rule, ...] = ()
    root_rules: tuple[Rule, ...] = (NAME_RULE,)
    categories: tuple[str, ...] = ("flowops",)
    scope: Literal["Namespaced", "Cluster"] = "Namespaced"
