"""The live-update hub (api/stream.py): ids, the ring and resuming, scopes, the client cap,
a slow client's overflow, closing, the topic adapters, and a client that leaves being
dropped at once. No sleeps: the clock is injected and waits are bounded by events."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from flow_operator.api.server import ApiServer
from flow_operator.api.stream import (
    BadScope,
    Change,
    Scope,
    StreamHub,
    TooManyClients,
    scope_of,
)
from flow_operator.models.flowrun import FlowRunStatus, Phase, TaskPhase, TaskStatus, Transition
from flow_operator.observers import RunChanged
from tests.unit.api_support import Secrets, View, make_api

T0 = 1_700_000_000.0
FIRST = int(T0 * 1_000_000)


def frames(raw: list[bytes]) -> list[dict[str, Any]]:
    """SSE frames as {id, event, data}."""
    out = []
    for frame in raw:
        fields = dict(line.split(": ", 1) for line in frame.decode().strip().split("\n"))
        out.append(
            {"id": int(fields["id"]), "event": fields["event"], **json.loads(fields["data"])}
        )
    return out


def hub(**kw: Any) -> StreamHub:
    return StreamHub(clock=lambda: T0, **kw)


def test_ids_are_one_sequence_from_the_clock() -> None:
    h = hub()
    assert h.last_id == FIRST - 1
    ids = [h.publish("run", "a", f"r{i}", {}).id for i in range(3)]
    assert ids == [FIRST, FIRST + 1, FIRST + 2] and h.last_id == FIRST + 2
    # a restarted operator starts higher than its predecessor ended
    assert StreamHub(clock=lambda: T0 + 1).last_id > h.last_id


def test_a_fresh_client_gets_ready_with_the_newest_id() -> None:
    h = hub()
    h.publish("run", "a", "r", {})
    client = h.connect(Scope())
    [ready] = frames(client.take(h.last_id))
    assert ready == {"id": FIRST, "event": "ready"} | {"id": FIRST}


def test_resume_replays_what_was_missed_in_scope_only() -> None:
    h = hub(ring=10)
    for i in range(6):
        h.publish("run", "a" if i % 2 == 0 else "b", f"r{i}", {"n": i})
    client = h.connect(Scope(namespace="a"), str(FIRST + 1))
    got = frames(client.take(h.last_id))
    assert [(f["id"], f["name"], f["n"]) for f in got] == [
        (FIRST + 2, "r2", 2),
        (FIRST + 4, "r4", 4),
    ]
    # nothing missed: nothing replayed
    assert h.connect(Scope(), str(h.last_id)).take(h.last_id) == []


@pytest.mark.parametrize(
    ("last", "reason"),
    [
        (str(FIRST), "too old"),  # the ring holds only the last 3
        (str(FIRST + 99), "unknown id"),  # newer than the sequence: another process
        ("yesterday", "unknown id"),
    ],
)
def test_an_id_the_ring_cannot_resume_from_gets_a_reset(last: str, reason: str) -> None:
    h = hub(ring=3)
    for i in range(5):
        h.publish("run", "a", f"r{i}", {})
    [reset] = frames(h.connect(Scope(), last).take(h.last_id))
    assert reset == {"id": h.last_id, "event": "reset", "reason": reason}


def test_the_oldest_id_the_ring_still_follows_resumes() -> None:
    h = hub(ring=3)
    for i in range(5):
        h.publish("run", "a", f"r{i}", {})
    # the ring holds FIRST+2..FIRST+4: after FIRST+1 nothing is lost
    got = frames(h.connect(Scope(), str(FIRST + 1)).take(h.last_id))
    assert [f["id"] for f in got] == [FIRST + 2, FIRST + 3, FIRST + 4]


def test_scopes() -> None:
    run = Change(1, "run", "a", "r1", {})
    wf = Change(2, "workflow", "a", "w1", {})
    other = Change(3, "run", "b", "r1", {})
    assert Scope().matches(run) and Scope().matches(wf) and Scope().matches(other)
    assert [Scope(namespace="a").matches(c) for c in (run, wf, other)] == [True, True, False]
    assert [Scope("a", "r1").matches(c) for c in (run, wf, other)] == [True, False, False]
    runs_only = Scope(kinds=frozenset({"run"}))
    assert [runs_only.matches(c) for c in (run, wf, other)] == [True, False, True]
    may_see_b = Scope(may_see=lambda ns: ns == "b")
    assert [may_see_b.matches(c) for c in (run, wf, other)] == [False, False, True]


def test_publish_reaches_only_the_clients_in_scope() -> None:
    h = hub()
    a, b, everyone = h.connect(Scope("a")), h.connect(Scope("b")), h.connect(Scope())
    for c in (a, b, everyone):
        c.take(h.last_id)  # the ready frames
    h.publish("run", "a", "r", {})
    h.publish("workflow", "b", "w", {})
    assert [f["name"] for f in frames(a.take(h.last_id))] == ["r"]
    assert [f["name"] for f in frames(b.take(h.last_id))] == ["w"]
    assert [f["name"] for f in frames(everyone.take(h.last_id))] == ["r", "w"]


def test_the_client_cap() -> None:
    h = hub(max_clients=2)
    first, _ = h.connect(Scope()), h.connect(Scope())
    with pytest.raises(TooManyClients):
        h.connect(Scope())
    h.disconnect(first)
    assert h.clients == 1
    h.connect(Scope())
    assert h.clients == 2


def test_a_client_too_far_behind_gets_a_reset_not_an_endless_buffer() -> None:
    h = hub(client_buffer=3)
    client = h.connect(Scope())
    for i in range(10):
        h.publish("run", "a", f"r{i}", {})
    assert len(client.frames) == 0 and client.overflowed
    [reset] = frames(client.take(h.last_id))
    assert reset["event"] == "reset" and reset["reason"] == "behind" and reset["id"] == h.last_id
    h.publish("run", "a", "again", {})
    assert [f["name"] for f in frames(client.take(h.last_id))] == ["again"]


async def test_wait_wakes_on_publish_and_on_close() -> None:
    h = hub()
    client = h.connect(Scope("a"))
    client.take(h.last_id)
    waiting = asyncio.create_task(client.wait(3600))
    await asyncio.sleep(0)
    h.publish("run", "b", "elsewhere", {})  # out of scope: still waiting
    await asyncio.sleep(0)
    assert not waiting.done()
    h.publish("run", "a", "here", {})
    assert await waiting is True
    client.take(h.last_id)
    waiting = asyncio.create_task(client.wait(3600))
    await asyncio.sleep(0)
    h.close()
    assert await waiting is True and client.closed


async def test_wait_times_out_for_the_heartbeat() -> None:
    client = hub().connect(Scope())
    client.take(0)
    assert await client.wait(0) is False


def test_scope_of_the_query() -> None:
    assert scope_of({}) == Scope()
    assert scope_of({"namespace": "a", "run": "r", "kinds": "runs"}) == Scope(
        "a", "r", frozenset({"run"})
    )
    assert scope_of({"kinds": "workflows, runs"}).kinds == frozenset({"run", "workflow"})
    with pytest.raises(BadScope, match="needs namespace"):
        scope_of({"run": "r"})
    with pytest.raises(BadScope, match="kinds"):
        scope_of({"kinds": "pods"})


def test_a_run_change_carries_the_run_page_row() -> None:
    h = hub()
    client = h.connect(Scope())
    client.take(h.last_id)
    body = {
        "metadata": {"namespace": "a", "name": "r", "uid": "u1"},
        "spec": {
            "flowName": "f",
            "tasks": [
                {"name": "one", "image": "x"},
                {"name": "two", "image": "x", "dependsOn": ["one"]},
            ],
        },
    }
    status = FlowRunStatus(
        phase=Phase.DEPLOYED,
        start_time="2024-02-12T10:00:00Z",
        tasks=[
            TaskStatus(name="one", status=TaskPhase.SUCCEEDED, attempts=2),
            TaskStatus(name="two", status=TaskPhase.RUNNING, attempts=1),
        ],
        history=[Transition(phase=Phase.DEPLOYED, time="2024-02-12T10:00:00Z", reason="Go")],
    )
    h.on_run(RunChanged(("a", "r"), "u1", body, Phase.SUBMITTED, status))
    [change] = frames(client.take(h.last_id))
    run = change["run"]
    assert (change["event"], change["namespace"], change["name"]) == ("run", "a", "r")
    assert run["status"] == "Deployed" and run["history"][0]["reason"] == "Go"
    assert [(t["name"], t["status"], t.get("dependsOn"), t["attempts"]) for t in run["tasks"]] == [
        ("one", "Succeeded", None, 2),
        ("two", "Running", ["one"], 1),
    ]
    # a reconcile that decides the same again sends nothing: no redraw under the reader
    h.on_run(RunChanged(("a", "r"), "u1", body, Phase.DEPLOYED, status))
    assert client.take(h.last_id) == []
    done = status.model_copy(update={"phase": Phase.COMPLETED})
    h.on_run(RunChanged(("a", "r"), "u1", body, Phase.DEPLOYED, done))
    [change] = frames(client.take(h.last_id))
    assert change["run"]["status"] == "Completed"


TOKEN = "stream-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Served:
    """The operator's own listener (ApiServer: its runner options, not TestServer's) on a
    free port, with a client session."""

    def __init__(self, h: StreamHub) -> None:
        secrets = Secrets()
        secrets.put("flow-system", "flow-operator-api", token=TOKEN)
        api = make_api(View(), secrets)
        api.stream = h
        self.server = ApiServer(api, "127.0.0.1", 0)
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Served:
        await self.server.start()
        self.session = aiohttp.ClientSession(f"http://127.0.0.1:{self.server.port}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None
        await self.server.stop()

    def get(self, path: str, **kw: Any) -> Any:
        assert self.session is not None
        return self.session.get(path, **kw)


async def until(check: Any, turns: int = 10_000) -> None:
    """Let the loop run (no timer) until `check()` holds."""
    for _ in range(turns):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


async def test_the_route_needs_the_token_and_answers_bad_scopes_and_the_cap() -> None:
    h = hub(max_clients=1)
    async with Served(h) as client:
        assert (await client.get("/api/v1/stream")).status == 401
        bad = await client.get("/api/v1/stream?run=r", headers=AUTH)
        assert bad.status == 400 and "namespace" in (await bad.json())["message"]
        first = await client.get("/api/v1/stream", headers=AUTH)
        assert first.status == 200
        assert first.headers["Content-Type"].startswith("text/event-stream")
        over = await client.get("/api/v1/stream", headers=AUTH)
        assert over.status == 429 and over.headers["Retry-After"]
        first.close()


async def test_a_client_that_leaves_is_dropped_at_once() -> None:
    h = hub()
    async with Served(h) as client:
        resp = await client.get("/api/v1/stream?namespace=a", headers=AUTH)
        assert await resp.content.readuntil(b"\n\n") == b"retry: 2000\n\n"
        assert b"event: ready" in await resp.content.readuntil(b"\n\n")
        assert h.clients == 1
        resp.close()  # the tab closes: no heartbeat, no publish needed to notice
        await until(lambda: h.clients == 0)


async def test_stopping_the_server_ends_the_streams() -> None:
    h = hub()
    served = Served(h)
    async with served as client:
        resp = await client.get("/api/v1/stream", headers=AUTH)
        await resp.content.readuntil(b"\n\n")
        assert h.clients == 1
        assert client.session is not None
        await client.server.stop()  # on_shutdown closes the hub: no shutdown timeout
        assert h.clients == 0
