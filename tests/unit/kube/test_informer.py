"""The children's informer (flow_operator.kube.informer) against a scripted API server: pages
of a list, then watch streams that end, fail, expire or bookmark. In virtual time
(tests/unit/virtual_time.py): the informer's real backoffs cost no real time."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Sequence
from typing import Any

import pytest

from flow_operator.errors import Forbidden, Unavailable
from flow_operator.kube.informer import Informer, Merged
from tests.unit.virtual_time import virtual_time

LABEL = "flowops.io/workflow"


def pod(name: str, owner: str | None, version: str, ns: str = "ns", phase: str = "") -> Any:
    labels = {LABEL: owner} if owner else {}
    return {
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "labels": labels,
                     "resourceVersion": version},
        "status": {"phase": phase},
    }  # fmt: skip


def event(kind: str, obj: Any) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


class Response:
    """aiohttp's response as kubernetes_asyncio returns it with _preload_content=False."""

    def __init__(self, status: int = 200, body: Any = None, lines: Sequence[bytes] = ()) -> None:
        self.status, self.reason = status, "OK" if status == 200 else "Error"
        self._body, self.released = json.dumps(body or {}).encode(), False
        self.headers: dict[str, str] = {}
        self.content = self._lines(list(lines))

    @staticmethod
    async def _lines(lines: list[bytes]) -> Any:
        for line in lines:
            yield line

    async def read(self) -> bytes:
        return self._body

    def release(self) -> None:
        self.released = True


class Server:
    """Answers list calls with `pages` (the list of the moment) and watch calls with the
    next entry of `watches`: a list of lines (the stream, then the server ends it), an
    exception to raise, an int (an HTTP error status), or a function that changes the
    server's state first. When none are left, a watch waits for ever."""

    def __init__(self, pages: list[list[Any]], version: str = "10") -> None:
        self.pages, self.version = pages, version
        self.watches: list[Any] = []
        self.calls: list[dict[str, Any]] = []
        self.times: list[float] = []  # the (virtual) loop time of each call

    async def __call__(self, **kwargs: Any) -> Response:
        self.calls.append(kwargs)
        self.times.append(asyncio.get_running_loop().time())
        assert kwargs["_preload_content"] is False
        assert kwargs["label_selector"] == "sel"
        if not kwargs.get("watch"):
            i = int(kwargs.get("_continue") or 0)
            last = i + 1 == len(self.pages)
            meta = {"resourceVersion": self.version, **({} if last else {"continue": str(i + 1)})}
            return Response(body={"items": self.pages[i], "metadata": meta})
        if not self.watches:
            await asyncio.Event().wait()
        step = self.watches.pop(0)
        while callable(step):  # a change of the cluster's state, before this watch answers
            step()
            step = self.watches.pop(0)
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, int):
            return Response(status=step, body={"kind": "Status", "code": step})
        return Response(lines=step)

    def watch_versions(self) -> list[str]:
        return [c["resource_version"] for c in self.calls if c.get("watch")]

    def lists(self) -> int:
        return sum(1 for c in self.calls if not c.get("watch") and not c.get("_continue"))


def key_of(obj: Any) -> tuple[str, str] | None:
    owner = obj["metadata"]["labels"].get(LABEL)
    return (obj["metadata"]["namespace"], owner) if owner else None


def make(server: Server) -> tuple[Informer, list[tuple[str, str]]]:
    changed: list[tuple[str, str]] = []
    project = lambda o: {"name": o["metadata"]["name"], "phase": o["status"]["phase"]}  # noqa: E731
    return Informer("pods", server, "sel", key_of, project, changed.append), changed


async def settle(informer: Informer, server: Server, calls: int) -> None:
    """Let the informer run until the server has answered `calls` requests (at most a
    minute of virtual time: its backoffs are the real ones, 0.5 s doubling)."""
    for _ in range(1200):
        if len(server.calls) >= calls and not server.watches:
            await asyncio.sleep(0.01)
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"only {len(server.calls)} calls: {server.calls}")


async def run(informer: Informer) -> asyncio.Task[None]:
    task = asyncio.create_task(informer.run())
    await asyncio.wait_for(informer.synced.wait(), 1)
    return task


@virtual_time
async def test_paginated_list_groups_by_owner_and_skips_unlabelled() -> None:
    server = Server([[pod("a", "wf1", "1"), pod("b", "wf1", "2")],
                     [pod("c", "wf2", "3"), pod("stray", None, "4")]])  # fmt: skip
    inf, changed = make(server)
    task = await run(inf)
    assert dict(inf) == {
        ("ns", "wf1"): ({"name": "a", "phase": ""}, {"name": "b", "phase": ""}),
        ("ns", "wf2"): ({"name": "c", "phase": ""},),
    }
    assert inf.version == "10" and changed == []  # the first list wakes nobody
    assert inf.get(("ns", "nope"), ()) == ()
    task.cancel()


@virtual_time
async def test_watch_resumes_from_the_list_and_applies_events() -> None:
    server = Server([[pod("a", "wf1", "1")]])
    server.watches = [[
        event("ADDED", pod("b", "wf2", "11")),
        event("MODIFIED", pod("a", "wf1", "12", phase="Running")),
        event("BOOKMARK", {"metadata": {"resourceVersion": "13"}}),
        event("MODIFIED", pod("b", "wf3", "14")),  # relabelled: moves to another owner
        event("DELETED", pod("a", "wf1", "15")),
        event("ADDED", pod("stray", None, "16")),
    ]]  # fmt: skip
    inf, changed = make(server)
    task = await run(inf)
    await settle(inf, server, 3)
    assert server.watch_versions()[:2] == ["10", "16"]  # from the list, then from the last
    wf1, wf2, wf3 = ("ns", "wf1"), ("ns", "wf2"), ("ns", "wf3")
    assert changed == [wf2, wf1, wf2, wf3, wf1]  # the move tells both owners
    assert dict(inf) == {("ns", "wf3"): ({"name": "b", "phase": ""},)}
    assert inf.events == 5 and server.lists() == 1
    task.cancel()


@virtual_time
async def test_a_failed_watch_resumes_without_relisting() -> None:
    server = Server([[pod("a", "wf1", "1")]])
    server.watches = [
        [event("MODIFIED", pod("a", "wf1", "20", phase="Running"))],
        ConnectionResetError("reset by peer"),
        500,
        [event("MODIFIED", pod("a", "wf1", "21", phase="Succeeded"))],
    ]
    inf, changed = make(server)
    task = await run(inf)
    await settle(inf, server, 6)
    assert server.lists() == 1
    assert server.watch_versions()[:5] == ["10", "20", "20", "20", "21"]
    assert inf[("ns", "wf1")] == ({"name": "a", "phase": "Succeeded"},)
    assert changed == [("ns", "wf1"), ("ns", "wf1")]
    # a stream that ended is watched again at once; a failure after 0.5 s, then 1 s
    watched = [t for t, c in zip(server.times, server.calls, strict=True) if c.get("watch")]
    gaps = [b - a for a, b in itertools.pairwise(watched[:4])]
    assert gaps == pytest.approx([0.0, 0.5, 1.0]), gaps
    task.cancel()


@pytest.mark.parametrize("expiry", ["in the stream", "as the answer"])
@virtual_time
async def test_an_expired_version_relists_and_tells_only_what_changed(expiry: str) -> None:
    server = Server([[pod("a", "wf1", "1"), pod("b", "wf2", "2"), pod("c", "wf3", "3")]])
    gone = {"kind": "Status", "code": 410, "reason": "Expired"}

    def meanwhile() -> None:  # a's phase changed, b was deleted, d appeared; c is as it was
        server.pages = [[pod("a", "wf1", "30", phase="Running"), pod("c", "wf3", "3"),
                         pod("d", "wf4", "31")]]  # fmt: skip
        server.version = "31"

    server.watches = [meanwhile, [event("ERROR", gone)] if expiry == "in the stream" else 410]
    inf, changed = make(server)
    task = await run(inf)
    await settle(inf, server, 4)
    assert server.lists() == 2 and server.watch_versions()[-1] == "31"
    assert sorted(changed) == [("ns", "wf1"), ("ns", "wf2"), ("ns", "wf4")]
    assert sorted(inf) == [("ns", "wf1"), ("ns", "wf3"), ("ns", "wf4")]
    task.cancel()


@virtual_time
async def test_another_watch_error_is_raised_and_retried() -> None:
    server = Server([[]])
    server.watches = [[event("ERROR", {"kind": "Status", "code": 500, "message": "boom"})]]
    inf, _ = make(server)
    task = await run(inf)
    await settle(inf, server, 3)
    assert server.lists() == 1 and server.watch_versions() == ["10", "10"]
    task.cancel()
    with pytest.raises(Forbidden, match="forbidden"):
        inf.apply({"type": "ERROR", "object": {"code": 403, "message": "forbidden"}})
    with pytest.raises(Unavailable, match="boom"):
        inf.apply({"type": "ERROR", "object": {"code": 500, "message": "boom"}})


@virtual_time
async def test_merged_reads_the_informers_of_several_namespaces_as_one() -> None:
    one, two = Server([[pod("a", "wf", "1", ns="n1")]]), Server([[pod("b", "wf", "1", ns="n2")]])
    (i1, _), (i2, _) = make(one), make(two)
    tasks = [await run(i1), await run(i2)]
    merged = Merged([i1, i2])
    assert sorted(merged) == [("n1", "wf"), ("n2", "wf")] and len(merged) == 2
    assert merged[("n2", "wf")] == ({"name": "b", "phase": ""},)
    assert ("n1", "wf") in merged and ("n3", "wf") not in merged
    assert merged.get(("n3", "wf"), ()) == ()
    for t in tasks:
        t.cancel()


@virtual_time
async def test_a_field_selector_goes_to_the_list_and_the_watch_and_uids_find_their_key() -> None:
    server = Server([[pod("a", "wf1", "1")]])
    server.watches = [[event("ADDED", pod("b", "wf2", "11"))]]
    changed: list[tuple[str, str]] = []
    project = lambda o: {"name": o["metadata"]["name"]}  # noqa: E731
    inf = Informer("events", server, "sel", key_of, project, changed.append,
                   field_selector="type=Warning,reason=FailedCreate")  # fmt: skip
    task = await run(inf)
    await settle(inf, server, 2)
    assert [c.get("field_selector") for c in server.calls[:2]] == [
        "type=Warning,reason=FailedCreate"
    ] * 2
    assert inf.key_of_uid("uid-a") == ("ns", "wf1") and inf.key_of_uid("uid-b") == ("ns", "wf2")
    assert inf.key_of_uid("uid-nope") is None
    assert Merged([inf]).key_of_uid("uid-b") == ("ns", "wf2")
    task.cancel()


@virtual_time
async def test_a_change_of_nothing_significant_updates_the_store_and_wakes_nobody() -> None:
    server = Server([[pod("a", "wf1", "1", phase="Pending")]])
    server.watches = [[
        event("MODIFIED", pod("a", "wf1", "11", phase="Pending")),  # alike: nobody woken
        event("MODIFIED", pod("a", "wf1", "12", phase="Running")),
        event("DELETED", pod("a", "wf1", "13", phase="Running")),
    ]]  # fmt: skip
    changed: list[tuple[str, str]] = []
    project = lambda o: {"name": o["metadata"]["name"], "v": o["metadata"]["resourceVersion"],  # noqa: E731
                         "phase": o["status"]["phase"]}  # fmt: skip
    inf = Informer("pods", server, "sel", key_of, project, changed.append)
    inf.significant = lambda body: body["phase"]
    task = await run(inf)
    await settle(inf, server, 2)
    assert changed == [("ns", "wf1"), ("ns", "wf1")]  # Running, then the delete
    assert inf.quiet == 1 and inf.events == 3 and dict(inf) == {}
    task.cancel()
