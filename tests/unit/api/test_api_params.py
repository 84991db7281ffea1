"""Query parameters and /readyz: a bad integer is a 400 naming the parameter (never a 500),
and readiness answers in one word, whatever went wrong behind it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from flow_operator.api import openapi
from flow_operator.api.hosting import track_readiness
from flow_operator.api.server import MAX_TAIL_LINES, READY_REASONS, Readiness, make_app
from flow_operator.api.workflows import WorkflowDirectory
from flow_operator.errors import for_status
from tests.unit.api_support import MemoryFlowRuns, Secrets, View, make_api, validate

TOKEN = "operator-token-1"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LOGS = "/api/v1/flowruns/analytics/sales-forecast-x2p9/tasks/score/logs"
LOGS_PATH = "/api/v1/flowruns/{namespace}/{name}/tasks/{task}/logs"


class Recording(MemoryFlowRuns):
    """Remembers the tail_lines each log request reached the backend with."""

    def __init__(self) -> None:
        super().__init__()
        self.tails: list[int | None] = []

    async def logs(
        self,
        namespace: str,
        name: str,
        task: str,
        *,
        follow: bool,
        tail_lines: int | None,
        attempt: int | None = None,
        limit_bytes: int | None = None,
    ) -> AsyncIterator[bytes]:
        self.tails.append(tail_lines)
        return await super().logs(
            namespace, name, task, follow=follow, tail_lines=tail_lines, attempt=attempt,
            limit_bytes=limit_bytes,
        )  # fmt: skip


@pytest.fixture
def backend() -> Recording:
    return Recording()


@pytest.fixture
async def client(backend: Recording) -> AsyncIterator[TestClient[Any, Any]]:
    secrets = Secrets()
    secrets.put("flow-system", "flow-operator-api", token=TOKEN)
    api = make_api(View(), secrets, flowruns=backend)
    c = TestClient(TestServer(make_app(api)))
    await c.start_server()
    yield c
    await c.close()


@pytest.mark.parametrize(
    "value",
    ["١٢", "²", "\uff11\uff12", "12a", "-1", "0", "+5", " 5", "1.5", "1e3", str(MAX_TAIL_LINES + 1),
     "9" * 40],
)  # fmt: skip
async def test_a_bad_tail_lines_is_a_400_naming_it(
    client: TestClient[Any, Any], backend: Recording, value: str
) -> None:
    resp = await client.get(LOGS, params={"tailLines": value}, headers=AUTH)
    body = await resp.json()
    assert resp.status == 400, body
    validate(LOGS_PATH, "get", 400, body)
    assert body["error"] == "BadRequest"
    assert "tailLines" in body["message"] and "tailLines=100" in body["message"]
    assert "Traceback" not in body["message"]
    assert backend.tails == []  # refused before the backend is asked


@pytest.mark.parametrize(("value", "tail"), [("", None), ("1", 1), ("20", 20), ("007", 7)])
async def test_a_good_tail_lines_reaches_the_backend(
    client: TestClient[Any, Any], backend: Recording, value: str, tail: int | None
) -> None:
    resp = await client.get(LOGS, params={"tailLines": value}, headers=AUTH)
    assert resp.status == 200
    assert backend.tails == [tail]


async def test_no_tail_lines_is_the_whole_log(
    client: TestClient[Any, Any], backend: Recording
) -> None:
    resp = await client.get(LOGS, headers=AUTH)
    assert resp.status == 200 and backend.tails == [None]


async def test_the_token_is_checked_before_the_parameters(client: TestClient[Any, Any]) -> None:
    resp = await client.get(LOGS, params={"tailLines": "²"})
    assert resp.status == 401


def test_the_documented_reasons_are_the_served_ones() -> None:
    assert set(openapi.READY_REASON["enum"]) == READY_REASONS | {"unknown"}
    logs = openapi.document()["paths"][LOGS_PATH]["get"]
    tail = next(p for p in logs["parameters"] if p["name"] == "tailLines")
    assert tail["schema"]["maximum"] == MAX_TAIL_LINES


async def _readyz(readiness: Readiness) -> tuple[int, Any]:
    api = make_api(View(), Secrets())
    api.readiness = readiness
    c = TestClient(TestServer(make_app(api)))
    await c.start_server()
    try:
        resp = await c.get("/readyz")
        body = await resp.json()
        validate("/readyz", "get", resp.status, body)
        return resp.status, body
    finally:
        await c.close()


async def test_readyz_never_echoes_more_than_a_word() -> None:
    leak = Readiness(ready=False, reason="cannot list: Unauthorized token=abc123 at 10.0.0.1")
    assert await _readyz(leak) == (503, {"status": "not ready", "reason": "unknown"})
    assert await _readyz(Readiness(False, "indexing")) == (
        503, {"status": "not ready", "reason": "indexing"})  # fmt: skip
    assert await _readyz(Readiness(True, "indexed")) == (
        200, {"status": "ready", "reason": "indexed"})  # fmt: skip


class Steps:
    """Stands in for asyncio.sleep in track_readiness: records the readiness at each
    wait, and fills the index at the third, so no test waits for real time."""

    def __init__(self, readiness: Readiness, view: View) -> None:
        self.readiness, self.view = readiness, view
        self.seen: list[tuple[bool, str]] = []

    async def __call__(self, seconds: float) -> None:
        self.seen.append((self.readiness.ready, self.readiness.reason))
        if len(self.seen) == 3:
            self.view.workflows[("ns", "a")] = [{"metadata": {"name": "a"}}]


@pytest.mark.parametrize(
    ("error", "word"),
    [
        (for_status(403, "Forbidden", "Forbidden: secret-detail"), "forbidden"),
        (for_status(401, "Unauthorized", "Unauthorized: secret-detail"), "forbidden"),
        (OSError("connect to 10.1.2.3:6443 refused: secret-detail"), "unreachable"),
        (for_status(500, "Internal", "etcd secret-detail"), "unreachable"),
    ],
)
async def test_a_failed_list_is_one_word_and_the_detail_is_logged(
    caplog: pytest.LogCaptureFixture, error: Exception, word: str
) -> None:
    view = View()
    readiness = Readiness()
    results: list[Any] = [error, {("ns", "a")}]

    async def list_keys() -> set[tuple[str, str]]:
        result = results.pop(0) if results else {("ns", "a")}
        if isinstance(result, Exception):
            raise result
        return set(result)

    steps = Steps(readiness, view)
    caplog.set_level(logging.INFO, logger="flow_operator.api.hosting")
    directory = WorkflowDirectory(view.workflows, view.pods)
    await asyncio.wait_for(track_readiness(readiness, directory, list_keys, sleep=steps), 5)
    assert steps.seen == [(False, word), (False, "indexing"), (False, "indexing")]
    assert (readiness.ready, readiness.reason) == (True, "indexed")
    assert "secret-detail" in caplog.text  # the detail is in the log, not in /readyz
    assert "1 workflows indexed" in caplog.text
