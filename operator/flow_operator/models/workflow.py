"""The Workflow resource: a set of long-running services published as Deployments.

The status half mirrors the reference document (`details.stream`, `details.services[]`,
`replicasDetail[]`) field for field; `observedGeneration`, `conditions`, `servicesReady`
and `firstPublishedAt` are the Kubernetes-side additions described in docs/status.md.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flow_operator.models.common import (
    DNS1123_LABEL,
    Condition,
    ContainerPort,
    ContainerSettings,
    KubeModel,
    ObjectMeta,
)
from flow_operator.models.crd import Column, CrdDefinition
from flow_operator.models.security import ContainerSecurity, PodSecurity

KIND = "Workflow"
PLURAL = "workflows"
MAX_SERVICES = 50


class DesiredStatus(StrEnum):
    PUBLISHED = "PUBLISHED"
    UNPUBLISHED = "UNPUBLISHED"


class PublishingMode(StrEnum):
    SYNC = "SYNC"
    ASYNC = "ASYNC"


class Color(StrEnum):
    GREEN = "GREEN"
    YELLOW = "YELLOW"
    ORANGE = "ORANGE"
    RED = "RED"


class RolloutStatus(StrEnum):
    IN_PROGRESS = "InProgress"
    COMPLETE = "Complete"
    FAILED = "Failed"


class Component(ContainerSettings):
    """One service (or the data stream): becomes one Deployment and one ClusterIP Service."""

    id: Annotated[
        str,
        Field(
            min_length=1,
            max_length=30,
            pattern=DNS1123_LABEL,
            description="The component's id (a DNS label, unique in the Workflow): part of its "
            "Deployment's and Service's names.",
        ),
    ]
    replicas: Annotated[
        int, Field(ge=0, le=1000, description="How many pods to run, 0 to 1000 (default 1).")
    ] = 1
    ports: Annotated[
        list[ContainerPort] | None,
        Field(
            max_length=16,
            description="Ports the container listens on; with any, a ClusterIP Service is made.",
        ),
    ] = None
    pod_security_context: PodSecurity = None
    container_security_context: ContainerSecurity = None


class SecretRef(KubeModel):
    """A Secret in the Workflow's namespace; each of its values is one accepted API key."""

    name: Annotated[str, Field(min_length=1, max_length=253, description="The Secret's name.")]


class WorkflowSpec(KubeModel):
    """What to publish: the services (and, in SYNC mode, the data stream) and how."""

    desired_status: Annotated[
        DesiredStatus,
        Field(description="PUBLISHED: run the services; UNPUBLISHED: remove them."),
    ]
    publishing_mode: Annotated[
        PublishingMode,
        Field(
            description="ASYNC (default): services only; SYNC: a data stream in front, required."
        ),
    ] = PublishingMode.ASYNC
    stream: Annotated[
        Component | None,
        Field(description="The data-stream service: required in SYNC mode, refused in ASYNC."),
    ] = None
    services: Annotated[
        list[Component],
        Field(
            min_length=1,
            max_length=MAX_SERVICES,
            description="The long-running services, 1 to 50, unique by id; each becomes a "
            "Deployment.",
        ),
    ]
    api_key_secret_ref: Annotated[
        SecretRef | None,
        Field(description="A Secret whose values are the API keys the HTTP API accepts."),
    ] = None
    progress_deadline_seconds: Annotated[
        int,
        Field(
            ge=10,
            le=86400,
            description="Seconds a rollout may make no progress before it is Failed (RED); "
            "10 to 86400, default 600.",
        ),
    ] = 600

    @model_validator(mode="after")
    def _stream_iff_sync(self) -> WorkflowSpec:
        # The CRD enforces the same rules with CEL; this keeps the pure core honest.
        if self.publishing_mode is PublishingMode.SYNC and self.stream is None:
            raise ValueError("spec.stream is required when spec.publishingMode is SYNC")
        if self.publishing_mode is PublishingMode.ASYNC and self.stream is not None:
            raise ValueError("spec.stream is only allowed when spec.publishingMode is SYNC")
        ids = [c.id for c in self.components()]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"component ids must be unique, repeated: {', '.join(dupes)}")
        return self

    def components(self) -> list[Component]:
        """The stream (if any) first, then the services: everything that gets a Deployment."""
        return ([self.stream] if self.stream else []) + list(self.services)


# CEL rules the API server enforces at admission (kept next to the model they guard).
SPEC_RULES: list[dict[str, str]] = [
    {
        "rule": "self.publishingMode != 'SYNC' || has(self.stream)",
        "message": "spec.stream is required when spec.publishingMode is SYNC",
        "fieldPath": ".stream",
    },
    {
        "rule": "self.publishingMode != 'ASYNC' || !has(self.stream)",
        "message": "spec.stream is only allowed when spec.publishingMode is SYNC",
        "fieldPath": ".stream",
    },
    {
        "rule": "self.services.all(s, self.services.exists_one(t, t.id == s.id))",
        "message": "spec.services[].id must be unique",
        "fieldPath": ".services",
    },
    {
        "rule": "!has(self.stream) || self.services.all(s, s.id != self.stream.id)",
        "message": "spec.stream.id must differ from every spec.services[].id",
        "fieldPath": ".stream.id",
    },
]


class StatusModel(BaseModel):
    """Status documents keep the reference document's spelling and omit absent fields."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ReplicaDetail(StatusModel):
    """One pod of a service."""

    name: Annotated[str, Field(description="The pod's name.")]
    ready: Annotated[bool, Field(description="The pod's Ready condition.")]
    available: Annotated[
        bool, Field(description="Ready for at least the Deployment's minReadySeconds.")
    ]
    startedAt: Annotated[
        str | None,
        Field(description="The pod's status.startTime (RFC 3339); absent before a node took it."),
    ] = None
    age: Annotated[
        str,
        Field(description="Since the pod's creation, in Go's duration format, as last written."),
    ]
    status: Annotated[
        str,
        Field(description="kubectl's STATUS column: Running, Pending, Unschedulable, OOMKilled..."),
    ]
    statusMessage: Annotated[
        str | None, Field(description="The scheduler's or the container's message, if any.")
    ] = None
    atLatestSpec: Annotated[
        bool, Field(description="The pod runs the Deployment's newest ReplicaSet.")
    ]


class StreamStatus(StatusModel):
    """A component's replicas and color."""

    id: Annotated[str, Field(description="The component's id in the spec.")]
    desired: Annotated[int, Field(description="The replicas the spec asks for.")]
    actual: Annotated[int, Field(description="Replicas ready and available.")]
    status: Annotated[
        Color, Field(description="GREEN: actual reaches desired; YELLOW: some; RED: none.")
    ]


class ServiceStatus(StreamStatus):
    """A service's replicas, color, rollout and pods."""

    rolloutStatus: Annotated[
        RolloutStatus,
        Field(description="As kubectl rollout status: InProgress, Complete or Failed."),
    ]
    rolloutStatusReason: Annotated[
        str | None,
        Field(description="Why not Complete (RollingOutReplicaSet...); absent when Complete."),
    ] = None
    message: Annotated[
        str | None,
        Field(
            description="Why its pods cannot be created: the Deployment's ReplicaFailure "
            "message ('pods refused by Pod Security: ...' for a Pod Security refusal); "
            "absent while pods can be created."
        ),
    ] = None
    replicasDetail: Annotated[list[ReplicaDetail], Field(description="One entry per pod.")] = Field(
        default_factory=list
    )


class Details(StatusModel):
    """Each component's state; empty while unpublished."""

    stream: Annotated[
        StreamStatus | None, Field(description="The data stream's state (SYNC only).")
    ] = None
    services: Annotated[
        list[ServiceStatus] | None, Field(description="Each service's state, in spec order.")
    ] = None


class WorkflowStatus(StatusModel):
    """The reference Workflow status document, plus kstatus fields (docs/status.md)."""

    desiredStatus: Annotated[DesiredStatus, Field(description="The spec's desiredStatus.")]
    actualStatus: Annotated[
        Color,
        Field(description="How far from desired: GREEN, YELLOW, ORANGE or RED (docs/status.md)."),
    ]
    publishingMode: Annotated[PublishingMode, Field(description="The spec's publishingMode.")]
    details: Annotated[Details, Field(description="Each component's state.")] = Field(
        default_factory=Details
    )
    observedGeneration: Annotated[
        int | None, Field(description="The generation this status describes.")
    ] = None
    conditions: Annotated[
        list[Condition] | None, Field(description="Ready, Reconciling and Stalled (kstatus).")
    ] = None
    servicesReady: Annotated[
        str | None,
        Field(description="Components at desired / all, e.g. 2/3: the SERVICES column."),
    ] = None
    firstPublishedAt: Annotated[
        str | None, Field(description="When the operator first saw it PUBLISHED (RFC 3339).")
    ] = None
    colorSince: Annotated[
        str | None,
        Field(
            description="When actualStatus last changed to its current color (RFC 3339, "
            "microseconds): the run store's color history is rebuilt from it after a restart."
        ),
    ] = None

    def document(self) -> dict[str, Any]:
        """The reference document's view (what the HTTP API serves): no Kubernetes extras."""
        full = self.dump()
        return {k: full[k] for k in ("desiredStatus", "actualStatus", "publishingMode", "details")}


class Workflow(BaseModel):
    """A whole Workflow object as read from the API (metadata, spec, status)."""

    model_config = ConfigDict(extra="ignore")

    metadata: ObjectMeta
    spec: WorkflowSpec
    status: WorkflowStatus | None = None

    @classmethod
    def from_body(cls, body: Any) -> Workflow:
        """Parse an API body; an old or hand-edited status never blocks reading the spec."""
        data = dict(body)
        status = data.pop("status", None)
        wf = cls.model_validate(data)
        if status:
            try:
                wf.status = WorkflowStatus.model_validate(status)
            except ValueError:
                wf.status = None
        return wf


CRD = CrdDefinition(
    kind=KIND,
    plural=PLURAL,
    short_names=("wf",),
    spec_model=WorkflowSpec,
    status_model=WorkflowStatus,
    columns=(
        Column("Desired", ".spec.desiredStatus"),
        Column("Mode", ".spec.publishingMode"),
        Column("Color", ".status.actualStatus"),
        Column("Services", ".status.servicesReady", description="components at desired/total"),
        Column("Age", ".metadata.creationTimestamp", type="date"),
    ),
    spec_rules=tuple(SPEC_RULES),
)
