"""Desired Deployment and Service of one Workflow component, and the "does it need a
write?" decision. A hash of the desired object rides along as an annotation, so a
spec change is one comparison; replicas and images are compared too, so a hand edit of
a managed Deployment (drift) is put back.
"""

from __future__ import annotations

from flow_operator.builders.naming import (
    COMPONENT_LABEL,
    ROLE_LABEL,
    SPEC_HASH,
    WORKFLOW_LABEL,
    child_name,
    managed_labels,
    owner_reference,
    short_hash,
)
from flow_operator.builders.security import container_security_context, pod_security_context
from flow_operator.models.security import SecurityDefault
from flow_operator.models.workflow import KIND, Component, Workflow
from flow_operator.objects.body import Body


def component_labels(wf: Workflow, c: Component) -> dict[str, str]:
    role = "stream" if wf.spec.stream is not None and c.id == wf.spec.stream.id else "service"
    return managed_labels(
        **{WORKFLOW_LABEL: wf.metadata.name, COMPONENT_LABEL: c.id, ROLE_LABEL: role}
    )


def selector(wf: Workflow, c: Component) -> dict[str, str]:
    return {WORKFLOW_LABEL: wf.metadata.name, COMPONENT_LABEL: c.id}


def _metadata(wf: Workflow, c: Component) -> Body:
    return {
        "name": child_name(wf.metadata.name, c.id),
        "namespace": wf.metadata.namespace,
        "labels": component_labels(wf, c),
        "ownerReferences": [owner_reference(KIND, wf.metadata.name, wf.metadata.uid)],
    }


def container(c: Component, security: SecurityDefault = SecurityDefault.NONE) -> Body:
    spec: Body = {"name": c.id, "image": c.image}
    for key, value in (
        ("command", c.command),
        ("args", c.args),
        ("env", [e.dump() for e in c.env] if c.env else None),
        ("ports", [p.dump() for p in c.ports] if c.ports else None),
        ("resources", c.resources.dump() if c.resources else None),
        ("securityContext", container_security_context(c.container_security_context, security)),
    ):
        if value:
            spec[key] = value
    return spec


def desired_deployment(
    wf: Workflow, c: Component, security: SecurityDefault = SecurityDefault.NONE
) -> Body:
    """The component's Deployment; `security` fills what its securityContexts leave out."""
    pod_spec: Body = {
        "containers": [container(c, security)],
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
    }
    pod_security = pod_security_context(c.pod_security_context, security)
    if pod_security:
        pod_spec["securityContext"] = pod_security
    if c.node_selector:
        pod_spec["nodeSelector"] = c.node_selector
    if c.tolerations:
        pod_spec["tolerations"] = [t.dump() for t in c.tolerations]
    body: Body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(wf, c),
        "spec": {
            "replicas": c.replicas,
            "progressDeadlineSeconds": wf.spec.progress_deadline_seconds,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector(wf, c)},
            "template": {"metadata": {"labels": component_labels(wf, c)}, "spec": pod_spec},
        },
    }
    body["metadata"]["annotations"] = {SPEC_HASH: short_hash(body, 16)}
    return body


def desired_service(wf: Workflow, c: Component) -> Body | None:
    """A ClusterIP Service for a component that declares ports; none otherwise."""
    if not c.ports:
        return None
    ports = [
        {
            "name": p.name or f"p{p.container_port}",
            "port": p.container_port,
            "targetPort": p.container_port,
            "protocol": p.protocol,
        }
        for p in c.ports
    ]
    body: Body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(wf, c),
        "spec": {"type": "ClusterIP", "selector": selector(wf, c), "ports": ports},
    }
    body["metadata"]["annotations"] = {SPEC_HASH: short_hash(body, 16)}
    return body


def spec_hash(body: Body | None) -> str | None:
    return (((body or {}).get("metadata") or {}).get("annotations") or {}).get(SPEC_HASH)


def _images(body: Body) -> list[str | None]:
    template = ((body.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [c.get("image") for c in template.get("containers") or []]


def needs_write(desired: Body, observed: Body | None) -> bool:
    """True when the observed object is missing, from an older spec, or edited by hand."""
    if observed is None or spec_hash(observed) != spec_hash(desired):
        return True
    if desired["kind"] != "Deployment":
        return False
    return bool(
        observed.get("spec", {}).get("replicas") != desired["spec"]["replicas"]
        or _images(observed) != _images(desired)
    )
