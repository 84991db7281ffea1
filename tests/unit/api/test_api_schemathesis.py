"""Schemathesis against the served OpenAPI document: generated requests to every operation
of the real app (fake view, Secrets and flow-run backend), with the right credentials.

Every response must be a non-5xx, with a documented status code and content type, and a
body that matches the documented schema. A few examples per operation keep it quick.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis import checks

from flow_operator.api.auth import FailureLimiter
from flow_operator.api.openapi import document
from flow_operator.api.server import make_app
from tests.unit.api.test_flow_api import World as FlowWorld
from tests.unit.api_support import MemoryFlowRuns, Secrets, demo_view, make_api

TOKEN = "schemathesis-token"
KEY = "schemathesis-key"
# The live-update stream stays open until the client leaves: tests/unit/test_stream*.py.
schema = schemathesis.openapi.from_dict(document()).exclude(path="/api/v1/stream")
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    secrets = Secrets()
    secrets.put("flow-system", "flow-operator-api", token=TOKEN)
    for ns in ("live", "batch"):
        secrets.put(ns, "keys", k=KEY)
    api = make_api(demo_view(), secrets, flowruns=MemoryFlowRuns())
    api.flows = FlowWorld().backend  # two Flows, the Run action on an in-memory cluster
    api.limiter = FailureLimiter(burst=1_000_000)  # generated requests fail auth on purpose
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(make_app(api))
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_generated_requests(case: Any, base_url: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "X-API-KEY": KEY}
    response = case.call(base_url=base_url, headers=headers, timeout=10)
    case.validate_response(response, checks=CHECKS, headers=headers)
