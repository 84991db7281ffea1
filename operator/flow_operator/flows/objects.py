"""The objects the edge writes for a Flow, built from the planner's decisions: a version's
ControllerRevision, and a planned run with `spec.flowRef`. Pure: the Flow reconciler and
the HTTP API's Run action both write them (a Resource value names the kind, no client).
"""

from __future__ import annotations

from flow_operator import API_VERSION, MANAGER
from flow_operator.flows.runs import MANAGED_BY, REVISION_ANNOTATION, VERSION_LABEL
from flow_operator.flows.schedule import FLOW_LABEL
from flow_operator.models.flow import KIND, Flow, FlowVersion
from flow_operator.objects.body import Body

REVISION_API_VERSION = "apps/v1"
REVISION_KIND = "ControllerRevision"


def revision_body(flow: Flow, body: Body, version: FlowVersion, data: Body) -> Body:
    """The ControllerRevision that keeps one version's run-relevant spec, owned by the Flow
    (the runs carry their own copy, so they outlive it)."""
    meta = flow.metadata
    owner = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta.name,
        "uid": (body.get("metadata") or {}).get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": False,
    }
    return {
        "apiVersion": REVISION_API_VERSION,
        "kind": REVISION_KIND,
        "metadata": {
            "name": version.revision_name,
            "namespace": meta.namespace,
            "labels": {
                MANAGED_BY: MANAGER,
                FLOW_LABEL: meta.name,
                VERSION_LABEL: str(version.version),
            },
            "annotations": {REVISION_ANNOTATION: version.revision},
            "ownerReferences": [owner] if owner["uid"] else [],
        },
        "data": data,
        "revision": version.version,
    }


def with_flow_ref(body: Body) -> Body:
    """A planned run's body with `spec.flowRef` (the Flow and version it was made from)."""
    labels = body["metadata"]["labels"]
    ref = {"name": labels[FLOW_LABEL], "version": int(labels[VERSION_LABEL])}
    return {**body, "spec": {**body["spec"], "flowRef": ref}}
