"""flowctl's flow-run commands on a fake cluster (runs, run, logs, cancel, rerun), and the
operator's index-backed FlowRunBackend on a fake API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from copy import deepcopy
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result

from flow_operator.api.flowrun_backend import IndexedFlowRuns
from flow_operator.api.flowruns import RERUN_OF, FlowRunError, rerun_body, row_of
from flow_operator.models.flowrun import FlowRun
from flow_operator.ports import Resource
from tests.unit.cli.test_cli_workflows import FakeCluster, invoke

Body = dict[str, Any]
EXAMPLE = yaml.safe_load((Path(__file__).parents[3] / "examples" / "flowrun-dag.yaml").read_text())


def run_body(name: str, phase: str | None, **spec: Any) -> Body:
    body = deepcopy(EXAMPLE)
    body["metadata"] = {"name": name, "namespace": "ns", "uid": f"uid-{name}"}
    body["spec"].update(spec)
    if phase is not None:
        body["status"] = {
            "phase": phase,
            "startTime": "2024-02-12T09:00:00Z",
            "message": f"run is {phase}",
            "tasks": [
                {"name": "extract", "version": "1.0", "status": "Succeeded",
                 "startTime": "2024-02-12T09:00:02Z", "endTime": "2024-02-12T09:03:10Z",
                 "runtime": "3m8s", "jobName": f"{name}-extract", "podName": f"{name}-extract-x1"},
                {"name": "train", "version": "1.0", "status": "Running",
                 "startTime": "2024-02-12T09:03:12Z", "jobName": f"{name}-train",
                 "podName": f"{name}-train-x2"},
            ],
        }  # fmt: skip
    FlowRun.from_body(body)  # the fixtures are valid FlowRuns
    return body


def fake_with_runs() -> FakeCluster:
    fake = FakeCluster()
    fake.put("flowruns", run_body("churn-001", "Deployed"))
    fake.put("flowruns", run_body("churn-000", "Completed", runType="Scheduled"))
    fake.put("flowruns", run_body("fresh", None, configuration={"name": "emea"}))
    return fake


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def test_row_of_maps_spec_and_status_to_the_seed_columns() -> None:
    row = row_of(run_body("churn-001", "Deployed")).dump()
    assert {k: row[k] for k in ("flowName", "version", "level", "runType", "configuration",
                                "flowType", "status", "startTime")} == {
        "flowName": "churn-weekly", "version": "3", "level": "organization",
        "runType": "Manual", "configuration": "churn-prod", "flowType": "standalone",
        "status": "Deployed", "startTime": "2024-02-12T09:00:00Z",
    }  # fmt: skip
    tasks = {t["name"]: t for t in row["tasks"]}
    assert (
        tasks["extract"]["runtime"] == "3m8s" and tasks["extract"]["pod"] == "churn-001-extract-x1"
    )
    assert tasks["publish"] == {
        "name": "publish",
        "version": "1.0",
        "status": "Pending",
        "dependsOn": ["train"],
    }


def test_a_run_without_status_reads_submitted() -> None:
    row = row_of(run_body("fresh", None))
    assert row.status == "Submitted" and all(t.status == "Pending" for t in row.tasks or [])


def test_runs_table_and_search() -> None:
    out = ok(invoke(fake_with_runs(), "runs"))
    header = out.splitlines()[0]
    for column in ("NAME", "VERSION", "LEVEL", "RUN TYPE", "CONFIGURATION", "FLOW TYPE",
                   "START", "END", "DURATION", "STATUS", "MESSAGE"):  # fmt: skip
        assert column in header
    assert "churn-001" in out and "churn-000" in out and "fresh" in out
    only = json.loads(ok(invoke(fake_with_runs(), "runs", "--search", "schedul", "-o", "json")))
    assert [r["name"] for r in only] == ["churn-000"]
    by_status = json.loads(
        ok(invoke(fake_with_runs(), "runs", "--status", "deployed", "-o", "json"))
    )
    assert [r["name"] for r in by_status] == ["churn-001"]
    by_config = json.loads(
        ok(invoke(fake_with_runs(), "runs", "--configuration", "emea", "-o", "json"))
    )
    assert [r["name"] for r in by_config] == ["fresh"]


def test_run_shows_its_tasks() -> None:
    out = ok(invoke(fake_with_runs(), "run", "churn-001"))
    assert "TASK" in out and "extract" in out and "Succeeded" in out and "3m8s" in out
    doc = json.loads(ok(invoke(fake_with_runs(), "run", "churn-001", "-o", "json")))
    assert [t["status"] for t in doc["tasks"]] == ["Succeeded", "Running", "Pending"]
    missing = invoke(fake_with_runs(), "run", "nope")
    assert missing.exit_code == 1 and "flow run ns/nope not found" in missing.output


def test_logs_of_a_named_task_and_the_errors() -> None:
    fake = fake_with_runs()
    fake.log_lines[("churn-001-train-x2", None)] = [b"epoch 1\n", b"epoch 2\n"]
    assert ok(invoke(fake, "logs", "churn-001", "train")) == "epoch 1\nepoch 2\n"
    ambiguous = invoke(fake, "logs", "churn-001")
    assert ambiguous.exit_code == 1 and "name one: extract, train" in ambiguous.output
    pending = invoke(fake, "logs", "churn-001", "publish")
    assert pending.exit_code == 1 and "task publish has no pod yet (Pending)" in pending.output
    unknown = invoke(fake, "logs", "churn-001", "deploy")
    assert unknown.exit_code == 1 and "no task deploy: extract, train, publish" in unknown.output


def test_cancel_patches_the_request_and_refuses_finished_runs() -> None:
    fake = fake_with_runs()
    out = ok(invoke(fake, "cancel", "churn-001"))
    assert "cancel requested (was Deployed)" in out
    assert fake.patches == [("flowruns", "ns", "churn-001", {"spec": {"cancel": True}})]
    done = invoke(fake, "cancel", "churn-000")
    assert done.exit_code == 1 and "already finished (Completed)" in done.output
    assert len(fake.patches) == 1


def test_rerun_creates_a_manual_copy() -> None:
    fake = fake_with_runs()
    fake.objects[("flowruns", "ns", "churn-000")]["spec"]["cancel"] = True
    out = ok(invoke(fake, "rerun", "churn-000"))
    (created,) = fake.created
    assert created["metadata"]["name"].startswith("churn-000-")  # from generateName
    assert created["metadata"]["annotations"] == {RERUN_OF: "churn-000"}
    assert created["spec"]["runType"] == "Manual" and "cancel" not in created["spec"]
    assert "status" not in created
    assert f"flow run ns/{created['metadata']['name']} created (rerun of churn-000)" in out
    FlowRun.from_body({**rerun_body(run_body("x", "Failed")), "metadata": {"name": "y"}})


class FakeKube:
    def __init__(self) -> None:
        self.patched: list[tuple[str, str, str, Body]] = []
        self.created: list[Body] = []

    async def merge_patch(self, resource: Resource, namespace: str, name: str, patch: Body) -> None:
        self.patched.append((resource.plural, namespace, name, patch))

    async def create_returning(self, resource: Resource, body: Body) -> Body:
        made = deepcopy(body)
        made["metadata"]["name"] = made["metadata"].pop("generateName") + "k2j4d"
        self.created.append(made)
        return made

    async def pod_log(
        self,
        namespace: str,
        pod: str,
        *,
        follow: bool = False,
        tail_lines: int | None = None,
        limit_bytes: int | None = None,
    ) -> AsyncIterator[bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            yield f"{pod} follow={follow} tail={tail_lines}\n".encode()

        return chunks()


def backend() -> tuple[IndexedFlowRuns, FakeKube]:
    index = {
        ("ns", "churn-001"): [run_body("churn-001", "Deployed")],
        ("ns", "churn-000"): [run_body("churn-000", "Completed", runType="Scheduled")],
    }
    kube = FakeKube()
    return IndexedFlowRuns(index, kube), kube


async def test_backend_lists_from_the_index_and_streams_logs() -> None:
    runs, _ = backend()
    assert [r["name"] for r in runs.list(search="deployed")] == ["churn-001"]
    assert "tasks" not in runs.list()[0]
    assert runs.get("ns", "churn-001")["tasks"][1]["pod"] == "churn-001-train-x2"  # type: ignore[index]
    assert runs.get("ns", "nope") is None
    chunks = await runs.logs("ns", "churn-001", "train", follow=True, tail_lines=5)
    assert [c async for c in chunks] == [b"churn-001-train-x2 follow=True tail=5\n"]
    with pytest.raises(FlowRunError) as no_pod:
        await runs.logs("ns", "churn-001", "publish", follow=False, tail_lines=None)
    assert no_pod.value.status == 409


async def test_backend_cancel_and_rerun_go_through_the_api() -> None:
    runs, kube = backend()
    answer = await runs.cancel("ns", "churn-001")
    assert answer["message"] == "cancel requested"
    assert kube.patched == [("flowruns", "ns", "churn-001", {"spec": {"cancel": True}})]
    with pytest.raises(FlowRunError) as finished:
        await runs.cancel("ns", "churn-000")
    assert finished.value.status == 409
    created = await runs.rerun("ns", "churn-000")
    assert created["name"] == "churn-000-k2j4d" and created["status"] == "Submitted"
    assert created["runType"] == "Manual"
