"""Bad input: every manifest here is refused at admission with a message naming the field,
and nothing is created. (Specs only the operator can judge go Stalled: see the unit tests
and test_workflow_the_schema_cannot_judge_goes_stalled.)"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.e2e


def _wf(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "apiVersion": "flowops.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "bad"},
        "spec": {
            "desiredStatus": "PUBLISHED",
            "publishingMode": "ASYNC",
            "services": [{"id": "svc", "image": "x:1", "replicas": 1}],
        },
    }
    for key, value in spec.items():
        if value is None:
            del base["spec"][key]
        else:
            base["spec"][key] = value
    return base


def _svc(**fields: Any) -> list[dict[str, Any]]:
    svc: dict[str, Any] = {"id": "svc", "image": "x:1", "replicas": 1}
    for key, value in fields.items():
        if value is None:
            del svc[key]
        else:
            svc[key] = value
    return [svc]


LONG = "a" * 70
# (case id, manifest, a fragment the API server's message must contain)
WORKFLOW_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("no-spec", {k: v for k, v in _wf().items() if k != "spec"}, "spec: Required value"),
    ("no-desired-status", _wf(desiredStatus=None), "spec.desiredStatus: Required value"),
    (
        "desired-status-enum",
        _wf(desiredStatus="LIVE"),
        'spec.desiredStatus: Unsupported value: "LIVE"',
    ),
    ("mode-enum", _wf(publishingMode="BATCH"), 'spec.publishingMode: Unsupported value: "BATCH"'),
    ("no-services", _wf(services=None), "spec.services: Required value"),
    ("empty-services", _wf(services=[]), "spec.services: Invalid value"),
    ("negative-replicas", _wf(services=_svc(replicas=-1)), "spec.services[0].replicas"),
    ("huge-replicas", _wf(services=_svc(replicas=100000)), "spec.services[0].replicas"),
    ("replicas-string", _wf(services=_svc(replicas="two")), "spec.services[0].replicas"),
    ("no-image", _wf(services=_svc(image=None)), "spec.services[0].image: Required value"),
    ("empty-image", _wf(services=_svc(image="")), "spec.services[0].image"),
    ("no-id", _wf(services=_svc(id=None)), "spec.services[0].id: Required value"),
    ("id-not-dns", _wf(services=_svc(id="Not_DNS")), "spec.services[0].id"),
    ("id-too-long", _wf(services=_svc(id=LONG)), "spec.services[0].id"),
    ("duplicate-ids", _wf(services=_svc() + _svc()), "spec.services[].id must be unique"),
    (
        "sync-without-stream",
        _wf(publishingMode="SYNC"),
        "spec.stream is required when spec.publishingMode is SYNC",
    ),
    (
        "async-with-stream",
        _wf(stream={"id": "benthos", "image": "b:4"}),
        "spec.stream is only allowed when spec.publishingMode is SYNC",
    ),
    (
        "stream-id-clash",
        _wf(publishingMode="SYNC", stream={"id": "svc", "image": "b:4"}),
        "spec.stream.id must differ",
    ),
    (
        "port-out-of-range",
        _wf(services=_svc(ports=[{"containerPort": 70000}])),
        "spec.services[0].ports[0].containerPort",
    ),
    (
        "port-protocol",
        _wf(services=_svc(ports=[{"containerPort": 80, "protocol": "HTTP"}])),
        "spec.services[0].ports[0].protocol",
    ),
    (
        "env-bad-name",
        _wf(services=_svc(env=[{"name": "1 bad", "value": "x"}])),
        "spec.services[0].env[0].name",
    ),
    (
        "toleration-effect",
        _wf(services=_svc(tolerations=[{"key": "k", "effect": "Sometimes"}])),
        "spec.services[0].tolerations[0].effect",
    ),
    ("deadline-too-small", _wf(progressDeadlineSeconds=1), "spec.progressDeadlineSeconds"),
    (
        "too-many-services",
        _wf(services=[{"id": f"s{i}", "image": "x"} for i in range(51)]),
        "spec.services: Too many",
    ),
    ("unknown-field", _wf(color="GREEN"), 'unknown field "spec.color"'),
    ("oversize-image", _wf(services=_svc(image="x" * 600)), "spec.services[0].image: Too long"),
    ("oversize-args", _wf(services=_svc(args=["a"] * 300)), "spec.services[0].args: Too many"),
    (
        "name-too-long",
        {**_wf(), "metadata": {"name": "w" * 64}},
        "metadata.name must be at most 63 characters",
    ),
    ("secret-ref-empty", _wf(apiKeySecretRef={"name": ""}), "spec.apiKeySecretRef.name"),
]


@pytest.mark.parametrize(
    ("case", "manifest", "fragment"), WORKFLOW_CASES, ids=[c[0] for c in WORKFLOW_CASES]
)
def test_refused_at_admission(
    cluster: Any, namespace: str, case: str, manifest: dict[str, Any], fragment: str
) -> None:
    done = cluster.kubectl(
        "-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(manifest), check=False
    )
    assert done.returncode != 0, f"{case} was accepted"
    assert fragment in done.stderr, done.stderr
    name = manifest["metadata"]["name"]
    left = cluster.kubectl(
        "-n", namespace, "get", "workflow", name, "--ignore-not-found", "-o", "name", check=False
    )
    assert left.stdout.strip() == ""


def test_workflow_the_schema_cannot_judge_goes_stalled(
    cluster: Any, namespace: str, operator: Any
) -> None:
    manifest = _wf(services=_svc(resources={"requests": {"cpu": "plenty"}}))
    manifest["metadata"]["name"] = "stalls"
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(manifest))
    deadline = time.monotonic() + 30
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        out = cluster.kubectl("-n", namespace, "get", "workflow", "stalls", "-o", "json").stdout
        status = json.loads(out).get("status") or {}
        if status.get("conditions"):
            break
        time.sleep(0.2)
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "InvalidSpec"
    assert "resources.requests.cpu" in stalled["message"]
    deployments = cluster.kubectl("-n", namespace, "get", "deployments", "-o", "name").stdout
    assert deployments.strip() == ""  # nothing partially created


def test_cases_are_distinct() -> None:
    dumps = [json.dumps(m, sort_keys=True) for _, m, _ in WORKFLOW_CASES]
    assert len(set(dumps)) == len(dumps) and len(WORKFLOW_CASES) >= 25
