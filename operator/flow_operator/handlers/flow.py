"""Flow wiring: index the Flows and their runs (by the `flowops.io/flow` label, or the
Flow a hand-made run's `spec.flowRef` names: flows/runs.flow_of); enqueue
the Flow on a change of itself or of one of its runs (a run's end frees a concurrency slot
and changes the last run); build the Flow reconciler.

The reconciler's answer (seconds to the next tick) is the work queue's timer: nothing
polls. No API call happens here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from flow_operator import GROUP, VERSION, metrics
from flow_operator.app import Operator, Started
from flow_operator.flows.runs import flow_of
from flow_operator.models.flow import PLURAL
from flow_operator.models.flowrun import PLURAL as FLOWRUNS
from flow_operator.objects import slim
from flow_operator.objects.body import Body
from flow_operator.reconcile.flow import FlowReconciler, FlowView
from flow_operator.reconcile.history import History

QUEUE = "flow"
INDEX = "flow_bodies"
RUNS = "flowruns_by_flow"


def _of_a_flow(body: kopf.Body, **_: Any) -> bool:
    return flow_of(body) is not None


def run_projection(body: Mapping[str, Any]) -> Body:
    """What the planner and the Flow list read of a run (flows/runs.FlowRunRecord): its
    metadata, run type, version and cancel request, phase, reason and times."""
    full = slim.custom_object(body)
    spec, status = full["spec"], full["status"]
    kept = {k: status[k] for k in ("phase", "reason", "startTime", "endTime") if k in status}
    definition = status.get("definition") or {}
    if "version" in definition:  # a flowRef run's resolved version, not its tasks
        kept["definition"] = {"version": definition["version"]}
    return {
        "metadata": full["metadata"],
        "spec": {k: spec[k] for k in ("runType", "version", "cancel", "flowRef") if k in spec},
        "status": kept,
    }


def setup(app: Operator) -> None:
    queue = app.queues.declare(QUEUE)
    registry = app.registry

    @kopf.index(GROUP, VERSION, PLURAL, id="flow_bodies", registry=registry)
    async def flow_bodies(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> Any:
        return {(namespace or "", name): slim.custom_object(body)}

    @kopf.index(GROUP, VERSION, FLOWRUNS, when=_of_a_flow, id="flowruns_by_flow",
                registry=registry)  # fmt: skip
    async def flowruns_by_flow(namespace: str | None, body: kopf.Body, **_: Any) -> Any:
        return {(namespace or "", flow_of(body)): run_projection(body)}

    @kopf.on.event(GROUP, VERSION, PLURAL, id="flow_changed", registry=registry)
    async def flow_changed(
        namespace: str | None, name: str, type: str | None = None, **_: Any
    ) -> None:
        queue.enqueue((namespace or "", name))
        if type == "DELETED":  # its per-Flow series go with it
            metrics.forget_flow((namespace or "", name))

    @kopf.on.event(GROUP, VERSION, FLOWRUNS, when=_of_a_flow, id="run_of_flow_changed",
                   registry=registry)  # fmt: skip
    async def run_of_flow_changed(namespace: str | None, body: kopf.Body, **_: Any) -> None:
        queue.enqueue((namespace or "", flow_of(body) or ""))

    # a Flow's finished runs by Flow: its failure ratio and durations (docs/monitoring.md)
    app.runs.subscribe(lambda e: metrics.observe_flow_run(e.key, e.old, e.status, flow_of(e.body)))

    @app.on_build
    def build(ctx: Started) -> None:
        view = FlowView(flows=ctx.index(INDEX), runs=ctx.index(RUNS))
        ctx.provide(view)  # the HTTP API's Run action reads it (handlers/http.py)
        # deletes past the flow's history wait for the run store's confirmation
        archived = ctx.need(History).archived
        reconciler = FlowReconciler(view, ctx.kube, events=ctx.app.recorder, archived=archived)
        app.queues.bind(queue, reconciler, app.settings.workers)
