"""flowctl's Flow commands: `flows`, `flow NAME`, `start FLOW [--wait]`,
`schedule suspend|resume FLOW [SCHEDULE]`.

flowctl talks to the API server directly, as its other commands do (no operator HTTP API
or token needed): `start` decides the run with the same pure Run action the HTTP API uses
(flows/manual.py: version, parameters, idempotency key, concurrency) over the Flow and its
runs as listed, and creates the FlowRun itself, with run type Manual. `--version N` starts
any kept version: an older one's spec is read from its ControllerRevision, as the HTTP API
does.

`start --wait` reads the run every WAIT_INTERVAL seconds, printing each phase it enters,
and exits with its outcome: 0 Completed, 1 any other final phase. `schedule suspend` and
`resume` write the Flow's `schedules[].suspend` with a merge patch that carries the
resourceVersion read, so an edit of the schedules made meanwhile is refused, not lost.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable
from typing import Any

import click

from flow_operator.cli import render
from flow_operator.flows.manual import RunRequest, plan_run
from flow_operator.flows.objects import with_flow_ref
from flow_operator.flows.runs import FlowRunRecord, flow_of
from flow_operator.flows.versions import revision_to_read, spec_of_revision
from flow_operator.models.flow import PLURAL as FLOWS
from flow_operator.models.flow import Flow
from flow_operator.models.flowrun import PLURAL as FLOWRUNS
from flow_operator.models.flowrun import TERMINAL, RunType
from flow_operator.objects.body import Body
from flow_operator.views.flows import flow_detail, flow_row

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
ALPHABET = string.ascii_lowercase + string.digits
WAIT_INTERVAL = 2.0
FINAL = {p.value for p in TERMINAL}


def _runs_of(items: list[Body], name: str) -> list[Body]:
    return [b for b in items if flow_of(b) == name]


def flows_table(rows: list[Body], all_namespaces: bool = False) -> str:
    headers = ["NAME", "VERSION", "LEVEL", "SCHEDULES", "LAST RUN", "LAST STATUS", "NEXT RUN"]
    if all_namespaces:
        headers.insert(0, "NAMESPACE")
    out = []
    for r in rows:
        last = r.get("lastRun") or {}
        cells: list[render.Cell] = [
            r["name"],
            str(r["version"] or ""),
            r["level"],
            r["schedules"] or "-",
            last.get("name", ""),
            render.colored(last.get("phase")),
            r["nextRun"] or "",
        ]
        if r.get("problem"):
            cells[1] = ("Stalled", "red")
        out.append([r["namespace"], *cells] if all_namespaces else cells)
    return render.table(headers, out)


def flow_text(d: Body) -> str:
    lines = [f"Flow {d['namespace']}/{d['name']}: version {d['version'] or '-'}, level "
             f"{d['level']}, concurrency {d['concurrency']}"]  # fmt: skip
    if d.get("problem"):
        lines.append(f"Stalled: {d['problem']}")
    if d["parameters"]:
        lines += ["", "Parameters:"]
        for p in d["parameters"]:
            rule = ("one of " + ", ".join(p["enum"])) if p.get("enum") else p.get("pattern", "")
            need = "required" if p.get("required") else f"default {p.get('default', '')!r}"
            lines.append(f"  {p['name']}: {need}{'; ' + rule if rule else ''}")
    if d["configurations"]:
        lines += ["", "Configurations:"]
        lines += [f"  {c['name']}: {c['parameters']}" for c in d["configurations"]]
    if d["schedules"]:
        lines += ["", render.table(
            ["SCHEDULE", "CRON", "TIME ZONE", "SUSPENDED", "LAST", "NEXT", "MISSED"],
            [[s["name"], s["cron"], s["timeZone"], "yes" if s["suspend"] else "no",
              s.get("lastScheduleTime", ""), s.get("nextScheduleTime", ""),
              str(s.get("missed", 0))] for s in d["schedules"]],
        )]  # fmt: skip
    if d["versions"]:
        lines += ["", render.table(
            ["VERSION", "REVISION", "CREATED"],
            [[str(v["version"]), v["revision"], v.get("creationTime", "")] for v in d["versions"]],
        )]  # fmt: skip
    if d["runs"]:
        lines += ["", render.table(
            ["RUN", "VERSION", "RUN TYPE", "STATUS", "CREATED"],
            [[r["name"], str(r["version"] or ""), r["runType"] or "",
              render.colored(r["status"]), r["created"] or ""] for r in d["runs"]],
        )]  # fmt: skip
    return "\n".join(lines)


def parse_params(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="-p/--param")
        out[key] = value
    return out


def register(
    flowctl: click.Group, pass_ctx: Decorator, namespaced: Decorator, output: Decorator
) -> None:
    """Add the Flow commands to flowctl (cli/main.py calls this)."""
    from flow_operator.cli.main import emit, fail

    @flowctl.command()
    @namespaced
    @click.option("-A", "--all-namespaces", is_flag=True, help="every namespace")
    @output
    @pass_ctx
    def flows(c: Any, namespace: str | None, all_namespaces: bool, output: str) -> None:
        """List Flows: version, level, schedules, last run and next run."""
        items = c.cluster.items(FLOWS, None if all_namespaces else c.namespace(namespace))
        rows = sorted((flow_row(b) for b in items), key=lambda r: (r["namespace"], r["name"]))
        emit(rows, output, lambda: flows_table(rows, all_namespaces))

    @flowctl.command()
    @click.argument("name")
    @namespaced
    @output
    @pass_ctx
    def flow(c: Any, name: str, namespace: str | None, output: str) -> None:
        """One Flow: parameters, configurations, schedules, versions and recent runs."""
        ns = c.namespace(namespace)
        from flow_operator.cli.cluster import NotFound

        try:
            body = c.cluster.get(FLOWS, ns, name)
        except NotFound:
            fail(f"flow {ns}/{name} not found")
        detail = flow_detail(body, _runs_of(c.cluster.items(FLOWRUNS, ns), name))
        emit(detail, output, lambda: flow_text(detail))

    @flowctl.command()
    @click.argument("flow_name", metavar="FLOW")
    @namespaced
    @click.option("--version", "version", type=click.IntRange(min=1), help="a kept version")
    @click.option("--configuration", help="one of the flow's configurations")
    @click.option("-p", "--param", "params", multiple=True, help="KEY=VALUE (repeatable)")
    @click.option("--idempotency-key", help="the same key and request start one run only")
    @click.option("--wait", is_flag=True, help="follow the run; exit 0 if it Completed, else 1")
    @pass_ctx
    def start(
        c: Any,
        flow_name: str,
        namespace: str | None,
        version: int | None,
        configuration: str | None,
        params: tuple[str, ...],
        idempotency_key: str | None,
        wait: bool,
    ) -> None:
        """Run a Flow: a new FlowRun of its current (or given) version."""
        from flow_operator.cli.cluster import NotFound

        ns = c.namespace(namespace)
        try:
            body = c.cluster.get(FLOWS, ns, flow_name)
        except NotFound:
            fail(f"flow {ns}/{flow_name} not found")
        try:
            parsed = Flow.from_body(body)
        except ValueError as e:
            fail(f"flow {ns}/{flow_name} has an invalid spec (see its Stalled condition): {e}")
        runs = [r for b in _runs_of(c.cluster.items(FLOWRUNS, ns), flow_name)
                if (r := FlowRunRecord.from_body(b)) is not None]  # fmt: skip
        request = RunRequest(
            version=version,
            configuration=configuration,
            parameters=parse_params(params) or None,
            run_type=RunType.MANUAL,
            idempotency_key=idempotency_key,
        )
        suffix = "".join(secrets.choice(ALPHABET) for _ in range(5))
        definitions = {}
        revision = revision_to_read(parsed, version)
        if revision is not None and version is not None:
            try:
                definitions[version] = spec_of_revision(c.cluster.revision(ns, revision))
            except NotFound:
                pass  # pruned since the Flow's status was written: plan_run says not kept
            except ValueError as e:
                fail(f"flow {ns}/{flow_name} version {version}: its revision {revision} "
                     f"does not hold a flow spec: {e}")  # fmt: skip
        decided = plan_run(
            parsed, request, definitions=definitions, runs=runs, now=c.now(), suffix=suffix
        )
        if decided.errors:
            fail("; ".join(f"{e.path}: {e.message}" for e in decided.errors), 2)
        if decided.existing is not None:
            click.echo(f"flow run {ns}/{decided.existing} exists (same idempotency key)")
            if wait:
                follow(c, ns, decided.existing)
            return
        if decided.skipped is not None or decided.create is None:
            fail(f"not started: {decided.skipped}", 3)
        for cancel in decided.cancel:
            patch = {"metadata": {"uid": cancel.uid}, "spec": {"cancel": True}}
            c.cluster.patch(FLOWRUNS, ns, cancel.name, patch)
        created = c.cluster.create(FLOWRUNS, ns, with_flow_ref(decided.create.body))
        v = created["spec"].get("version")
        click.echo(f"flow run {ns}/{created['metadata']['name']} created (flow {flow_name} v{v})")
        if wait:
            follow(c, ns, created["metadata"]["name"])

    @flowctl.group()
    def schedule() -> None:
        """Suspend or resume a Flow's schedules."""

    def set_suspend(c: Any, flow_name: str, which: str | None, ns: str | None, on: bool) -> None:
        from flow_operator.cli.cluster import NotFound

        ns = c.namespace(ns)
        try:
            body = c.cluster.get(FLOWS, ns, flow_name)
        except NotFound:
            fail(f"flow {ns}/{flow_name} not found")
        try:
            patch, changed = suspend_patch(body, which, on)
        except ValueError as e:
            fail(f"flow {ns}/{flow_name}: {e}")
        c.cluster.patch(FLOWS, ns, flow_name, patch)
        verb = "suspended" if on else "resumed"
        click.echo(f"flow {ns}/{flow_name}: {verb} {', '.join(changed) or 'nothing (as asked)'}")

    @schedule.command()
    @click.argument("flow_name", metavar="FLOW")
    @click.argument("which", metavar="[SCHEDULE]", required=False)
    @namespaced
    @pass_ctx
    def suspend(c: Any, flow_name: str, which: str | None, namespace: str | None) -> None:
        """Suspend one schedule of FLOW, or all of them: their ticks are skipped."""
        set_suspend(c, flow_name, which, namespace, True)

    @schedule.command()
    @click.argument("flow_name", metavar="FLOW")
    @click.argument("which", metavar="[SCHEDULE]", required=False)
    @namespaced
    @pass_ctx
    def resume(c: Any, flow_name: str, which: str | None, namespace: str | None) -> None:
        """Resume one schedule of FLOW, or all: it counts from now, missing nothing behind."""
        set_suspend(c, flow_name, which, namespace, False)


def suspend_patch(body: Body, which: str | None, on: bool) -> tuple[Body, list[str]]:
    """The merge patch setting `suspend` of the schedule `which` (None: every one), and the
    schedules it changes; the resourceVersion read makes a concurrent edit a conflict."""
    schedules = [dict(s) for s in (body.get("spec") or {}).get("schedules") or []]
    names = [s["name"] for s in schedules]
    if not schedules:
        raise ValueError("it has no schedules")
    if which is not None and which not in names:
        raise ValueError(f"no schedule {which!r} (schedules: {', '.join(names)})")
    changed = []
    for s in schedules:
        if (which is None or s["name"] == which) and bool(s.get("suspend")) != on:
            s["suspend"] = on
            changed.append(s["name"])
    version = (body.get("metadata") or {}).get("resourceVersion")
    meta = {"resourceVersion": version} if version else {}
    return {"metadata": meta, "spec": {"schedules": schedules}}, changed


def follow(c: Any, namespace: str, name: str) -> None:
    """Read the run until it is final, printing each phase; exit 0 Completed, else 1."""
    from flow_operator.cli.main import fail

    seen = None
    while True:
        status = c.cluster.get(FLOWRUNS, namespace, name).get("status") or {}
        phase = status.get("phase")
        if phase != seen and phase:
            message = status.get("message") or ""
            click.echo(f"{name}: {phase}{': ' + message if message else ''}")
            seen = phase
        if phase in FINAL:
            if phase != "Completed":
                fail(f"flow run {namespace}/{name} ended {phase} ({status.get('reason')})")
            return
        c.sleep(WAIT_INTERVAL)
