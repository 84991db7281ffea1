"""A service whose pods the API server refuses: the Deployment's ReplicaFailure condition
(the ReplicaSet controller's FailedCreate) becomes the service's `message`, named as a Pod
Security refusal when it is one; the colors stay those of its replica counts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flow_operator.models.workflow import Color, PublishingMode, RolloutStatus, Workflow
from flow_operator.status.aggregate import Observed, aggregate
from flow_operator.status.rollout import replica_failure
from tests.unit.kube_objects import deployment, workflow

NOW = datetime(2024, 2, 12, 10, 20, tzinfo=UTC)
# The API server's words, as the deployment controller copies them from its ReplicaSet.
POD_SECURITY_REFUSAL = (
    'pods "serving-api-5d9c8b7f6-x2k4q" is forbidden: violates PodSecurity "restricted:latest": '
    'allowPrivilegeEscalation != false (container "api" must set '
    "securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "
    '"api" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or '
    'container "api" must set securityContext.runAsNonRoot=true), seccompProfile (pod or '
    'container "api" must set securityContext.seccompProfile.type to "RuntimeDefault" or '
    '"Localhost")'
)
QUOTA_REFUSAL = (
    'pods "serving-api-5d9c8b7f6-p7r2m" is forbidden: exceeded quota: pods, requested: pods=1, '
    "used: pods=2, limited: pods=2"
)


def refused(cid: str, message: str, *, status: str = "True", **kw: Any) -> dict[str, Any]:
    """`deployment(cid, **kw)` with the ReplicaFailure condition the deployment controller sets."""
    body = deployment(cid, **kw)
    body["status"]["conditions"].append(
        {"type": "ReplicaFailure", "status": status, "reason": "FailedCreate", "message": message}
    )
    return body


def test_a_pod_security_refusal_is_named() -> None:
    assert replica_failure(refused("api", POD_SECURITY_REFUSAL)) == (
        f"pods refused by Pod Security: {POD_SECURITY_REFUSAL}"
    )


def test_another_refusal_keeps_its_own_words() -> None:
    assert replica_failure(refused("api", QUOTA_REFUSAL)) == QUOTA_REFUSAL


def test_no_message_without_a_true_replica_failure() -> None:
    assert replica_failure(None) is None
    assert replica_failure(deployment("api")) is None
    assert replica_failure(refused("api", POD_SECURITY_REFUSAL, status="False")) is None


def _status(mode: PublishingMode, **observed: dict[str, Any]) -> Any:
    wf = Workflow.from_body(workflow(services=[("api", 2), ("web", 1)], mode=mode.value))
    return aggregate(wf, Observed(deployments=observed), NOW)


def test_the_refused_service_says_so_and_stays_red() -> None:
    status = _status(
        PublishingMode.ASYNC,
        api=refused("api", POD_SECURITY_REFUSAL, replicas=2, updated=0),
        web=deployment("web", available=1),
    )
    api, web = status.details.services or []
    assert api.message == f"pods refused by Pod Security: {POD_SECURITY_REFUSAL}"
    assert (api.actual, api.status) == (0, Color.RED)
    assert api.rolloutStatus is RolloutStatus.IN_PROGRESS
    assert web.message is None and web.status is Color.GREEN
    # one service has instances, the other none: ORANGE, as docs/status.md's table says
    assert status.actualStatus is Color.ORANGE
    assert status.document()["details"]["services"][0]["message"] == api.message
    assert "message" not in status.document()["details"]["services"][1]


def test_a_partial_refusal_is_yellow_with_the_message() -> None:
    status = _status(
        PublishingMode.ASYNC,
        api=refused("api", QUOTA_REFUSAL, replicas=2, updated=1, available=1),
        web=deployment("web", available=1),
    )
    api = (status.details.services or [])[0]
    assert (api.status, api.message) == (Color.YELLOW, QUOTA_REFUSAL)
    assert status.actualStatus is Color.YELLOW


def test_a_refused_update_keeps_its_old_pods_green_with_the_message() -> None:
    # the new ReplicaSet's pods are refused; the old one's two still run
    status = _status(
        PublishingMode.ASYNC,
        api=refused("api", POD_SECURITY_REFUSAL, replicas=2, updated=0, total=2, available=2),
        web=deployment("web", available=1),
    )
    api = (status.details.services or [])[0]
    assert (api.status, api.rolloutStatus) == (Color.GREEN, RolloutStatus.IN_PROGRESS)
    assert api.message and api.message.startswith("pods refused by Pod Security: ")
    ready = {c.type: c.status for c in status.conditions or []}["Ready"]
    assert status.actualStatus is Color.GREEN and ready == "False"
