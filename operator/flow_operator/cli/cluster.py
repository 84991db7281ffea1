"""flowctl's few API calls: the protocol its commands use, so they can be tested on a fake
with the same methods. The real one is flow_operator.kube.sync.Cluster (the official sync
client, kubeconfig credentials); its failures are the project's errors (NotFound...).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from flow_operator.builders.naming import WORKFLOW_LABEL
from flow_operator.errors import NotFound
from flow_operator.models.flowrun import PLURAL as FLOWRUNS
from flow_operator.models.workflow import PLURAL as WORKFLOWS
from flow_operator.objects.body import Body


class ClusterApi(Protocol):
    namespace: str

    def get(self, plural: str, namespace: str, name: str) -> Body: ...

    def items(self, plural: str, namespace: str | None) -> list[Body]: ...

    def patch(self, plural: str, namespace: str, name: str, patch: Body) -> Body: ...

    def patch_status(self, plural: str, namespace: str, name: str, patch: Body) -> Body: ...

    def create(self, plural: str, namespace: str, body: Body) -> Body: ...

    def revision(self, namespace: str, name: str) -> Body: ...

    def pods(self, namespace: str, selector: str) -> list[Body]: ...

    def logs(
        self, namespace: str, pod: str, container: str | None, follow: bool
    ) -> Iterator[bytes]: ...


def Cluster(kubeconfig: str | None = None, context: str | None = None) -> ClusterApi:
    """The real cluster (flow_operator.kube.sync), loaded only when a command needs it."""
    from flow_operator.kube.sync import Cluster as SyncCluster

    return SyncCluster(kubeconfig, context)


def workflow_pods_selector(name: str) -> str:
    return f"{WORKFLOW_LABEL}={name}"


__all__ = ["FLOWRUNS", "WORKFLOWS", "Cluster", "ClusterApi", "NotFound", "workflow_pods_selector"]
