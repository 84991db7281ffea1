"""FlowRuns end to end: real Jobs run by the real Job controller, pods played by kwok
(cluster/stages/pods.yaml and attempts.yaml: the image chooses success, failure, OOM kill,
a first attempt that fails or a pod that never finishes), the operator as a subprocess.

Every pod of a Job has a log of its own on the local cluster (localcluster.py's pod-logs:
stages/job-pod.log, naming the pod, its Job and its attempt), so the log tests can tell
which pod's log they were shown."""

from __future__ import annotations

import base64
import http.client
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import (
    FOREVER,
    OK,
    ROOT,
    ClusterHandle,
    OperatorProcess,
    flowrun,
    task,
    wait_for,
)

pytestmark = pytest.mark.e2e
TOKEN, TOKEN_SECRET = "flowrun-e2e-token-5d1c", "flowrun-e2e-api"  # the API's bearer token
# Unschedulable pods crash a run after 5 s here (60 s by default).
OPERATOR_ARGS = ["--all-namespaces", "--crash-grace-seconds", "5",
                 "--api-token-secret", f"default/{TOKEN_SECRET}"]  # fmt: skip
FAIL = "kwok.flowops.test/fail"  # every attempt exits 1
FAIL_ONCE = "kwok.flowops.test/fail-once"  # attempt 1 exits 1, the retry succeeds


class Runs:
    def __init__(self, cluster: ClusterHandle, namespace: str, operator: OperatorProcess) -> None:
        self.cluster, self.ns, self.operator = cluster, namespace, operator

    def apply(self, obj: dict[str, Any]) -> None:
        self.cluster.kubectl("-n", self.ns, "apply", "-f", "-", input=yaml.safe_dump(obj))

    def get(self, name: str) -> dict[str, Any]:
        return self.cluster.get_json("-n", self.ns, "flowrun", name)

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def phase(self, name: str) -> str | None:
        return self.status(name).get("phase")

    def wait_phase(self, name: str, *phases: str, timeout: float = 60) -> dict[str, Any]:
        return wait_for(
            f"flow run {name} in {phases}",
            lambda: self.status(name) if self.phase(name) in phases else None,
            timeout,
        )

    def jobs(self) -> list[dict[str, Any]]:
        return self.cluster.get_json("-n", self.ns, "jobs").get("items", [])

    def pods(self, run: str, task: str) -> list[dict[str, Any]]:
        """The pods of a run's task, oldest first: one per attempt."""
        selector = f"flowops.io/flowrun={run},flowops.io/task={task}"
        found = self.cluster.get_json("-n", self.ns, "pods", "-l", selector).get("items", [])
        return sorted(found, key=lambda p: p["metadata"]["creationTimestamp"])

    def pod_log(self, pod: str, *args: str) -> str:
        """A pod's log as kubectl shows it (the API server's pods/log, served by kwok)."""
        return self.cluster.kubectl("-n", self.ns, "logs", pod, *args).stdout

    def http(self, path: str) -> tuple[int, str]:
        """GET a path of the run's API (/api/v1/flowruns/<namespace>/<path>), with the token."""
        req = urllib.request.Request(
            self.operator.url(f"/api/v1/flowruns/{self.ns}/{path}"),
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def flowctl(self, *args: str, **popen: Any) -> subprocess.Popen[str]:
        env = {**os.environ, "KUBECONFIG": str(self.cluster.kubeconfig), "NO_COLOR": "1"}
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "flowctl"), *args, "-n", self.ns],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
            **popen,
        )  # fmt: skip


@pytest.fixture(scope="module")
def token(cluster: ClusterHandle) -> Iterator[str]:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": TOKEN_SECRET},
              "data": {"token": base64.b64encode(TOKEN.encode()).decode()}}  # fmt: skip
    cluster.kubectl("-n", "default", "apply", "-f", "-", input=yaml.safe_dump(secret))
    yield TOKEN
    cluster.kubectl("-n", "default", "delete", "secret", TOKEN_SECRET, check=False)


@pytest.fixture
def runs(cluster: ClusterHandle, namespace: str, operator: OperatorProcess) -> Runs:
    return Runs(cluster, namespace, operator)


def first_line(namespace: str, pod: str, job: str, attempt: int) -> str:
    """How stages/job-pod.log begins, for this pod: who it is."""
    return f"pod {namespace}/{pod}: attempt {attempt} of Job {job} "


def last_line(pod: str, attempt: int) -> str:
    return f"done: {pod}, attempt {attempt}"


def test_a_dag_completes_in_dependency_order(runs: Runs) -> None:
    runs.apply(flowrun("dag", [
        task("extract"),
        task("train", dependsOn=["extract"]),
        task("publish", dependsOn=["train"]),
    ], configuration={"name": "prod", "parameters": {"REGION": "emea"}}))  # fmt: skip
    status = runs.wait_phase("dag", "Completed", "Failed", "Crashed")
    assert status["phase"] == "Completed", status
    assert [h["phase"] for h in status["history"]] == [
        "Submitted", "Queued", "Deployed", "Completed"]  # fmt: skip
    lines = {t["name"]: t for t in status["tasks"]}
    assert {n: (t["status"], t["attempts"]) for n, t in lines.items()} == {
        n: ("Succeeded", 1) for n in ("extract", "train", "publish")}  # fmt: skip
    # Each task starts only after the one it depends on ended (times to the second).
    assert lines["extract"]["endTime"] <= lines["train"]["startTime"]
    assert lines["train"]["endTime"] <= lines["publish"]["startTime"]
    assert status["startTime"] <= lines["extract"]["startTime"]
    assert status["endTime"] >= lines["publish"]["endTime"] and status["duration"]
    jobs = {j["metadata"]["name"]: j for j in runs.jobs()}
    assert set(jobs) == {"dag-extract", "dag-train", "dag-publish"}
    env = jobs["dag-train"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "REGION", "value": "emea"} in env
    assert jobs["dag-train"]["metadata"]["ownerReferences"][0]["kind"] == "FlowRun"
    # kubectl shows the seed's columns; kubectl wait works on the Ready condition.
    table = runs.cluster.kubectl("-n", runs.ns, "get", "flowruns").stdout
    assert table.split()[:9] == ["NAME", "FLOW", "VERSION", "RUN", "TYPE", "STATUS", "START",
                                 "DURATION", "MESSAGE"]  # fmt: skip
    assert "Completed" in table and "all 3 tasks completed" in table
    runs.cluster.kubectl("-n", runs.ns, "wait", "--for=condition=Ready", "flowrun/dag",
                         "--timeout=10s")  # fmt: skip

    # Transitions are Kubernetes Events on the run (posted in the background).
    def reasons() -> set[str]:
        events = runs.cluster.get_json("-n", runs.ns, "events", "--field-selector",
                                       "involvedObject.kind=FlowRun")["items"]  # fmt: skip
        return {e["reason"] for e in events}

    wanted = {"Submitted", "Deployed", "Completed"}
    wait_for(f"Events {sorted(wanted)}", lambda: wanted <= reasons(), 10)
    # a task's start and success are not Events (only its failure is: issue 21)
    assert not {"TaskStarted", "TaskSucceeded"} & reasons(), reasons()
    # And Prometheus counts them: a transition per phase, the run's and tasks' durations.
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(runs.operator.metrics_text())
        for s in family.samples
    }
    for phase in ("Submitted", "Queued", "Deployed", "Completed"):
        key = ("flowops_flowrun_transitions_total", (("namespace", runs.ns), ("phase", phase)))
        assert samples.get(key) == 1, key
    assert samples[("flowops_flowrun_duration_seconds_count", (("phase", "Completed"),))] >= 1
    assert samples[("flowops_task_duration_seconds_count", (("status", "Succeeded"),))] >= 3


def test_a_failing_task_fails_the_run_and_names_it(runs: Runs) -> None:
    runs.apply(flowrun("failing", [task("prepare"), task("score", "kwok.flowops.test/fail",
                                                          dependsOn=["prepare"])]))  # fmt: skip
    status = runs.wait_phase("failing", "Completed", "Failed", "Crashed")
    assert status["phase"] == "Failed"
    assert status["message"].startswith("task score failed: exit code 1")
    line = next(t for t in status["tasks"] if t["name"] == "score")
    assert line["status"] == "Failed"
    # The message ends with the last lines of that pod's log, read through the API server.
    (pod,) = runs.pods("failing", "score")
    assert line["podName"] == pod["metadata"]["name"]
    assert line["message"].endswith(f"\nworking\nwarning: simulated stderr line\n"
                                    f"{last_line(line['podName'], 1)}"), line  # fmt: skip


def test_an_oom_killed_task_crashes_the_run(runs: Runs) -> None:
    runs.apply(flowrun("oom", [task("load", "kwok.flowops.test/oomkill")]))
    status = runs.wait_phase("oom", "Completed", "Failed", "Crashed")
    assert status["phase"] == "Crashed" and "OOMKilled" in status["message"]


def test_an_unschedulable_task_crashes_the_run_after_the_grace(runs: Runs) -> None:
    big = {"requests": {"memory": "64Gi"}}
    runs.apply(flowrun("huge", [task("train", resources=big)]))
    status = runs.wait_phase("huge", "Completed", "Failed", "Crashed")
    assert status["phase"] == "Crashed"
    assert "unschedulable" in status["message"] and "Insufficient memory" in status["message"]


def test_a_quota_refusing_the_pods_crashes_the_run(runs: Runs) -> None:
    quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "no-pods"},
             "spec": {"hard": {"pods": "0"}}}  # fmt: skip
    runs.apply(quota)
    runs.apply(flowrun("refused", [task("load")]))
    status = runs.wait_phase("refused", "Completed", "Failed", "Crashed", timeout=90)
    assert status["phase"] == "Crashed" and status["reason"] == "QuotaExceeded", status
    assert "exceeded quota" in status["message"]


def test_cancel_removes_the_jobs(runs: Runs) -> None:
    runs.apply(flowrun("long", [task("serve", FOREVER), task("after", dependsOn=["serve"])]))
    runs.wait_phase("long", "Deployed")
    wait_for("the Job", lambda: runs.jobs(), 30)
    runs.cluster.kubectl("-n", runs.ns, "patch", "flowrun", "long", "--type=merge",
                         "-p", '{"spec":{"cancel":true}}')  # fmt: skip
    status = runs.wait_phase("long", "Cancelled")
    assert status["reason"] == "CancelRequested"
    assert {t["name"]: t["status"] for t in status["tasks"]} == {
        "serve": "Cancelled", "after": "Skipped"}  # fmt: skip
    wait_for("Jobs deleted", lambda: not runs.jobs(), 30)


def workflow(name: str, mode: str, memory: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "desiredStatus": "PUBLISHED",
        "publishingMode": mode,
        "services": [
            {"id": "api", "image": OK, "replicas": 1},
            {"id": "model", "image": OK, "replicas": 1,
             "resources": {"requests": {"memory": memory}}},
        ],
    }  # fmt: skip
    if mode == "SYNC":
        spec["stream"] = {"id": "stream", "image": OK, "replicas": 1}
        for s in spec["services"]:
            s["resources"] = {"requests": {"memory": memory}}
        spec["stream"]["resources"] = {"requests": {"memory": memory}}
    return {"apiVersion": "flowops.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": name}, "spec": spec}  # fmt: skip


def color(runs: Runs, name: str) -> str | None:
    status = runs.cluster.get_json("-n", runs.ns, "workflow", name).get("status") or {}
    return status.get("actualStatus")


def test_an_async_workflow_that_is_orange_holds_the_run_until_green(runs: Runs) -> None:
    runs.apply(workflow("scoring", "ASYNC", "64Gi"))
    wait_for("ORANGE", lambda: color(runs, "scoring") == "ORANGE", 60)
    runs.apply(flowrun("uses-it", [task("score")], workflowRef={"name": "scoring"}))
    status = runs.wait_phase("uses-it", "Queued")
    wait_for(
        "a reason to wait", lambda: runs.status("uses-it").get("reason") == "WaitingForWorkflow"
    )
    assert not runs.jobs() and "ORANGE" in runs.status("uses-it")["message"]
    runs.apply(workflow("scoring", "ASYNC", "64Mi"))  # now it fits: the Workflow turns GREEN
    wait_for("GREEN", lambda: color(runs, "scoring") == "GREEN", 60)
    status = runs.wait_phase("uses-it", "Completed", "Failed", "Crashed")
    assert status["phase"] == "Completed", status


def test_a_run_against_a_red_sync_workflow_fails_fast(runs: Runs) -> None:
    runs.apply(workflow("live", "SYNC", "64Gi"))
    wait_for("RED", lambda: color(runs, "live") == "RED", 60)
    runs.apply(flowrun("too-early", [task("score")], workflowRef={"name": "live"}))
    status = runs.wait_phase("too-early", "Failed", "Completed", timeout=30)
    assert status["phase"] == "Failed" and status["reason"] == "WorkflowUnavailable"
    assert "SYNC" in status["message"] and "RED" in status["message"]
    assert not runs.jobs()


def test_a_sub_flow_task_runs_a_child_run(runs: Runs) -> None:
    child = {
        "flowName": "tokenize",
        "version": "2",
        "tasks": [task("split"), task("count", dependsOn=["split"])],
    }
    runs.apply(
        flowrun(
            "parent", [task("fetch"), {"name": "nlp", "subFlow": child, "dependsOn": ["fetch"]}]
        )
    )
    status = runs.wait_phase("parent", "Completed", "Failed", "Crashed", timeout=90)
    assert status["phase"] == "Completed", status
    line = next(t for t in status["tasks"] if t["name"] == "nlp")
    kid = runs.get(line["childRun"])
    assert kid["spec"]["flowType"] == "sub-flow" and kid["spec"]["parentRun"] == "parent"
    assert kid["status"]["phase"] == "Completed"


def test_an_operator_killed_mid_run_resumes_without_a_second_job(
    runs: Runs, operator: OperatorProcess
) -> None:
    runs.apply(
        flowrun("resumed", [task("a"), task("b", dependsOn=["a"]), task("c", dependsOn=["b"])])
    )
    first = wait_for("the first Job", lambda: runs.jobs(), 30)[0]
    assert operator.proc is not None
    os.kill(operator.proc.pid, signal.SIGKILL)  # no cleanup, no status flush
    operator.proc.wait(timeout=10)
    operator.start()
    status = runs.wait_phase("resumed", "Completed", "Failed", "Crashed")
    assert status["phase"] == "Completed", status
    jobs = runs.jobs()
    assert sorted(j["metadata"]["name"] for j in jobs) == ["resumed-a", "resumed-b", "resumed-c"]
    same = next(j for j in jobs if j["metadata"]["name"] == first["metadata"]["name"])
    assert same["metadata"]["uid"] == first["metadata"]["uid"]
    phases = [h["phase"] for h in status["history"]]
    assert phases == ["Submitted", "Queued", "Deployed", "Completed"], json.dumps(status)


def test_each_attempt_of_a_task_has_its_own_log(runs: Runs, token: str) -> None:
    """A task retried once: attempt 1 failed, attempt 2 succeeded. Each pod's log is its
    own; the task's pod, and so the log the API and flowctl show, is the last attempt's.
    A task whose retries are all spent fails with the last attempt's exit and log lines."""
    runs.apply(flowrun("flaky", [task("fetch", FAIL_ONCE, retries=1)]))
    runs.apply(flowrun("spent", [task("score", FAIL, retries=1)]))
    status = runs.wait_phase("flaky", "Completed", "Failed", "Crashed", timeout=90)
    assert status["phase"] == "Completed", status
    (line,) = status["tasks"]
    assert (line["status"], line["attempts"]) == ("Succeeded", 2), line
    pods = runs.pods("flaky", "fetch")
    assert [p["status"]["phase"] for p in pods] == ["Failed", "Succeeded"]
    first, second = (p["metadata"]["name"] for p in pods)
    assert line["podName"] == second
    for attempt, pod in enumerate((first, second), 1):
        text = runs.pod_log(pod)
        assert text.startswith(first_line(runs.ns, pod, "flaky-fetch", attempt)), text
        assert text.splitlines()[-1] == last_line(pod, attempt), text
    assert runs.pod_log(first) != runs.pod_log(second)

    code, text = runs.http("flaky/tasks/fetch/logs")
    assert code == 200 and text == runs.pod_log(second), text
    cli = runs.flowctl("logs", "flaky")
    out, err = cli.communicate(timeout=60)
    assert cli.returncode == 0 and out == runs.pod_log(second), err

    status = runs.wait_phase("spent", "Completed", "Failed", "Crashed", timeout=90)
    assert status["phase"] == "Failed", status
    (line,) = status["tasks"]
    pods = runs.pods("spent", "score")
    assert [p["status"]["phase"] for p in pods] == ["Failed", "Failed"]
    first, second = (p["metadata"]["name"] for p in pods)
    assert (line["status"], line["attempts"], line["podName"]) == ("Failed", 2, second), line
    assert line["message"].startswith("exit code 1 (Error) after 2 attempts\n"), line
    assert line["message"].endswith(last_line(second, 2)) and first not in line["message"]


class Stream:
    """The lines of a stream read in a thread, so that a test can wait for the next one
    with a timeout (a follow never ends by itself)."""

    def __init__(self, source: IO[str] | IO[bytes]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.source = source
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while raw := self.source.readline():
                self.lines.put(raw.decode() if isinstance(raw, bytes) else raw)
        except (OSError, ValueError, AttributeError):
            # closed by the test; http.client raises AttributeError ('NoneType' object has
            # no attribute 'close') when the response is closed from another thread mid-read
            pass

    def next(self, timeout: float = 15) -> str:
        try:
            return self.lines.get(timeout=timeout).rstrip("\n")
        except queue.Empty:
            raise AssertionError(f"no new line within {timeout} s") from None


def write_to_log(path: Path, stream: str, text: str) -> None:
    """What the container prints next: a line appended to the log file kwok serves."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
    with path.open("a") as f:
        f.write(f"{stamp} {stream} F {text}\n")


def test_a_running_tasks_log_tails_and_follows(
    runs: Runs, token: str, cluster: ClusterHandle
) -> None:
    """`tailLines=N` is the last N lines of the task's pod's log; `follow=true` streams
    the lines the container writes after the request, through the API and flowctl -f."""
    if cluster.root is None:
        pytest.skip("writes to the local cluster's pod log files")
    runs.apply(flowrun("tailed", [task("serve", FOREVER)]))

    def pod() -> str | None:
        lines = runs.status("tailed").get("tasks") or []
        return lines[0].get("podName") if lines else None

    name = wait_for("the task's pod", pod, 60)
    path = cluster.root / "logs" / "pods" / runs.ns / f"{name}.log"
    wait_for("its own log", lambda: runs.pod_log(name).startswith("pod "), 30)
    logs = "tailed/tasks/serve/logs"
    code, text = runs.http(f"{logs}?tailLines=2")
    assert (code, text) == (200, f"warning: simulated stderr line\n{last_line(name, 1)}\n")

    conn = http.client.HTTPConnection("127.0.0.1", runs.operator.http_port, timeout=30)
    conn.request("GET", f"/api/v1/flowruns/{runs.ns}/{logs}?follow=true&tailLines=1",
                 headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
    stream = conn.sock
    try:
        response = conn.getresponse()
        assert response.status == 200
        followed = Stream(response)
        assert followed.next() == last_line(name, 1)  # the tail first, then what comes
        write_to_log(path, "stdout", "step 1 of 3")
        assert followed.next() == "step 1 of 3"
        write_to_log(path, "stderr", "step 2 of 3")
        assert followed.next() == "step 2 of 3"
    finally:  # hang up (the reading thread's readline returns), as a browser tab closed
        stream.shutdown(socket.SHUT_RDWR)
        conn.close()
    cli = runs.flowctl("logs", "tailed", "-f")
    try:
        followed = Stream(cli.stdout)  # type: ignore[arg-type]
        seen = [followed.next(30) for _ in range(7)]  # the whole log, then what comes
        assert seen[0].startswith(first_line(runs.ns, name, "tailed-serve", 1)), seen
        assert seen[-2:] == ["step 1 of 3", "step 2 of 3"], seen
        write_to_log(path, "stdout", "step 3 of 3")
        assert followed.next() == "step 3 of 3"
    finally:
        cli.kill()
        cli.communicate(timeout=10)
    assert runs.http(f"{logs}?tailLines=1") == (200, "step 3 of 3\n")
