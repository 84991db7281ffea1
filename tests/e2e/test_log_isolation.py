"""Log streams cannot stall the controller (issue 21, "Isolation"), on the real local
control plane:

- a client that hangs up closes its upstream `pods/log` stream within seconds (the
  operator's open-streams gauge, and the API server's own count of long-running
  `pods/log` requests, go back down), although the pod is quiet and nothing is written;
- with 100 `follow=true` streams open, the operator's status writes are not delayed past
  a bound tied to the round trip measured without them in the same test:
  max(10 x baseline, 2 s) for the mean write, and no write beyond the bucket of
  `flowops_status_write_seconds` that holds that bound;
- the 101st stream is refused (429, Retry-After).
"""

from __future__ import annotations

import base64
import http.client
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import (
    FOREVER,
    ClusterHandle,
    OperatorProcess,
    flowrun,
    task,
    wait_for,
)

pytestmark = pytest.mark.e2e
TOKEN, TOKEN_SECRET = "log-isolation-e2e-token-8c2f", "log-isolation-e2e-api"
STREAMS = 100  # the review's load, and the default --max-log-streams
OPERATOR_ARGS = ["--all-namespaces", "--max-log-streams", str(STREAMS),
                 "--api-token-secret", f"default/{TOKEN_SECRET}"]  # fmt: skip
RUNS = 4  # FlowRuns per phase whose status writes are measured


@pytest.fixture(scope="module")
def token(cluster: ClusterHandle) -> Iterator[str]:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": TOKEN_SECRET},
              "data": {"token": base64.b64encode(TOKEN.encode()).decode()}}  # fmt: skip
    cluster.kubectl("-n", "default", "apply", "-f", "-", input=yaml.safe_dump(secret))
    yield TOKEN
    cluster.kubectl("-n", "default", "delete", "secret", TOKEN_SECRET, check=False)


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def open_streams(operator: OperatorProcess) -> float:
    return sum(samples(operator.metrics_text(), "flowops_api_log_streams").values())


def status_writes(operator: OperatorProcess) -> tuple[float, float]:
    """(count, sum of seconds) of the operator's FlowRun status writes so far."""
    text = operator.metrics_text()
    key = (("resource", "flowruns"),)
    count = samples(text, "flowops_status_write_seconds_count").get(key, 0.0)
    total = samples(text, "flowops_status_write_seconds_sum").get(key, 0.0)
    return count, total


def writes_within(operator: OperatorProcess) -> dict[float, float]:
    """The FlowRun status writes so far that took at most `le` seconds, by bucket."""
    found = samples(operator.metrics_text(), "flowops_status_write_seconds_bucket")
    return {
        float(dict(labels)["le"]): v
        for labels, v in found.items()
        if dict(labels).get("resource") == "flowruns"
    }


def upstream_log_requests(cluster: ClusterHandle) -> float:
    """The API server's own count of long-running `pods/log` requests in flight."""
    text = cluster.kubectl("get", "--raw", "/metrics").stdout
    found = samples(text, "apiserver_longrunning_requests")
    return sum(v for labels, v in found.items() if ("subresource", "log") in labels)


@dataclass
class Follow:
    """One `follow=true` log request, open until `hang_up`."""

    conn: http.client.HTTPConnection
    status: int
    retry_after: str | None

    def hang_up(self) -> None:
        sock = self.conn.sock
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()


def follow(operator: OperatorProcess, path: str) -> Follow:
    conn = http.client.HTTPConnection("127.0.0.1", operator.http_port, timeout=30)
    conn.request("GET", f"{path}?follow=true&tailLines=1",
                 headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
    response = conn.getresponse()  # the headers: the upstream stream is open by then
    if response.status != 200:
        response.read()
    return Follow(conn, response.status, response.getheader("Retry-After"))


def quiet_pod(cluster: ClusterHandle, namespace: str, name: str) -> str:
    """A run whose one task runs for ever; its logs path (the pod logs once, then nothing)."""
    cluster.kubectl("-n", namespace, "apply", "-f", "-",
                    input=yaml.safe_dump(flowrun(name, [task("serve", FOREVER)])))  # fmt: skip

    def pod() -> str | None:
        status = cluster.get_json("-n", namespace, "flowrun", name).get("status") or {}
        lines = status.get("tasks") or []
        return lines[0].get("podName") if lines else None

    pod_name = wait_for("the task's pod", pod, 60)
    wait_for("its log", lambda: cluster.kubectl("-n", namespace, "logs", pod_name,
                                                check=False).stdout.strip(), 30)  # fmt: skip
    return f"/api/v1/flowruns/{namespace}/{name}/tasks/serve/logs"


def run_batch(cluster: ClusterHandle, namespace: str, prefix: str) -> None:
    """RUNS quick FlowRuns, each to Completed (every one of them a few status writes)."""
    for i in range(RUNS):
        manifest = flowrun(f"{prefix}-{i}", [task("a"), task("b", dependsOn=["a"])])
        cluster.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(manifest))
    for i in range(RUNS):
        wait_for(
            f"{prefix}-{i} Completed",
            lambda i=i: (cluster.get_json("-n", namespace, "flowrun", f"{prefix}-{i}")
                         .get("status") or {}).get("phase") == "Completed",
            120,
        )  # fmt: skip


def mean_write(operator: OperatorProcess, before: tuple[float, float]) -> tuple[float, int]:
    count, total = status_writes(operator)
    writes = int(count - before[0])
    assert writes > 0, "no status write was measured"
    return (total - before[1]) / writes, writes


def test_a_client_that_hangs_up_closes_its_upstream_stream(
    cluster: ClusterHandle, namespace: str, operator: OperatorProcess, token: str
) -> None:
    if cluster.root is None:
        pytest.skip("kwok serves the pod logs of the local cluster only")
    path = quiet_pod(cluster, namespace, "quiet")
    upstream_before = upstream_log_requests(cluster)
    stream = follow(operator, path)
    assert stream.status == 200
    wait_for("the open stream in the gauge", lambda: open_streams(operator) == 1, 10)
    wait_for("the API server's pods/log request",
             lambda: upstream_log_requests(cluster) >= upstream_before + 1, 10)  # fmt: skip
    stream.hang_up()  # the pod is quiet: nothing is written that could notice
    t0 = time.monotonic()
    wait_for("the stream closed", lambda: open_streams(operator) == 0, 5, every=0.1)
    wait_for("the upstream pods/log request gone",
             lambda: upstream_log_requests(cluster) <= upstream_before, 10)  # fmt: skip
    print(f"closed {time.monotonic() - t0:.2f} s after the client hung up")


def test_a_hundred_follow_streams_do_not_delay_status_writes(
    cluster: ClusterHandle, namespace: str, operator: OperatorProcess, token: str
) -> None:
    if cluster.root is None:
        pytest.skip("kwok serves the pod logs of the local cluster only")
    path = quiet_pod(cluster, namespace, "followed")

    before = status_writes(operator)
    run_batch(cluster, namespace, "baseline")
    baseline, n = mean_write(operator, before)
    bound = max(10 * baseline, 2.0)
    print(f"baseline: {n} status writes, mean {baseline * 1000:.1f} ms; bound {bound:.2f} s")

    streams: list[Follow] = []
    try:
        for _ in range(STREAMS):
            streams.append(follow(operator, path))
        assert [s.status for s in streams] == [200] * STREAMS
        assert open_streams(operator) == STREAMS
        refused = follow(operator, path)  # one more than the cap
        refused.conn.close()
        assert (refused.status, refused.retry_after) == (429, "5")

        before, buckets_before = status_writes(operator), writes_within(operator)
        t0 = time.monotonic()
        run_batch(cluster, namespace, "loaded")
        loaded, n = mean_write(operator, before)
        buckets = writes_within(operator)
        le = min(b for b in buckets if b >= bound)  # the histogram's bucket holding the bound
        slow = n - (buckets[le] - buckets_before.get(le, 0.0))
        print(f"with {STREAMS} follow streams: {n} status writes, mean "
              f"{loaded * 1000:.1f} ms; runs done in {time.monotonic() - t0:.1f} s")  # fmt: skip
        assert loaded <= bound, f"mean status write {loaded:.3f} s > {bound:.3f} s"
        assert slow == 0, f"{slow:.0f} of {n} status writes took longer than {le} s"
        assert open_streams(operator) == STREAMS  # the streams stayed open meanwhile
    finally:
        for s in streams:
            s.hang_up()
    wait_for("every stream closed", lambda: open_streams(operator) == 0, 10)
