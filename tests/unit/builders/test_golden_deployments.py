"""The Deployments the operator creates for Workflow components, against golden files.

Each scenario is a component (tests/golden/deployment/<name>.json holds what the builder
must produce for it). After an intended change, regenerate them with
`UPDATE_GOLDEN=1 pytest tests/unit/builders/test_golden_deployments.py` and review the diff.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from flow_operator.builders.deployment import desired_deployment
from flow_operator.models.security import SecurityDefault
from flow_operator.models.workflow import Workflow

GOLDEN = Path(__file__).parents[2] / "golden" / "deployment"
EXAMPLE = Path(__file__).parents[3] / "examples" / "workflow-async.yaml"
Body = dict[str, Any]


def _example(security: SecurityDefault) -> Body:
    body: Body = next(yaml.safe_load_all(EXAMPLE.read_text()))
    body["metadata"].update(namespace="analytics", uid="wf-uid")
    wf = Workflow.from_body(body)
    return desired_deployment(wf, wf.spec.services[0], security)


def _hardened() -> Body:
    """A service's own contexts over the restricted default, and env from a Secret."""
    service = {
        "id": "api",
        "image": "registry.example.com/flows/api:1",
        "podSecurityContext": {"runAsUser": 10001, "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/api.json"}},
        "containerSecurityContext": {"readOnlyRootFilesystem": True, "runAsNonRoot": True},
        "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api-token", "key": "token"}}}],
    }  # fmt: skip
    body: Body = {
        "apiVersion": "flowops.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "serving", "namespace": "analytics", "uid": "wf-uid"},
        "spec": {"desiredStatus": "PUBLISHED", "services": [service]},
    }
    wf = Workflow.from_body(body)
    return desired_deployment(wf, wf.spec.services[0], SecurityDefault.RESTRICTED)


SCENARIOS: dict[str, Callable[[], Body]] = {
    "example-no-default": lambda: _example(SecurityDefault.NONE),
    "example-restricted-default": lambda: _example(SecurityDefault.RESTRICTED),
    "security-contexts-and-secret-env": _hardened,
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


# The example's spec hash as the builder made it before securityContexts existed.
HASH_BEFORE = "d5dca880f79cb9a5"


def test_without_a_default_or_contexts_the_deployment_is_what_it_was() -> None:
    """`none` and no contexts: no securityContext key and the spec hash of before, so
    upgrading the operator rolls no Deployment; `restricted` changes the hash (a rollout)."""
    built = _example(SecurityDefault.NONE)
    pod = built["spec"]["template"]["spec"]
    assert "securityContext" not in pod
    assert "securityContext" not in pod["containers"][0]
    assert built["metadata"]["annotations"]["flowops.io/spec-hash"] == HASH_BEFORE
    restricted = _example(SecurityDefault.RESTRICTED)
    assert restricted["metadata"]["annotations"]["flowops.io/spec-hash"] != HASH_BEFORE
