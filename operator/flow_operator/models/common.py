"""Shared model pieces: camelCase base models, metadata, kstatus conditions, container settings.

Every model serialises with the Kubernetes spelling (camelCase) and rejects unknown
fields, so a typo in a manifest is an error rather than silently ignored data.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
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

    type: Annotated[
        str, Field(max_length=316, description="The condition: Ready, Reconciling or Stalled.")
    ]
    status: Annotated[
        ConditionStatus, Field(description="Whether it holds: True, False or Unknown.")
    ]
    reason: Annotated[
        str, Field(max_length=1024, description="Why, in one CamelCase word (Published...).")
    ]
    message: Annotated[
        str, Field(max_length=32768, description="Why, in words for a person; may be empty.")
    ] = ""
    last_transition_time: Annotated[
        str, Field(description="When status last changed (RFC 3339, UTC).")
    ]
    observed_generation: Annotated[
        int | None, Field(description="The metadata.generation the condition was set from.")
    ] = None


class KeySelector(KubeModel):
    """One key of a Secret or ConfigMap in the object's namespace."""

    name: Annotated[
        str,
        Field(min_length=1, max_length=253, description="The Secret's or ConfigMap's name."),
    ]
    key: Annotated[
        str,
        Field(
            min_length=1,
            max_length=253,
            pattern=r"^[-._a-zA-Z0-9]+$",
            description="The key whose value the variable gets.",
        ),
    ]
    optional: Annotated[
        bool | None,
        Field(description="true: a missing object or key leaves the variable unset."),
    ] = None


class EnvVarSource(KubeModel):
    """Where a variable's value comes from: exactly one Secret or ConfigMap key."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.secretKeyRef) != has(self.configMapKeyRef)",
                    "message": "env[].valueFrom takes exactly one of secretKeyRef or "
                    "configMapKeyRef",
                }
            ]
        }
    )

    secret_key_ref: Annotated[
        KeySelector | None,
        Field(description="A key of a Secret: credentials stay out of the spec."),
    ] = None
    config_map_key_ref: Annotated[
        KeySelector | None, Field(description="A key of a ConfigMap.")
    ] = None

    @model_validator(mode="after")
    def _one(self) -> EnvVarSource:
        if (self.secret_key_ref is None) == (self.config_map_key_ref is None):
            raise ValueError("valueFrom takes exactly one of secretKeyRef or configMapKeyRef")
        return self


class EnvVar(KubeModel):
    """An environment variable of the container: a value, or a Secret's or ConfigMap's key."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.value) != has(self.valueFrom)",
                    "message": "env[] takes exactly one of value or valueFrom",
                }
            ]
        }
    )

    name: Annotated[
        str,
        Field(min_length=1, max_length=253, pattern=ENV_NAME, description="The variable's name."),
    ]
    value: Annotated[
        str | None,
        Field(max_length=32768, description="Its value (may be empty); or valueFrom."),
    ] = None
    value_from: Annotated[
        EnvVarSource | None,
        Field(description="Instead of value: a Secret's (secretKeyRef) or ConfigMap's key."),
    ] = None

    @model_validator(mode="after")
    def _value_or_source(self) -> EnvVar:
        if (self.value is None) == (self.value_from is None):
            raise ValueError(
                f"env {self.name}: takes exactly one of value or valueFrom "
                '(value: "" for an empty one)'
            )
        return self


class ContainerPort(KubeModel):
    """A port the container listens on; the Service exposes it under the same number."""

    name: Annotated[
        str | None,
        Field(max_length=15, pattern=DNS1123_LABEL, description="The port's name (a DNS label)."),
    ] = None
    container_port: Annotated[
        int, Field(ge=1, le=65535, description="The port number, 1 to 65535.")
    ]
    protocol: Annotated[
        Literal["TCP", "UDP", "SCTP"], Field(description="TCP (default), UDP or SCTP.")
    ] = "TCP"


# int or string, like Kubernetes' own quantities: `cpu: 1` and `cpu: "500m"` both work.
Quantity = Annotated[int, Field(ge=0)] | Annotated[str, Field(max_length=64, pattern=QUANTITY)]


class Resources(KubeModel):
    """Compute resources of the container, as in a pod spec (cpu, memory...)."""

    requests: Annotated[
        dict[str, Quantity] | None,
        Field(
            max_length=16,
            description="What the scheduler reserves, by resource name: quantities such as "
            "500m or 64Mi.",
        ),
    ] = None
    limits: Annotated[
        dict[str, Quantity] | None,
        Field(max_length=16, description="The most the container may use, by resource name."),
    ] = None


class Toleration(KubeModel):
    """A node taint the pods tolerate, as in a pod spec."""

    key: Annotated[
        str | None, Field(max_length=316, description="The taint's key; empty: every key.")
    ] = None
    operator: Annotated[
        Literal["Exists", "Equal"] | None,
        Field(description="Equal (the Kubernetes default) or Exists (any value)."),
    ] = None
    value: Annotated[
        str | None, Field(max_length=63, description="The taint's value, with Equal.")
    ] = None
    effect: Annotated[
        Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None,
        Field(description="The taint effect matched; empty: every effect."),
    ] = None
    toleration_seconds: Annotated[
        int | None,
        Field(description="With NoExecute: seconds the pod stays once tainted; absent: forever."),
    ] = None


# Container fields, shared by Workflow components and FlowRun tasks.
Image = Annotated[
    str, Field(min_length=1, max_length=512, description="The container image (registry/name:tag).")
]
Command = Annotated[
    list[Annotated[str, Field(max_length=4096)]] | None,
    Field(max_length=64, description="The entrypoint; absent: the image's ENTRYPOINT."),
]
Args = Annotated[
    list[Annotated[str, Field(max_length=4096)]] | None,
    Field(max_length=256, description="Arguments to the entrypoint; absent: the image's CMD."),
]
EnvList = Annotated[
    list[EnvVar] | None,
    Field(max_length=128, description="Environment variables of the container (at most 128)."),
]


class ContainerSettings(KubeModel):
    """What a user expects to set on a container; the builders copy it verbatim."""

    image: Image
    command: Command = None
    args: Args = None
    env: EnvList = None
    resources: Resources | None = None
    node_selector: Annotated[
        dict[str, Annotated[str, Field(max_length=63)]] | None,
        Field(max_length=32, description="Node labels the pods' nodes must carry."),
    ] = None
    tolerations: Annotated[
        list[Toleration] | None,
        Field(max_length=32, description="Node taints the pods tolerate."),
    ] = None
