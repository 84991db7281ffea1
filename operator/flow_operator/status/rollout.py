"""`rolloutStatus` and `rolloutStatusReason` of one Deployment, as `kubectl rollout status`.

kubectl's status viewer decides Complete / in progress / failed from observedGeneration,
the Progressing condition and the replica counters. The reasons below name kubectl's
waiting messages; `RollingOutReplicaSet` is the reference document's own word for
"the new ReplicaSet is still being rolled out" and is kept as is (docs/status.md).

kubectl's viewer ignores the ReplicaFailure condition, so a Deployment whose pods the API
server refuses (quota, Pod Security) only rolls out forever; `replica_failure` gives the
service the refusal's words instead (its `message`).
"""

from __future__ import annotations

from typing import Any

from flow_operator.models.workflow import RolloutStatus
from flow_operator.objects.podstate import POD_SECURITY, condition

# Every reason this module emits (Complete carries none).
CREATING_DEPLOYMENT = "CreatingDeployment"
OBSERVING_SPEC = "ObservingSpecUpdate"
ROLLING_OUT = "RollingOutReplicaSet"
TERMINATING_OLD = "TerminatingOldReplicas"
DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
REASONS = (CREATING_DEPLOYMENT, OBSERVING_SPEC, ROLLING_OUT, TERMINATING_OLD, DEADLINE_EXCEEDED)


def rollout(deployment: dict[str, Any] | None) -> tuple[RolloutStatus, str | None]:
    if deployment is None:
        return RolloutStatus.IN_PROGRESS, CREATING_DEPLOYMENT
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    status = deployment.get("status") or {}
    if generation > status.get("observedGeneration", 0):
        return RolloutStatus.IN_PROGRESS, OBSERVING_SPEC
    progressing = condition(deployment, "Progressing")
    if progressing and progressing.get("reason") == DEADLINE_EXCEEDED:
        return RolloutStatus.FAILED, DEADLINE_EXCEEDED
    wanted = (deployment.get("spec") or {}).get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    if updated < wanted:
        return RolloutStatus.IN_PROGRESS, ROLLING_OUT
    if status.get("replicas", 0) > updated:
        return RolloutStatus.IN_PROGRESS, TERMINATING_OLD
    if status.get("availableReplicas", 0) < updated:
        return RolloutStatus.IN_PROGRESS, ROLLING_OUT
    return RolloutStatus.COMPLETE, None


def replica_failure(deployment: dict[str, Any] | None) -> str | None:
    """The Deployment's ReplicaFailure message (its ReplicaSet could not create pods), named
    as a Pod Security refusal when it is one; None while pods can be made."""
    failure = condition(deployment or {}, "ReplicaFailure")
    if failure is None or failure.get("status") != "True":
        return None
    message = str(failure.get("message") or failure.get("reason") or "pods refused")
    if POD_SECURITY in message:
        return f"pods refused by Pod Security: {message}"
    return message
