"""Flows on the real local cluster: a `* * * * *` schedule makes a Scheduled FlowRun at the
next minute (the cluster's real time: up to ~70 s), and the Run action over HTTP makes a
run that Completes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import OK, ClusterHandle, OperatorProcess, wait_for
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
