"""FlowRun wiring: index the runs, their child runs, and the Workflows they use; watch
their Jobs and pods; enqueue the run a change concerns; build the FlowRun reconciler.

A Job or pod reaches its run by the `flowops.io/flowrun` label, a child run its parent
by the same label, a Workflow the runs that reference it by the `flowruns_by_workflow`
index. A quota or an admission rule refusing a Job's pods shows only in the Job
controller's Warning FailedCreate Events: those are watched (an informer per namespace
watched, field selector type=Warning,reason=FailedCreate, so nothing else is held), keyed
by the Job's name, and one enqueues the Job's run. Each event of a run also updates the
slot counts (flowrun/slots.py: add, change, delete; kopf's re-list after a watch restart
replays every run as an event); when a slot frees, the runs it goes to (the oldest waiting
for capacity, or in the run's flow) are enqueued, not every Queued run. No API call happens here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from flow_operator import GROUP, MANAGER, VERSION, metrics
from flow_operator.app import Operator, Started
from flow_operator.builders.naming import FLOWRUN_LABEL, MANAGED_BY
from flow_operator.flowrun.slots import Slots, state_of
from flow_operator.flowrun.taskstate import job_significance, pod_significance
from flow_operator.flows.runs import flow_of
from flow_operator.handlers import flow as flow_kind
from flow_operator.handlers import workflow as workflows
from flow_operator.kube.informer import Informer, Key, Merged
from flow_operator.models.flow import Flow
from flow_operator.models.flowrun import PLURAL
from flow_operator.models.workflow import PLURAL as WORKFLOWS
from flow_operator.objects import slim
from flow_operator.objects.body import Body
from flow_operator.ports import EVENTS, JOBS, PODS
from flow_operator.reconcile.flowrun import FlowRunReconciler, FlowRunView
from flow_operator.reconcile.history import History

QUEUE = "flowrun"
INDEX = "flowrun_bodies"
CHILDREN = "flowrun_children"
OWNED: Mapping[str, Any] = {MANAGED_BY: MANAGER, FLOWRUN_LABEL: kopf.PRESENT}
# The Events a FlowRun reads: the Job controller's refusals to create a Job's pod.
REFUSALS = "type=Warning,reason=FailedCreate"


def _refusal_key(event: Body) -> Key | None:
    """(namespace, the Job's name) of a FailedCreate Event about a Job; None for others."""
    involved = event.get("involvedObject") or {}
    if involved.get("kind") != "Job" or not involved.get("name"):
        return None
    namespace = involved.get("namespace") or (event.get("metadata") or {}).get("namespace")
    return (str(namespace or ""), str(involved["name"]))


def _slim_event(event: Body) -> Body:
    """What taskstate reads of a FailedCreate Event: its words, its times, its Job."""
    meta, involved = event.get("metadata") or {}, event.get("involvedObject") or {}
    return {
        "metadata": {k: meta[k] for k in ("name", "namespace", "creationTimestamp") if k in meta},
        "involvedObject": {k: involved[k] for k in ("kind", "name", "uid") if k in involved},
        **{
            k: event[k]
            for k in ("type", "reason", "message", "count", "eventTime", "firstTimestamp",
                      "lastTimestamp")
            if k in event
        },
    }  # fmt: skip


def refusals(ctx: Started, jobs: Merged, wake: Any) -> Merged:
    """The FailedCreate Events of the watched namespaces, by (namespace, Job name); a new
    or repeated one enqueues (urgently) the run whose Job it is about."""
    namespaces = ctx.app.settings.namespaces
    scopes = (
        [("FailedCreate events", ctx.kube.lister(EVENTS))]
        if not namespaces
        else [(f"FailedCreate events in {ns}", ctx.kube.lister(EVENTS, ns)) for ns in namespaces]
    )
    informers: list[Informer] = []

    def changed(key: Key) -> None:
        for informer in informers:
            for event in informer.get(key, ()):
                run = jobs.key_of_uid(str((event.get("involvedObject") or {}).get("uid") or ""))
                if run is not None:
                    wake(run)
                    return

    informers.extend(
        Informer(scope, lister, "", _refusal_key, _slim_event, changed, field_selector=REFUSALS)
        for scope, lister in scopes
    )
    ctx.informers.extend(informers)
    return Merged(informers)


def _key(namespace: str | None, labels: Mapping[str, str]) -> tuple[str, str]:
    return (namespace or "", labels[FLOWRUN_LABEL])


def _refs_workflow(spec: Mapping[str, Any], **_: Any) -> bool:
    return bool((spec.get("workflowRef") or {}).get("name"))


def _flow_limit(flows: Any, namespace: str, flow: str) -> int | None:
    """The flow's maxRunning as its concurrency counts it; None: no limit (Allow, or the
    Flow gone or invalid: then nothing holds its runs back)."""
    body = next(iter(flows.get((namespace, flow), ())), None)
    try:
        return None if body is None else Flow.from_body(body).spec.concurrency.limit()
    except ValueError:
        return None


def setup(app: Operator) -> None:
    queue = app.queues.declare(QUEUE)
    registry = app.registry
    slots = Slots()  # the slot counts, kept from the events below; the reconciler reads them
    built: list[FlowRunReconciler] = []  # the reconciler, once built

    def own_write(key: tuple[str, str], body: kopf.Body) -> bool:
        """The event is the watch's echo of the reconciler's own last status write (its
        resourceVersion is the one the write made): it shows nothing the reconciler does
        not know, so it needs no reconcile (the slot counts still see it)."""
        version = str((body.get("metadata") or {}).get("resourceVersion") or "")
        return bool(built) and built[0].writes.made_last(key, version)

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
        body: kopf.Body,
        type: str | None,
        **kwargs: Any,
    ) -> None:
        key = (namespace or "", name)
        if type == "DELETED" or not own_write(key, body):
            queue.enqueue(key)
        if labels.get(FLOWRUN_LABEL) and labels.get(MANAGED_BY) == MANAGER:
            # a child run: its parent follows it, ahead of other work (as for its Jobs)
            queue.enqueue(_key(namespace, labels), urgent=True)
        slots.observe(key, state_of(body), deleted=type == "DELETED")
        # The runs free slots go to try, oldest first. Asked at every event of a run, not
        # only when this one changed a count: the reconciler counts its own writes before
        # the watch shows them. Nothing is free: nothing to ask (no walk either way).
        limits = app.settings.limits
        for waiting in slots.next_for_capacity(limits.running, limits.per_namespace, key[0]):
            queue.enqueue(waiting)
        flow = flow_of(body)
        if flow is not None and slots.waiting_in_flow((key[0], flow)):
            limit = _flow_limit(kwargs[flow_kind.INDEX], key[0], flow)
            for waiting in slots.next_in_flow((key[0], flow), limit):
                queue.enqueue(waiting)

    @kopf.on.event(GROUP, VERSION, WORKFLOWS, id="workflow_of_runs_changed", registry=registry)
    async def workflow_of_runs_changed(namespace: str | None, name: str, **kwargs: Any) -> None:
        by_workflow: kopf.Index[tuple[str, str], str] = kwargs["flowruns_by_workflow"]
        for run in by_workflow.get((namespace or "", name), ()):
            queue.enqueue((namespace or "", run))

    app.runs.subscribe(lambda e: metrics.observe_flowrun(e.key, e.old, e.status))

    @app.on_build
    def build(ctx: Started) -> None:
        runs = ctx.index(INDEX)
        jobs = ctx.watch("jobs", JOBS, FLOWRUN_LABEL, slim.job, queue)
        pods = ctx.watch("flow run pods", PODS, FLOWRUN_LABEL, slim.pod, queue)
        # a Job's or pod's change that no task's line reads wakes no run (taskstate.py)
        for informers, significance in ((jobs, job_significance), (pods, pod_significance)):
            for informer in informers.informers:
                informer.significant = significance
        view = FlowRunView(
            runs=runs,
            jobs=jobs,
            pods=pods,
            children=ctx.index(CHILDREN),
            workflows=ctx.index(workflows.INDEX),
            # a run made under its flow's Queue or Replace waits for the flow's say
            flows=ctx.index(flow_kind.INDEX),
            refusals=refusals(ctx, jobs, lambda run: queue.enqueue(run, urgent=True)),
        )
        # the HTTP API serves a task's log only from the pod the task made (handlers/http.py)
        ctx.provide(view)
        reconciler = FlowRunReconciler(
            view,
            ctx.kube,
            app.settings.limits,
            events=ctx.app.recorder,
            slots=slots,
            security=app.settings.security,
        )
        reconciler.publish = app.runs.publish
        built.append(reconciler)
        # run history (handlers/history.py): logs captured, finished runs deleted once archived
        history = reconciler.history = ctx.need(History)
        history.recorder.on_final = history.capture.on_final = queue.enqueue
        app.queues.bind(queue, reconciler, app.settings.workers)
