"""Run history on the local cluster (issue 16, docs/history.md): finished runs leave the
cluster after a short TTL, yet stay listed, searchable and their task logs readable from
the run store; an operator restart loses nothing; a Workflow's color transitions are
stored and served.

The module runs an operator of its own on one namespace, with a SQLite store in a
temporary directory and `--finished-run-ttl 5s`; half the runs carry their own
`spec.ttlSecondsAfterFinished: 5` instead. Some runs fail (kwok's `fail` image, with a
retry, so two failed attempts) and one is OOM-killed, so logs of failed attempts are
checked too.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner, Result

from flow_operator.cli.main import flowctl
from flow_operator.history.sql import audit as audit_table
from flow_operator.history.sql import colors as colors_table
from tests.e2e.conftest import (
    _OPERATORS,
    OK,
    ROOT,
    ClusterHandle,
    OperatorProcess,
    flowrun,
    task,
    token_namespace,
    wait_for,
)

pytestmark = pytest.mark.e2e

NS = f"history-{secrets.token_hex(3)}"
TOKEN = f"history-{secrets.token_hex(8)}"
FAILS = "kwok.flowops.test/fail"  # exits 1 after 2 s
OOM = "kwok.flowops.test/oomkill"  # exit 137, OOMKilled
RUNS = 20
FAILED = {"fails-00", "fails-01"}  # two attempts each (retries: 1), both failed
OOMED = {"oom-00"}


def runs() -> list[dict[str, Any]]:
    """20 runs: 17 of two dependent tasks that succeed, 2 that fail twice, 1 OOM-killed
    (the run Crashed).
    Every other run has its own TTL; the rest take the operator's --finished-run-ttl."""
    out = []
    for i in range(RUNS - len(FAILED) - len(OOMED)):
        tasks = [task("extract"), task("load", dependsOn=["extract"])]
        out.append(flowrun(f"etl-{i:02d}", tasks, configuration={"name": f"cfg-{i:02d}"}))
    out += [flowrun(n, [task("crunch", FAILS, retries=1)]) for n in sorted(FAILED)]
    out += [flowrun(n, [task("hog", OOM)]) for n in sorted(OOMED)]
    for i, run in enumerate(out):
        run["spec"]["runType"] = "API"
        if i % 2:
            run["spec"]["ttlSecondsAfterFinished"] = 5
    return out


@pytest.fixture(scope="module")
def ns(cluster: ClusterHandle) -> Iterator[str]:
    yield from token_namespace(cluster, NS, TOKEN)


@pytest.fixture(scope="module")
def operator(
    cluster: ClusterHandle, ns: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """This module's operator: its own namespace, a SQLite store of its own, a 5 s TTL."""
    base = tmp_path_factory.mktemp("history")
    args = ["--namespace", ns, "--api-token-secret", f"{ns}/flow-operator-api",
            "--history-db", f"sqlite:///{base / 'history.db'}", "--finished-run-ttl", "5s"]  # fmt: skip
    proc = OperatorProcess(cluster.kubeconfig, base / "operator.log", args)
    proc.start()
    _OPERATORS.append(proc)
    try:
        yield proc
    finally:
        proc.stop()
        _OPERATORS.remove(proc)


def get(operator: OperatorProcess, path: str) -> tuple[int, Message, str]:
    req = urllib.request.Request(operator.url(path), headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def listed(operator: OperatorProcess, **query: Any) -> dict[str, Any]:
    code, _, body = get(operator, f"/api/v1/flowruns?{urllib.parse.urlencode(query)}")
    assert code == 200, body
    answer: dict[str, Any] = json.loads(body)
    return answer


def left_in_cluster(cluster: ClusterHandle) -> list[str]:
    out = cluster.kubectl("-n", NS, "get", "flowruns,jobs,pods", "-o", "name").stdout
    return out.split()


@pytest.fixture(scope="module")
def archived(cluster: ClusterHandle, ns: str, operator: OperatorProcess) -> OperatorProcess:
    """The 20 runs applied, finished, and gone from the cluster: no FlowRun, Job or pod."""
    cluster.kubectl("-n", ns, "apply", "-f", "-", input=yaml.safe_dump_all(runs()))
    wait_for("every run stored and finished", lambda: (
        listed(operator, namespace=ns, limit=100)["total"] == RUNS
        and not left_in_cluster(cluster)), 240, 1.0)  # fmt: skip
    return operator


def test_runs_leave_the_cluster_and_stay_listed(
    cluster: ClusterHandle, ns: str, archived: OperatorProcess
) -> None:
    assert left_in_cluster(cluster) == []
    page = listed(archived, namespace=ns, limit=100)
    names = {r["name"] for r in page["items"]}
    assert page["total"] == RUNS and len(names) == RUNS, page
    expected = {f"etl-{i:02d}" for i in range(RUNS - 3)} | FAILED | OOMED
    assert names == expected
    assert page["counts"].get("Completed") == RUNS - 3, page["counts"]
    assert page["counts"].get("Failed") == 2 and page["counts"].get("Crashed") == 1, page["counts"]
    for name in expected:  # each found by name, alone
        found = listed(archived, namespace=ns, name=name)
        assert [r["name"] for r in found["items"]] == [name], (name, found)
    failed = listed(archived, namespace=ns, status="Failed")
    assert {r["name"] for r in failed["items"]} == FAILED and failed["total"] == 2
    crashed = listed(archived, namespace=ns, status="Crashed")  # an OOM-killed task crashes it
    assert [r["name"] for r in crashed["items"]] == ["oom-00"] and crashed["total"] == 1
    assert listed(archived, namespace=ns, status="Completed")["total"] == RUNS - 3
    by_config = listed(archived, namespace=ns, configuration="cfg-07")
    assert [r["name"] for r in by_config["items"]] == ["etl-07"]
    # Pages of 7 walk all 20, newest first, without a repeat.
    seen: list[str] = []
    cursor: str | None = None
    while True:
        query: dict[str, Any] = {"namespace": ns, "limit": 7}
        if cursor:
            query["continue"] = cursor
        part = listed(archived, **query)
        seen += [r["name"] for r in part["items"]]
        cursor = part.get("continue")
        if not cursor:
            break
    assert sorted(seen) == sorted(expected) and len(seen) == RUNS


# kwok's log for a pod the local cluster's pod-logs has not given a log of its own yet (it
# writes one per Job pod, but lags behind a burst of pods that end within a second).
GENERIC = [line.split(" ", 3)[3] for line in (ROOT / "cluster/stages/task.log").read_text().splitlines()]  # fmt: skip


def served(text: str, attempt: int, pod: str | None = None) -> bool:
    """Whether `text` is what kwok served for that pod's attempt: its own log (naming the
    pod and attempt), or kwok's generic one. False: the generic one."""
    lines = text.splitlines()
    if lines == GENERIC:
        return False
    suffix = f"{pod}, attempt {attempt}" if pod else f", attempt {attempt}"
    assert lines[0].startswith("pod ") and lines[-1].startswith("done: "), text
    assert lines[-1].endswith(suffix), (suffix, text)
    return True


def stored_log(operator: OperatorProcess, run: str, task: str, attempt: int | None = None) -> Any:
    path = f"/api/v1/flowruns/{NS}/{run}/tasks/{task}/logs"
    code, headers, text = get(operator, path + (f"?attempt={attempt}" if attempt else ""))
    assert code == 200, (run, task, code, text)
    return headers, text


def test_task_logs_are_read_from_the_store(archived: OperatorProcess) -> None:
    own = 0  # logs naming their pod (the rest are kwok's generic log: see GENERIC)
    for i in range(RUNS - 3):
        run = f"etl-{i:02d}"
        detail = json.loads(get(archived, f"/api/v1/flowruns/{NS}/{run}")[2])
        assert [(t["name"], t["status"]) for t in detail["tasks"]] == [
            ("extract", "Succeeded"), ("load", "Succeeded")]  # fmt: skip
        for line in detail["tasks"]:
            headers, text = stored_log(archived, run, line["name"])
            assert headers["X-Log-Source"] == "history" and "X-Log-Lost" not in headers
            if served(text, 1, line["pod"]):
                own += 1
                assert f"of Job {run}-{line['name']} " in text.splitlines()[0]
    for run in sorted(FAILED):  # both failed attempts, each its own record
        last, text = stored_log(archived, run, "crunch")
        assert last["X-Log-Attempt"] == "2" and "X-Log-Lost" not in last
        own += served(text, 2)
        first, text = stored_log(archived, run, "crunch", attempt=1)
        assert first["X-Log-Source"] == "history" and first["X-Log-Attempt"] == "1"
        assert "X-Log-Lost" not in first
        own += served(text, 1)
    headers, text = stored_log(archived, "oom-00", "hog")
    assert headers["X-Log-Source"] == "history" and "X-Log-Lost" not in headers
    own += served(text, 1)
    assert own > 0  # the check above compared some logs with their own pod


def test_log_contains_finds_runs_by_their_stored_logs(archived: OperatorProcess) -> None:
    """`logContains` (the store's log search index, migration 0006) over the runs that left
    the cluster: a line only one run's log holds finds that run alone, in any case; a
    failed attempt's log is searched too; a string in no log finds none."""
    own = []  # runs whose stored extract log is their own (names its Job), not kwok's generic
    for i in range(RUNS - 3):
        run = f"etl-{i:02d}"
        _, text = stored_log(archived, run, "extract")
        if text.splitlines() != GENERIC:
            own.append(run)
    assert own, "no stored log named its own pod (see GENERIC)"
    for run in own[:3]:
        found = listed(archived, namespace=NS, logContains=f"OF JOB {run}-extract ")
        assert [r["name"] for r in found["items"]] == [run] and found["total"] == 1, found
    _, first = stored_log(archived, "fails-00", "crunch", attempt=1)
    line = max(first.splitlines(), key=len)  # the longest line of a failed attempt's log
    found = listed(archived, namespace=NS, logContains=line, limit=100)
    assert "fails-00" in {r["name"] for r in found["items"]}, (line, found)
    none = listed(archived, namespace=NS, logContains=f"in-no-log-{secrets.token_hex(4)}")
    assert none["items"] == [] and none["total"] == 0, none


def test_a_restart_loses_nothing(
    cluster: ClusterHandle, ns: str, archived: OperatorProcess
) -> None:
    archived.restart()
    page = listed(archived, namespace=ns, limit=100)
    assert page["total"] == RUNS and len(page["items"]) == RUNS, page
    headers, text = stored_log(archived, "fails-00", "crunch", attempt=1)
    assert headers["X-Log-Source"] == "history" and headers["X-Log-Attempt"] == "1"
    served(text, 1)
    # Runs in flight when the operator is killed are archived by the next one.
    more = [flowrun(f"late-{i}", [task("step", OK)]) for i in range(3)]
    for run in more:
        run["spec"]["ttlSecondsAfterFinished"] = 5
    cluster.kubectl("-n", ns, "apply", "-f", "-", input=yaml.safe_dump_all(more))
    wait_for("the late runs stored", lambda: listed(archived, namespace=ns, name="late-")[
        "total"] == 3, 60)  # fmt: skip
    archived.restart(kill=True)
    wait_for("every run stored, finished and gone", lambda: (
        listed(archived, namespace=ns, status="Completed")["total"] == RUNS - 3 + 3
        and not left_in_cluster(cluster)), 120, 1.0)  # fmt: skip
    assert listed(archived, namespace=ns, limit=100)["total"] == RUNS + 3
    for i in range(3):
        headers, text = stored_log(archived, f"late-{i}", "step")
        assert headers["X-Log-Source"] == "history" and "X-Log-Lost" not in headers
        served(text, 1)


def test_workflow_color_transitions(
    cluster: ClusterHandle, ns: str, operator: OperatorProcess
) -> None:
    """A Workflow goes GREEN, ORANGE (a service no node can take), GREEN again: the colors
    endpoint shows the transitions and the time in each; a kill -9 duplicates none."""

    def apply(services: list[dict[str, Any]]) -> None:
        wf = {"apiVersion": "flowops.io/v1alpha1", "kind": "Workflow",
              "metadata": {"name": "shop"},
              "spec": {"desiredStatus": "PUBLISHED", "publishingMode": "ASYNC",
                       "services": services}}  # fmt: skip
        cluster.kubectl("-n", ns, "apply", "-f", "-", input=yaml.safe_dump(wf))

    def color() -> str | None:
        out = cluster.kubectl("-n", ns, "get", "workflow", "shop", "-o", "json").stdout
        return (json.loads(out).get("status") or {}).get("actualStatus")

    def colors() -> dict[str, Any]:
        code, _, body = get(operator, f"/api/v1/workflows/{ns}/shop/colors")
        assert code == 200, body
        answer: dict[str, Any] = json.loads(body)
        return answer

    def moves() -> list[str]:
        return [t["toColor"] for t in colors()["transitions"]]

    try:
        web = {"id": "web", "image": OK, "replicas": 1}
        huge = {"id": "huge", "image": OK, "replicas": 1,
                "resources": {"requests": {"memory": "1000Gi"}}}  # fmt: skip
        apply([web])
        wait_for("GREEN", lambda: color() == "GREEN", 90)
        apply([web, huge])
        wait_for("ORANGE", lambda: color() == "ORANGE", 60)
        apply([web])
        wait_for("GREEN again", lambda: color() == "GREEN", 60)
        wait_for("the transitions stored", lambda: moves()[-3:] == ["GREEN", "ORANGE", "GREEN"], 30)
        answer = colors()
        got = answer["transitions"]
        assert [t["fromColor"] for t in got[-2:]] == ["GREEN", "ORANGE"]
        assert got[-2]["reason"] == "Publishing" and got[-1]["reason"] == "Published"
        assert answer["seconds"]["ORANGE"] > 0 and answer["seconds"]["GREEN"] > 0
        out = cluster.kubectl("-n", ns, "get", "workflow", "shop", "-o", "json").stdout
        since = json.loads(out)["status"]["colorSince"]
        assert datetime.fromisoformat(since) == datetime.fromisoformat(got[-1]["time"])
        # kill -9, then a start: the live status is seen again, nothing is stored twice. The
        # start's first sight of the Workflow queues its held color (GREEN at colorSince, the
        # key already stored) before the next change, so once that change is stored the
        # rebuild has been written too (one queue, in order): no wait by the clock.
        operator.restart(kill=True)
        wait_for("the API back", lambda: get(operator, "/healthz")[0] == 200, 60)
        apply([web, huge])
        wait_for("ORANGE after the restart", lambda: color() == "ORANGE", 60)
        wait_for("its transition stored", lambda: len(colors()["transitions"]) > len(got), 30)
        after = colors()["transitions"]
        assert after[:-1] == got
        assert (after[-1]["fromColor"], after[-1]["toColor"]) == ("GREEN", "ORANGE")
    finally:
        # The module's namespace is the 200-run test's too, which waits for no pod at all
        # in it: the Workflow and its pods go (CI on a4240f0 and e1191a4 timed out there).
        cluster.kubectl("-n", ns, "delete", "workflow", "shop", "--wait=true", check=False)
        wait_for("the Workflow's pods gone", lambda: not [
            n for n in left_in_cluster(cluster) if n.startswith("pod/shop-")], 90)  # fmt: skip


def store_path(operator: OperatorProcess) -> str:
    """The SQLite file of the operator's store (its --history-db)."""
    dsn = operator.args[operator.args.index("--history-db") + 1]
    assert dsn.startswith("sqlite:///"), dsn
    return dsn.removeprefix("sqlite:///")


def flowctl_prune(operator: OperatorProcess, *args: str) -> Result:
    """`flowctl history prune ARGS --server … --token …`, in process (click's CliRunner)."""
    argv = ["history", "prune", *args, "--server", operator.url(""), "--token", TOKEN]
    env = {"FLOW_API_URL": "", "FLOW_API_TOKEN": "", "NO_COLOR": "1"}
    done = CliRunner().invoke(flowctl, argv, env=env, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return done


def test_prune_removes_old_colors_but_each_workflows_newest_and_old_audit(
    cluster: ClusterHandle, ns: str, operator: OperatorProcess
) -> None:
    """The store's age retention reaches a Workflow's color transitions (each Workflow's
    newest kept, so time in color stays computable) and the audit: a Workflow's real
    transitions and the operator's real audit records are back-dated in its store (the
    operator's clock is the real one: nothing waits for time to pass), then
    `flowctl history prune --dry-run` reports them and deletes nothing, and the prune
    itself deletes exactly those."""
    now = datetime.now(UTC)

    def apply(services: list[dict[str, Any]]) -> None:
        wf = {"apiVersion": "flowops.io/v1alpha1", "kind": "Workflow",
              "metadata": {"name": "aged"},
              "spec": {"desiredStatus": "PUBLISHED", "publishingMode": "ASYNC",
                       "services": services}}  # fmt: skip
        cluster.kubectl("-n", ns, "apply", "-f", "-", input=yaml.safe_dump(wf))

    def color() -> str | None:
        out = cluster.kubectl("-n", ns, "get", "workflow", "aged", "-o", "json").stdout
        return (json.loads(out).get("status") or {}).get("actualStatus")

    def colors(days: int = 40) -> dict[str, Any]:
        since = urllib.parse.quote((datetime.now(UTC) - timedelta(days=days)).isoformat())
        code, _, body = get(operator, f"/api/v1/workflows/{ns}/aged/colors?since={since}")
        assert code == 200, body
        answer: dict[str, Any] = json.loads(body)
        return answer

    def audit_ids() -> set[str]:
        code, _, body = get(operator, "/api/v1/audit?limit=1000")
        assert code == 200, body
        return {e["id"] for e in json.loads(body)["items"]}

    # Three transitions at least (GREEN, ORANGE, GREEN), then the Workflow goes, so no
    # transition comes after the back-dating.
    web = {"id": "web", "image": OK, "replicas": 1}
    huge = {"id": "huge", "image": OK, "replicas": 1,
            "resources": {"requests": {"memory": "1000Gi"}}}  # fmt: skip
    try:
        apply([web])
        wait_for("GREEN", lambda: color() == "GREEN", 90)
        apply([web, huge])
        wait_for("ORANGE", lambda: color() == "ORANGE", 60)
        apply([web])
        wait_for("GREEN again", lambda: color() == "GREEN", 60)
        wait_for("the transitions stored", lambda: [
            t["toColor"] for t in colors()["transitions"]][-3:] == ["GREEN", "ORANGE", "GREEN"], 30)  # fmt: skip
    finally:
        cluster.kubectl("-n", ns, "delete", "workflow", "aged", "--wait=true", check=False)
        wait_for("the Workflow's pods gone", lambda: not [
            n for n in left_in_cluster(cluster) if n.startswith("pod/aged-")], 90)  # fmt: skip
    stored = colors()["transitions"]
    k = len(stored)
    assert k >= 3, stored
    # Real audit records: two prunes that delete nothing (a prune is audited, a dry run not).
    before = audit_ids()
    for _ in range(2):
        flowctl_prune(operator, "--max-age", "never", "--keep-per-flow-status", "none")
    wait_for("the two prunes audited", lambda: len(audit_ids() - before) == 2, 30)
    old_audit = audit_ids()

    # Back-date in the operator's own store (WAL: the operator keeps reading and writing):
    # the first transition 30 days, the others 10 days; every audit record 30 days.
    engine = sa.create_engine(f"sqlite:///{store_path(operator)}", connect_args={"timeout": 30})
    try:
        with engine.begin() as conn:
            for i, t in enumerate(stored):
                at = datetime.fromisoformat(t["time"])
                key = (colors_table.c.uid == t["uid"], colors_table.c.time == at,
                       colors_table.c.to_color == t["toColor"])  # fmt: skip
                moved = timedelta(days=30 if i == 0 else 10)
                changed = conn.execute(sa.update(colors_table).where(*key).values(time=at - moved))
                assert changed.rowcount == 1, t
            for row in conn.execute(sa.select(audit_table.c.id, audit_table.c.time)).all():
                conn.execute(sa.update(audit_table).where(audit_table.c.id == row.id)
                             .values(time=row.time - timedelta(days=30)))  # fmt: skip
    finally:
        engine.dispose()
    aged = colors()["transitions"]
    assert [t["toColor"] for t in aged] == [t["toColor"] for t in stored]
    assert datetime.fromisoformat(aged[0]["time"]) < now - timedelta(days=29)

    def report(*args: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(flowctl_prune(operator, *args, "-o", "json").stdout)
        return out

    runs_stored = listed(operator, limit=1)["total"]
    # maxAge 20d: the first transition alone (the others are 10 days old), every audit record.
    at_20d = report("--dry-run", "--max-age", "20d", "--keep-per-flow-status", "none")
    assert (at_20d["dryRun"], at_20d["total"]) == (True, 0), at_20d
    assert (at_20d["colorTransitions"], at_20d["auditRecords"]) == (1, len(old_audit)), at_20d
    # maxAge 7d: every transition is older, but the newest is kept.
    text = flowctl_prune(operator, "--dry-run", "--max-age", "7d",
                         "--keep-per-flow-status", "none").stdout  # fmt: skip
    assert text.splitlines() == [
        "would delete 0 runs from the history (0 by age, 0 by count)",
        f"and {k - 1} Workflow color transitions and {len(old_audit)} audit records older "
        "than the retention age (each Workflow's newest transition is kept)",
        "(dry run: nothing deleted)",
    ], text
    # The dry runs deleted nothing (and, not being actions, audited nothing).
    assert colors()["transitions"] == aged
    assert audit_ids() == old_audit
    assert listed(operator, limit=1)["total"] == runs_stored

    done = report("--max-age", "7d", "--keep-per-flow-status", "none")
    assert (done["dryRun"], done["total"]) == (False, 0), done
    assert (done["colorTransitions"], done["auditRecords"]) == (k - 1, len(old_audit)), done
    assert colors()["transitions"] == aged[-1:]  # the newest, 10 days old, stays
    # ... so the color of the last day is known: GREEN all along.
    day = colors(days=1)
    assert day["transitions"] == [] and day["colorAtStart"] == aged[-1]["toColor"] == "GREEN"
    assert day["seconds"].get("GREEN", 0) > 86_000, day
    left = audit_ids()
    assert not left & old_audit, left  # the back-dated records went; this prune's is new
    assert listed(operator, limit=1)["total"] == runs_stored
    assert report("--dry-run", "--max-age", "7d", "--keep-per-flow-status", "none")[
        "colorTransitions"] == 0  # fmt: skip


def test_prune_dry_run_reports_without_deleting(ns: str, archived: OperatorProcess) -> None:
    """A dry run by age (every run ended more than a second ago) reports every stored run,
    and deletes none of them."""
    stored = listed(archived, namespace=ns, limit=100)["total"]
    req = urllib.request.Request(
        archived.url("/api/v1/history/prune?dryRun=true&maxAge=1s&keepPerFlowStatus=none"),
        headers={"Authorization": f"Bearer {TOKEN}"}, method="POST",
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        report = json.loads(resp.read().decode())
    assert report["total"] == stored >= RUNS and report["dryRun"] is True, report
    assert listed(archived, namespace=ns, limit=100)["total"] == stored


BULK = 200


@pytest.mark.timeout(900)  # its own wait is 420 s: the suite's 300 s cut it short in CI
def test_two_hundred_runs_leave_the_cluster_and_stay_searchable(
    cluster: ClusterHandle, ns: str, archived: OperatorProcess
) -> None:
    """200 runs of one flow with a 5 s TTL: all leave the cluster, all stay listed and
    found by name, and every task's log is read from the store."""
    bulk = [flowrun(f"bulk-{i:03d}", [task("step", OK)]) for i in range(BULK)]
    for run in bulk:
        run["spec"]["flowName"] = "bulk"
        run["spec"]["ttlSecondsAfterFinished"] = 5
    cluster.kubectl("-n", ns, "apply", "-f", "-", input=yaml.safe_dump_all(bulk), timeout=180)
    wait_for("the 200 runs stored, finished and gone", lambda: (
        listed(archived, namespace=ns, flow="bulk", status="Completed")["total"]
        == BULK and not left_in_cluster(cluster)), 420, 2.0)  # fmt: skip
    page = listed(archived, namespace=ns, flow="bulk", limit=100)
    assert page["total"] == BULK and len(page["items"]) == 100 and page["continue"]
    rest = listed(archived, namespace=ns, flow="bulk", limit=100, **{"continue": page["continue"]})
    names = {r["name"] for r in page["items"] + rest["items"]}
    assert names == {f"bulk-{i:03d}" for i in range(BULK)} and not rest.get("continue")
    assert listed(archived, namespace=ns, name="bulk-123")["total"] == 1
    for i in range(BULK):
        headers, text = stored_log(archived, f"bulk-{i:03d}", "step")
        assert headers["X-Log-Source"] == "history" and "X-Log-Lost" not in headers
        served(text, 1)


CHROMIUM = "/usr/bin/chromium"
HAVE_CHROMIUM = os.path.exists(CHROMIUM)


async def test_the_dashboard_pages_through_the_history(ns: str, archived: OperatorProcess) -> None:
    """The run list asks for 100 runs, shows the total and the counts per status, and
    "more" appends the next page (the history holds over 200 runs of this namespace)."""
    if not HAVE_CHROMIUM:
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} missing: run tests/e2e/browser_deps.sh")
        pytest.skip(f"{CHROMIUM} missing (tests/e2e/browser_deps.sh installs it)")
    from playwright.async_api import async_playwright, expect

    whole = listed(archived, namespace=ns, limit=1)
    total, counts = whole["total"], whole["counts"]
    assert total > 200
    shown = ", ".join(f"{n:,} {status}" for status, n in counts.items() if n)
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox"]
        )
        page = await (await browser.new_context(viewport={"width": 1500, "height": 950})).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        requests: list[str] = []
        page.on(
            "request", lambda r: requests.append(r.url) if "/api/v1/flowruns?" in r.url else None
        )
        await page.goto(archived.url("/#/runs"))
        await page.wait_for_selector("#login-form", state="visible")
        await page.fill("#token", TOKEN)
        await page.click("#login-form button[type=submit]")
        rows = page.locator("tr.run")
        await expect(rows).to_have_count(100)
        await expect(page.locator("#run-counts")).to_have_text(f"100 of {total:,} runs: {shown}")
        assert all("limit=100" in url for url in requests), requests
        more = page.locator("#runs-more")
        await more.click()
        await expect(rows).to_have_count(200)
        assert "continue=" in requests[-1]
        await more.click()
        await expect(rows).to_have_count(total)
        await expect(more).to_be_hidden()
        await expect(page.locator("#run-counts")).to_have_text(f"{total:,} runs: {shown}")
        await browser.close()
    assert errors == []


# --- PostgreSQL down for 70 s mid-load ------------------------------------------------------

NS_PG = f"history-pg-{secrets.token_hex(3)}"
OUTAGE = 70.0  # past the recorder's 60 s before it posts a HistoryBehind Warning


def _pg_ctl(server: Any, *args: str) -> None:
    server.pg(str(server.bindir / "pg_ctl"), "-D", str(server.data), *args)


def pg_stop(server: Any) -> None:
    _pg_ctl(server, "-m", "fast", "-w", "-t", "60", "stop")


def pg_start(server: Any) -> None:
    """Start the stopped server again, as bench/pgserver.py's start() does."""
    options = (f"-p {server.port} -h 127.0.0.1 -k {server.data} -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off")  # fmt: skip
    _pg_ctl(server, "-l", str(server.logfile), "-o", options, "-w", "-t", "60", "start")


@pytest.fixture(scope="module")
def postgres() -> Iterator[Any]:
    from bench import pgserver

    try:
        server = pgserver.start()
    except pgserver.PostgresUnavailable as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pg_operator(
    cluster: ClusterHandle, postgres: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """An operator on NS_PG alone, its store the throwaway PostgreSQL server."""
    cluster.kubectl("create", "namespace", NS_PG)
    wait_for(f"ServiceAccount default in {NS_PG}",
             lambda: cluster.kubectl("-n", NS_PG, "get", "sa", "default",
                                     check=False).returncode == 0, 30)  # fmt: skip
    token = base64.b64encode(TOKEN.encode()).decode()
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "flow-operator-api"},
              "data": {"token": token}}  # fmt: skip
    cluster.kubectl("-n", NS_PG, "apply", "-f", "-", input=yaml.safe_dump(secret))
    base = tmp_path_factory.mktemp("history-pg")
    args = ["--namespace", NS_PG, "--api-token-secret", f"{NS_PG}/flow-operator-api",
            "--history-db", postgres.dsn("postgres"), "--finished-run-ttl", "5s"]  # fmt: skip
    proc = OperatorProcess(cluster.kubeconfig, base / "operator.log", args)
    proc.start()
    _OPERATORS.append(proc)
    try:
        yield proc
    finally:
        proc.stop()
        _OPERATORS.remove(proc)
        cluster.kubectl("delete", "namespace", NS_PG, "--wait=false", check=False)


def phases(cluster: ClusterHandle) -> dict[str, str]:
    out = cluster.get_json("-n", NS_PG, "flowruns")
    return {
        i["metadata"]["name"]: (i.get("status") or {}).get("phase", "")
        for i in out.get("items", [])
    }


def pending_records(operator: OperatorProcess) -> float:
    for line in operator.metrics_text().splitlines():
        if line.startswith('flowops_history_pending{what="runs"}'):
            return float(line.split()[-1])
    return 0.0


def test_postgresql_down_for_70s_mid_load_loses_nothing(
    cluster: ClusterHandle, postgres: Any, pg_operator: OperatorProcess
) -> None:
    """10 runs archived, then the database stops while 10 more run: they finish in the
    cluster but none is deleted while it is down, the list still answers (live runs), the
    operator says it is behind (metric, Warning Event); when it returns, all 20 are
    stored, leave the cluster, and their logs are read from the store."""

    def batch(prefix: str) -> list[dict[str, Any]]:
        runs = [flowrun(f"{prefix}-{i}", [task("a", OK), task("b", OK, dependsOn=["a"])])
                for i in range(10)]  # fmt: skip
        for run in runs:
            run["spec"]["ttlSecondsAfterFinished"] = 5
        return runs

    def stored(**query: Any) -> int:
        code, _, body = get(pg_operator, f"/api/v1/flowruns?{urllib.parse.urlencode(query)}")
        return int(json.loads(body)["total"]) if code == 200 else -1

    cluster.kubectl("-n", NS_PG, "apply", "-f", "-", input=yaml.safe_dump_all(batch("before")))
    try:
        wait_for("the first 10 stored and gone", lambda: stored(namespace=NS_PG) == 10
                 and not phases(cluster), 120, 1.0)  # fmt: skip
    except AssertionError as e:  # say which run stayed, and as what
        left = cluster.get_json("-n", NS_PG, "flowruns").get("items", [])
        raise AssertionError(f"{e}: {stored(namespace=NS_PG)} listed; in the cluster: "
                             f"{[(i['metadata']['name'], i.get('status')) for i in left]}") from None  # fmt: skip
    pg_stop(postgres)
    down = time.monotonic()
    try:
        cluster.kubectl("-n", NS_PG, "apply", "-f", "-", input=yaml.safe_dump_all(batch("during")))
        names = {f"during-{i}" for i in range(10)}
        wait_for("the 10 runs Completed in the cluster", lambda: (
            (p := phases(cluster)).keys() >= names
            and all(p[n] == "Completed" for n in names)), 60, 1.0)  # fmt: skip
        while time.monotonic() - down < OUTAGE:  # nothing deleted while the store is down
            assert phases(cluster).keys() >= names, phases(cluster)
            time.sleep(2)
        assert pending_records(pg_operator) >= 10
        # the list answers with the live runs alone
        code, _, body = get(pg_operator, f"/api/v1/flowruns?namespace={NS_PG}")
        assert code == 200 and {r["name"] for r in json.loads(body)["items"]} == names
    finally:
        pg_start(postgres)
    events = wait_for("a HistoryBehind Warning", lambda: [
        e for e in cluster.get_json("-n", NS_PG, "events").get("items", [])
        if e.get("reason") == "HistoryBehind"], 60)  # fmt: skip
    assert events[0]["type"] == "Warning" and "run history is behind" in events[0]["message"]
    wait_for("all 20 stored and gone", lambda: stored(namespace=NS_PG, status="Completed") == 20
             and not phases(cluster), 180, 1.0)  # fmt: skip
    assert pending_records(pg_operator) == 0
    for i in range(10):
        for name in ("a", "b"):
            code, headers, text = get(pg_operator, f"/api/v1/flowruns/{NS_PG}/during-{i}/tasks/{name}/logs")  # fmt: skip
            assert code == 200 and headers["X-Log-Source"] == "history", (i, name, code, text)
            assert "X-Log-Lost" not in headers
            served(text, 1)
