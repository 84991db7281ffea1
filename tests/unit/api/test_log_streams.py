"""Task-log streams cannot stall the operator (issue 21): at most --max-log-streams at once
(429 with Retry-After beyond, the slot given back however a stream ends), `limitBytes`
bounded and passed on, and the upstream released as soon as the HTTP client leaves, on
aiohttp's test server run with the operator's own options (RUNNER_OPTIONS)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from flow_operator import metrics
from flow_operator.api.flowruns import FlowRunError, StoredLog
from flow_operator.api.openapi import document
from flow_operator.api.server import (
    DEFAULT_MAX_LOG_STREAMS,
    KEEPALIVE_COUNT,
    KEEPALIVE_IDLE,
    KEEPALIVE_INTERVAL,
    MAX_LIMIT_BYTES,
    RUNNER_OPTIONS,
    LogStreamSlots,
    make_app,
    probe_idle_client,
)
from flow_operator.errors import Unavailable
from flow_operator.history.store import LogRecord
from flow_operator.settings import DEFAULT_MAX_LOG_STREAMS as FLAG_DEFAULT
from flow_operator.settings import Settings
from tests.unit.api_support import MemoryFlowRuns, Secrets, View, make_api, validate

TOKEN = "operator-token-1"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LOGS = "/api/v1/flowruns/analytics/sales-forecast-x2p9/tasks/score/logs"
LOGS_PATH = "/api/v1/flowruns/{namespace}/{name}/tasks/{task}/logs"


class Upstream:
    """A fake `pods/log` stream: its first chunk, then a quiet pod until `end` or `fail`;
    it records being closed (aclose), as Kube.pod_log's iterator releases its response."""

    def __init__(self) -> None:
        self.first = True
        self.more = asyncio.Event()
        self.error: Exception | None = None
        self.closed = asyncio.Event()

    def __aiter__(self) -> Upstream:
        return self

    async def __anext__(self) -> bytes:
        if self.first:
            self.first = False
            return b"first line\n"
        await self.more.wait()
        if self.error is not None:
            raise self.error
        raise StopAsyncIteration

    def end(self) -> None:
        self.more.set()

    def fail(self, error: Exception) -> None:
        self.error = error
        self.more.set()

    async def aclose(self) -> None:
        self.closed.set()


class Streams(MemoryFlowRuns):
    """Each log request gets an Upstream of its own; `asked` records the byte limits."""

    def __init__(self) -> None:
        super().__init__()
        self.upstreams: list[Upstream] = []
        self.asked: list[int | None] = []
        self.refuse: FlowRunError | None = None

    async def logs(self, namespace: str, name: str, task: str, *, follow: bool,
                   tail_lines: int | None, attempt: int | None = None,
                   limit_bytes: int | None = None) -> AsyncIterator[bytes]:  # fmt: skip
        self.asked.append(limit_bytes)
        if self.refuse is not None:
            raise self.refuse
        self.upstreams.append(Upstream())
        return self.upstreams[-1]


class Counted(LogStreamSlots):
    """The slots, telling when one is given back."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.given_back = asyncio.Event()

    def give_back(self) -> None:
        super().give_back()
        self.given_back.set()


@pytest.fixture
def backend() -> Streams:
    return Streams()


@pytest.fixture
def slots() -> Counted:
    return Counted(2)


@pytest.fixture
async def client(backend: Streams, slots: Counted) -> AsyncIterator[TestClient[Any, Any]]:
    secrets = Secrets()
    secrets.put("flow-system", "flow-operator-api", token=TOKEN)
    api = make_api(View(), secrets, flowruns=backend)
    api.log_streams = slots
    c = TestClient(TestServer(make_app(api), **RUNNER_OPTIONS))
    await c.start_server()
    yield c
    await c.close()


def gauge() -> float:
    return metrics.REGISTRY.get_sample_value("flowops_api_log_streams") or 0.0


def refused() -> float:
    return metrics.REGISTRY.get_sample_value("flowops_api_log_streams_refused_total") or 0.0


async def given_back(slots: Counted) -> None:
    await asyncio.wait_for(slots.given_back.wait(), 5)
    slots.given_back.clear()


async def test_a_stream_past_the_cap_is_a_429_and_an_ended_one_frees_its_slot(
    client: TestClient[Any, Any], backend: Streams, slots: Counted
) -> None:
    open_before, refused_before = gauge(), refused()
    first = await client.get(LOGS, params={"follow": "true"}, headers=AUTH)
    second = await client.get(LOGS, params={"follow": "true"}, headers=AUTH)
    assert first.status == second.status == 200
    assert await first.content.readline() == b"first line\n"
    assert slots.open == 2 and gauge() == open_before + 2

    third = await client.get(LOGS, params={"follow": "true"}, headers=AUTH)
    body = await third.json()
    assert third.status == 429, body
    validate(LOGS_PATH, "get", 429, body)
    assert body["error"] == "TooManyLogStreams"
    assert "--max-log-streams=2" in body["message"] and "retry in 5 s" in body["message"]
    assert third.headers["Retry-After"] == "5"
    assert refused() == refused_before + 1
    assert len(backend.upstreams) == 2  # refused before the cluster is asked

    backend.upstreams[0].end()  # the first log ends: its slot is free again
    assert await first.read() == b""  # the rest: nothing, and the answer ends
    await given_back(slots)
    assert slots.open == 1 and gauge() == open_before + 1
    fourth = await client.get(LOGS, params={"follow": "true"}, headers=AUTH)
    assert fourth.status == 200

    for upstream in backend.upstreams[1:]:
        upstream.end()
    await second.read()
    await fourth.read()
    assert slots.open == 0 and gauge() == open_before
    assert all(u.closed.is_set() for u in backend.upstreams)


async def test_a_failed_stream_gives_its_slot_back(
    client: TestClient[Any, Any], backend: Streams, slots: Counted,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    resp = await client.get(LOGS, params={"follow": "true"}, headers=AUTH)
    assert resp.status == 200
    backend.upstreams[0].fail(Unavailable("ClientPayloadError: the API server went away"))
    # the answer ends cleanly (not a 500 after the headers, nor a broken connection)
    assert await asyncio.wait_for(resp.read(), 5) == b"first line\n"
    await given_back(slots)
    assert "InternalError" not in caplog.text and " failed" not in caplog.text
    assert slots.open == 0 and backend.upstreams[0].closed.is_set()

    backend.refuse = FlowRunError(409, "Conflict", "task score has no pod yet")
    for _ in range(3):  # refused by the backend: no slot kept (the cap is 2)
        resp = await client.get(LOGS, headers=AUTH)
        assert resp.status == 409
    assert slots.open == 0


async def test_a_client_that_leaves_releases_the_upstream_at_once(
    client: TestClient[Any, Any], backend: Streams, slots: Counted
) -> None:
    """The pod is quiet: nothing is written that could notice the client has gone."""
    resp = await client.get(LOGS, params={"follow": "true"}, headers=AUTH)
    assert resp.status == 200
    assert await resp.content.readline() == b"first line\n"
    upstream = backend.upstreams[0]
    assert not upstream.closed.is_set()
    resp.close()  # the client goes away (closes its connection)
    await asyncio.wait_for(upstream.closed.wait(), 5)
    await given_back(slots)
    assert slots.open == 0


@pytest.mark.parametrize(
    "value", ["0", "-1", "1.5", "1e3", "²", str(MAX_LIMIT_BYTES + 1), "9" * 40]
)
async def test_a_bad_limit_bytes_is_a_400_naming_it(
    client: TestClient[Any, Any], backend: Streams, slots: Counted, value: str
) -> None:
    resp = await client.get(LOGS, params={"limitBytes": value}, headers=AUTH)
    body = await resp.json()
    assert resp.status == 400, body
    validate(LOGS_PATH, "get", 400, body)
    assert "limitBytes" in body["message"] and "limitBytes=100" in body["message"]
    assert backend.asked == [] and slots.open == 0  # refused before a slot or the backend


@pytest.mark.parametrize(("value", "limit"), [("", None), ("1", 1), ("4096", 4096),
                                              (str(MAX_LIMIT_BYTES), MAX_LIMIT_BYTES)])  # fmt: skip
async def test_a_good_limit_bytes_reaches_the_backend(
    client: TestClient[Any, Any], backend: Streams, value: str, limit: int | None
) -> None:
    resp = await client.get(LOGS, params={"limitBytes": value}, headers=AUTH)
    assert resp.status == 200
    backend.upstreams[0].end()
    await resp.read()
    assert backend.asked == [limit]


def test_the_documented_limits_are_the_served_ones() -> None:
    logs = document()["paths"][LOGS_PATH]["get"]
    limit = next(p for p in logs["parameters"] if p["name"] == "limitBytes")
    assert limit["schema"]["maximum"] == MAX_LIMIT_BYTES
    assert "TooManyLogStreams" in logs["responses"]["429"]["description"]
    assert FLAG_DEFAULT == DEFAULT_MAX_LOG_STREAMS


def test_the_cap_is_a_flag_and_an_environment_variable() -> None:
    assert Settings.parse(["run"], env={}).http.max_log_streams == DEFAULT_MAX_LOG_STREAMS
    assert Settings.parse(["run", "--max-log-streams", "7"], env={}).http.max_log_streams == 7
    env = {"FLOW_MAX_LOG_STREAMS": "12"}
    assert Settings.parse(["run"], env=env).http.max_log_streams == 12
    with pytest.raises(SystemExit):
        Settings.parse(["run", "--max-log-streams", "0"], env={})
    with pytest.raises(ValueError, match="at least 1"):
        LogStreamSlots(0)


def stored(text: str) -> LogRecord:
    return LogRecord(uid="u", task="t", attempt=1, text=text, size=len(text),
                     captured_at=datetime(2026, 12, 1, tzinfo=UTC))  # fmt: skip


@pytest.mark.parametrize(
    ("tail", "limit", "expected"),
    [
        (None, None, b"one\ntwo\nthree\n"),
        (None, 5, b"one\nt"),  # may end mid-line, as pods/log's limitBytes
        (2, 5, b"two\nt"),  # the tail first, then the byte limit
        (2, 100, b"two\nthree\n"),
        (None, 1, b"o"),
    ],
)
async def test_a_stored_log_honours_limit_bytes(
    tail: int | None, limit: int | None, expected: bytes
) -> None:
    log = StoredLog(stored("one\ntwo\nthree\n"), tail, limit)
    assert b"".join([chunk async for chunk in log]) == expected


def test_a_stored_log_cut_in_a_character_is_still_bytes() -> None:
    log = StoredLog(stored("é\n"), None, 1)
    assert log._chunks == ["é".encode()[:1]]


class Transport:
    def __init__(self, sock: Any) -> None:
        self.sock = sock

    def get_extra_info(self, name: str) -> Any:
        return self.sock if name == "socket" else None


def test_a_follow_streams_connection_probes_a_silent_client() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        assert probe_idle_client(Transport(sock))
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == KEEPALIVE_IDLE
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == KEEPALIVE_INTERVAL
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == KEEPALIVE_COUNT
    # a vanished client is noticed within seconds (docs/api.md gives the figure)
    assert KEEPALIVE_IDLE + KEEPALIVE_COUNT * KEEPALIVE_INTERVAL <= 10
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
        assert not probe_idle_client(Transport(unix))
    assert not probe_idle_client(None)
    assert not probe_idle_client(Transport(None))


def test_the_server_cancels_a_handler_whose_client_left() -> None:
    assert RUNNER_OPTIONS["handler_cancellation"] is True
