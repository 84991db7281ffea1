"""HTTP API wiring: the status API, flow runs and the dashboard, hosted in the operator
process (flow_operator.api, docs/api.md). It reads the Workflow kind's view, the
FlowRun index and the Flow kind's view (the Run action), follows the Workflow statuses
through the topic, feeds the live-update stream (api/stream.py) from both topics, and
listens once the queues run."""

from __future__ import annotations

from flow_operator.api.flow_backend import IndexedFlows
from flow_operator.api.flowrun_backend import IndexedFlowRuns
from flow_operator.api.hosting import HttpHost
from flow_operator.app import Operator, Started
from flow_operator.handlers import flowrun
from flow_operator.reconcile.flow import FlowView
from flow_operator.reconcile.workflow import WorkflowView


def setup(app: Operator) -> None:
    hosts: list[HttpHost] = []

    @app.on_build
    def build(ctx: Started) -> None:
        view = ctx.need(WorkflowView)
        flows = ctx.need(FlowView)
        host = HttpHost(
            ctx.kube,
            view.workflows,
            view.pods,
            IndexedFlowRuns(ctx.index(flowrun.INDEX), ctx.kube),
            IndexedFlows(flows.flows, flows.runs, ctx.kube),
        )
        app.workflows.subscribe(lambda e: host.directory.on_status(e.key, e.status))
        # after the directory: a page that refetches on an event reads the new status
        app.workflows.subscribe(host.stream.on_workflow)
        app.runs.subscribe(host.stream.on_run)
        hosts.append(host)

    @app.on_serve
    async def serve(_: Started) -> None:
        http = app.settings.http
        for host in hosts:
            await host.start(http.host, http.port, http.token_secret, http.namespaces)

    @app.on_stop
    async def stop() -> None:
        for host in hosts:
            await host.stop()
        hosts.clear()
