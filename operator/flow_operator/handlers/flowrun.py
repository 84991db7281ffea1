"""FlowRun wiring: index the runs, their child runs, and the Workflows they use; watch
their Jobs and pods; enqueue the run a change concerns; build the FlowRun reconciler.

A Job or pod reaches its run by the `flowops.io/flowrun` label, a child run its parent
by the same label, a Workflow the runs that reference it by the `flowruns_by_workflow`
index. When a run leaves Deployed its slot frees, so the runs waiting in Queued are
enqueued too. No API call happens here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from flow_operator import GROUP, MANAGER, VERSION, metrics
from flow_operator.app import Operator, Started
from flow_operator.builders.naming import FLOWRUN_LABEL, MANAGED_BY
from flow_operator.handlers import flow as flow_kind
from flow_operator.handlers import workflow as workflows
from flow_operator.models.flowrun import PLURAL, TERMINAL, Phase
from flow_operator.models.workflow import PLURAL as WORKFLOWS
from flow_operator.objects import slim
from flow_operator.ports import JOBS, PODS
from flow_operator.reconcile.flowrun import FlowRunReconciler, FlowRunView
from flow_operator.reconcile.history import History

QUEUE = "flowrun"
INDEX = "flowrun_bodies"
CHILDREN = "flowrun_children"
OWNED: Mapping[str, Any] = {MANAGED_BY: MANAGER, FLOWRUN_LABEL: kopf.PRESENT}


def _key(namespace: str | None, labels: Mapping[str, str]) -> tuple[str, str]:
    return (namespace or "", labels[FLOWRUN_LABEL])


def _refs_workflow(spec: Mapping[str, Any], **_: Any) -> bool:
    return bool((spec.get("workflowRef") or {}).get("name"))


def setup(app: Operator) -> None:
    queue = app.queues.declare(QUEUE)
    registry = app.registry

    @kopf.index(GROUP, VERSION, PLURAL, id="flowrun_bodies", registry=registry)
    async def flowrun_bodies(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> Any:
        return {(namespace or "", name): slim.custom_object(body)}

    @kopf.index(GROUP, VERSION, PLURAL, labels=OWNED, id="flowrun_children", registry=registry)
    async def flowrun_children(
        namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
    ) -> Any:
        return {_key(namespace, labels): slim.custom_object(body)}

    @kopf.index(
        GROUP, VERSION, PLURAL, when=_refs_workflow, id="flowruns_by_workflow", registry=registry
    )
    async def flowruns_by_workflow(
        namespace: str | None, name: str, spec: Mapping[str, Any], **_: Any
    ) -> Any:
        return {(namespace or "", spec["workflowRef"]["name"]): name}

    @kopf.on.event(GROUP, VERSION, PLURAL, id="flowrun_changed", registry=registry)
    async def flowrun_changed(
        namespace: str | None,
        name: str,
        labels: Mapping[str, str],
        status: Mapping[str, Any],
        **kwargs: Any,
    ) -> None:
        runs: kopf.Index[tuple[str, str], Any] = kwargs[INDEX]
        queue.enqueue((namespace or "", name))
        if labels.get(FLOWRUN_LABEL) and labels.get(MANAGED_BY) == MANAGER:
            # a child run: its parent follows it, ahead of other work (as for its Jobs)
            queue.enqueue(_key(namespace, labels), urgent=True)
        if status.get("phase") in {p.value for p in TERMINAL}:
            # Its slot may have freed: the waiting runs try again.
            for key, bodies in list(runs.items()):
                for b in bodies:
                    if (b.get("status") or {}).get("phase") == Phase.QUEUED.value:
                        queue.enqueue(key)

    @kopf.on.event(GROUP, VERSION, WORKFLOWS, id="workflow_of_runs_changed", registry=registry)
    async def workflow_of_runs_changed(namespace: str | None, name: str, **kwargs: Any) -> None:
        by_workflow: kopf.Index[tuple[str, str], str] = kwargs["flowruns_by_workflow"]
        for run in by_workflow.get((namespace or "", name), ()):
            queue.enqueue((namespace or "", run))

    app.runs.subscribe(lambda e: metrics.observe_flowrun(e.key, e.old, e.status))

    @app.on_build
    def build(ctx: Started) -> None:
        runs = ctx.index(INDEX)
        view = FlowRunView(
            runs=runs,
            jobs=ctx.watch("jobs", JOBS, FLOWRUN_LABEL, slim.job, queue),
            pods=ctx.watch("flow run pods", PODS, FLOWRUN_LABEL, slim.pod, queue),
            children=ctx.index(CHILDREN),
            workflows=ctx.index(workflows.INDEX),
            # a run made under its flow's Queue or Replace waits for the flow's say
            flows=ctx.index(flow_kind.INDEX),
            flow_runs=ctx.index(flow_kind.RUNS),
        )
        # the HTTP API serves a task's log only from the pod the task made (handlers/http.py)
        ctx.provide(view)
        reconciler = FlowRunReconciler(view, ctx.kube, app.settings.limits, events=ctx.app.recorder)
        reconciler.publish = app.runs.publish
        # run history (handlers/history.py): logs captured, finished runs deleted once archived
        history = reconciler.history = ctx.need(History)
        history.recorder.on_final = history.capture.on_final = queue.enqueue
        app.queues.bind(queue, reconciler, app.settings.workers)
