"""flowctl runs, run and logs with --server: the run history through the operator's HTTP API
(a fake one, answering per path), merged paging, archived runs, stored logs, the errors."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from click.testing import CliRunner, Result

from flow_operator.cli.history import Reply, run_path
from flow_operator.cli.main import Context, flowctl
from flow_operator.errors import NotFound
from tests.unit.api_support import NOW
from tests.unit.cli.test_cli_flowruns import fake_with_runs, run_body
from tests.unit.cli.test_cli_workflows import FakeCluster

SERVER = "http://op:8080"


def rows(*names: str) -> list[dict[str, Any]]:
    return [{"namespace": "ns", "name": n, "flowName": n, "status": "Completed"} for n in names]


def stored_run(name: str) -> dict[str, Any]:
    """A run as GET /api/v1/flowruns/NS/NAME answers it from the store."""
    return {"namespace": "ns", "name": name, "flowName": "etl", "status": "Failed",
            "startTime": "2024-02-12T09:00:00Z", "endTime": "2024-02-12T09:01:00Z",
            "tasks": [{"name": "crunch", "status": "Failed", "pod": f"{name}-crunch-x9",
                       "attempts": 2, "runtime": "4s"},
                      {"name": "report", "status": "Skipped", "dependsOn": ["crunch"]}]}  # fmt: skip


class FakeOperator:
    """Answers GETs by path from `answers` (404 otherwise) and records them."""

    def __init__(self, answers: Mapping[str, Reply] | None = None) -> None:
        self.answers = dict(answers or {})
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.made: list[tuple[str, str | None]] = []

    def __call__(self, server: str, token: str | None) -> FakeOperator:
        self.made.append((server, token))
        return self

    def post(self, path: str, params: Mapping[str, str]) -> tuple[int, Any]:
        raise AssertionError("the run commands only read")

    def get(self, path: str, params: Mapping[str, str]) -> Reply:
        self.calls.append((path, dict(params)))
        return self.answers.get(path, reply(404, {"error": "NotFound", "message": "no such"}))


def reply(status: int, body: Any, **headers: str) -> Reply:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Reply(status, data, {k.lower().replace("_", "-"): v for k, v in headers.items()})


def stored_log(text: bytes, attempt: int = 2, **more: str) -> Reply:
    headers = {"x_log_source": "history", "x_log_attempt": str(attempt),
               "x_log_truncated": "false", "x_log_size": str(len(text))} | more  # fmt: skip
    return reply(200, text, **headers)


def invoke(fake: FakeCluster, api: FakeOperator | None, *args: str, **env: str) -> Result:
    """flowctl on `fake`, the operator's API `api` (None: the real HTTP client)."""
    ctx = Context(None, None, factory=lambda: fake)  # type: ignore[arg-type,return-value]
    ctx.now = lambda: NOW
    if api is not None:
        ctx.operator = api
    return CliRunner().invoke(flowctl, list(args), obj=ctx, env=env, catch_exceptions=False)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


LIST_PAGE = {"items": rows("etl-09", "etl-08"), "total": 20,
             "counts": {"Failed": 2, "Completed": 17, "Crashed": 1},
             "continue": "eyJ2IjoxfQ"}  # fmt: skip


def test_runs_with_a_server_list_through_the_api_with_its_filters_and_paging() -> None:
    api = FakeOperator({"/api/v1/flowruns": reply(200, LIST_PAGE)})
    out = ok(invoke(FakeCluster(), api, "runs", "--server", SERVER, "--token", "t0k",
                    "--status", "failed", "--flow", "etl", "--since", "2h", "--until",
                    "2024-02-12T10:00:00+01:00", "--limit", "2", "--continue", "abc",
                    "--log-contains", "OOM")).stdout  # fmt: skip
    assert api.made == [(SERVER, "t0k")]
    ((path, params),) = api.calls
    assert path == "/api/v1/flowruns"
    assert params == {"status": "failed", "namespace": "ns", "flow": "etl", "logContains": "OOM",
                      "continue": "abc", "since": "2024-02-12T08:14:53Z",
                      "until": "2024-02-12T09:00:00Z", "limit": "2"}  # fmt: skip
    lines = out.splitlines()
    assert lines[0].startswith("NAME") and lines[1].startswith("etl-09")
    assert lines[-2] == "2 of 20 runs (17 Completed, 2 Failed, 1 Crashed)"
    assert lines[-1] == "next page: --continue eyJ2IjoxfQ (with the same filters)"


def test_runs_through_the_api_in_json_is_the_page_and_all_namespaces_sends_none() -> None:
    last = {"items": rows("a"), "total": 1, "counts": {"Completed": 1}}
    api = FakeOperator({"/api/v1/flowruns": reply(200, last)})
    result = ok(invoke(FakeCluster(), api, "runs", "-A", "-o", "json", FLOW_API_URL=SERVER))
    assert json.loads(result.stdout) == last
    assert api.calls == [("/api/v1/flowruns", {})]
    table = ok(invoke(FakeCluster(), api, "runs", "-A", FLOW_API_URL=SERVER)).stdout
    assert table.splitlines()[-1] == "1 of 1 runs (1 Completed)" and "next page" not in table


def test_runs_without_a_server_stay_in_the_cluster_and_refuse_server_only_options() -> None:
    api = FakeOperator()
    result = ok(invoke(fake_with_runs(), api, "runs", "-o", "json", FLOW_API_URL=""))
    assert {r["name"] for r in json.loads(result.stdout)} == {"churn-001", "churn-000", "fresh"}
    assert api.calls == []
    for option, value in (("--limit", "5"), ("--continue", "x"), ("--since", "1h"),
                          ("--flow", "etl"), ("--log-contains", "x")):  # fmt: skip
        refused = invoke(fake_with_runs(), api, "runs", option, value, FLOW_API_URL="")
        assert refused.exit_code == 2, refused.output
        assert f"{option} is answered by the run history" in refused.output
        assert "--server URL (or $FLOW_API_URL)" in refused.output
    assert api.calls == []


def test_a_bad_time_or_limit_is_an_argument_error_naming_the_option() -> None:
    api = FakeOperator({"/api/v1/flowruns": reply(200, LIST_PAGE)})
    bad = invoke(FakeCluster(), api, "runs", "--server", SERVER, "--since", "yesterday")
    assert bad.exit_code == 2 and "'--since'" in bad.output and "RFC 3339" in bad.output
    bad = invoke(FakeCluster(), api, "runs", "--server", SERVER, "--until", "2024-02-12T10:00:00")
    assert bad.exit_code == 2 and "'--until'" in bad.output
    bad = invoke(FakeCluster(), api, "runs", "--server", SERVER, "--limit", "0")
    assert bad.exit_code == 2 and "--limit" in bad.output
    assert api.calls == []


def test_run_gone_from_the_cluster_is_shown_from_the_history_marked_archived() -> None:
    api = FakeOperator({"/api/v1/flowruns/ns/old": reply(200, stored_run("old"))})
    out = ok(invoke(FakeCluster(), api, "run", "old", "--server", SERVER)).stdout
    lines = out.splitlines()
    assert lines[0] == "flow run ns/old: archived (from the run history, no longer in the cluster)"
    assert "crunch" in out and "Skipped" in out and "TASK" in out
    doc = json.loads(ok(invoke(FakeCluster(), api, "run", "old", "--server", SERVER, "-o",
                               "json")).stdout)  # fmt: skip
    assert doc["archived"] is True and doc["name"] == "old"
    assert [t["name"] for t in doc["tasks"]] == ["crunch", "report"]
    missing = invoke(FakeCluster(), api, "run", "nope", "--server", SERVER)
    assert missing.exit_code == 1
    assert "flow run ns/nope is neither in the cluster nor in the run history at " in missing.output


def test_a_live_run_is_read_from_the_cluster_even_with_a_server() -> None:
    api = FakeOperator()
    doc = json.loads(ok(invoke(fake_with_runs(), api, "run", "churn-001", "-o", "json",
                               "--server", SERVER)).stdout)  # fmt: skip
    assert doc["status"] == "Deployed" and "archived" not in doc and api.calls == []


def test_without_a_server_not_found_says_how_to_ask_the_history() -> None:
    result = invoke(FakeCluster(), FakeOperator(), "run", "old", FLOW_API_URL="")
    assert result.exit_code == 1
    assert "flow run ns/old not found in the cluster" in result.output
    assert "ask the run history with --server URL (or $FLOW_API_URL)" in result.output
    logs = invoke(FakeCluster(), FakeOperator(), "logs", "old", FLOW_API_URL="")
    assert logs.exit_code == 1 and "--server URL" in logs.output


LOG_PATH = "/api/v1/flowruns/ns/old/tasks/crunch/logs"


def test_logs_of_an_archived_run_come_from_the_store_with_their_attempt() -> None:
    api = FakeOperator({"/api/v1/flowruns/ns/old": reply(200, stored_run("old")),
                        LOG_PATH: stored_log(b"step 1\nboom \x1b[2J\n")})  # fmt: skip
    result = ok(invoke(FakeCluster(), api, "logs", "old", "--server", SERVER))
    assert result.stdout == "step 1\nboom ^[[2J\n"  # the only started task; escapes shown
    assert result.stderr == (
        "[flow run ns/old is archived (gone from the cluster); "
        "task crunch, attempt 2, from the run history]\n"
    )
    assert api.calls[-1] == (LOG_PATH, {})
    ok(invoke(FakeCluster(), api, "logs", "old", "crunch", "--attempt", "1", "--server", SERVER))
    assert api.calls[-1] == (LOG_PATH, {"attempt": "1"})


def test_follow_on_an_archived_run_prints_the_stored_log_and_says_so() -> None:
    api = FakeOperator({"/api/v1/flowruns/ns/old": reply(200, stored_run("old")),
                        LOG_PATH: stored_log(b"done\n")})  # fmt: skip
    result = ok(invoke(FakeCluster(), api, "logs", "old", "-f", "--server", SERVER))
    assert result.stdout == "done\n" and "nothing to follow" in result.stderr


def test_a_truncated_log_is_marked_and_a_lost_one_says_why() -> None:
    cut = stored_log(b"tail\n", x_log_truncated="true", x_log_size="3000000")
    api = FakeOperator({"/api/v1/flowruns/ns/old": reply(200, stored_run("old")), LOG_PATH: cut})
    result = ok(invoke(FakeCluster(), api, "logs", "old", "crunch", "--server", SERVER))
    assert result.stdout == (
        "[log truncated: only the last 5 of 3000000 bytes were kept (--log-cap)]\ntail\n"
    )
    api.answers[LOG_PATH] = stored_log(b"", 1, x_log_lost="log lost: pod deleted before capture")
    lost = invoke(FakeCluster(), api, "logs", "old", "crunch", "--server", SERVER)
    assert lost.exit_code == 1 and lost.stdout == ""
    assert (
        "task crunch of ns/old, attempt 1: no log was kept (log lost: pod deleted before capture)"
        in lost.stderr
    )


class PodGone(FakeCluster):
    def logs(
        self, namespace: str, pod: str, container: str | None, follow: bool
    ) -> Iterator[bytes]:
        raise NotFound(pod)
        yield b""


def test_logs_of_a_live_run_whose_pod_is_gone_come_from_the_store() -> None:
    fake = PodGone()
    fake.put("flowruns", run_body("churn-000", "Completed"))
    path = "/api/v1/flowruns/ns/churn-000/tasks/extract/logs"
    api = FakeOperator({path: stored_log(b"extracted\n", 1)})
    result = ok(invoke(fake, api, "logs", "churn-000", "extract", "--server", SERVER))
    assert result.stdout == "extracted\n"
    assert result.stderr == (
        "[the pod churn-000-extract-x1 is gone; task extract, attempt 1, from the run history]\n"
    )
    without = invoke(fake, api, "logs", "churn-000", "extract", FLOW_API_URL="")
    assert without.exit_code == 1
    assert "the pod churn-000-extract-x1 of task extract is gone" in without.output
    assert "--server URL" in without.output
    refused = invoke(fake, api, "logs", "churn-000", "extract", "--attempt", "1", FLOW_API_URL="")
    assert refused.exit_code == 2 and "--attempt reads the run history" in refused.output


def test_refusals_name_the_option_and_the_fix() -> None:
    api = FakeOperator({"/api/v1/flowruns": reply(401, {"error": "Unauthorized",
                        "message": "the bearer token is not valid (unknown or expired)"})})  # fmt: skip
    result = invoke(FakeCluster(), api, "runs", "--server", SERVER)
    assert result.exit_code == 1
    assert "did not accept the token for the run list (HTTP 401: the bearer token" in result.output
    assert "--token or $FLOW_API_TOKEN" in result.output
    api.answers["/api/v1/flowruns/ns/old"] = reply(403, {"error": "Forbidden",
        "message": "system:serviceaccount:ns:bob cannot get flowruns in ns"})  # fmt: skip
    result = invoke(FakeCluster(), api, "run", "old", "--server", SERVER)
    assert result.exit_code == 1
    assert (
        f"the operator at {SERVER} refused flow run ns/old (HTTP 403: "
        "system:serviceaccount:ns:bob cannot get flowruns in ns): the token lacks that "
        "permission; ask for it, or pass another --token" in result.output
    )
    bad_url = invoke(FakeCluster(), None, "run", "old", "--server", "localhost:8080")
    assert bad_url.exit_code == 1 and "--server must be an http(s) URL" in bad_url.output
    closed = invoke(FakeCluster(), None, "logs", "old", "--server", "http://127.0.0.1:1")
    assert closed.exit_code == 1
    assert "cannot reach the operator at http://127.0.0.1:1" in closed.output
    assert "check --server (or $FLOW_API_URL)" in closed.output


def test_names_in_the_api_paths_are_quoted() -> None:
    assert run_path("ns", "a b/c", "tasks", "t?x", "logs") == (
        "/api/v1/flowruns/ns/a%20b%2Fc/tasks/t%3Fx/logs"
    )
