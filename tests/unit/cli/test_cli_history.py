"""flowctl history prune: on a fake operator API (what it asks, what it prints, refusals),
and its HTTP client against a real local HTTP server (stdlib, a thread)."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from click.testing import CliRunner, Result

from flow_operator.cli.history import OperatorHttp, OperatorUnreachable
from flow_operator.cli.main import Context, flowctl
from tests.unit.cli.test_cli_workflows import FakeCluster

REPORT = {"dryRun": True, "byAge": 3, "byCount": 2, "batches": 0, "total": 5,
          "examples": ["team-a/etl-1 (uid-1)", "team-a/etl-2 (uid-2)"]}  # fmt: skip


class FakeOperator:
    def __init__(self, status: int = 200, body: Any = None) -> None:
        self.status, self.body = status, REPORT if body is None else body
        self.calls: list[tuple[str, str | None, str, dict[str, str]]] = []
        self.server: str = ""
        self.token: str | None = None

    def __call__(self, server: str, token: str | None) -> FakeOperator:
        self.server, self.token = server, token
        return self

    def post(self, path: str, params: Mapping[str, str]) -> tuple[int, Any]:
        self.calls.append((self.server, self.token, path, dict(params)))
        return self.status, self.body


def invoke(api: FakeOperator, *args: str, env: dict[str, str] | None = None) -> Result:
    ctx = Context(None, None, factory=lambda: FakeCluster())  # type: ignore[arg-type,return-value]
    ctx.operator = api
    return CliRunner().invoke(flowctl, list(args), obj=ctx, env=env, catch_exceptions=False)


def test_dry_run_asks_the_operator_and_reports_without_deleting() -> None:
    api = FakeOperator()
    result = invoke(api, "history", "prune", "--dry-run", "--server", "http://op:8080",
                    "--token", "t0k")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert api.calls == [("http://op:8080", "t0k", "/api/v1/history/prune", {"dryRun": "true"})]
    lines = result.output.splitlines()
    assert lines[0] == "would delete 5 runs from the history (3 by age, 2 by count)"
    assert "  team-a/etl-1 (uid-1)" in lines and lines[-1] == "(dry run: nothing deleted)"


def test_prune_passes_the_policy_and_reads_server_and_token_from_the_environment() -> None:
    api = FakeOperator(body={**REPORT, "dryRun": False, "batches": 1, "examples": []})
    env = {"FLOW_API_URL": "http://localhost:8080", "FLOW_API_TOKEN": "from-env"}
    result = invoke(api, "history", "prune", "--max-age", "30d", "--keep-per-flow-status",
                    "100", env=env)  # fmt: skip
    assert result.exit_code == 0, result.output
    ((server, token, _, params),) = api.calls
    assert (server, token) == ("http://localhost:8080", "from-env")
    assert params == {"dryRun": "false", "maxAge": "30d", "keepPerFlowStatus": "100"}
    assert result.output == "deleted 5 runs from the history (3 by age, 2 by count) in 1 batches\n"


def test_the_text_counts_color_transitions_and_audit_records() -> None:
    tables = {"colorTransitions": 4, "auditRecords": 7}
    result = invoke(FakeOperator(body={**REPORT, **tables}), "history", "prune", "--dry-run",
                    "--server", "http://op")  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "would delete 5 runs from the history (3 by age, 2 by count)"
    assert lines[1] == (
        "and 4 Workflow color transitions and 7 audit records older than the retention age "
        "(each Workflow's newest transition is kept)"
    )
    done = {**REPORT, **tables, "dryRun": False, "total": 0, "byAge": 0, "byCount": 0,
            "batches": 3, "examples": [], "auditRecords": 0}  # fmt: skip
    result = invoke(FakeOperator(body=done), "history", "prune", "--server", "http://op")
    assert result.output == (
        "deleted 0 runs from the history (0 by age, 0 by count) in 3 batches\n"
        "and 4 Workflow color transitions and 0 audit records older than the retention age "
        "(each Workflow's newest transition is kept)\n"
    )


def test_json_output_is_the_operator_report() -> None:
    result = invoke(FakeOperator(), "history", "prune", "--dry-run", "-o", "json",
                    "--server", "http://op")  # fmt: skip
    assert json.loads(result.output) == REPORT


def test_refusals_and_missing_server_are_errors() -> None:
    forbidden = {"error": "Forbidden", "message": "alice cannot deletecollection flowruns"}
    result = invoke(FakeOperator(403, forbidden), "history", "prune", "--server", "http://op")
    assert result.exit_code == 1
    assert "HTTP 403" in result.output and "cannot deletecollection flowruns" in result.output
    result = invoke(FakeOperator(), "history", "prune", env={"FLOW_API_URL": ""})
    assert result.exit_code == 2 and "--server" in result.output


class Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str | None]] = []

    def do_POST(self) -> None:
        Recorder.seen.append((self.command, self.path, self.headers.get("Authorization")))
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        if query.get("maxAge") == ["bad"]:
            self._answer(400, b'{"error": "BadRequest", "message": "maxAge must be a duration"}')
        else:
            self._answer(200, json.dumps(REPORT).encode())

    def do_GET(self) -> None:
        Recorder.seen.append((self.command, self.path, self.headers.get("Authorization")))
        if self.path.startswith("/api/v1/flowruns/ns/old/tasks/"):
            self._answer(200, b"tail\n", {"X-Log-Source": "history", "X-Log-Attempt": "2"})
        else:
            self._answer(404, b'{"error": "NotFound", "message": "no flow run ns/x"}')

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Recorder.seen = []
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_http_client_posts_with_the_bearer_token(server: str) -> None:
    client = OperatorHttp(server, "s3cret", timeout=10)
    status, body = client.post("/api/v1/history/prune", {"dryRun": "true"})
    assert (status, body) == (200, REPORT)
    assert Recorder.seen == [("POST", "/api/v1/history/prune?dryRun=true", "Bearer s3cret")]
    status, body = client.post("/api/v1/history/prune", {"maxAge": "bad"})
    assert status == 400 and body["message"] == "maxAge must be a duration"


def test_the_http_client_gets_with_the_bearer_token_and_the_headers(server: str) -> None:
    client = OperatorHttp(server, "s3cret", timeout=10)
    log = client.get("/api/v1/flowruns/ns/old/tasks/a%20b/logs", {"attempt": "1"})
    assert (log.status, log.data, log.body()) == (200, b"tail\n", "tail\n")
    assert log.headers["x-log-source"] == "history" and log.headers["x-log-attempt"] == "2"
    missing = client.get("/api/v1/flowruns/ns/x", {})
    assert missing.status == 404 and missing.body()["message"] == "no flow run ns/x"
    assert Recorder.seen == [
        ("GET", "/api/v1/flowruns/ns/old/tasks/a%20b/logs?attempt=1", "Bearer s3cret"),
        ("GET", "/api/v1/flowruns/ns/x", "Bearer s3cret"),
    ]


def test_the_http_client_says_when_the_operator_cannot_be_reached(server: str) -> None:
    with pytest.raises(OperatorUnreachable, match="must be an http"):
        OperatorHttp("localhost:8080", None)
    closed = OperatorHttp("http://127.0.0.1:1", None, timeout=5)
    with pytest.raises(
        OperatorUnreachable, match=r"cannot reach the operator at http://127\.0\.0\.1:1"
    ):
        closed.post("/api/v1/history/prune", {})
