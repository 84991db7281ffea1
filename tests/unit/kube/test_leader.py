"""Leader election on a fake Lease API: one leader; a leader whose renewals fail stops
acting before any standby may take over (never two valid leaders, sampled every few ms);
a standby takes over after the Lease duration, or at once when it was released.
In virtual time (tests/unit/virtual_time.py): the elector times itself by the event
loop's clock, so every window is exact and costs no real time."""

from __future__ import annotations

import asyncio
import copy
import os
import signal
from types import SimpleNamespace
from typing import Any

import pytest

from flow_operator.errors import Conflict, NotFound
from flow_operator.kube.leader import LeaderElector, Leases
from tests.unit.virtual_time import virtual_time

TIMES = {"duration": 0.6, "renew_deadline": 0.4, "retry": 0.05}


class FakeLeases:
    """One Lease with optimistic concurrency; `down` makes every call hang (an API that
    stopped answering) for the electors listed in it."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.down: set[str] = set()

    async def _maybe_hang(self, who: str) -> None:
        if who in self.down:
            await asyncio.sleep(3600)

    def _view(self) -> Any:
        assert self.lease is not None
        spec = self.lease["spec"]
        return SimpleNamespace(
            metadata=SimpleNamespace(resource_version=str(self.version)),
            spec=SimpleNamespace(
                holder_identity=spec["holderIdentity"],
                renew_time=spec["renewTime"],
                acquire_time=spec["acquireTime"],
                lease_duration_seconds=spec["leaseDurationSeconds"],
                lease_transitions=spec["leaseTransitions"],
            ),
        )

    def client(self, who: str) -> Leases:
        fake = self

        class Api:
            async def read_namespaced_lease(self, name: str, namespace: str) -> Any:
                await fake._maybe_hang(who)
                if fake.lease is None:
                    raise NotFound("leases.coordination.k8s.io not found", status=404)
                return fake._view()

            async def create_namespaced_lease(self, namespace: str, body: Any) -> None:
                await fake._maybe_hang(who)
                if fake.lease is not None:
                    raise Conflict("already exists", status=409)
                fake.lease, fake.version = copy.deepcopy(body), fake.version + 1

            async def replace_namespaced_lease(self, name: str, namespace: str, body: Any) -> None:
                await fake._maybe_hang(who)
                if body["metadata"].get("resourceVersion") != str(fake.version):
                    raise Conflict("the object has been modified", status=409)
                fake.lease, fake.version = copy.deepcopy(body), fake.version + 1

        return Api()


@pytest.fixture
def kills(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sent: list[int] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append(sig))  # the elector's SIGTERM
    return sent


def elector(leases: FakeLeases, who: str) -> LeaderElector:
    return LeaderElector(None, "ns", "flow-operator", who, **TIMES, leases=leases.client(who))


class Replica:
    def __init__(self, leases: FakeLeases, who: str) -> None:
        self.elector = elector(leases, who)
        self.started = self.stopped = 0
        self.started_at = self.stopped_at = float("nan")  # loop times

        async def start() -> None:
            self.started += 1
            self.started_at = asyncio.get_running_loop().time()

        async def stop() -> None:
            self.stopped += 1
            self.stopped_at = asyncio.get_running_loop().time()

        self.task = asyncio.create_task(self.elector.run(start, stop))


async def _sample(replicas: list[Replica], seconds: float) -> list[int]:
    """How many replicas may act, every 5 ms for `seconds`."""
    out = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        out.append(sum(r.elector.valid() for r in replicas))
        await asyncio.sleep(0.005)
    return out


async def _stop(replicas: list[Replica]) -> None:
    for r in replicas:
        r.task.cancel()
    await asyncio.gather(*(r.task for r in replicas), return_exceptions=True)


@virtual_time
async def test_exactly_one_leads(kills: list[int], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    leases = FakeLeases()
    a, b = Replica(leases, "a"), Replica(leases, "b")
    counts = await _sample([a, b], 1.0)
    await _stop([a, b])
    assert max(counts) == 1 and counts[-1] == 1
    assert (a.started, b.started) in ((1, 0), (0, 1))
    assert "standing by" in caplog.text and not kills


@virtual_time
async def test_a_leader_cut_off_stops_acting_before_anyone_takes_over(kills: list[int]) -> None:
    leases = FakeLeases()
    a = Replica(leases, "a")
    await _sample([a], 0.2)
    assert a.elector.valid()
    b = Replica(leases, "b")
    await _sample([a, b], 0.2)
    leases.down.add("a")  # a's calls hang from now on; b's go through
    renewed = a.elector._renewed  # the start of a's last renewal that went through
    counts = await _sample([a, b], 1.5)
    await _stop([a, b])
    assert max(counts) == 1, "two replicas could act at once"
    assert a.stopped == 1 and kills == [signal.SIGTERM]  # it stopped itself
    assert b.started == 1 and leases.lease is not None
    assert leases.lease["spec"]["holderIdentity"] == "b"
    # a stops when its renew deadline has passed since that renewal (its hung attempt timed
    # out then); b takes over only after a Lease duration without a renewal, at a next try
    assert a.stopped_at - renewed == pytest.approx(TIMES["renew_deadline"])
    assert TIMES["duration"] < b.started_at - renewed <= TIMES["duration"] + 2 * TIMES["retry"]


@virtual_time
async def test_a_released_lease_is_taken_at_the_next_try(kills: list[int]) -> None:
    leases = FakeLeases()
    a = Replica(leases, "a")
    await _sample([a], 0.2)
    b = Replica(leases, "b")
    await _sample([a, b], 0.2)
    a.task.cancel()
    await asyncio.gather(a.task, return_exceptions=True)
    await a.elector.release()
    loop = asyncio.get_running_loop()
    released = loop.time()
    for _ in range(200):
        if b.elector.valid():
            break
        await asyncio.sleep(0.005)
    took = loop.time() - released
    await _stop([b])
    assert took <= TIMES["retry"], took  # at b's next try, not after a Lease duration
    assert not a.elector.valid() and a.task.done()


@virtual_time
async def test_a_leader_that_sees_another_holder_steps_down(kills: list[int]) -> None:
    leases = FakeLeases()
    a = Replica(leases, "a")
    await _sample([a], 0.2)
    assert leases.lease is not None
    leases.lease["spec"]["holderIdentity"] = "usurper"  # e.g. after a long pause of ours
    leases.version += 1
    await _sample([a], 0.2)
    await _stop([a])
    assert not a.elector.valid() and a.stopped == 1 and kills == [signal.SIGTERM]


def test_timings_must_nest() -> None:
    with pytest.raises(ValueError):
        LeaderElector(None, "ns", "n", "me", duration=10, renew_deadline=10, retry=2)
