"""The Flow endpoints on the operator's backend (IndexedFlows) over in-memory indexes and a
fake cluster: the list, one flow, and the Run action: 201 with the run, 200 for a repeated
idempotency key, 400 and 422 naming the field, 404, 409 when Forbid skips it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from flow_operator.api.flow_backend import IndexedFlows
from flow_operator.api.server import make_app
from flow_operator.errors import NotFound
from flow_operator.flows.versions import revision_hash, revision_name
from flow_operator.models.flow import FlowSpec
from flow_operator.ports import Body, Resource
from tests.unit.api_support import Secrets, View, make_api, validate
from tests.unit.flows.conftest import flow_spec

TOKEN = "operator-token-1"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NS = "team"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
RUNS = "/api/v1/flows/{namespace}/{name}/runs"
PARAMETERS = [
    {"name": "REGION", "enum": ["eu", "us"], "default": "eu"},
    {"name": "DAY", "required": True, "pattern": r"\d{4}-\d{2}-\d{2}"},
]


def flow(name: str, **spec: Any) -> Body:
    fields = flow_spec(**spec)
    revision = revision_hash(FlowSpec.model_validate(fields))
    return {
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "generation": 1,
                     "creationTimestamp": "2026-11-24T10:00:00Z"},
        "spec": fields,
        "status": {
            "version": 1,
            "revision": revision,
            "versions": [{"version": 1, "revision": revision,
                          "revisionName": revision_name(name, 1, revision),
                          "creationTime": "2026-11-24T10:00:00Z"}],
            "scheduleSummary": "",
        },
    }  # fmt: skip


class Cluster:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Body] = {}
        self.patched: list[tuple[str, Body]] = []

    async def get(self, resource: Resource, namespace: str, name: str) -> Body:
        try:
            return self.objects[(resource.plural, namespace, name)]
        except KeyError:
            raise NotFound(f"{name} not found", status=404, reason="NotFound") from None

    async def merge_patch(self, resource: Resource, namespace: str, name: str, patch: Body) -> None:
        self.patched.append((name, patch))

    async def create_returning(self, resource: Resource, body: Body) -> Body:
        meta = body["metadata"]
        made = {**body, "metadata": {**meta, "uid": f"uid-{meta['name']}",
                                      "creationTimestamp": "2026-11-24T12:00:00Z"}}  # fmt: skip
        self.objects[(resource.plural, meta["namespace"], meta["name"])] = made
        return made


class World:
    def __init__(self) -> None:
        self.flows: dict[tuple[str, str], list[Body]] = {
            (NS, "etl"): [flow("etl", parameters=PARAMETERS)],
            (NS, "once"): [flow("once", concurrency={"policy": "Forbid"})],
        }
        self.runs: dict[tuple[str, str], list[Body]] = {}
        self.cluster = Cluster()
        self.backend = IndexedFlows(
            self.flows, self.runs, self.cluster, clock=lambda: NOW, suffix=lambda: "abcde"
        )

    def watch(self) -> None:
        """The runs index shows what was created."""
        for (_, ns, name), body in self.cluster.objects.items():
            key = (ns, body["metadata"]["labels"]["flowops.io/flow"])
            if all(b["metadata"]["name"] != name for b in self.runs.get(key, [])):
                self.runs.setdefault(key, []).append(body)


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
async def client(world: World) -> AsyncIterator[TestClient[Any, Any]]:
    secrets = Secrets()
    secrets.put("flow-system", "flow-operator-api", a=TOKEN)
    api = make_api(View(), secrets)
    api.flows = world.backend
    c = TestClient(TestServer(make_app(api)))
    await c.start_server()
    yield c
    await c.close()


async def post(client: TestClient[Any, Any], name: str, body: Any) -> tuple[int, Any]:
    resp = await client.post(RUNS.format(namespace=NS, name=name), json=body, headers=AUTH)
    return resp.status, await resp.json()


async def test_run_creates_a_flowrun_of_the_current_version(
    client: TestClient[Any, Any], world: World
) -> None:
    status, run = await post(client, "etl", {"parameters": {"DAY": "2026-11-24"}})
    assert status == 201, run
    validate(RUNS, "post", 201, run)
    assert run["name"] == "etl-abcde" and run["runType"] == "API" and run["version"] == "1"
    (body,) = world.cluster.objects.values()
    assert body["spec"]["flowRef"] == {"name": "etl", "version": 1}
    assert body["spec"]["configuration"]["parameters"] == {"REGION": "eu", "DAY": "2026-11-24"}


async def test_the_dashboard_says_manual(client: TestClient[Any, Any]) -> None:
    status, run = await post(
        client, "etl", {"runType": "Manual", "parameters": {"DAY": "2026-01-01"}}
    )
    assert status == 201 and run["runType"] == "Manual"


async def test_a_repeated_idempotency_key_answers_the_same_run(
    client: TestClient[Any, Any], world: World
) -> None:
    asked = {"parameters": {"DAY": "2026-11-24"}, "idempotencyKey": "k-1"}
    first_status, first = await post(client, "etl", asked)
    world.watch()
    again_status, again = await post(client, "etl", asked)
    assert (first_status, again_status) == (201, 200)
    assert again["name"] == first["name"]
    assert len(world.cluster.objects) == 1
    status, other = await post(client, "etl", {**asked, "parameters": {"DAY": "2026-11-25"}})
    assert status == 422 and other["errors"][0]["path"] == "idempotencyKey"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"version": "three"}, "version"),
        ({"parameters": {"DAY": 5}}, "parameters.DAY"),
        ({"parameters": "DAY=1"}, "parameters"),
        ({"runType": "Scheduled"}, "runType"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_a_malformed_body_is_400_naming_the_field(
    client: TestClient[Any, Any], world: World, body: Body, field: str
) -> None:
    status, answer = await post(client, "etl", body)
    assert status == 400, answer
    validate(RUNS, "post", 400, answer)
    assert field in [e["path"] for e in answer["errors"]]
    assert world.cluster.objects == {}


async def test_a_body_that_is_not_json_is_400(client: TestClient[Any, Any]) -> None:
    resp = await client.post(RUNS.format(namespace=NS, name="etl"), data=b"{", headers=AUTH)
    assert resp.status == 400
    assert "not JSON" in (await resp.json())["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "parameters.DAY"),  # required, and no configuration sets it
        ({"parameters": {"DAY": "yesterday"}}, "parameters.DAY"),  # outside its pattern
        ({"parameters": {"DAY": "2026-11-24", "REGION": "mars"}}, "parameters.REGION"),
        ({"parameters": {"DAY": "2026-11-24", "NOPE": "x"}}, "parameters.NOPE"),
        ({"version": 7, "parameters": {"DAY": "2026-11-24"}}, "version"),
        ({"configuration": "nightly", "parameters": {"DAY": "2026-11-24"}}, "configuration"),
    ],
)
async def test_a_refused_request_is_422_naming_the_field_and_creates_nothing(
    client: TestClient[Any, Any], world: World, body: Body, field: str
) -> None:
    status, answer = await post(client, "etl", body)
    assert status == 422, answer
    validate(RUNS, "post", 422, answer)
    assert [e["path"] for e in answer["errors"]] == [field]
    assert world.cluster.objects == {}


async def test_no_such_flow_is_404(client: TestClient[Any, Any]) -> None:
    status, answer = await post(client, "nope", {})
    assert status == 404 and "no flow team/nope" in answer["message"]


async def test_forbid_skips_a_run_while_one_is_unfinished_409(
    client: TestClient[Any, Any], world: World
) -> None:
    assert (await post(client, "once", {}))[0] == 201
    world.watch()
    world.backend.suffix = lambda: "fghij"
    status, answer = await post(client, "once", {})
    assert status == 409 and answer["error"] == "ConcurrencyForbid"
    assert "once-abcde" in answer["message"]
    assert len(world.cluster.objects) == 1


async def test_the_list_and_one_flow(client: TestClient[Any, Any], world: World) -> None:
    await post(client, "etl", {"parameters": {"DAY": "2026-11-24"}})
    world.watch()
    resp = await client.get("/api/v1/flows", headers=AUTH)
    listed = await resp.json()
    validate("/api/v1/flows", "get", 200, listed)
    assert [f["name"] for f in listed["items"]] == ["etl", "once"]
    assert listed["items"][0]["version"] == 1
    resp = await client.get(f"/api/v1/flows/{NS}/etl", headers=AUTH)
    one = await resp.json()
    validate("/api/v1/flows/{namespace}/{name}", "get", 200, one)
    assert [p["name"] for p in one["parameters"]] == ["REGION", "DAY"]
    assert [r["name"] for r in one["runs"]] == ["etl-abcde"]
    assert (await client.get(f"/api/v1/flows/{NS}/nope", headers=AUTH)).status == 404


async def test_flows_need_the_token(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/api/v1/flows")).status == 401
    resp = await client.post(RUNS.format(namespace=NS, name="etl"), json={})
    assert resp.status == 401
