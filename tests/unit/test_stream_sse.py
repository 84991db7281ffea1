"""The stream under load, in process: 50 SSE clients of the real app (the operator's
ApiServer on a free port) with scopes of every kind, 1,000 changes over five namespaces.
Every client sees every change in its scope, in order, and none outside it."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import aiohttp

from flow_operator.api.stream import Change, Scope, StreamHub, scope_of
from tests.unit.test_stream import AUTH, Served

NAMESPACES = [f"ns{i}" for i in range(5)]
CLIENTS = 50
CHANGES = 1000


def queries() -> list[dict[str, str]]:
    """50 scopes: everything, a namespace, a kind, one run in a namespace."""
    out: list[dict[str, str]] = []
    for i in range(CLIENTS):
        ns = NAMESPACES[i % len(NAMESPACES)]
        out.append(
            [
                {},
                {"namespace": ns},
                {"namespace": ns, "kinds": "runs"},
                {"kinds": "workflows"},
                {"namespace": ns, "run": f"run-{i % 7}"},
            ][i % 5]
        )
    return out


async def read_events(
    resp: aiohttp.ClientResponse, wanted: int, ready: asyncio.Event
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while len(events) < wanted:
        frame = (await resp.content.readuntil(b"\n\n")).decode()
        fields = dict(
            line.split(": ", 1) for line in frame.strip().split("\n") if not line.startswith(":")
        )
        if fields.get("event") == "ready":
            ready.set()
        elif "event" in fields:
            events.append({"id": int(fields["id"]), **json.loads(fields["data"])})
    return events


async def test_fifty_clients_a_thousand_changes() -> None:
    hub = StreamHub(clock=lambda: 1_700_000_000.0)
    rng = random.Random(20)
    changes = [
        (
            rng.choice(["run", "run", "workflow"]),
            rng.choice(NAMESPACES),
            f"run-{rng.randrange(7)}",
        )
        for _ in range(CHANGES)
    ]
    scopes: list[Scope] = [scope_of(q) for q in queries()]
    first = hub.last_id + 1
    planned = [Change(first + i, k, ns, name, {}) for i, (k, ns, name) in enumerate(changes)]
    expected = [[c.id for c in planned if s.matches(c)] for s in scopes]
    assert all(expected) and sum(map(len, expected)) < CLIENTS * CHANGES  # scopes do narrow

    async with Served(hub) as served:
        responses = [await served.get("/api/v1/stream", params=q, headers=AUTH) for q in queries()]
        assert {r.status for r in responses} == {200}
        readies = [asyncio.Event() for _ in responses]
        readers = [
            asyncio.create_task(read_events(r, len(e), ok))
            for r, e, ok in zip(responses, expected, readies, strict=True)
        ]
        await asyncio.wait_for(asyncio.gather(*(ok.wait() for ok in readies)), 30)
        assert hub.clients == CLIENTS
        for i, (kind, ns, name) in enumerate(changes):
            hub.publish(kind, ns, name, {"n": i})
            if i % 50 == 0:
                await asyncio.sleep(0)  # interleave with the writers, as the operator does
        got = await asyncio.wait_for(asyncio.gather(*readers), 60)
        for scope, events, want in zip(scopes, got, expected, strict=True):
            assert [e["id"] for e in events] == want, scope
            for e in events:
                assert scope.matches(Change(e["id"], e["kind"], e["namespace"], e["name"], {}))
                kind, ns, name = changes[e["n"]]
                assert (e["kind"], e["namespace"], e["name"]) == (kind, ns, name)
        for r in responses:
            r.close()
