"""flowctl's Workflow commands on a fake cluster: status (seed JSON, YAML, table),
workflows, publish/unpublish, and the errors a user meets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from copy import deepcopy
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from flow_operator.cli.cluster import NotFound
from flow_operator.cli.main import Context, flowctl
from flow_operator.models.workflow import Workflow
from flow_operator.status.aggregate import aggregate
from tests.unit.api_support import NOW
from tests.unit.status.test_golden_workflow_status import SCENARIOS

GOLDEN = Path(__file__).parents[2] / "golden" / "workflow"
Body = dict[str, Any]


class FakeCluster:
    def __init__(self, namespace: str = "ns") -> None:
        self.namespace = namespace
        self.objects: dict[tuple[str, str, str], Body] = {}
        self.pod_list: dict[str, list[Body]] = {}
        self.patches: list[tuple[str, str, str, Body]] = []
        self.status_patches: list[tuple[str, str, str, Body]] = []
        self.created: list[Body] = []
        self.log_lines: dict[tuple[str, str | None], list[bytes]] = {}

    def put(self, plural: str, body: Body) -> None:
        meta = body["metadata"]
        self.objects[(plural, meta.get("namespace", self.namespace), meta["name"])] = body

    def get(self, plural: str, namespace: str, name: str) -> Body:
        try:
            return deepcopy(self.objects[(plural, namespace, name)])
        except KeyError:
            raise NotFound(name) from None

    def items(self, plural: str, namespace: str | None) -> list[Body]:
        return [
            deepcopy(b)
            for (p, ns, _), b in self.objects.items()
            if p == plural and namespace in (None, ns)
        ]

    def patch(self, plural: str, namespace: str, name: str, patch: Body) -> Body:
        body = self.objects.get((plural, namespace, name))
        if body is None:
            raise NotFound(name)
        self.patches.append((plural, namespace, name, patch))
        for k, v in patch.items():
            if isinstance(v, dict):
                body.setdefault(k, {}).update(v)
            else:
                body[k] = v
        return deepcopy(body)

    def patch_status(self, plural: str, namespace: str, name: str, patch: Body) -> Body:
        if (plural, namespace, name) not in self.objects:
            raise NotFound(name)
        self.status_patches.append((plural, namespace, name, patch))
        return self.get(plural, namespace, name)

    def revision(self, namespace: str, name: str) -> Body:
        return self.get("controllerrevisions", namespace, name)

    def create(self, plural: str, namespace: str, body: Body) -> Body:
        body = deepcopy(body)
        meta = body["metadata"]
        meta.setdefault("name", meta.pop("generateName", "x-") + "abcde")
        meta["namespace"] = namespace
        self.created.append(body)
        self.put(plural, body)
        return deepcopy(body)

    def pods(self, namespace: str, selector: str) -> list[Body]:
        return deepcopy(self.pod_list.get(selector, []))

    def logs(
        self, namespace: str, pod: str, container: str | None, follow: bool
    ) -> Iterator[bytes]:
        yield from self.log_lines.get((pod, container), [b""])


def invoke(fake: FakeCluster, *args: str) -> Result:
    ctx = Context(None, None, factory=lambda: fake)
    ctx.now = lambda: NOW
    return CliRunner().invoke(flowctl, list(args), obj=ctx, catch_exceptions=False)


def with_scenario(name: str) -> FakeCluster:
    body, observed = SCENARIOS[name]()
    if name == "unpublished-after-publish":
        body["status"]["firstPublishedAt"] = "2024-02-12T09:00:00Z"
    body["status"] = aggregate(Workflow.from_body(body), observed, NOW).dump()
    fake = FakeCluster()
    fake.put("workflows", body)
    fake.pod_list["flowops.io/workflow=wf"] = [p for ps in observed.pods.values() for p in ps]
    return fake


def _ages(doc: Body) -> Body:
    for svc in doc.get("details", {}).get("services", []):
        for r in svc["replicasDetail"]:
            r["age"] = "<age>"
    return doc


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_status_json_is_the_reference_document(name: str) -> None:
    result = invoke(with_scenario(name), "status", "wf", "-o", "json")
    assert result.exit_code == 0, result.output
    expected = json.loads((GOLDEN / f"{name}.json").read_text())
    assert _ages(json.loads(result.output)) == _ages(expected)


def test_status_ages_are_as_of_now() -> None:
    result = invoke(with_scenario("sync-published-green"), "status", "wf", "-o", "json")
    replica = json.loads(result.output)["details"]["services"][0]["replicasDetail"][0]
    assert replica["age"] == "1m56s"  # pod created 10:12:57, now 10:14:53


def test_status_yaml() -> None:
    result = invoke(with_scenario("async-published-green"), "status", "wf", "-o", "yaml")
    doc = yaml.safe_load(result.output)
    assert doc["actualStatus"] == "GREEN"
    assert [s["id"] for s in doc["details"]["services"]] == [
        "knowledge-m-f252bb2b",
        "outprod-4b54ca80",
    ]


def test_status_table() -> None:
    result = invoke(with_scenario("sync-publishing-unschedulable"), "status", "wf")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].startswith("Workflow ns/wf: ORANGE")
    header = next(line for line in lines if line.startswith("COMPONENT"))
    assert header.split() == [
        "COMPONENT",
        "KIND",
        "DESIRED",
        "ACTUAL",
        "STATUS",
        "ROLLOUT",
        "REASON",
    ]
    assert any(line.split()[:5] == ["benthos", "stream", "1", "1", "GREEN"] for line in lines)
    km = next(line for line in lines if line.startswith("knowledge-m-f252bb2b   service"))
    assert km.split()[4:] == ["RED", "InProgress", "RollingOutReplicaSet"]
    pod = next(line for line in lines if "c767e2ffvh6zw" in line)
    assert "Unschedulable" in pod and "0/2 nodes are available" in pod
    assert "\x1b[" not in result.output  # no colors when not on a terminal


def test_status_table_names_why_a_services_pods_cannot_be_created() -> None:
    fake = with_scenario("sync-publishing-unschedulable")
    body = fake.objects[("workflows", "ns", "wf")]
    svc = body["status"]["details"]["services"][0]
    svc["message"] = 'pods "x" is forbidden: violates PodSecurity "restricted:latest"'
    result = invoke(fake, "status", "wf")
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "violates PodSecurity" in line)
    assert line.strip().startswith(f"{svc['id']}: pods ")
    # a service without a message gets no such line
    others = [s["id"] for s in body["status"]["details"]["services"][1:]]
    assert not any(
        line.strip().startswith(f"{i}: ") for i in others for line in result.output.splitlines()
    )


def test_status_table_in_color_on_a_terminal() -> None:
    fake = with_scenario("sync-published-green")
    ctx = Context(None, None, factory=lambda: fake)
    result = CliRunner().invoke(flowctl, ["status", "wf"], obj=ctx, color=True)
    assert "\x1b[32m\x1b[1mGREEN" in result.output


def test_status_errors() -> None:
    fake = FakeCluster()
    result = invoke(fake, "status", "nope")
    assert result.exit_code == 1
    assert "workflow ns/nope not found" in result.output
    never = with_scenario("async-published-green")
    never.objects[("workflows", "ns", "wf")]["status"].pop("firstPublishedAt")
    result = invoke(never, "status", "wf")
    assert result.exit_code == 3
    assert "never been published" in result.output


def test_namespace_flag_and_context_default() -> None:
    fake = with_scenario("async-published-green")
    body = fake.objects.pop(("workflows", "ns", "wf"))
    body["metadata"]["namespace"] = "team"
    fake.put("workflows", body)
    assert invoke(fake, "status", "wf").exit_code == 1
    assert invoke(fake, "status", "wf", "-n", "team", "-o", "json").exit_code == 0


def test_workflows_list() -> None:
    fake = with_scenario("async-published-green")
    result = invoke(fake, "workflows")
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "DESIRED", "MODE", "COLOR", "SERVICES"]
    assert lines[1].split() == ["ns", "wf", "PUBLISHED", "ASYNC", "GREEN", "2/2"]
    assert (
        json.loads(invoke(fake, "workflows", "-A", "-o", "json").output)[0]["metadata"]["name"]
        == "wf"
    )


def test_publish_and_unpublish_patch_the_desired_status() -> None:
    fake = with_scenario("async-published-green")
    result = invoke(fake, "unpublish", "wf")
    assert result.exit_code == 0
    assert "desiredStatus UNPUBLISHED" in result.output
    assert invoke(fake, "publish", "wf").exit_code == 0
    assert [p[3] for p in fake.patches] == [
        {"spec": {"desiredStatus": "UNPUBLISHED"}},
        {"spec": {"desiredStatus": "PUBLISHED"}},
    ]
    assert invoke(fake, "publish", "ghost").exit_code == 1


def test_help_needs_no_cluster() -> None:
    def boom() -> Any:
        raise AssertionError("connected")

    result = CliRunner().invoke(flowctl, ["--help"], obj=Context(None, None, factory=boom))
    assert result.exit_code == 0
    for command in ("status", "workflows", "publish", "unpublish"):
        assert command in result.output


def test_now_is_real_by_default() -> None:
    assert isinstance(Context(None, None).now(), datetime)
