"""flowctl's history commands: `history prune [--dry-run]`.

The run store belongs to the operator (docs/history.md): flowctl holds no database
credentials, so it asks the operator's HTTP API (`POST /api/v1/history/prune`), the one
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
from typing import Any, NoReturn, Protocol

import click

from flow_operator.cli import render

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
PRUNE = "/api/v1/history/prune"
TIMEOUT = 300.0  # a prune deletes in batches: it may take a while


class OperatorUnreachable(Exception):
    """No answer from the operator's HTTP API (connection refused, timeout, a bad URL)."""


class OperatorApi(Protocol):
    def post(self, path: str, params: Mapping[str, str]) -> tuple[int, Any]:
        """POST path?params: the HTTP status and the JSON body (or the text)."""
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
        url = f"{self.server}{path}?{urllib.parse.urlencode(params)}"
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=b"", headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise OperatorUnreachable(
                f"cannot reach the operator at {self.server}: {reason}"
            ) from e
        text = raw.decode("utf-8", errors="replace")
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text


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
    examples = list(report.get("examples") or [])
    if examples:
        lines.append("for example:")
        lines += [f"  {render.printable(str(e))}" for e in examples]
    if dry:
        lines.append("(dry run: nothing deleted)")
    return "\n".join(lines)


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
    @click.option(
        "--server",
        envvar="FLOW_API_URL",
        required=True,
        help="the operator's HTTP API, e.g. http://localhost:8080 ($FLOW_API_URL)",
    )
    @click.option(
        "--token",
        envvar="FLOW_API_TOKEN",
        help="bearer token for the API ($FLOW_API_TOKEN; kubernetes auth mode: a "
        "Kubernetes token of yours)",
    )
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
            message = body.get("message") if isinstance(body, dict) else str(body)[:500]
            _fail(f"the operator refused the prune (HTTP {status}): {message}")
        if output == "json":
            click.echo(render.as_json(body))
        elif output == "yaml":
            click.echo(render.as_yaml(body))
        else:
            click.echo(prune_text(body))
