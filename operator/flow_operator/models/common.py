"""Shared model pieces: camelCase base models, metadata, kstatus conditions, container settings.

Every model serialises with the Kubernetes spelling (camelCase) and rejects unknown
fields, so a typo in a manifest is an error rather than silently ignored data.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
# A Kubernetes quantity ("500m", "1Gi", "2"); the API server does the exact parsing.
QUANTITY = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+|[numkMGTPE]i?|Ki|k)?$"


class KubeModel(BaseModel):
    """Base for everything that lives in a manifest: camelCase, strict about unknown keys."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
    )

    def dump(self) -> dict[str, Any]:
        """The manifest form: camelCase, no empty optionals."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ObjectMeta(BaseModel):
    """The few metadata fields the operator reads."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str
    namespace: str = "default"
    uid: str = ""
    generation: int = 1
    resourceVersion: str = ""
    creationTimestamp: str | None = None
    deletionTimestamp: str | None = None


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(KubeModel):
    """A standard `metav1.Condition` (kstatus reads Ready, Reconciling and Stalled)."""

    type: Annotated[str, Field(max_length=316)]
    status: ConditionStatus
    reason: Annotated[str, Field(max_length=1024)]
    message: Annotated[str, Field(max_length=32768)] = ""
    last_transition_time: str
    observed_generation: int | None = None


def rfc3339(ts: datetime) -> str:
    """Kubernetes' timestamp format: UTC, second precision, trailing Z."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class EnvVar(KubeModel):
    name: Annotated[str, Field(min_length=1, max_length=253, pattern=ENV_NAME)]
    value: Annotated[str, Field(max_length=32768)] = ""


class ContainerPort(KubeModel):
    name: Annotated[str | None, Field(max_length=15, pattern=DNS1123_LABEL)] = None
    container_port: Annotated[int, Field(ge=1, le=65535)]
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"


# int or string, like Kubernetes' own quantities: `cpu: 1` and `cpu: "500m"` both work.
Quantity = Annotated[int, Field(ge=0)] | Annotated[str, Field(max_length=64, pattern=QUANTITY)]


class Resources(KubeModel):
    requests: Annotated[dict[str, Quantity] | None, Field(max_length=16)] = None
    limits: Annotated[dict[str, Quantity] | None, Field(max_length=16)] = None


class Toleration(KubeModel):
    key: Annotated[str | None, Field(max_length=316)] = None
    operator: Literal["Exists", "Equal"] | None = None
    value: Annotated[str | None, Field(max_length=63)] = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


# Container fields, shared by Workflow components and FlowRun tasks.
Image = Annotated[str, Field(min_length=1, max_length=512)]
Command = Annotated[list[Annotated[str, Field(max_length=4096)]] | None, Field(max_length=64)]
Args = Annotated[list[Annotated[str, Field(max_length=4096)]] | None, Field(max_length=256)]
EnvList = Annotated[list[EnvVar] | None, Field(max_length=128)]


class ContainerSettings(KubeModel):
    """What a user expects to set on a container; the builders copy it verbatim."""

    image: Image
    command: Command = None
    args: Args = None
    env: EnvList = None
    resources: Resources | None = None
    node_selector: Annotated[
        dict[str, Annotated[str, Field(max_length=63)]] | None, Field(max_length=32)
    ] = None
    tolerations: Annotated[list[Toleration] | None, Field(max_length=32)] = None
