"""The children's informers: which kinds, which labels, which queue a change wakes.

Workflows own Deployments, ReplicaSets (through the Deployments), Pods and Services,
FlowRuns own Jobs and their Pods; each is found by the label the builders set, so a Pod
event reaches its Workflow or FlowRun without an API call (flow_operator.informer says
why these are not kopf handlers).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flow_operator import MANAGER
from flow_operator.builders.naming import FLOWRUN_LABEL, MANAGED_BY, WORKFLOW_LABEL
from flow_operator.handlers import slim
from flow_operator.informer import Body, Informer, Key, Lister, Merged
from flow_operator.kube import Kube
from flow_operator.runtime import RUNTIME

log = logging.getLogger(__name__)


def _keyed_by(label: str) -> Callable[[Body], Key | None]:
    def key_of(obj: Body) -> Key | None:
        meta = obj.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(label)
        return (meta.get("namespace") or "", owner) if owner else None

    return key_of


@dataclass
class Children:
    workflow_deployments: Merged
    workflow_replicasets: Merged
    workflow_pods: Merged
    workflow_services: Merged
    flowrun_jobs: Merged
    flowrun_pods: Merged

    @property
    def informers(self) -> list[Informer]:
        return [i for view in vars(self).values() for i in view.informers]


def build(kube: Kube, namespaces: Sequence[str], workflow_queue: str, run_queue: str) -> Children:
    """The informers (not started): cluster-wide, or one per namespace given."""

    def view(
        name: str, all_ns: Lister, one_ns: Lister, label: str, project: Callable[[Body], Body],
        queue: str,
    ) -> Merged:  # fmt: skip
        selector = f"{MANAGED_BY}={MANAGER},{label}"
        listers = (
            [(name, all_ns)]
            if not namespaces
            else [(f"{name} in {ns}", functools.partial(one_ns, ns)) for ns in namespaces]
        )
        return Merged([
            # a child changed: its owner's status has to follow, ahead of other work
            Informer(label_, lister, selector, _keyed_by(label), project,
                     functools.partial(RUNTIME.enqueue, queue, urgent=True))
            for label_, lister in listers
        ])  # fmt: skip

    apps, core, batch = kube.apps, kube.core, kube.batch
    return Children(
        workflow_deployments=view(
            "deployments", apps.list_deployment_for_all_namespaces,
            apps.list_namespaced_deployment, WORKFLOW_LABEL, slim.deployment, workflow_queue,
        ),
        workflow_replicasets=view(
            "replicasets", apps.list_replica_set_for_all_namespaces,
            apps.list_namespaced_replica_set, WORKFLOW_LABEL, slim.replicaset, workflow_queue,
        ),
        workflow_pods=view(
            "workflow pods", core.list_pod_for_all_namespaces, core.list_namespaced_pod,
            WORKFLOW_LABEL, slim.pod, workflow_queue,
        ),
        workflow_services=view(
            "services", core.list_service_for_all_namespaces, core.list_namespaced_service,
            WORKFLOW_LABEL, slim.service, workflow_queue,
        ),
        flowrun_jobs=view(
            "jobs", batch.list_job_for_all_namespaces, batch.list_namespaced_job,
            FLOWRUN_LABEL, slim.job, run_queue,
        ),
        flowrun_pods=view(
            "flow run pods", core.list_pod_for_all_namespaces, core.list_namespaced_pod,
            FLOWRUN_LABEL, slim.pod, run_queue,
        ),
    )  # fmt: skip


async def start(children: Children) -> list[asyncio.Task[None]]:
    """Start every informer and wait until each has its first list in memory, so no
    reconcile decides on a partial view (a restarted operator must not write a status
    computed before the pods were listed)."""
    t0 = time.monotonic()
    informers = children.informers
    tasks = [asyncio.create_task(i.run(), name=f"informer {i.name}") for i in informers]
    await asyncio.gather(*(i.synced.wait() for i in informers))
    objects = sum(len(bodies) for i in informers for bodies in i.values())
    log.info("listed %d children of %d kinds in %.1fs", objects, len(informers),
             time.monotonic() - t0)  # fmt: skip
    return tasks
