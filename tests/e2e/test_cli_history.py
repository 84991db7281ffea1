"""flowctl reads the run history on the local cluster (issue 16, docs/cli.md): once a
finished FlowRun has left the cluster by its TTL, `flowctl runs`, `run` and `logs` with
`--server` and `--token` show it from the operator's run store, with its task logs.

An operator of its own on one namespace (token auth mode, a SQLite store of its own);
flowctl runs in process through click's CliRunner with the test cluster's kubeconfig, the
real Kubernetes client and the real HTTP client.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from flow_operator.cli.main import flowctl
from tests.e2e.conftest import (
    _OPERATORS,
    OK,
    ClusterHandle,
    OperatorProcess,
    flowrun,
    task,
    token_namespace,
    wait_for,
)

pytestmark = pytest.mark.e2e

NS = f"cli-history-{secrets.token_hex(3)}"
TOKEN = f"cli-{secrets.token_hex(8)}"
FAILS = "kwok.flowops.test/fail"  # exits 1 after 2 s


@pytest.fixture(scope="module")
def ns(cluster: ClusterHandle) -> Iterator[str]:
    yield from token_namespace(cluster, NS, TOKEN)


@pytest.fixture(scope="module")
def operator(
    cluster: ClusterHandle, ns: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    base = tmp_path_factory.mktemp("cli-history")
    # The operator's default TTL is an hour: the runs leave by their own 3 s one.
    args = ["--namespace", ns, "--api-token-secret", f"{ns}/flow-operator-api",
            "--finished-run-ttl", "1h"]  # fmt: skip
    proc = OperatorProcess(cluster.kubeconfig, base / "operator.log", args)
    proc.start()
    _OPERATORS.append(proc)
    try:
        yield proc
    finally:
        proc.stop()
        _OPERATORS.remove(proc)


def api(operator: OperatorProcess, path: str) -> tuple[int, Any, str]:
    req = urllib.request.Request(operator.url(path), headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def stored_total(operator: OperatorProcess) -> int:
    code, _, body = api(operator, f"/api/v1/flowruns?{urllib.parse.urlencode({'namespace': NS})}")
    return int(json.loads(body)["total"]) if code == 200 else -1


def left_in_cluster(cluster: ClusterHandle) -> list[str]:
    return cluster.kubectl("-n", NS, "get", "flowruns,jobs,pods", "-o", "name").stdout.split()


def flowctl_(cluster: ClusterHandle, *args: str, server: str | None = None) -> Result:
    """flowctl in process on the test cluster; with `server`, the operator's API and token."""
    extra = ["--server", server, "--token", TOKEN] if server else []
    argv = ["--kubeconfig", str(cluster.kubeconfig), *args, "-n", NS, *extra]
    env = {"FLOW_API_URL": "", "FLOW_API_TOKEN": "", "NO_COLOR": "1"}
    return CliRunner().invoke(flowctl, argv, env=env, catch_exceptions=False)


@pytest.mark.timeout(420)
def test_flowctl_shows_a_run_that_left_the_cluster_from_the_store(
    cluster: ClusterHandle, ns: str, operator: OperatorProcess
) -> None:
    runs = [flowrun("cli-ok", [task("extract", OK)]),
            flowrun("cli-fails", [task("crunch", FAILS, retries=1)])]  # fmt: skip
    for run in runs:
        run["spec"]["ttlSecondsAfterFinished"] = 3
    cluster.kubectl("-n", ns, "apply", "-f", "-", input=yaml.safe_dump_all(runs))
    wait_for("both runs stored, finished and gone from the cluster",
             lambda: stored_total(operator) == 2 and not left_in_cluster(cluster), 300, 1.0)  # fmt: skip
    server = operator.url("")

    # Without the API: today's behaviour, and the way to the archive named.
    gone = flowctl_(cluster, "run", "cli-ok")
    assert gone.exit_code == 1 and "--server URL (or $FLOW_API_URL)" in gone.output, gone.output
    assert "cli-ok" not in flowctl_(cluster, "runs").stdout

    listed = flowctl_(cluster, "runs", server=server)
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert {line.split()[0] for line in lines[1:3]} == {"cli-ok", "cli-fails"}, listed.stdout
    assert lines[-1] == "2 of 2 runs (1 Completed, 1 Failed)", listed.stdout
    first = flowctl_(cluster, "runs", "--limit", "1", "-o", "json", server=server)
    page = json.loads(first.stdout)
    assert len(page["items"]) == 1 and page["total"] == 2 and page["continue"], page
    second = json.loads(flowctl_(cluster, "runs", "--limit", "1", "--continue", page["continue"],
                                 "-o", "json", server=server).stdout)  # fmt: skip
    assert {page["items"][0]["name"], second["items"][0]["name"]} == {"cli-ok", "cli-fails"}
    failed = json.loads(flowctl_(cluster, "runs", "--status", "Failed", "-o", "json",
                                 server=server).stdout)  # fmt: skip
    assert [r["name"] for r in failed["items"]] == ["cli-fails"]

    shown = flowctl_(cluster, "run", "cli-fails", server=server)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[0].startswith(f"flow run {NS}/cli-fails: archived")
    doc = json.loads(flowctl_(cluster, "run", "cli-fails", "-o", "json", server=server).stdout)
    assert doc["archived"] is True and doc["status"] == "Failed"
    assert [(t["name"], t["status"], t.get("attempts")) for t in doc["tasks"]] == [
        ("crunch", "Failed", 2)]  # fmt: skip

    # The logs: what the store holds, through flowctl, for each attempt.
    for name, task_name, attempt in (("cli-ok", "extract", None), ("cli-fails", "crunch", None),
                                     ("cli-fails", "crunch", 1)):  # fmt: skip
        query = f"?attempt={attempt}" if attempt else ""
        code, headers, stored = api(operator, f"/api/v1/flowruns/{NS}/{name}/tasks/{task_name}/logs{query}")  # fmt: skip
        assert code == 200 and headers["X-Log-Source"] == "history" and stored.strip(), stored
        args = ["logs", name, task_name, *(["--attempt", str(attempt)] if attempt else [])]
        got = flowctl_(cluster, *args, server=server)
        assert got.exit_code == 0, got.output
        assert got.stdout == stored
        want = attempt or (2 if name == "cli-fails" else 1)
        assert f"task {task_name}, attempt {want}, from the run history" in got.stderr
        assert "is archived (gone from the cluster)" in got.stderr
    followed = flowctl_(cluster, "logs", "cli-ok", "-f", server=server)
    assert followed.exit_code == 0 and "nothing to follow" in followed.stderr
