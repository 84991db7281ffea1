"""flowctl (also `kubectl flow`): Workflows and flow runs through the kubeconfig.

Talks to the API server directly (no operator HTTP API needed): `status` prints the
reference status document with ages as of now, `runs` the Flow Run Status table.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from flow_operator.api.workflows import live_document
from flow_operator.cli import render
from flow_operator.cli.cluster import (
    WORKFLOWS,
    Cluster,
    ClusterApi,
    NotFound,
    workflow_pods_selector,
)
from flow_operator.models.workflow import WorkflowStatus

F = TypeVar("F", bound=Callable[..., Any])
OUTPUT = click.Choice(["table", "json", "yaml"])


class Context:
    """Lazily connects, so `--help` and argument errors need no cluster."""

    def __init__(
        self,
        kubeconfig: str | None,
        context: str | None,
        factory: Callable[[], ClusterApi] | None = None,
    ) -> None:
        self._factory = factory or (lambda: Cluster(kubeconfig, context))
        self._cluster: ClusterApi | None = None
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)

    @property
    def cluster(self) -> ClusterApi:
        if self._cluster is None:
            self._cluster = self._factory()
        return self._cluster

    def namespace(self, given: str | None) -> str:
        return given or self.cluster.namespace


def fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def namespaced(fn: F) -> F:
    return click.option("-n", "--namespace", help="namespace (default: the kubeconfig context's)")(
        fn
    )


def output(fn: F) -> F:
    return click.option(
        "-o", "--output", type=OUTPUT, default="table", show_default=True, help="output format"
    )(fn)


def emit(doc: Any, fmt: str, as_table: Callable[[], str]) -> None:
    if fmt == "json":
        click.echo(render.as_json(doc))
    elif fmt == "yaml":
        click.echo(render.as_yaml(doc))
    else:
        click.echo(as_table())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--kubeconfig", envvar="KUBECONFIG", help="kubeconfig file (default: $KUBECONFIG)")
@click.option("--context", "kube_context", help="kubeconfig context")
@click.pass_context
def flowctl(ctx: click.Context, kubeconfig: str | None, kube_context: str | None) -> None:
    """Workflows and flow runs of the Flow Operator."""
    if ctx.obj is None:
        # KUBECONFIG may list several files; the client reads the first.
        first = kubeconfig.split(":")[0] if kubeconfig else None
        ctx.obj = Context(first, kube_context)


pass_ctx = click.make_pass_decorator(Context)


def _get_workflow(c: Context, namespace: str, name: str) -> dict[str, Any]:
    try:
        return c.cluster.get(WORKFLOWS, namespace, name)
    except NotFound:
        fail(f"workflow {namespace}/{name} not found")
        raise  # unreachable


@flowctl.command()
@click.argument("workflow")
@namespaced
@output
@pass_ctx
def status(c: Context, workflow: str, namespace: str | None, output: str) -> None:
    """A Workflow's status: the reference document (-o json), or a colored table."""
    ns = c.namespace(namespace)
    body = _get_workflow(c, ns, workflow)
    raw = body.get("status") or {}
    try:
        parsed = WorkflowStatus.model_validate(raw) if raw else None
    except ValueError:
        parsed = None
    if parsed is None or not parsed.firstPublishedAt:
        fail(f"workflow {ns}/{workflow} has never been published", 3)
        return
    pods = c.cluster.pods(ns, workflow_pods_selector(workflow))
    doc = live_document(parsed, pods, c.now())
    message = next((x.message for x in parsed.conditions or [] if x.type == "Ready"), "")
    emit(doc, output, lambda: render.workflow_status(ns, workflow, doc, message))


@flowctl.command()
@namespaced
@click.option("-A", "--all-namespaces", is_flag=True, help="every namespace")
@output
@pass_ctx
def workflows(c: Context, namespace: str | None, all_namespaces: bool, output: str) -> None:
    """List Workflows with their color."""
    items = c.cluster.items(WORKFLOWS, None if all_namespaces else c.namespace(namespace))
    items.sort(key=lambda w: (w["metadata"].get("namespace", ""), w["metadata"]["name"]))
    emit(items, output, lambda: render.workflows(items))


def _set_desired(c: Context, namespace: str | None, workflow: str, desired: str) -> None:
    ns = c.namespace(namespace)
    try:
        c.cluster.patch(WORKFLOWS, ns, workflow, {"spec": {"desiredStatus": desired}})
    except NotFound:
        fail(f"workflow {ns}/{workflow} not found")
    click.echo(f"workflow {ns}/{workflow}: desiredStatus {desired}")


@flowctl.command()
@click.argument("workflow")
@namespaced
@pass_ctx
def publish(c: Context, workflow: str, namespace: str | None) -> None:
    """Set a Workflow's desiredStatus to PUBLISHED."""
    _set_desired(c, namespace, workflow, "PUBLISHED")


@flowctl.command()
@click.argument("workflow")
@namespaced
@pass_ctx
def unpublish(c: Context, workflow: str, namespace: str | None) -> None:
    """Set a Workflow's desiredStatus to UNPUBLISHED (its services are removed)."""
    _set_desired(c, namespace, workflow, "UNPUBLISHED")


def main() -> None:
    flowctl(prog_name="flowctl")
