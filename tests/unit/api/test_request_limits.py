"""The request limits (docs/security.md): a body, a query string or headers past theirs are
refused before any handler runs, with a plain message naming the limit; the Run action
behind them creates nothing. The test server runs with the operator's own options
(PARSER_LIMITS, the parser's caps)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from flow_operator.api.auth import digest
from flow_operator.api.identity import TokenAccess
from flow_operator.api.limits import (
    MAX_BODY_BYTES,
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    MAX_QUERY_BYTES,
    PARSER_LIMITS,
)
from flow_operator.api.server import make_app
from tests.unit.api.test_flow_api import AUTH, NS, RUNS, TOKEN, World
from tests.unit.api_support import Secrets, View, make_api

RUN = RUNS.format(namespace=NS, name="etl")


async def tokens() -> dict[str, bytes]:
    return {"a": digest(TOKEN)}


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
async def client(world: World) -> AsyncIterator[TestClient[Any, Any]]:
    secrets = Secrets()
    secrets.put("flow-system", "flow-operator-api", a=TOKEN)
    api = make_api(View(), secrets)
    api.access = TokenAccess(tokens)
    api.flows = world.backend
    server = TestServer(make_app(api))
    await server.start_server(**PARSER_LIMITS)  # (TestServer's own keywords are not the runner's)
    c = TestClient(server)
    await c.start_server()
    yield c
    await c.close()


def run_body(size: int) -> bytes:
    """A Run request of exactly `size` bytes (its padding a parameter the Flow refuses)."""
    head = b'{"parameters": {"DAY": "2026-11-24"}, "idempotencyKey": "'
    return head + b"k" * (size - len(head) - 2) + b'"}'


async def answer(resp: Any) -> tuple[int, str, str]:
    body = json.loads(await resp.text())
    return resp.status, body["error"], body["message"]


async def test_a_body_past_the_limit_is_413_and_creates_nothing(
    client: TestClient[Any, Any], world: World
) -> None:
    big = run_body(MAX_BODY_BYTES + 1)
    resp = await client.post(RUN, data=big, headers=AUTH)
    assert await answer(resp) == (
        413,
        "RequestEntityTooLarge",
        f"the request body is {MAX_BODY_BYTES + 1} bytes: at most {MAX_BODY_BYTES} bytes "
        "are accepted",
    )
    assert world.cluster.objects == {}


async def test_a_body_without_length_is_cut_at_the_limit(
    client: TestClient[Any, Any], world: World
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        body = run_body(MAX_BODY_BYTES + 1000)
        for at in range(0, len(body), 4096):
            yield body[at : at + 4096]

    resp = await client.post(RUN, data=chunks(), headers=AUTH)
    assert "Content-Length" not in resp.request_info.headers
    assert await answer(resp) == (
        413,
        "RequestEntityTooLarge",
        f"the request body is larger than that: at most {MAX_BODY_BYTES} bytes are accepted",
    )
    assert world.cluster.objects == {}


async def test_a_body_at_the_limit_reaches_the_handler(client: TestClient[Any, Any]) -> None:
    resp = await client.post(RUN, data=run_body(MAX_BODY_BYTES), headers=AUTH)
    assert resp.status not in (413, 431, 414)
    assert len(run_body(MAX_BODY_BYTES)) == MAX_BODY_BYTES


async def test_a_long_query_is_414(client: TestClient[Any, Any]) -> None:
    ok = await client.get("/api/v1/flowruns?phase=" + "a" * (MAX_QUERY_BYTES - 6), headers=AUTH)
    assert ok.status != 414
    resp = await client.get("/api/v1/flowruns?phase=" + "a" * (MAX_QUERY_BYTES - 5), headers=AUTH)
    assert await answer(resp) == (
        414,
        "URITooLong",
        f"the query string is {MAX_QUERY_BYTES + 1} bytes: at most {MAX_QUERY_BYTES} are accepted",
    )


async def test_headers_past_the_limit_are_431_before_authentication(
    client: TestClient[Any, Any],
) -> None:
    big = {"X-Padding": "p" * MAX_HEADER_BYTES}  # no credential: 431 is answered first
    status, code, message = await answer(await client.get("/api/v1/flowruns", headers=big))
    assert (status, code) == (431, "RequestHeaderFieldsTooLarge")
    assert message.endswith(
        f"at most {MAX_HEADER_BYTES} bytes in {MAX_HEADERS} fields are accepted"
    )
    many = {f"X-Field-{i}": "v" for i in range(MAX_HEADERS)}
    status, code, _ = await answer(await client.get("/api/v1/flowruns", headers=many))
    assert (status, code) == (431, "RequestHeaderFieldsTooLarge")
    resp = await client.get("/api/v1/flows", headers={**AUTH, "X-Padding": "p" * 8000})
    assert resp.status == 200
