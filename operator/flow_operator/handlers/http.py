"""HTTP API wiring: the status API, flow runs and the dashboard, hosted in the operator
process (flow_operator.api, docs/api.md). It reads the Workflow kind's view, the
FlowRun index merged with the run store (History's, docs/history.md), task logs through
the log streams' own client (Started.log_reader, capped by --max-log-streams), the Flow
kind's view (the Run action), follows the Workflow statuses through the topic, feeds the
live-update stream (api/stream.py) from both topics, and listens once the queues run."""

from __future__ import annotations

from flow_operator.api.audit import Stamped
from flow_operator.api.auth import SecretKeys
from flow_operator.api.flow_backend import IndexedFlows
from flow_operator.api.flowrun_backend import IndexedFlowRuns
from flow_operator.api.hosting import HttpHost
from flow_operator.app import Operator, Started
from flow_operator.handlers import flowrun
from flow_operator.history.store import PrunePolicy
from flow_operator.objects.body import Body, first
from flow_operator.ports import FLOWRUNS, Resource
from flow_operator.reconcile.flow import FlowView
from flow_operator.reconcile.flowrun import FlowRunView
from flow_operator.reconcile.history import History
from flow_operator.reconcile.workflow import WorkflowView


def setup(app: Operator) -> None:
    hosts: list[HttpHost] = []

    @app.on_build
    def build(ctx: Started) -> None:
        view = ctx.need(WorkflowView)
        flows = ctx.need(FlowView)
        history = ctx.need(History)
        retention = PrunePolicy(
            max_age=app.settings.history.retention,
            keep_per_flow_status=app.settings.history.keep_per_flow_status,
        )
        runs = ctx.index(flowrun.INDEX)

        def lookup(resource: Resource, namespace: str, name: str) -> Body | None:
            """An audited action's object, from the index (api/audit.py's Event names it)."""
            return first((runs if resource == FLOWRUNS else flows.flows).get((namespace, name)))

        host = HttpHost(
            ctx.kube,
            view.workflows,
            view.pods,
            # runs created for a request carry who asked (api/audit.py)
            # logs through the log streams' own client and pool, never the reconcilers'
            # and only from the pod the task made (the FlowRun kind's Job and pod watches)
            IndexedFlowRuns(
                runs,
                Stamped(ctx.kube),
                history.store,
                retention,
                logs=ctx.log_reader(),
                children=ctx.need(FlowRunView),
            ),
            IndexedFlows(flows.flows, flows.runs, Stamped(ctx.kube)),
            events=app.recorder,
            lookup=lookup,
            secrets=ctx.need(SecretKeys),  # the Workflow kind's, shared with its reconciler
            deployments=view.deployments,  # the Workflow page's rollout counts
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
            await host.start(
                http.host,
                http.port,
                http.token_secret,
                http.namespaces,
                auth_mode=http.auth_mode,
                read_only=http.read_only,
                max_log_streams=http.max_log_streams,
                trusted_proxies=http.trusted_proxies,
                tls=http.tls,
                # /metrics here when it needs TLS or authentication (main.py: else a thread's)
                metrics_port=app.settings.metrics_port if app.settings.metrics_on_loop else 0,
                metrics_auth=http.metrics_auth,
            )

    @app.on_stop
    async def stop() -> None:
        for host in hosts:
            await host.stop()
        hosts.clear()
