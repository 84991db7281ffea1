"""The OpenAPI document tells the truth: every route documented, every path routed, the
reference examples valid against its schemas (and a near miss invalid), the document
served as JSON; plus /healthz and /readyz."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiohttp.test_utils import TestClient, TestServer

from flow_operator.api.openapi import document
from flow_operator.api.server import make_app
from flow_operator.api.workflows import WorkflowDirectory
from tests.unit.api_support import Secrets, View, make_api, schema_of, validate
from tests.unit.virtual_time import virtual_time

GOLDEN = Path(__file__).parents[2] / "golden" / "workflow"


def test_every_route_is_documented_and_every_documented_path_is_routed() -> None:
    app = make_app(make_api(View(), Secrets()))
    routed = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
    }
    documented = {(method, path) for path, ops in document()["paths"].items() for method in ops}
    assert routed == documented


def test_every_operation_has_an_id_and_documents_its_auth_failures() -> None:
    for path, ops in document()["paths"].items():
        for method, op in ops.items():
            assert op["operationId"], (method, path)
            if op.get("security"):
                assert {"401", "429"} <= set(op["responses"]), (method, path)


def test_every_reference_example_validates() -> None:
    for path in sorted(GOLDEN.glob("*.json")):
        jsonschema.validate(json.loads(path.read_text()), schema_of("WorkflowStatus"),
                            cls=jsonschema.Draft202012Validator)  # fmt: skip


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d.update(actualStatus="BLUE"),
        lambda d: d.update(observedGeneration=3),  # Kubernetes extras are not served
        lambda d: d["details"]["services"][0].pop("rolloutStatus"),
        lambda d: d["details"]["services"][0]["replicasDetail"][0].update(startedAt=None),
        lambda d: d["details"]["services"][0]["replicasDetail"][0].update(age="2 minutes"),
    ],
)
def test_schemas_are_strict(breakage: Any) -> None:
    doc = json.loads((GOLDEN / "sync-published-green.json").read_text())
    breakage(doc)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema_of("WorkflowStatus"), cls=jsonschema.Draft202012Validator)


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1")
    # every $ref resolves, and every schema is itself valid JSON Schema
    text = json.dumps(doc)
    for name in doc["components"]["schemas"]:
        jsonschema.Draft202012Validator.check_schema(schema_of(name))
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        assert ref.removeprefix("#/components/schemas/") in doc["components"]["schemas"], ref


async def _client(api: Any) -> TestClient[Any, Any]:
    client = TestClient(TestServer(make_app(api)))
    await client.start_server()
    return client


async def test_openapi_health_and_readiness_are_served() -> None:
    api = make_api(View(), Secrets())
    api.readiness.set(False, "indexing")
    client = await _client(api)
    try:
        resp = await client.get("/openapi.json")
        assert resp.status == 200
        assert await resp.json() == document()
        resp = await client.get("/healthz")
        assert (resp.status, await resp.json()) == (200, {"status": "ok"})
        resp = await client.get("/readyz")
        body = await resp.json()
        assert resp.status == 503
        validate("/readyz", "get", 503, body)
        assert body["reason"] == "indexing"
        api.readiness.set(True, "indexed")
        resp = await client.get("/readyz")
        assert resp.status == 200
        validate("/readyz", "get", 200, await resp.json())
    finally:
        await client.close()


async def test_errors_are_json_and_unknown_paths_404() -> None:
    client = await _client(make_api(View(), Secrets()))
    try:
        resp = await client.get("/api/v1/nothing-here")
        assert resp.status == 404
        assert (await resp.json())["error"] == "NotFound"
        resp = await client.post("/healthz")
        assert resp.status == 405
        assert "GET" in resp.headers["Allow"]
        resp = await client.get("/static/../../etc/passwd")
        assert resp.status == 404
        resp = await client.get("/static/app.js")
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/javascript")
        resp = await client.get("/")
        assert resp.status == 200
        assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    finally:
        await client.close()


@virtual_time  # the 5 s relist and the polls take no real time
async def test_readiness_waits_for_every_listed_workflow() -> None:
    from flow_operator.api.hosting import track_readiness
    from flow_operator.api.server import Readiness

    view = View()
    directory = WorkflowDirectory(view.workflows, view.pods)
    readiness = Readiness()
    listed = {("ns", "a"), ("ns", "b")}

    async def list_keys() -> set[tuple[str, str]]:
        return set(listed)

    import asyncio

    lists = 0

    async def counted() -> set[tuple[str, str]]:
        nonlocal lists
        lists += 1
        return await list_keys()

    task = asyncio.create_task(track_readiness(readiness, directory, counted, poll=0.2))
    await asyncio.sleep(12)  # well past two relists (every 5 s), neither indexed yet
    assert not readiness.ready
    assert readiness.reason == "indexing" and lists == 3
    view.workflows[("ns", "a")] = [{"metadata": {"name": "a"}}]
    view.workflows[("ns", "b")] = [{"metadata": {"name": "b"}}]
    await asyncio.wait_for(task, 1)
    assert readiness.ready
