"""GET /api/v1/runtime/workflow/{workflowId}/action/status through HTTP, on a fake view.

The six reference examples are served field for field (ages recomputed at request time),
and the key checks hold: 401 before existence is revealed, 404 only for a right key and a
never-published workflow, 429 after repeated failures, Secrets read lazily and cached.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from flow_operator.api.server import Api, make_app
from flow_operator.models.workflow import Color, WorkflowStatus
from flow_operator.objects.durations import since
from flow_operator.status.aggregate import Observed
from tests.unit.api_support import NOW, Clock, Secrets, View, make_api, validate
from tests.unit.kube_objects import T0, workflow
from tests.unit.status.test_golden_workflow_status import SCENARIOS

GOLDEN = Path(__file__).parents[2] / "golden" / "workflow"
PATH = "/api/v1/runtime/workflow/{workflowId}/action/status"
KEY = "s3cr3t-key-for-wf"


def url(workflow_id: str) -> str:
    return PATH.format(workflowId=workflow_id)


@pytest.fixture
async def client_for() -> AsyncIterator[Any]:
    clients: list[TestClient[Any, Any]] = []

    async def make(api: Api) -> TestClient[Any, Any]:
        client = TestClient(TestServer(make_app(api)))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for c in clients:
        await c.close()


async def get(client: TestClient[Any, Any], workflow_id: str, key: str | None) -> Any:
    headers = {"X-API-KEY": key} if key is not None else {}
    resp = await client.get(url(workflow_id), headers=headers)
    body = await resp.json()
    validate(PATH, "get", resp.status, body)
    return resp.status, body, resp.headers


def scenario_view(name: str) -> View:
    body, observed = SCENARIOS[name]()
    if name == "unpublished-after-publish":  # "already published at least once in the past"
        body["status"]["firstPublishedAt"] = "2024-02-12T09:00:00Z"
    view = View()
    view.add(body, observed, secret="wf-keys")
    return view


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_each_reference_example_is_served_field_for_field(name: str, client_for: Any) -> None:
    secrets = Secrets()
    secrets.put("ns", "wf-keys", primary=KEY)
    client = await client_for(make_api(scenario_view(name), secrets))
    status, body, headers = await get(client, "ns.wf", KEY)
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    expected = json.loads((GOLDEN / f"{name}.json").read_text())
    # age is now - creationTimestamp at request time; everything else is the example's
    for svc in expected.get("details", {}).get("services", []):
        for replica in svc["replicasDetail"]:
            replica["age"] = since(_parse(T0), NOW)
    assert body == expected


def _parse(ts: str) -> Any:
    from flow_operator.objects.times import parse_time

    return parse_time(ts)


@pytest.fixture
def two_workflows() -> tuple[View, Secrets]:
    view = View()
    body, observed = SCENARIOS["async-published-green"]()
    view.add(body, observed, secret="wf-keys")
    other = workflow("other")
    view.add(other, Observed(), secret="other-keys")
    never = workflow("never", desired="UNPUBLISHED")
    view.add(never, Observed(), secret="wf-keys")
    secrets = Secrets()
    secrets.put("ns", "wf-keys", primary=KEY, secondary="second-key-of-the-wf")
    secrets.put("ns", "other-keys", key="other-workflows-key")
    secrets.put("elsewhere", "unreferenced", key="never-read")
    return view, secrets


@pytest.mark.parametrize(
    ("key", "status"),
    [
        (None, 401),  # no key
        ("", 401),  # empty key
        ("wrong", 401),
        ("other-workflows-key", 401),  # another workflow's key
        (KEY + "x", 401),  # a prefix match is no match
        (KEY, 200),
        ("second-key-of-the-wf", 200),  # every value of the Secret is a key
    ],
)
async def test_key_checks(
    key: str | None, status: int, two_workflows: tuple[View, Secrets], client_for: Any
) -> None:
    client = await client_for(make_api(*two_workflows))
    got, body, _ = await get(client, "ns.wf", key)
    assert got == status
    if status == 200:
        assert body["actualStatus"] == "GREEN"
    else:
        assert body["error"] == "Unauthorized"


async def test_unknown_workflow_is_401_for_any_key_and_reads_no_secret(
    two_workflows: tuple[View, Secrets], client_for: Any
) -> None:
    view, secrets = two_workflows
    client = await client_for(make_api(view, secrets))
    for key in (None, KEY, "other-workflows-key", "never-read"):
        got, body, _ = await get(client, "ns.missing", key)
        assert (got, body["error"]) == (401, "Unauthorized")
    assert secrets.reads == []


async def test_never_published_is_404_only_with_the_right_key(
    two_workflows: tuple[View, Secrets], client_for: Any
) -> None:
    client = await client_for(make_api(*two_workflows))
    assert (await get(client, "ns.never", "wrong"))[0] == 401
    got, body, _ = await get(client, "ns.never", KEY)
    assert (got, body["error"]) == (404, "NotFound")


async def test_published_then_unpublished_is_still_served(client_for: Any) -> None:
    view = View()
    secrets = Secrets()
    secrets.put("ns", "k", a=KEY)
    body = view.add(workflow("wf"), Observed(), secret="k")
    first = body["status"]["firstPublishedAt"]
    body["spec"]["desiredStatus"] = "UNPUBLISHED"
    view.add(body, Observed())
    assert body["status"]["firstPublishedAt"] == first
    client = await client_for(make_api(view, secrets))
    got, doc, _ = await get(client, "wf", KEY)
    assert got == 200
    assert doc == {
        "desiredStatus": "UNPUBLISHED",
        "actualStatus": "GREEN",
        "publishingMode": "ASYNC",
        "details": {},
    }


async def test_workflow_without_a_secret_ref_accepts_no_key(client_for: Any) -> None:
    view = View()
    view.add(workflow("open"), Observed())
    client = await client_for(make_api(view, Secrets()))
    for key in (None, "", "anything"):
        assert (await get(client, "ns.open", key))[0] == 401


async def test_plain_name_and_qualified_name(client_for: Any) -> None:
    view = View()
    secrets = Secrets()
    for ns, key in (("team-a", "key-a-of-sixteen-bytes"), ("team-b", "key-b-of-sixteen-bytes")):
        body = workflow("shared")
        body["metadata"]["namespace"] = ns
        view.add(body, Observed(), secret="keys")
        secrets.put(ns, "keys", k=key)
    body = workflow("solo")
    view.add(body, Observed(), secret="keys")
    secrets.put("ns", "keys", k="key-solo-of-sixteen")
    client = await client_for(make_api(view, secrets))
    assert (await get(client, "solo", "key-solo-of-sixteen"))[0] == 200
    assert (await get(client, "ns.solo", "key-solo-of-sixteen"))[0] == 200
    assert (await get(client, "team-a.shared", "key-a-of-sixteen-bytes"))[0] == 200
    assert (await get(client, "team-a.shared", "key-b-of-sixteen-bytes"))[0] == 401
    # a plain name in two namespaces: the key tells which one it is
    assert (await get(client, "shared", "key-b-of-sixteen-bytes"))[0] == 200
    # ... unless it is valid for both
    secrets.put("team-b", "keys", k="key-a-of-sixteen-bytes")
    client = await client_for(make_api(view, secrets))
    got, body, _ = await get(client, "shared", "key-a-of-sixteen-bytes")
    assert got == 409
    assert "{namespace}.{name}" in body["message"]
    assert (await get(client, "team-b.shared", "key-a-of-sixteen-bytes"))[0] == 200


async def test_dotted_names(client_for: Any) -> None:
    view = View()
    secrets = Secrets()
    body = workflow("v1.2")
    view.add(body, Observed(), secret="keys")
    secrets.put("ns", "keys", k=KEY)
    client = await client_for(make_api(view, secrets))
    assert (await get(client, "ns.v1.2", KEY))[0] == 200
    assert (await get(client, "v1.2", KEY))[0] == 200


async def test_failed_attempts_are_limited_per_address(
    two_workflows: tuple[View, Secrets], client_for: Any
) -> None:
    clock = Clock()
    client = await client_for(make_api(*two_workflows, clock=clock))
    for _ in range(5):  # the test limiter's burst
        assert (await get(client, "ns.wf", "guess"))[0] == 401
    got, body, headers = await get(client, "ns.wf", KEY)
    assert (got, body["error"]) == (429, "TooManyRequests")  # even the right key: no oracle
    assert int(headers["Retry-After"]) >= 1
    clock.t += 2.0  # 0.5 tokens/s: one attempt back
    assert (await get(client, "ns.wf", KEY))[0] == 200
    assert (await get(client, "ns.wf", "guess"))[0] == 401
    assert (await get(client, "ns.wf", "guess"))[0] == 429


async def test_successes_cost_nothing(two_workflows: tuple[View, Secrets], client_for: Any) -> None:
    client = await client_for(make_api(*two_workflows))
    for _ in range(20):
        assert (await get(client, "ns.wf", KEY))[0] == 200


async def test_secrets_are_read_lazily_once_per_ttl(
    two_workflows: tuple[View, Secrets], client_for: Any
) -> None:
    view, secrets = two_workflows
    clock = Clock()
    client = await client_for(make_api(view, secrets, clock=clock))
    assert secrets.reads == []
    for _ in range(3):
        await get(client, "ns.wf", KEY)
    assert secrets.reads == [("ns", "wf-keys")]
    secrets.put("ns", "wf-keys", primary="rotated-key-of-the-wf")
    assert (await get(client, "ns.wf", "rotated-key-of-the-wf"))[0] == 401  # cached for the TTL
    clock.t += 31
    assert (await get(client, "ns.wf", "rotated-key-of-the-wf"))[0] == 200
    assert (await get(client, "ns.wf", KEY))[0] == 401
    assert ("elsewhere", "unreferenced") not in secrets.reads


async def test_a_missing_secret_denies_and_keys_are_never_logged(
    client_for: Any, caplog: pytest.LogCaptureFixture
) -> None:
    view = View()
    view.add(workflow("wf"), Observed(), secret="gone")
    secrets = Secrets()
    caplog.set_level(logging.DEBUG)
    client = await client_for(make_api(view, secrets))
    assert (await get(client, "ns.wf", "a-key-to-keep-quiet"))[0] == 401
    secrets.put("ns", "there", k="the-real-key-of-the-wf")
    view.workflows[("ns", "wf")][0]["spec"]["apiKeySecretRef"] = {"name": "there"}
    assert (await get(client, "ns.wf", "the-real-key-of-the-wf"))[0] == 200
    assert "a-key-to-keep-quiet" not in caplog.text
    assert "the-real-key-of-the-wf" not in caplog.text


async def test_ages_are_live_and_the_reconcilers_latest_status_wins_until_the_watch_catches_up(
    client_for: Any,
) -> None:
    view = scenario_view("async-publishing-orange")
    secrets = Secrets()
    secrets.put("ns", "wf-keys", k=KEY)
    api = make_api(view, secrets)
    client = await client_for(api)
    body = view.workflows[("ns", "wf")][0]
    green = WorkflowStatus.model_validate({**body["status"], "actualStatus": "GREEN"})
    api.directory.on_status(("ns", "wf"), green)
    assert (await get(client, "ns.wf", KEY))[1]["actualStatus"] == Color.GREEN
    # the watch shows a newer object (whatever its status): the index is the truth again
    body["metadata"]["resourceVersion"] = "2"
    assert (await get(client, "ns.wf", KEY))[1]["actualStatus"] == Color.ORANGE
    api.directory.on_status(("ns", "wf"), None)  # deleted
    del view.workflows[("ns", "wf")]
    assert (await get(client, "ns.wf", KEY))[0] == 401
