"""Workflow wiring: index the Workflows, watch their children, enqueue on every change,
and build the Workflow reconciler at start, with the api-key Secret cache it shares with
the HTTP API.

Every handler is `async def`: kopf runs a plain `def` in a thread pool, which costs a
thread hop per event and would touch the asyncio work queue from outside its loop.

kopf runs no handler before its index is filled from the initial listing, and the work
queue starts only once the children's informers have listed too, so a restarted operator
decides on a full view.
"""

from __future__ import annotations

from typing import Any

import kopf

from flow_operator import GROUP, VERSION, metrics
from flow_operator.api.auth import SecretKeys
from flow_operator.app import Operator, Started
from flow_operator.builders.naming import WORKFLOW_LABEL as LABEL
from flow_operator.models.workflow import PLURAL
from flow_operator.objects import slim
from flow_operator.ports import DEPLOYMENTS, PODS, REPLICASETS, SERVICES
from flow_operator.reconcile.workflow import WorkflowReconciler, WorkflowView

QUEUE = "workflow"
INDEX = "workflow_bodies"  # kopf names an index after its function


def setup(app: Operator) -> None:
    queue = app.queues.declare(QUEUE)

    @kopf.index(GROUP, VERSION, PLURAL, id="workflow_bodies", registry=app.registry)
    async def workflow_bodies(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> Any:
        return {(namespace or "", name): slim.custom_object(body)}

    @kopf.on.event(GROUP, VERSION, PLURAL, id="workflow_changed", registry=app.registry)
    async def workflow_changed(namespace: str | None, name: str, **_: Any) -> None:
        queue.enqueue((namespace or "", name))

    app.workflows.subscribe(lambda e: metrics.observe_workflow(e.key, e.status))

    @app.on_build
    def build(ctx: Started) -> None:
        view = WorkflowView(
            workflows=ctx.index(INDEX),
            deployments=ctx.watch("deployments", DEPLOYMENTS, LABEL, slim.deployment, queue),
            replicasets=ctx.watch("replicasets", REPLICASETS, LABEL, slim.replicaset, queue),
            pods=ctx.watch("workflow pods", PODS, LABEL, slim.pod, queue),
            services=ctx.watch("services", SERVICES, LABEL, slim.service, queue),
        )  # fmt: skip
        ctx.provide(view)  # the HTTP API reads it (handlers/http.py)
        # apiKeySecretRef's Secrets, read with a get on use and cached: the reconciler's
        # ApiKeySecret condition and the HTTP API's keys share one read (api/auth.py)
        keys = SecretKeys(ctx.kube.read_secret)
        ctx.provide(keys)
        reconciler = WorkflowReconciler(
            view,
            ctx.kube,
            events=ctx.app.recorder,
            security=app.settings.security,
            check_api_keys=keys.verdict,
        )
        reconciler.publish = app.workflows.publish
        app.queues.bind(queue, reconciler, app.settings.workers)
