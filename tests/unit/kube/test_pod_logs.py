"""The HTTP API's log reader (kube.PodLogs, issue 21): a client and connection pool of its
own beside the reconcilers', `limitBytes` passed to `pods/log`, and an upstream response
released the moment its iterator is closed (not when the garbage collector finds it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from kubernetes_asyncio import client

from flow_operator.kube import Kube, PodLogs
from tests.unit.kube.test_kube import Api, Raw


class Content:
    """aiohttp's response.content: one chunk, then a quiet pod (it waits for ever)."""

    def __init__(self) -> None:
        self.quiet = asyncio.Event()

    async def iter_any(self) -> AsyncIterator[bytes]:
        yield b"line 1\n"
        await self.quiet.wait()  # never set: a follow stream of a pod that says nothing


class Streaming(Raw):
    def __init__(self) -> None:
        super().__init__(200)
        self.content = Content()


async def test_limit_bytes_and_tail_lines_reach_pods_log() -> None:
    api = Api(Raw(200), Raw(200))
    logs = PodLogs(Kube(api), 4)  # type: ignore[arg-type]
    await logs.pod_log("ns", "p", follow=True, tail_lines=10, limit_bytes=2048)
    await logs.pod_log("ns", "p")
    (method, url, query, _), (_, _, plain, _) = api.calls
    assert (method, url) == ("GET", "/api/v1/namespaces/ns/pods/p/log")
    assert query == [("follow", True), ("tailLines", 10), ("limitBytes", 2048)]
    assert plain == [("follow", False)]  # absent: the whole log, as before


async def test_closing_the_iterator_releases_the_upstream_at_once() -> None:
    raw = Streaming()
    logs = PodLogs(Kube(Api(raw)), 4)  # type: ignore[arg-type]
    chunks = await logs.pod_log("ns", "p", follow=True)
    assert await anext(chunks) == b"line 1\n"
    reading = asyncio.ensure_future(anext(chunks))  # waits for a line that never comes
    await asyncio.wait([reading], timeout=0)  # (no time passes: it is suspended)
    assert not raw.released
    reading.cancel()  # the HTTP client left: the handler is cancelled mid-read
    await asyncio.gather(reading, return_exceptions=True)
    await chunks.aclose()  # type: ignore[attr-defined]
    assert raw.released


async def test_closing_between_chunks_releases_too() -> None:
    raw = Streaming()
    logs = PodLogs(Kube(Api(raw)), 4)  # type: ignore[arg-type]
    chunks = await logs.pod_log("ns", "p", follow=True)
    assert await anext(chunks) == b"line 1\n"  # suspended at its yield, as during a write
    await chunks.aclose()  # type: ignore[attr-defined]
    assert raw.released


async def test_the_log_reader_has_a_client_and_pool_of_its_own() -> None:
    configuration = client.Configuration(host="https://127.0.0.1:6443")
    configuration.api_key = {"BearerToken": "Bearer t0ken"}
    reconcilers = Kube(client.ApiClient(configuration))
    logs = PodLogs.beside(reconcilers, 7)
    try:
        assert logs.api is not reconcilers.api
        ours: Any = logs.api.rest_client.pool_manager
        theirs: Any = reconcilers.api.rest_client.pool_manager
        assert ours is not theirs and ours.connector is not theirs.connector
        assert ours.connector.limit == 7 and logs.connections == 7
        assert theirs.connector.limit == 100  # the reconcilers' pool is left as it was
        # the same cluster and credentials
        assert logs.api.configuration.host == "https://127.0.0.1:6443"
        assert logs.api.configuration.api_key == {"BearerToken": "Bearer t0ken"}
        assert ours._trust_env is False  # kube.direct: no proxy lookup per request
    finally:
        await logs.close()
        await reconcilers.close()
    assert ours.closed and theirs.closed
