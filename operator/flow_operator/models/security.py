"""Security contexts of the pods the operator makes, as in a pod spec, and its default.

A Workflow service or a FlowRun task may carry `podSecurityContext` (the pod's
`spec.securityContext`) and `containerSecurityContext` (its container's). The operator's
`--default-security-context` fills, field by field, what they leave out: `restricted`
meets Pod Security "restricted" (non-root, the runtime's seccomp profile, no privilege
escalation, every capability dropped), `none` adds nothing. builders/security.py merges
them; docs/security.md ("Hardening the workloads") says how.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from flow_operator.models.common import KubeModel

ID = Annotated[int, Field(ge=0, le=2147483647)]
CAPABILITY = r"^[A-Za-z0-9_]+$"
Capability = Annotated[str, Field(min_length=1, max_length=64, pattern=CAPABILITY)]
# The capabilities Kubernetes refuses beside allowPrivilegeEscalation: false.
SYS_ADMIN = frozenset({"SYS_ADMIN", "CAP_SYS_ADMIN"})


class SecurityDefault(StrEnum):
    """What `--default-security-context` fills in where a spec sets nothing."""

    RESTRICTED = "restricted"
    NONE = "none"


class SeccompProfile(KubeModel):
    """The seccomp profile of the pod or container."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.type == 'Localhost' ? has(self.localhostProfile)"
                    " : !has(self.localhostProfile)",
                    "message": "seccompProfile.localhostProfile is required with type "
                    "Localhost and refused otherwise",
                }
            ]
        }
    )

    type: Annotated[
        Literal["RuntimeDefault", "Localhost", "Unconfined"],
        Field(
            description="RuntimeDefault (the container runtime's; what Pod Security "
            "restricted asks), Localhost (a profile file on the node) or Unconfined."
        ),
    ]
    localhost_profile: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=4096,
            description="With type Localhost: the profile's path under the kubelet's "
            "seccomp directory.",
        ),
    ] = None

    @model_validator(mode="after")
    def _localhost(self) -> SeccompProfile:
        if (self.type == "Localhost") != (self.localhost_profile is not None):
            raise ValueError(
                "seccompProfile.localhostProfile is required with type Localhost and "
                "refused otherwise"
            )
        return self


class Capabilities(KubeModel):
    """Linux capabilities added to or dropped from the container's default set."""

    add: Annotated[
        list[Capability] | None,
        Field(
            max_length=64,
            description="Capabilities to add (NET_BIND_SERVICE...); Pod Security restricted "
            "allows only NET_BIND_SERVICE.",
        ),
    ] = None
    drop: Annotated[
        list[Capability] | None,
        Field(
            max_length=64,
            description="Capabilities to drop; ALL (what Pod Security restricted asks) "
            "drops every one.",
        ),
    ] = None


RunAsNonRoot = Annotated[
    bool | None,
    Field(
        description="true: the kubelet refuses to start a container whose user is root "
        "(uid 0), so an image running as root needs runAsUser."
    ),
]
RunAsUser = Annotated[
    ID | None,
    Field(description="The uid the container's process runs as (not 0 with runAsNonRoot)."),
]
RunAsGroup = Annotated[ID | None, Field(description="The gid the container's process runs as.")]
Seccomp = Annotated[
    SeccompProfile | None, Field(description="The seccomp profile (type RuntimeDefault...).")
]


class PodSecurityContext(KubeModel):
    """The pod's securityContext: what holds for every container of the pod."""

    run_as_non_root: RunAsNonRoot = None
    run_as_user: RunAsUser = None
    run_as_group: RunAsGroup = None
    fs_group: Annotated[
        ID | None,
        Field(description="The group that owns the pod's volumes and may write to them."),
    ] = None
    fs_group_change_policy: Annotated[
        Literal["OnRootMismatch", "Always"] | None,
        Field(description="When the volumes' ownership is changed to fsGroup (default Always)."),
    ] = None
    supplemental_groups: Annotated[
        list[ID] | None,
        Field(max_length=32, description="More gids of the container's process."),
    ] = None
    seccomp_profile: Seccomp = None


class ContainerSecurityContext(KubeModel):
    """The container's securityContext; a field set here wins over the pod's."""

    run_as_non_root: RunAsNonRoot = None
    run_as_user: RunAsUser = None
    run_as_group: RunAsGroup = None
    allow_privilege_escalation: Annotated[
        bool | None,
        Field(
            description="false: no process may gain more privileges than its parent "
            "(no setuid); what Pod Security restricted asks."
        ),
    ] = None
    privileged: Annotated[
        bool | None,
        Field(description="true: the container runs with the node's full privileges."),
    ] = None
    read_only_root_filesystem: Annotated[
        bool | None,
        Field(description="true: the container's root filesystem is mounted read-only."),
    ] = None
    capabilities: Annotated[
        Capabilities | None, Field(description="Linux capabilities to add and drop.")
    ] = None
    seccomp_profile: Seccomp = None

    @model_validator(mode="after")
    def _escalation(self) -> ContainerSecurityContext:
        # Kubernetes refuses these pods; refusing the spec says so before any Job exists.
        if self.allow_privilege_escalation is False and self.escalates():
            raise ValueError(
                "containerSecurityContext.allowPrivilegeEscalation cannot be false with "
                "privileged: true or capabilities.add SYS_ADMIN"
            )
        return self

    def escalates(self) -> bool:
        """Privileged, or adding SYS_ADMIN: Kubernetes then needs privilege escalation."""
        added = {c.upper() for c in (self.capabilities.add or ())} if self.capabilities else set()
        return bool(self.privileged) or bool(added & SYS_ADMIN)


PodSecurity = Annotated[
    PodSecurityContext | None,
    Field(
        description="The pod's securityContext (runAsNonRoot, runAsUser, fsGroup, "
        "seccompProfile...); fields left out take the operator's "
        "--default-security-context."
    ),
]
ContainerSecurity = Annotated[
    ContainerSecurityContext | None,
    Field(
        description="The container's securityContext (allowPrivilegeEscalation, "
        "capabilities, readOnlyRootFilesystem, privileged...); fields left out take the "
        "operator's --default-security-context."
    ),
]

# What `restricted` fills in: Pod Security "restricted" at its smallest.
RESTRICTED_POD = PodSecurityContext(
    run_as_non_root=True, seccomp_profile=SeccompProfile(type="RuntimeDefault")
)
RESTRICTED_CONTAINER = ContainerSecurityContext(
    allow_privilege_escalation=False, capabilities=Capabilities(drop=["ALL"])
)
