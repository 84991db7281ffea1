"""The Flow CRD on the real API server: it is accepted (its CEL rules within the cost
budget), a valid Flow is stored with its defaults and shows the kubectl columns, and each
bad manifest below is refused at admission with a message naming the field. One namespace,
server-side dry runs: no operator is needed (the reconciler is not built yet)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.e2e


def _flow(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "apiVersion": "flowops.io/v1alpha1",
        "kind": "Flow",
        "metadata": {"name": "etl"},
        "spec": {
            "tasks": [
                {"name": "extract", "image": "busybox:1.36"},
                {"name": "load", "image": "busybox:1.36", "dependsOn": ["extract"]},
            ],
            "parameters": [{"name": "REGION", "enum": ["eu", "us"], "default": "eu"}],
            "configurations": [{"name": "nightly", "parameters": {"REGION": "us"}}],
            "schedules": [
                {"name": "nightly", "cron": "30 2 * * *", "timeZone": "Europe/Berlin"},
                {"name": "hourly", "cron": "@hourly", "configuration": "nightly"},
            ],
        },
    }
    for key, value in spec.items():
        if value is None:
            del base["spec"][key]
        else:
            base["spec"][key] = value
    return base


def _param(**fields: Any) -> list[dict[str, Any]]:
    return [{"name": "REGION", **fields}]


LONG = "a" * 70
# (case id, manifest, a fragment the API server's message must contain)
CASES: list[tuple[str, dict[str, Any], str]] = [
    ("no-tasks", _flow(tasks=None), "spec.tasks: Required value"),
    ("unknown-dependency", _flow(tasks=[{"name": "a", "image": "x", "dependsOn": ["b"]}]),
     "spec.tasks[].dependsOn must name tasks of this flow"),
    ("image-and-subflow", _flow(tasks=[{"name": "a", "image": "x", "subFlow": {
        "flowName": "c", "version": "1", "tasks": [{"name": "b", "image": "x"}]}}]),
     "a task has either image (a Job) or subFlow"),
    ("duplicate-task", _flow(tasks=[{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]),
     "Duplicate value"),
    ("level-enum", _flow(level="everyone"), 'spec.level: Unsupported value: "everyone"'),
    ("parameter-name", _flow(parameters=_param(name="1BAD")), "spec.parameters[0].name"),
    ("duplicate-parameter", _flow(parameters=_param() + _param()), "Duplicate value"),
    ("enum-and-pattern", _flow(parameters=_param(enum=["a"], pattern="a+")),
     "either enum or pattern, not both"),
    ("required-with-default", _flow(parameters=_param(required=True, default="eu")),
     "a required parameter takes no default"),
    ("default-outside-enum", _flow(parameters=_param(enum=["eu"], default="mars")),
     "default must be one of its enum values"),
    ("empty-enum", _flow(parameters=_param(enum=[])), "spec.parameters[0].enum"),
    ("policy-enum", _flow(concurrency={"policy": "Sometimes"}),
     'spec.concurrency.policy: Unsupported value: "Sometimes"'),
    ("max-running-with-allow", _flow(concurrency={"policy": "Allow", "maxRunning": 2}),
     "maxRunning limits Forbid, Replace and Queue"),
    ("max-running-zero", _flow(concurrency={"policy": "Queue", "maxRunning": 0}),
     "spec.concurrency.maxRunning"),
    ("schedule-name", _flow(schedules=[{"name": "Not_DNS", "cron": "* * * * *"}]),
     "spec.schedules[0].name"),
    ("duplicate-schedule", _flow(schedules=[{"name": "a", "cron": "* * * * *"}] * 2),
     "Duplicate value"),
    ("no-cron", _flow(schedules=[{"name": "a"}]), "spec.schedules[0].cron: Required value"),
    ("catch-up-enum", _flow(schedules=[{"name": "a", "cron": "@daily", "catchUp": "Some"}]),
     'spec.schedules[0].catchUp: Unsupported value: "Some"'),
    ("unknown-configuration", _flow(schedules=[{"name": "a", "cron": "@daily",
                                                "configuration": "weekly"}]),
     "spec.schedules[].configuration must name one of spec.configurations"),
    ("negative-deadline", _flow(schedules=[{"name": "a", "cron": "@daily",
                                            "startingDeadlineSeconds": -1}]),
     "spec.schedules[0].startingDeadlineSeconds"),
    ("sub-flow-scheduled", _flow(flowType="sub-flow"), "a sub-flow runs under a parent run only"),
    ("history-limit-zero", _flow(revisionHistoryLimit=0), "spec.revisionHistoryLimit"),
    ("unknown-field", _flow(color="GREEN"), 'unknown field "spec.color"'),
]  # fmt: skip


def test_flow_crd_admits_a_valid_flow_and_refuses_bad_ones(cluster: Any, namespace: str) -> None:
    good = _flow()
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(good))
    stored = cluster.get_json("-n", namespace, "flow", "etl")
    assert stored["spec"]["schedules"][0]["catchUp"] == "Latest"  # defaults applied
    assert stored["spec"]["revisionHistoryLimit"] == 10
    table = cluster.kubectl("-n", namespace, "get", "flows").stdout.splitlines()
    assert table[0].split() == [
        "NAME", "VERSION", "LEVEL", "SCHEDULES", "LAST", "RUN", "LAST", "STATUS", "NEXT", "RUN",
        "AGE",
    ]  # fmt: skip
    # No status yet (no reconciler): only LEVEL and AGE have a value.
    assert table[1].split()[:2] == ["etl", "user"], table
    # The status the reconciler will write is accepted by the schema and fills the columns.
    status = {
        "version": 2, "revision": "0123abcd", "scheduleSummary": "nightly,hourly(suspended)",
        "versions": [{"version": 2, "revision": "0123abcd", "creationTime": "2026-11-24T12:00:00Z"}],
        "lastRun": {"name": "etl-nightly-202611240130-0a1b2c", "phase": "Completed", "version": 2},
        "schedules": [{"name": "nightly", "nextScheduleTime": "2026-11-25T01:30:00Z", "missed": 0}],
        "nextScheduleTime": "2026-11-25T01:30:00Z",
    }  # fmt: skip
    cluster.kubectl(
        "-n", namespace, "patch", "flow", "etl", "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip
    row = cluster.kubectl("-n", namespace, "get", "flows", "--no-headers").stdout.split()
    assert row[:7] == [
        "etl", "2", "user", "nightly,hourly(suspended)", "etl-nightly-202611240130-0a1b2c",
        "Completed", "2026-11-25T01:30:00Z",
    ]  # fmt: skip

    wrong: list[str] = []
    for case, manifest, fragment in CASES:
        bad = copy.deepcopy(manifest)
        bad["metadata"]["name"] = f"bad-{case}"
        done = cluster.kubectl(
            "-n", namespace, "apply", "--dry-run=server", "-f", "-",
            input=yaml.safe_dump(bad), check=False,
        )  # fmt: skip
        if done.returncode == 0 or fragment not in done.stderr:
            wrong.append(f"{case}: rc={done.returncode} {done.stderr.strip()[:300]}")
    long_name = _flow()
    long_name["metadata"]["name"] = LONG
    done = cluster.kubectl(
        "-n", namespace, "apply", "--dry-run=server", "-f", "-",
        input=yaml.safe_dump(long_name), check=False,
    )  # fmt: skip
    if "metadata.name must be at most 63 characters" not in done.stderr:
        wrong.append(f"long-name: {done.stderr.strip()[:300]}")
    assert wrong == [], "\n".join(wrong)
