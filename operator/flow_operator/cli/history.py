"""flowctl and the run history: `history prune [--dry-run]`, and the archive that `runs`,
`run` and `logs` read once a run has left the cluster.

The run store belongs to the operator (docs/history.md): flowctl holds no database
credentials, so it asks the operator's HTTP API (`POST /api/v1/history/prune`, and
`GET /api/v1/flowruns...` for the run list, one run and a task's stored log), the one
place that talks to the operator rather than the API server. Where the API is comes from
`--server URL` (or $FLOW_API_URL; e.g. a `kubectl port-forward` of the chart's Service),
and the bearer token from `--token` (or $FLOW_API_TOKEN): in the chart's kubernetes auth
mode a Kubernetes token of the caller (`kubectl create token ...`, or an OIDC token), in
token mode a value of the operator's token Secret. The API server's service proxy is not
used: once it has authenticated a request it drops the Authorization header, so the
operator would see no caller.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn, Protocol

import click

from flow_operator.cli import render
from flow_operator.history.retention import parse_duration
from flow_operator.objects.times import parse_aware, rfc3339
from flow_operator.views.runs import RUN_STATES

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
PRUNE = "/api/v1/history/prune"
FLOWRUNS = "/api/v1/flowruns"
TIMEOUT = 300.0  # a prune deletes in batches: it may take a while
READ_TIMEOUT = 60.0  # a page, a run or a stored log: one read each
SERVER_HELP = "the operator's HTTP API, e.g. http://localhost:8080 ($FLOW_API_URL)"
READ_SERVER_HELP = (
    "the operator's HTTP API, to read the run history (e.g. http://localhost:8080; $FLOW_API_URL)"
)
TOKEN_HELP = (
    "bearer token for the API ($FLOW_API_TOKEN; kubernetes auth mode: a Kubernetes token of yours)"
)


class OperatorUnreachable(Exception):
    """No answer from the operator's HTTP API (connection refused, timeout, a bad URL)."""


@dataclass(frozen=True)
class Reply:
    """An answer of the operator's API: its status, its bytes, its headers (lower-case)."""

    status: int
    data: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    def body(self) -> Any:
        """The JSON body, or the text when it is not JSON."""
        return _decoded(self.data)


def _decoded(raw: bytes) -> Any:
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


class OperatorApi(Protocol):
    def post(self, path: str, params: Mapping[str, str]) -> tuple[int, Any]:
        """POST path?params: the HTTP status and the JSON body (or the text)."""
        ...

    def get(self, path: str, params: Mapping[str, str]) -> Reply:
        """GET path?params: the whole answer (a stored log is text with X-Log-* headers)."""
        ...


class OperatorHttp:
    """The operator's HTTP API at `server`, with a bearer token (stdlib urllib)."""

    def __init__(self, server: str, token: str | None, timeout: float = TIMEOUT) -> None:
        parsed = urllib.parse.urlsplit(server)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise OperatorUnreachable(f"--server must be an http(s) URL, not {server!r}")
        self.server = server.rstrip("/")
        self.token = token
        self.timeout = timeout

    def post(self, path: str, params: Mapping[str, str]) -> tuple[int, Any]:
        reply = self._send("POST", path, params, self.timeout)
        return reply.status, reply.body()

    def get(self, path: str, params: Mapping[str, str]) -> Reply:
        return self._send("GET", path, params, min(self.timeout, READ_TIMEOUT))

    def _send(self, method: str, path: str, params: Mapping[str, str], timeout: float) -> Reply:
        query = urllib.parse.urlencode(params)
        url = f"{self.server}{path}" + (f"?{query}" if query or method == "POST" else "")
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = b"" if method == "POST" else None
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, raw, got = response.status, response.read(), response.headers
        except urllib.error.HTTPError as e:
            status, raw, got = e.code, e.read(), e.headers
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise OperatorUnreachable(
                f"cannot reach the operator at {self.server}: {reason}; check --server "
                "(or $FLOW_API_URL): where the operator's HTTP API listens, e.g. a "
                "kubectl port-forward of its Service"
            ) from e
        return Reply(status, raw, {k.lower(): v for k, v in (got or {}).items()})


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {render.printable(message)}", err=True)
    sys.exit(code)


def prune_text(report: Mapping[str, Any]) -> str:
    dry = bool(report.get("dryRun"))
    total, by_age, by_count = (int(report.get(k) or 0) for k in ("total", "byAge", "byCount"))
    verb = "would delete" if dry else "deleted"
    lines = [f"{verb} {total} runs from the history ({by_age} by age, {by_count} by count)"]
    if not dry:
        lines[0] += f" in {int(report.get('batches') or 0)} batches"
    if "colorTransitions" in report or "auditRecords" in report:  # an older operator: neither
        n_colors, n_audit = (int(report.get(k) or 0) for k in ("colorTransitions", "auditRecords"))
        lines.append(
            f"and {n_colors} Workflow color transitions and {n_audit} audit records older "
            "than the retention age (each Workflow's newest transition is kept)"
        )
    examples = list(report.get("examples") or [])
    if examples:
        lines.append("for example:")
        lines += [f"  {render.printable(str(e))}" for e in examples]
    if dry:
        lines.append("(dry run: nothing deleted)")
    return "\n".join(lines)


def refusal(server: str, status: int, body: Any, what: str) -> str:
    """What an answer other than 200 means, with the fix: 401 the token (--token), 403 the
    permission the API names, anything else the API's own message."""
    message = body.get("message") if isinstance(body, dict) else str(body)[:500]
    said = f"HTTP {status}: {message}" if message else f"HTTP {status}"
    if status == 401:
        return (
            f"the operator at {server} did not accept the token for {what} ({said}): pass a "
            "valid bearer token with --token or $FLOW_API_TOKEN (kubernetes auth mode: a "
            "Kubernetes token of yours, e.g. kubectl create token SERVICEACCOUNT)"
        )
    if status == 404:
        return f"{what} is neither in the cluster nor in the run history at {server} ({said})"
    if status == 403:
        return (
            f"the operator at {server} refused {what} ({said}): the token lacks that "
            "permission; ask for it, or pass another --token"
        )
    return f"the operator at {server} refused {what} ({said})"


def server_options(required: bool) -> Decorator:
    """--server and --token (or $FLOW_API_URL, $FLOW_API_TOKEN): the operator's HTTP API."""

    def apply(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = click.option("--token", envvar="FLOW_API_TOKEN", help=TOKEN_HELP)(fn)
        help = SERVER_HELP if required else READ_SERVER_HELP
        return click.option("--server", envvar="FLOW_API_URL", required=required, help=help)(fn)

    return apply


def run_path(namespace: str, name: str, *rest: str) -> str:
    """/api/v1/flowruns/NS/NAME[/...], each part quoted."""
    parts = [namespace, name, *rest]
    return "/".join([FLOWRUNS, *(urllib.parse.quote(p, safe="") for p in parts)])


def when(option: str, value: str, now: datetime) -> str:
    """--since/--until: an RFC 3339 time with a zone, or a duration ago (2h, 7d)."""
    moment = parse_aware(value)
    if moment is not None:
        return rfc3339(moment)
    try:
        ago = parse_duration(value)
    except ValueError:
        ago = None
    if ago is None:
        raise click.BadParameter(
            f"must be an RFC 3339 time with a zone (2026-11-24T09:00:00Z) or a duration "
            f"ago (30m, 12h, 7d), not {value!r}",
            param_hint=f"'{option}'",
        )
    return rfc3339(now - ago)


def page_footer(page: Mapping[str, Any]) -> str:
    """Under the table: how many of how many, the totals per state, the next page's cursor."""
    shown, total = len(page.get("items") or []), int(page.get("total") or 0)
    counts = {str(k): int(v) for k, v in (page.get("counts") or {}).items() if v}
    order = [s for s in RUN_STATES if s in counts] + sorted(set(counts) - set(RUN_STATES))
    line = f"{shown} of {total} runs"
    if counts:
        line += " (" + ", ".join(f"{counts[s]} {s}" for s in order) + ")"
    lines = [render.printable(line)]
    cursor = page.get("continue")
    if cursor:
        lines.append(render.printable(f"next page: --continue {cursor} (with the same filters)"))
    return "\n".join(lines)


@dataclass(frozen=True)
class StoredLogNote:
    """What a stored log's headers say: the attempt, a cut, a loss."""

    attempt: str
    marker: str | None  # printed before the text when only its tail was kept
    lost: str | None  # why there is no log at all

    @classmethod
    def of(cls, headers: Mapping[str, str], kept: int) -> StoredLogNote:
        size = headers.get("x-log-size", "")
        marker = None
        if headers.get("x-log-truncated") == "true":
            of = f" of {size}" if size.isdigit() else ""
            marker = f"[log truncated: only the last {kept}{of} bytes were kept (--log-cap)]"
        lost = headers.get("x-log-lost")
        return cls(headers.get("x-log-attempt", "?"), marker, render.printable(lost) if lost
                   else None)  # fmt: skip


class Archive:
    """The run history through the operator's HTTP API: what `runs`, `run` and `logs` ask
    of it. A refusal or an unreachable operator ends the command with the fix (exit 1)."""

    def __init__(self, factory: Callable[[str, str | None], OperatorApi], server: str,
                 token: str | None) -> None:  # fmt: skip
        self.server = server
        try:
            self.api = factory(server, token)
        except OperatorUnreachable as e:
            _fail(str(e))

    def _get(self, path: str, params: Mapping[str, str], what: str) -> Reply:
        try:
            reply = self.api.get(path, params)
        except OperatorUnreachable as e:
            _fail(str(e))
        if reply.status not in (200, 404):
            _fail(refusal(self.server, reply.status, reply.body(), what))
        return reply

    def page(self, params: Mapping[str, str]) -> dict[str, Any]:
        reply = self._get(FLOWRUNS, params, "the run list")
        body = reply.body()
        if reply.status != 200 or not isinstance(body, dict):
            _fail(refusal(self.server, reply.status, body, "the run list"))
        return body

    def run(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The run as the API has it (live, else the store's newest of that name)."""
        reply = self._get(run_path(namespace, name), {}, f"flow run {namespace}/{name}")
        body = reply.body()
        return body if reply.status == 200 and isinstance(body, dict) else None

    def log(self, namespace: str, name: str, task: str, attempt: int | None) -> Reply:
        what = f"the log of task {task} of {namespace}/{name}"
        params = {"attempt": str(attempt)} if attempt is not None else {}
        reply = self._get(run_path(namespace, name, "tasks", task, "logs"), params, what)
        if reply.status != 200:
            _fail(refusal(self.server, reply.status, reply.body(), what))
        return reply


def register(
    flowctl: click.Group,
    pass_ctx: Decorator,
    output: Decorator,
) -> None:
    @flowctl.group()
    def history() -> None:
        """The run history the operator keeps (docs/history.md), through its HTTP API."""

    @history.command()
    @click.option("--dry-run", is_flag=True, help="report what would be deleted, delete nothing")
    @click.option("--max-age", help="delete runs that ended longer ago (90d, 12h, 1d12h, never)")
    @click.option(
        "--keep-per-flow-status",
        help="keep the newest N runs per namespace, flow and status (a number, or none)",
    )
    @server_options(required=True)
    @output
    @pass_ctx
    def prune(
        c: Any,
        dry_run: bool,
        max_age: str | None,
        keep_per_flow_status: str | None,
        server: str,
        token: str | None,
        output: str,
    ) -> None:
        """Apply the history's retention now: by age and by count per flow and status,
        each the operator's setting unless given. --dry-run reports, deletes nothing."""
        params = {"dryRun": "true" if dry_run else "false"}
        if max_age:
            params["maxAge"] = max_age
        if keep_per_flow_status:
            params["keepPerFlowStatus"] = keep_per_flow_status
        try:
            status, body = c.operator(server, token).post(PRUNE, params)
        except OperatorUnreachable as e:
            _fail(str(e))
        if status != 200 or not isinstance(body, dict):
            _fail(refusal(server, status, body, "the prune"))
        if output == "json":
            click.echo(render.as_json(body))
        elif output == "yaml":
            click.echo(render.as_yaml(body))
        else:
            click.echo(prune_text(body))
