"""builders/security.py: the spec's securityContexts over the operator's default, and
the `restricted` default meeting Pod Security "restricted" (its checks as the
PodSecurity admission plugin makes them, for a pod without volumes or host fields)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from flow_operator.builders.security import container_security_context, pod_security_context
from flow_operator.models.security import (
    ContainerSecurityContext,
    PodSecurityContext,
    SecurityDefault,
)

Body = dict[str, Any]
R, N = SecurityDefault.RESTRICTED, SecurityDefault.NONE


def restricted_violations(pod: Body | None, container: Body | None) -> list[str]:
    """What Pod Security "restricted" refuses in a one-container pod with these contexts."""
    pod, container = pod or {}, container or {}
    found = []
    if container.get("privileged"):
        found.append("privileged")
    if container.get("allowPrivilegeEscalation") is not False:
        found.append("allowPrivilegeEscalation != false")
    caps = container.get("capabilities") or {}
    if "ALL" not in (caps.get("drop") or ()):
        found.append("unrestricted capabilities (drop ALL)")
    if set(caps.get("add") or ()) - {"NET_BIND_SERVICE"}:
        found.append("unrestricted capabilities (add)")
    non_root = container.get("runAsNonRoot", pod.get("runAsNonRoot"))
    if non_root is not True:
        found.append("runAsNonRoot != true")
    if 0 in (pod.get("runAsUser"), container.get("runAsUser")):
        found.append("runAsUser=0")
    seccomp = (container.get("seccompProfile") or pod.get("seccompProfile") or {}).get("type")
    if seccomp not in ("RuntimeDefault", "Localhost"):
        found.append("seccompProfile")
    return found


def both(
    pod: Body | None, container: Body | None, default: SecurityDefault
) -> tuple[Body | None, Body | None]:
    p = PodSecurityContext.model_validate(pod) if pod is not None else None
    c = ContainerSecurityContext.model_validate(container) if container is not None else None
    return pod_security_context(p, default), container_security_context(c, default)


def test_restricted_alone_meets_pod_security_restricted() -> None:
    assert restricted_violations(*both(None, None, R)) == []


def test_none_alone_adds_nothing_and_is_refused_by_restricted() -> None:
    assert both(None, None, N) == (None, None)
    assert len(restricted_violations(None, None)) == 4


@pytest.mark.parametrize(
    ("pod", "container", "expected"),
    [
        # a field the spec sets wins, the default fills the others
        ({"runAsUser": 1000}, None, ({"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}, "runAsUser": 1000}, None)),
        ({"runAsNonRoot": False}, None, ({"runAsNonRoot": False, "seccompProfile": {"type": "RuntimeDefault"}}, None)),
        # capabilities merge add and drop each on its own
        (None, {"capabilities": {"add": ["NET_BIND_SERVICE"]}}, (None, {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}})),
        (None, {"capabilities": {"drop": ["NET_RAW"]}}, (None, {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["NET_RAW"]}})),
        # privileged (or SYS_ADMIN) and allowPrivilegeEscalation: false cannot go together
        (None, {"privileged": True}, (None, {"capabilities": {"drop": ["ALL"]}, "privileged": True})),
        (None, {"capabilities": {"add": ["SYS_ADMIN"]}}, (None, {"capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}})),
        (None, {"allowPrivilegeEscalation": True}, (None, {"allowPrivilegeEscalation": True, "capabilities": {"drop": ["ALL"]}})),
    ],
)  # fmt: skip
def test_the_spec_wins_field_by_field_over_restricted(
    pod: Body | None, container: Body | None, expected: tuple[Body | None, Body | None]
) -> None:
    pod_out, container_out = both(pod, container, R)
    assert (pod_out if pod else None, container_out if container else None) == expected


def test_a_hardened_spec_over_restricted_still_meets_it() -> None:
    pod = {"runAsUser": 1000, "fsGroup": 2000}
    container = {"readOnlyRootFilesystem": True, "capabilities": {"add": ["NET_BIND_SERVICE"]}}
    assert restricted_violations(*both(pod, container, R)) == []


def test_privileged_over_restricted_is_what_pod_security_refuses() -> None:
    assert restricted_violations(*both(None, {"privileged": True}, R)) == [
        "privileged",
        "allowPrivilegeEscalation != false",
    ]


def test_with_none_the_spec_alone() -> None:
    pod, container = {"runAsUser": 5}, {"readOnlyRootFilesystem": True}
    assert both(pod, container, N) == (pod, container)


@pytest.mark.parametrize(
    ("model", "body", "message"),
    [
        (ContainerSecurityContext, {"privileged": True, "allowPrivilegeEscalation": False},
         "containerSecurityContext.allowPrivilegeEscalation cannot be false with privileged: true"),
        (ContainerSecurityContext, {"capabilities": {"add": ["CAP_SYS_ADMIN"]}, "allowPrivilegeEscalation": False},
         "or capabilities.add SYS_ADMIN"),
        (PodSecurityContext, {"seccompProfile": {"type": "Localhost"}},
         "seccompProfile.localhostProfile is required with type Localhost"),
        (PodSecurityContext, {"seccompProfile": {"type": "RuntimeDefault", "localhostProfile": "x"}},
         "and refused otherwise"),
        (PodSecurityContext, {"runAsUser": -1}, "greater than or equal to 0"),
        (PodSecurityContext, {"runAsUsr": 1}, "runAsUsr"),
        (ContainerSecurityContext, {"capabilities": {"drop": ["ALL; rm"]}}, "String should match pattern"),
    ],
)  # fmt: skip
def test_bad_contexts_are_refused_naming_the_field(model: Any, body: Body, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        model.model_validate(body)
