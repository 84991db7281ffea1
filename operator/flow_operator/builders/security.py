"""The securityContexts of a pod the operator makes: the spec's, over the operator's default.

Field by field, what the spec sets wins and the default (`--default-security-context`,
models/security.py) fills the rest; `capabilities` merges its `add` and `drop` each on
its own, so a task that adds NET_BIND_SERVICE still drops ALL. The default's
`allowPrivilegeEscalation: false` is left out of a container that is privileged or adds
SYS_ADMIN, which Kubernetes would refuse beside it. With `none`, the spec's contexts
alone, and no key at all when it sets none (a Deployment made before stays unchanged).
"""

from __future__ import annotations

from flow_operator.models.security import (
    RESTRICTED_CONTAINER,
    RESTRICTED_POD,
    ContainerSecurityContext,
    PodSecurityContext,
    SecurityDefault,
)
from flow_operator.objects.body import Body


def pod_security_context(spec: PodSecurityContext | None, default: SecurityDefault) -> Body | None:
    """The pod's `spec.securityContext`, or None for none."""
    base = RESTRICTED_POD.dump() if default is SecurityDefault.RESTRICTED else {}
    merged = {**base, **(spec.dump() if spec else {})}
    return merged or None


def container_security_context(
    spec: ContainerSecurityContext | None, default: SecurityDefault
) -> Body | None:
    """The container's `securityContext`, or None for none."""
    own = spec.dump() if spec else {}
    if default is SecurityDefault.NONE:
        return own or None
    base = RESTRICTED_CONTAINER.dump()
    if spec is not None and spec.escalates():
        base.pop("allowPrivilegeEscalation")
    merged = {**base, **own}
    capabilities = {**base.get("capabilities", {}), **own.get("capabilities", {})}
    if capabilities:
        merged["capabilities"] = capabilities
    return merged
