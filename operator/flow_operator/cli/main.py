"""flowctl (also `kubectl flow`): Workflows and flow runs through the kubeconfig.

Talks to the API server directly: `status` prints the reference status document with ages
as of now, `runs` the Flow Run Status table. Given the operator's HTTP API (`--server`,
cli/history.py), `runs` lists through it (live runs merged with the run history, paged),
and `run` and `logs` read a run that has left the cluster from the history; `history
prune` always asks it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

import click

from flow_operator.cli import flows, history, render
from flow_operator.cli.cluster import (
    FLOWRUNS,
    WORKFLOWS,
    Cluster,
    ClusterApi,
    NotFound,
    workflow_pods_selector,
)
from flow_operator.models.flowrun import TERMINAL
from flow_operator.views.runs import FlowRunRow, TaskRow, rerun_body, row_of, select
from flow_operator.views.workflows import (
    key_of,
    live_document,
    parse_status,
    ready_message,
    workflow_row,
)

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
        self.sleep: Callable[[float], None] = time.sleep  # start --wait between reads
        # The operator's HTTP API (flowctl history): (server, token) -> client.
        self.operator: Callable[[str, str | None], history.OperatorApi] = history.OperatorHttp

    @property
    def cluster(self) -> ClusterApi:
        if self._cluster is None:
            self._cluster = self._factory()
        return self._cluster

    def namespace(self, given: str | None) -> str:
        return given or self.cluster.namespace


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {render.printable(message)}", err=True)
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


@flowctl.command()
@click.argument("workflow")
@namespaced
@output
@pass_ctx
def status(c: Context, workflow: str, namespace: str | None, output: str) -> None:
    """A Workflow's status: the reference document (-o json), or a colored table."""
    ns = c.namespace(namespace)
    body = _get_workflow(c, ns, workflow)
    parsed = parse_status(body.get("status"))
    if parsed is None or not parsed.firstPublishedAt:
        fail(f"workflow {ns}/{workflow} has never been published", 3)
    pods = c.cluster.pods(ns, workflow_pods_selector(workflow))
    doc = live_document(parsed, pods, c.now())
    message = ready_message(parsed.dump())
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
    rows = [workflow_row(key_of(w), w, w.get("status")).dump() for w in items]
    emit(items, output, lambda: render.workflows(rows))


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


def _get_run(c: Context, namespace: str, name: str) -> dict[str, Any]:
    try:
        return c.cluster.get(FLOWRUNS, namespace, name)
    except NotFound:
        fail(f"flow run {namespace}/{name} not found")


ASK_THE_ARCHIVE = (
    "a finished run leaves the cluster after its TTL: ask the run history with --server URL "
    "(or $FLOW_API_URL), the operator's HTTP API"
)


def _live_or_archived(
    c: Context, namespace: str, name: str, archive: history.Archive | None
) -> tuple[dict[str, Any] | None, FlowRunRow]:
    """The run's live body and row, else (None, its row from the history)."""
    try:
        body = c.cluster.get(FLOWRUNS, namespace, name)
        return body, row_of(body)
    except NotFound:
        if archive is None:
            fail(f"flow run {namespace}/{name} not found in the cluster; {ASK_THE_ARCHIVE}")
    doc = archive.run(namespace, name)
    if doc is None:
        fail(
            f"flow run {namespace}/{name} is neither in the cluster nor in the run history "
            f"at {archive.server}"
        )
    return None, FlowRunRow.model_validate(doc)


def _archive(c: Context, server: str | None, token: str | None) -> history.Archive | None:
    return history.Archive(c.operator, server, token) if server else None


@flowctl.command()
@namespaced
@click.option("-A", "--all-namespaces", is_flag=True, help="every namespace")
@click.option("-s", "--search", help="in name, flow, configuration, run type or status")
@click.option("--status", help="only runs in this state (Queued, Deployed, Failed, ...)")
@click.option("--run-type", help="only runs of this run type (Manual, Scheduled, ...)")
@click.option("--configuration", help="only runs of this configuration")
@click.option("--flow", help="only runs of this Flow (with --server)")
@click.option("--level", help="only runs of this level (with --server)")
@click.option(
    "--since", help="started at or after: RFC 3339, or a duration ago (2h, 7d; with --server)"
)
@click.option("--until", help="started before: RFC 3339, or a duration ago (with --server)")
@click.option("--log-contains", help="a task log of the run holds this text (with --server)")
@click.option("--limit", type=click.IntRange(1, 1000), help="at most N runs (with --server)")
@click.option(
    "--continue",
    "continue_",
    metavar="TOKEN",
    help="the next page: the token the previous page printed (with --server)",
)
@history.server_options(required=False)
@output
@pass_ctx
def runs(
    c: Context,
    namespace: str | None,
    all_namespaces: bool,
    search: str | None,
    status: str | None,
    run_type: str | None,
    configuration: str | None,
    flow: str | None,
    level: str | None,
    since: str | None,
    until: str | None,
    log_contains: str | None,
    limit: int | None,
    continue_: str | None,
    server: str | None,
    token: str | None,
    output: str,
) -> None:
    """The Flow Run Status table, newest first; searchable like the dashboard. With
    --server, live runs merged with the run history, paged (the totals per state under
    the table); without, the runs in the cluster."""
    filters = {"search": search, "status": status, "runType": run_type,
               "configuration": configuration}  # fmt: skip
    server_only = {"--flow": flow, "--level": level, "--since": since, "--until": until,
                   "--log-contains": log_contains, "--limit": limit,
                   "--continue": continue_}  # fmt: skip
    if not server:
        given = [option for option, value in server_only.items() if value is not None]
        if given:
            raise click.UsageError(
                f"{given[0]} is answered by the run history: give the operator's HTTP API "
                "with --server URL (or $FLOW_API_URL)"
            )
        items = c.cluster.items(FLOWRUNS, None if all_namespaces else c.namespace(namespace))
        rows = select((row_of(b) for b in items), {k: v for k, v in filters.items() if v})
        emit(rows, output, lambda: render.runs(rows, all_namespaces))
        return
    params = {k: v for k, v in filters.items() if v}
    if not all_namespaces:
        params["namespace"] = c.namespace(namespace)
    params |= {k: v for k, v in (("flow", flow), ("level", level), ("logContains", log_contains),
                                 ("continue", continue_)) if v}  # fmt: skip
    for key, moment in (("since", since), ("until", until)):
        if moment:
            params[key] = history.when(f"--{key}", moment, c.now())
    if limit is not None:
        params["limit"] = str(limit)
    page = history.Archive(c.operator, server, token).page(params)
    rows = list(page.get("items") or [])
    emit(page, output, lambda: render.runs(rows, all_namespaces) + "\n\n"
         + history.page_footer(page))  # fmt: skip


@flowctl.command()
@click.argument("name")
@namespaced
@history.server_options(required=False)
@output
@pass_ctx
def run(
    c: Context, name: str, namespace: str | None, server: str | None, token: str | None,
    output: str,
) -> None:  # fmt: skip
    """One flow run with its tasks; with --server, from the run history once it has left
    the cluster (marked archived)."""
    ns = c.namespace(namespace)
    body, found = _live_or_archived(c, ns, name, _archive(c, server, token))
    row = found.dump()
    if body is not None:
        emit(row, output, lambda: render.run(row))
        return
    emit({**row, "archived": True}, output, lambda: render.archived(row))


def _task(name: str, row: FlowRunRow, task: str | None) -> TaskRow:
    """TASK, or the only task that has started."""
    tasks = row.tasks or []
    if task is None:
        started = [t for t in tasks if t.pod]
        if len(started) != 1:
            names = ", ".join(t.name for t in started) or "none has started"
            fail(f"flow run {name} has {len(started)} started tasks; name one: {names}")
        return started[0]
    found = next((t for t in tasks if t.name == task), None)
    if found is None:
        fail(f"flow run {name} has no task {task}: {', '.join(t.name for t in tasks)}")
    return found


def _stored_log(
    archive: history.Archive, ns: str, name: str, task: str, attempt: int | None, why: str
) -> None:
    """The attempt's log from the API (the store's capture once the pod is gone), a note of
    where it came from on stderr, the cut marked before the text, a lost log an error."""
    reply = archive.log(ns, name, task, attempt)
    note = history.StoredLogNote.of(reply.headers, len(reply.data))
    if reply.headers.get("x-log-source") != "history":  # the pod was still there
        where = f"task {task}: the pod's log, through the operator"
    elif note.lost:
        fail(f"task {task} of {ns}/{name}, attempt {note.attempt}: no log was kept ({note.lost})")
    else:
        where = f"task {task}, attempt {note.attempt}, from the run history"
    click.echo(render.printable(f"[{why}{where}]"), err=True)
    if note.marker:
        click.echo(note.marker)
    text = render.LogText()
    click.echo(text.feed(reply.data) + text.end(), nl=False)


@flowctl.command()
@click.argument("name")
@click.argument("task", required=False)
@namespaced
@click.option("-f", "--follow", is_flag=True, help="stream the log while the task runs")
@click.option(
    "--attempt",
    type=click.IntRange(1, 10_000),
    help="an attempt's log from the run history (with --server; default: the last)",
)
@history.server_options(required=False)
@pass_ctx
def logs(
    c: Context,
    name: str,
    task: str | None,
    namespace: str | None,
    follow: bool,
    attempt: int | None,
    server: str | None,
    token: str | None,
) -> None:
    """A task's log (the only task, or TASK) read from its pod; with --server, from the run
    history once the pod or the run is gone."""
    ns = c.namespace(namespace)
    archive = _archive(c, server, token)
    if attempt is not None and archive is None:
        raise click.UsageError(
            "--attempt reads the run history: give the operator's HTTP API with --server URL "
            "(or $FLOW_API_URL)"
        )
    body, row = _live_or_archived(c, ns, name, archive)
    chosen = _task(name, row, task)
    nothing = "nothing to follow: " if follow else ""
    if archive is not None and (body is None or attempt is not None):
        gone = f"flow run {ns}/{name} is archived (gone from the cluster); " if body is None else ""
        _stored_log(archive, ns, name, chosen.name, attempt, gone + nothing)
        return
    if not chosen.pod:
        fail(f"task {chosen.name} has no pod yet ({chosen.status})")
    text = render.LogText()
    printed = False
    try:
        for chunk in c.cluster.logs(ns, str(chosen.pod), None, follow):
            printed = True
            click.echo(text.feed(chunk), nl=False)
        click.echo(text.end(), nl=False)
    except NotFound:
        if printed:
            fail(f"the pod {chosen.pod} of task {chosen.name} went away during the log")
        if archive is None:
            fail(
                f"the pod {chosen.pod} of task {chosen.name} is gone; its stored log: give "
                "the operator's HTTP API with --server URL (or $FLOW_API_URL)"
            )
        _stored_log(archive, ns, name, chosen.name, None,
                    f"the pod {chosen.pod} is gone; {nothing}")  # fmt: skip


@flowctl.command()
@click.argument("name")
@namespaced
@pass_ctx
def cancel(c: Context, name: str, namespace: str | None) -> None:
    """Cancel a flow run: its Jobs are removed and it ends Cancelled."""
    ns = c.namespace(namespace)
    phase = row_of(_get_run(c, ns, name)).status
    if phase in {p.value for p in TERMINAL}:
        fail(f"flow run {ns}/{name} already finished ({phase})")
    c.cluster.patch(FLOWRUNS, ns, name, {"spec": {"cancel": True}})
    click.echo(render.printable(f"flow run {ns}/{name}: cancel requested (was {phase})"))


@flowctl.command()
@click.argument("name")
@namespaced
@pass_ctx
def rerun(c: Context, name: str, namespace: str | None) -> None:
    """Start a new flow run with the spec of NAME."""
    ns = c.namespace(namespace)
    created = c.cluster.create(FLOWRUNS, ns, rerun_body(_get_run(c, ns, name)))
    click.echo(f"flow run {ns}/{created['metadata']['name']} created (rerun of {name})")


flows.register(flowctl, pass_ctx, namespaced, output)
history.register(flowctl, pass_ctx, output)


def main() -> None:
    flowctl(prog_name="flowctl")
