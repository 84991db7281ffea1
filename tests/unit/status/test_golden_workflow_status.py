"""The six examples of the reference document, rebuilt from Kubernetes objects.

Each scenario's input is what the cluster would hold (Deployments, ReplicaSets, Pods),
stored as JSON beside the example it must reproduce (in/); aggregation reproduces the example
field for field; `age` depends on the
clock and is checked for Go duration syntax, then normalised.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flow_operator.models.workflow import Workflow
from flow_operator.status.aggregate import Observed, aggregate

GOLDEN = Path(__file__).parents[2] / "golden" / "workflow"
NOW = datetime(2024, 2, 12, 10, 14, 53, tzinfo=UTC)
GO_DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+(\.\d+)?(ns|µs|ms|s))$")
Scenario = tuple[dict[str, Any], Observed]


def _load(name: str) -> Callable[[], Scenario]:
    """The scenario `name`: what the cluster holds, read from `in/<name>.json` (the
    Workflow, and its Deployments, ReplicaSets and Pods by component id)."""

    def scenario() -> Scenario:
        doc = json.loads((GOLDEN / "in" / f"{name}.json").read_text())
        observed = doc["observed"]
        return doc["workflow"], Observed(
            deployments=observed["deployments"],
            replicasets=observed["replicasets"],
            pods=observed["pods"],
        )

    return scenario


# Seed JSON in (`in/<name>.json`), seed JSON out (`<name>.json`, the reference document's).
SCENARIOS: dict[str, Callable[[], Scenario]] = {
    p.stem: _load(p.stem) for p in sorted((GOLDEN / "in").glob("*.json"))
}


def _normalise_ages(doc: dict[str, Any]) -> dict[str, Any]:
    for svc in doc.get("details", {}).get("services", []):
        for replica in svc.get("replicasDetail", []):
            assert GO_DURATION.match(replica["age"]), replica["age"]
            replica["age"] = "<age>"
    return doc


def test_every_seed_example_has_a_scenario() -> None:
    outputs = [p.stem for p in GOLDEN.glob("*.json")]
    assert sorted(outputs) == sorted(SCENARIOS) and len(SCENARIOS) == 6


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_seed_example_reproduced(name: str) -> None:
    body, observed = SCENARIOS[name]()
    status = aggregate(Workflow.from_body(body), observed, NOW)
    expected = json.loads((GOLDEN / f"{name}.json").read_text())
    assert _normalise_ages(status.document()) == _normalise_ages(expected)


def test_golden_copies_match_the_shared_seeds() -> None:
    shared = Path(__file__).parents[4] / "shared" / "seeds" / "workflow-status-examples"
    if not shared.is_dir():
        pytest.skip("shared/ is not beside this checkout")
    for path in shared.glob("*.json"):
        assert json.loads(path.read_text()) == json.loads((GOLDEN / path.name).read_text())
