"""Flows on the real local cluster: a `* * * * *` schedule makes a Scheduled FlowRun at the
next minute (the cluster's real time: up to ~70 s), the Run action over HTTP makes a run
that Completes (Forbid skips a second while it runs; /metrics counts it under its Flow
until the Flow is deleted), FlowRuns by reference resolve v1 and v2 to their own tasks and
a rerun keeps its version (or asks for the latest), a bad parameter applied with kubectl
is InvalidSpec naming it, Queue holds a run until the flow's slot frees, Replace cancels a
run applied by hand before the new one starts, and a SIGKILL of the operator at a tick
neither misses that tick nor starts it twice."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import FOREVER, OK, ClusterHandle, OperatorProcess, wait_for
from tests.e2e.test_api import token  # noqa: F401  (the operator's token Secret, a fixture)

pytestmark = pytest.mark.e2e


def flow(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "flowops.io/v1alpha1",
        "kind": "Flow",
        "metadata": {"name": name},
        "spec": {
            "tasks": [{"name": "extract", "image": OK}, {"name": "load", "image": OK,
                                                          "dependsOn": ["extract"]}],
            **spec,
        },
    }  # fmt: skip


def runs_of(cluster: ClusterHandle, namespace: str, name: str) -> list[dict[str, Any]]:
    out = cluster.get_json("-n", namespace, "flowruns", "-l", f"flowops.io/flow={name}")
    return list(out.get("items", []))


def post(operator: OperatorProcess, path: str, bearer: str, body: Any) -> tuple[int, Any]:
    req = urllib.request.Request(
        operator.url(path), data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_a_minutely_schedule_makes_a_scheduled_run_at_the_next_minute(
    cluster: ClusterHandle, namespace: str, operator: OperatorProcess
) -> None:
    body = flow("tick", schedules=[{"name": "minutely", "cron": "* * * * *"}])
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(body))
    status = wait_for(
        "the Flow's version 1 and next tick",
        lambda: (
            (s := cluster.get_json("-n", namespace, "flow", "tick").get("status") or {})
            and s.get("version") == 1
            and s.get("nextScheduleTime")
            and s
        ),
        30,
    )
    assert status["schedules"][0]["name"] == "minutely"
    (run,) = wait_for("a Scheduled run", lambda: runs_of(cluster, namespace, "tick"), 75, 1.0)
    labels = run["metadata"]["labels"]
    assert run["spec"]["runType"] == "Scheduled"
    assert run["spec"]["flowRef"] == {"name": "tick", "version": 1}
    assert labels["flowops.io/schedule"] == "minutely"
    assert run["metadata"]["name"].startswith(
        f"tick-minutely-{labels['flowops.io/scheduled-time']}"
    )
    revisions = cluster.get_json(
        "-n", namespace, "controllerrevisions", "-l", "flowops.io/flow=tick"
    )
    assert [r["revision"] for r in revisions["items"]] == [1]
    wait_for(
        "the Flow's last run",
        lambda: ((cluster.get_json("-n", namespace, "flow", "tick").get("status") or {})
                 .get("lastRun") or {}).get("name") == run["metadata"]["name"],
        30,
    )  # fmt: skip
    assert len(runs_of(cluster, namespace, "tick")) == 1  # one tick, one run


def test_the_run_action_over_http_makes_a_run_that_completes(
    cluster: ClusterHandle,
    namespace: str,
    operator: OperatorProcess,
    token: str,  # noqa: F811
) -> None:
    body = flow(
        "manual",
        parameters=[{"name": "REGION", "enum": ["eu", "us"], "default": "eu"}],
        concurrency={"policy": "Forbid"},
    )
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(body))
    wait_for(
        "the Flow's version 1",
        lambda: (
            (cluster.get_json("-n", namespace, "flow", "manual").get("status") or {}).get("version")
            == 1
        ),
        30,
    )
    path = f"/api/v1/flows/{namespace}/manual/runs"
    status, answer = post(operator, path, token, {"parameters": {"REGION": "mars"}})
    assert status == 422 and answer["errors"][0]["path"] == "parameters.REGION", answer
    status, answer = post(operator, path, token, {"parameters": {"REGION": "us"}})
    assert status == 201, answer
    name = answer["name"]
    assert answer["runType"] == "API" and answer["version"] == "1"
    # Forbid: while it is unfinished, a second one is skipped (once the index shows it)
    wait_for(
        "the run in the operator's index", lambda: post(operator, path, token, {})[0] == 409, 30
    )
    phase = wait_for(
        "the run to complete",
        lambda: (p := (cluster.get_json("-n", namespace, "flowrun", name).get("status") or {})
                 .get("phase")) in ("Completed", "Failed", "Crashed") and p,
        90,
    )  # fmt: skip
    assert phase == "Completed"
    run = cluster.get_json("-n", namespace, "flowrun", name)
    assert run["spec"]["configuration"]["parameters"] == {"REGION": "us"}
    assert run["spec"]["flowRef"] == {"name": "manual", "version": 1}
    # Prometheus counts it under its Flow (the chart's per-Flow rules read it)
    wait_for("the run in flowops_flow_run_duration_seconds",
             lambda: flow_runs_counted(operator, namespace, "manual") == {"Completed": 1}, 10)  # fmt: skip
    # and forgets a deleted Flow's series
    cluster.kubectl("-n", namespace, "delete", "flow", "manual", "--wait=false")
    wait_for("the deleted Flow's series gone",
             lambda: flow_runs_counted(operator, namespace, "manual") == {}, 30)  # fmt: skip


def flow_runs_counted(operator: OperatorProcess, namespace: str, name: str) -> dict[str, float]:
    """The Flow's finished runs by final phase, as the operator's /metrics counts them."""
    return {
        s.labels["phase"]: s.value
        for family in text_string_to_metric_families(operator.metrics_text())
        for s in family.samples
        if s.name == "flowops_flow_run_duration_seconds_count"
        and s.labels.get("namespace") == namespace
        and s.labels.get("flow") == name
    }


def apply(cluster: ClusterHandle, namespace: str, body: dict[str, Any]) -> None:
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(body))


def status_of(cluster: ClusterHandle, namespace: str, kind: str, name: str) -> dict[str, Any]:
    return dict(cluster.get_json("-n", namespace, kind, name).get("status") or {})


def finished(cluster: ClusterHandle, namespace: str, name: str, timeout: float = 60) -> Any:
    return wait_for(
        f"run {name} to finish",
        lambda: (
            (s := status_of(cluster, namespace, "flowrun", name)).get("phase")
            in ("Completed", "Failed", "Crashed", "Cancelled")
            and s
        ),
        timeout,
    )


def by_reference(name: str, **ref: Any) -> dict[str, Any]:
    return {"apiVersion": "flowops.io/v1alpha1", "kind": "FlowRun", "metadata": {"name": name},
            "spec": {"flowRef": {"name": "ver", **ref}}}  # fmt: skip


def test_runs_by_reference_resolve_their_version_and_a_rerun_keeps_it(
    cluster: ClusterHandle,
    namespace: str,
    operator: OperatorProcess,
    token: str,  # noqa: F811
) -> None:
    params = [{"name": "REGION", "enum": ["eu", "us"], "default": "eu"}]
    v1 = flow("ver", parameters=params)
    v1["spec"]["tasks"] = [{"name": "only", "image": OK}]
    apply(cluster, namespace, v1)
    wait_for("version 1", lambda: status_of(cluster, namespace, "flow", "ver").get("version") == 1,
             30)  # fmt: skip
    apply(cluster, namespace, flow("ver", parameters=params))  # extract, load: version 2
    wait_for("version 2", lambda: status_of(cluster, namespace, "flow", "ver").get("version") == 2,
             30)  # fmt: skip
    apply(cluster, namespace, by_reference("ref-v1", version=1, parameters={"REGION": "us"}))
    apply(cluster, namespace, by_reference("ref-latest"))
    apply(cluster, namespace, by_reference("ref-bad", parameters={"REGION": "mars"}))
    bad = finished(cluster, namespace, "ref-bad")
    assert (bad["phase"], bad["reason"]) == ("Failed", "InvalidSpec"), bad
    assert "spec.flowRef.parameters.REGION" in bad["message"] and "mars" in bad["message"]
    one, latest = finished(cluster, namespace, "ref-v1"), finished(cluster, namespace, "ref-latest")
    assert one["phase"] == latest["phase"] == "Completed", (one, latest)
    assert one["definition"]["version"] == 1 and latest["definition"]["version"] == 2
    assert [t["name"] for t in one["definition"]["tasks"]] == ["only"]
    assert [t["name"] for t in latest["definition"]["tasks"]] == ["extract", "load"]
    assert [t["name"] for t in one["tasks"]] == ["only"]
    assert one["definition"]["configuration"]["parameters"] == {"REGION": "us"}
    # a rerun keeps version 1; ?version=latest asks for version 2
    path = f"/api/v1/flowruns/{namespace}/ref-v1/rerun"
    code, again = post(operator, path, token, {})
    assert code == 201, again
    rerun = cluster.get_json("-n", namespace, "flowrun", again["name"])
    assert rerun["spec"]["version"] == "1" and [t["name"] for t in rerun["spec"]["tasks"]] == [
        "only"
    ]
    code, newest = post(operator, path + "?version=latest", token, {})
    assert code == 201, newest
    resolved = finished(cluster, namespace, newest["name"])
    assert resolved["phase"] == "Completed" and resolved["definition"]["version"] == 2, resolved


def test_queue_holds_a_run_until_the_flows_slot_frees(
    cluster: ClusterHandle,
    namespace: str,
    operator: OperatorProcess,
    token: str,  # noqa: F811
) -> None:
    body = flow("queued", concurrency={"policy": "Queue"})
    body["spec"]["tasks"] = [{"name": "long", "image": FOREVER}]
    apply(cluster, namespace, body)
    wait_for("version 1",
             lambda: status_of(cluster, namespace, "flow", "queued").get("version") == 1, 30)  # fmt: skip
    path = f"/api/v1/flows/{namespace}/queued/runs"
    code, first = post(operator, path, token, {})
    assert code == 201, first
    wait_for("the first run Deployed",
             lambda: status_of(cluster, namespace, "flowrun", first["name"]).get("phase")
             == "Deployed", 30)  # fmt: skip
    code, second = post(operator, path, token, {})
    assert code == 201, second
    held = wait_for(
        "the second run held",
        lambda: (
            (s := status_of(cluster, namespace, "flowrun", second["name"])).get("reason")
            == "WaitingForFlowConcurrency"
            and s
        ),
        30,
    )
    assert held["phase"] == "Queued"
    code, _ = post(operator, f"/api/v1/flowruns/{namespace}/{first['name']}/cancel", token, {})
    assert code == 200
    wait_for("the second run released",
             lambda: status_of(cluster, namespace, "flowrun", second["name"]).get("phase")
             == "Deployed", 30)  # fmt: skip
    post(operator, f"/api/v1/flowruns/{namespace}/{second['name']}/cancel", token, {})


def test_replace_cancels_a_run_applied_by_hand_then_starts_the_new_one(
    cluster: ClusterHandle,
    namespace: str,
    operator: OperatorProcess,
    token: str,  # noqa: F811
) -> None:
    """A run applied with kubectl and spec.flowRef (no flow label) is one of its flow's
    runs: the Run action under Replace cancels it first, and the new run starts only once
    it has ended; the flow's last run is then the new one."""
    body = flow("swap", concurrency={"policy": "Replace"})
    body["spec"]["tasks"] = [{"name": "long", "image": FOREVER}]
    apply(cluster, namespace, body)
    wait_for("version 1",
             lambda: status_of(cluster, namespace, "flow", "swap").get("version") == 1, 30)  # fmt: skip
    by_hand = by_reference("swap-by-hand")
    by_hand["spec"]["flowRef"]["name"] = "swap"
    apply(cluster, namespace, by_hand)
    wait_for("the run by hand Deployed",
             lambda: status_of(cluster, namespace, "flowrun", "swap-by-hand").get("phase")
             == "Deployed", 30)  # fmt: skip
    code, new = post(operator, f"/api/v1/flows/{namespace}/swap/runs", token, {})
    assert code == 201, new
    ended = finished(cluster, namespace, "swap-by-hand")
    assert ended["phase"] == "Cancelled", ended  # by the Run action's cancel (spec.cancel)
    deployed = wait_for(
        "the new run Deployed",
        lambda: (s := status_of(cluster, namespace, "flowrun", new["name"])).get("phase")
        == "Deployed" and s, 60)  # fmt: skip
    # it waited for the replaced run to end: its Deployed came after that run's end
    started = next(h["time"] for h in deployed["history"] if h["phase"] == "Deployed")
    assert started >= ended["endTime"], (deployed["history"], ended["endTime"])
    wait_for("the flow's last run is the new one",
             lambda: (status_of(cluster, namespace, "flow", "swap").get("lastRun") or {})
             .get("name") == new["name"], 30)  # fmt: skip
    post(operator, f"/api/v1/flowruns/{namespace}/{new['name']}/cancel", token, {})


def test_a_kill_9_at_the_tick_neither_misses_nor_doubles_it(
    cluster: ClusterHandle, namespace: str, operator: OperatorProcess
) -> None:
    """A `* * * * *` schedule, the operator killed with SIGKILL a moment after a tick is
    due (as it creates that tick's run, or just before) and started again: every minute
    from the first tick on has exactly one run, the killed tick's included (the default
    catchUp, Latest, starts it late; a create that meets AlreadyExists is done)."""
    body = flow("killed", schedules=[{"name": "minutely", "cron": "* * * * *"}])
    body["spec"]["tasks"] = [{"name": "only", "image": OK}]
    apply(cluster, namespace, body)

    def ticks() -> list[datetime]:
        stamps = [r["metadata"]["labels"]["flowops.io/scheduled-time"]
                  for r in runs_of(cluster, namespace, "killed")]  # fmt: skip
        assert len(stamps) == len(set(stamps)), stamps  # one run per tick
        return sorted(datetime.strptime(t, "%Y%m%d%H%M").replace(tzinfo=UTC) for t in stamps)

    (first,) = wait_for("the first tick's run", ticks, 75, 1.0)
    killed_at = first + timedelta(minutes=1)
    wait = (killed_at - datetime.now(UTC)).total_seconds() + 0.3
    assert wait > 0, "the first tick's run came too late to aim at the next tick"
    time.sleep(wait)  # the cluster's real clock: the tick is the API server's minute
    operator.restart(kill=True)
    after = killed_at + timedelta(minutes=1)
    seen = wait_for("the killed tick's run and the next one",
                    lambda: (t := ticks()) and t[-1] >= after and t, 150, 1.0)  # fmt: skip
    minutes = [int((t - first).total_seconds() // 60) for t in seen]
    assert minutes == list(range(len(seen))), seen  # no minute missed, none twice
