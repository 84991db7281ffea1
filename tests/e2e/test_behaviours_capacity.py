"""Capacity limits and the queue timeout (docs/flowrun.md, "Waiting in Queued"), with an
operator limited to two running runs, one per namespace."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import ClusterHandle, OperatorProcess, wait_for
from tests.e2e.test_behaviours import FINAL, FOREVER, Ns, flowrun, phases, task, tasks, ts

pytestmark = pytest.mark.e2e
OPERATOR_ARGS = [
    "--all-namespaces", "--max-running-runs", "2", "--max-running-runs-per-namespace", "1",
]  # fmt: skip


@pytest.fixture
def spaces(cluster: ClusterHandle, namespace: str, operator: OperatorProcess) -> Iterator[list[Ns]]:
    """Three namespaces: the test's own and two more, deleted afterwards."""
    extra = [f"{namespace[:50]}-{secrets.token_hex(2)}" for _ in range(2)]
    for name in extra:
        cluster.kubectl("create", "namespace", name)

    def accounts() -> bool:  # pods need each namespace's default ServiceAccount
        return all(
            cluster.kubectl("-n", name, "get", "sa", "default", check=False).returncode == 0
            for name in extra
        )

    wait_for("ServiceAccount default in the extra namespaces", accounts, 30)
    yield [Ns(cluster, name) for name in (namespace, *extra)]
    for name in extra:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def cancel(ns: Ns, run: str) -> None:
    ns.kubectl("patch", "flowrun", run, "--type=merge", "-p", '{"spec":{"cancel":true}}')
    assert ns.wait_phase(run, *FINAL, timeout=30)["phase"] == "Cancelled"


def waiting(ns: Ns, run: str, message: str) -> None:
    """`run` is Queued for capacity with `message`, and has no Job."""
    wanted = ("Queued", "WaitingForCapacity", message)

    def queued() -> bool:
        status = ns.status(run)
        return (status.get("phase"), status.get("reason"), status.get("message")) == wanted

    wait_for(f"{run} Queued: {message}", queued, 30)
    assert ns.jobs(run) == []


def test_capacity_limits_hold_runs_in_queued_and_release_them(spaces: list[Ns]) -> None:
    one, two, three = spaces
    one.apply(flowrun("first", [task("serve", FOREVER)]))
    one.wait_phase("first", "Deployed")
    # The namespace's one slot is taken: a second run there waits, with no Job.
    one.apply(flowrun("second", [task("quick")]))
    waiting(one, "second", f"waiting for capacity: 1/1 in namespace {one.ns}")
    # Another namespace still has room, until the operator-wide two are taken.
    two.apply(flowrun("other", [task("serve", FOREVER)]))
    two.wait_phase("other", "Deployed")
    three.apply(flowrun("third", [task("quick")]))
    waiting(three, "third", "waiting for capacity: 2/2 runs operator-wide")
    # A run that ends frees its slot: the operator-wide one goes to `third`...
    cancel(two, "other")
    status = three.wait_phase("third", *FINAL)
    assert status["phase"] == "Completed", status
    assert phases(status) == [("Submitted", "Submitted"), ("Queued", "WaitingForCapacity"),
                              ("Deployed", "Deployed"), ("Completed", "Completed")]  # fmt: skip
    # ...while `second` still waits for its namespace's.
    assert one.status("second")["phase"] == "Queued" and one.jobs("second") == []
    cancel(one, "first")
    status = one.wait_phase("second", *FINAL)
    assert status["phase"] == "Completed", status
    assert [p for p, _ in phases(status)] == ["Submitted", "Queued", "Deployed", "Completed"]
    assert one.jobs("second") == ["second-quick"]


def test_a_run_queued_past_its_queue_timeout_fails(spaces: list[Ns]) -> None:
    ns = spaces[0]
    ns.apply(flowrun("holder", [task("serve", FOREVER)]))
    ns.wait_phase("holder", "Deployed")
    ns.apply(flowrun("patient", [task("quick")], queueTimeoutSeconds=3))
    status = ns.wait_phase("patient", *FINAL, timeout=30)
    assert (status["phase"], status["reason"]) == ("Failed", "QueueTimeout"), status
    assert status["message"] == (
        f"queued for more than 3s: waiting for capacity: 1/1 in namespace {ns.ns}"
    )
    queued = next(h["time"] for h in status["history"] if h["phase"] == "Queued")
    assert (ts(status["endTime"]) - ts(queued)).total_seconds() >= 3
    assert tasks(status)["quick"]["status"] == "Skipped"
    assert ns.jobs("patient") == []
    cancel(ns, "holder")


def test_a_freed_slot_goes_to_the_oldest_waiting_run(spaces: list[Ns]) -> None:
    """The namespace's one slot frees: the older of two waiting runs takes it, the younger
    waits on until that one has ended too."""
    ns = spaces[0]
    ns.apply(flowrun("holder", [task("serve", FOREVER)]))
    ns.wait_phase("holder", "Deployed")
    ns.apply(flowrun("older", [task("serve", FOREVER)]))
    waiting(ns, "older", f"waiting for capacity: 1/1 in namespace {ns.ns}")
    ns.apply(flowrun("younger", [task("quick")]))
    waiting(ns, "younger", f"waiting for capacity: 1/1 in namespace {ns.ns} (1 waiting ahead)")
    cancel(ns, "holder")
    ns.wait_phase("older", "Deployed")
    status = ns.status("younger")
    assert (status["phase"], status["reason"]) == ("Queued", "WaitingForCapacity"), status
    assert ns.jobs("younger") == []
    cancel(ns, "older")
    status = ns.wait_phase("younger", *FINAL)
    assert status["phase"] == "Completed", status
