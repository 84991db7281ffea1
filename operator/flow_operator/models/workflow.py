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

    id: Annotated[str, Field(min_length=1, max_length=30, pattern=DNS1123_LABEL)]
    replicas: Annotated[int, Field(ge=0, le=1000)] = 1
    ports: Annotated[list[ContainerPort] | None, Field(max_length=16)] = None


class SecretRef(KubeModel):
    """A Secret in the Workflow's namespace; each of its values is one accepted API key."""

    name: Annotated[str, Field(min_length=1, max_length=253)]


class WorkflowSpec(KubeModel):
    desired_status: DesiredStatus
    publishing_mode: PublishingMode = PublishingMode.ASYNC
    stream: Component | None = None
    services: Annotated[list[Component], Field(min_length=1, max_length=MAX_SERVICES)]
    api_key_secret_ref: SecretRef | None = None
    progress_deadline_seconds: Annotated[int, Field(ge=10, le=86400)] = 600

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
    name: str
    ready: bool
    available: bool
    startedAt: str | None = None
    age: str
    status: str
    statusMessage: str | None = None
    atLatestSpec: bool


class StreamStatus(StatusModel):
    id: str
    desired: int
    actual: int
    status: Color


class ServiceStatus(StreamStatus):
    rolloutStatus: RolloutStatus
    rolloutStatusReason: str | None = None
    replicasDetail: list[ReplicaDetail] = Field(default_factory=list)


class Details(StatusModel):
    stream: StreamStatus | None = None
    services: list[ServiceStatus] | None = None


class WorkflowStatus(StatusModel):
    desiredStatus: DesiredStatus
    actualStatus: Color
    publishingMode: PublishingMode
    details: Details = Field(default_factory=Details)
    observedGeneration: int | None = None
    conditions: list[Condition] | None = None
    servicesReady: str | None = None
    firstPublishedAt: str | None = None

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
