"""The six examples of the reference document, rebuilt from Kubernetes objects.

Each scenario builds what the cluster would hold (Deployments, ReplicaSets, Pods) and
checks that aggregation reproduces the example field for field; `age` depends on the
clock and is checked for Go duration syntax, then normalised.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flow_operator.models.workflow import Workflow
from flow_operator.status.aggregate import Observed, aggregate
from tests.unit.kube_objects import deployment, pod, replicaset, workflow

GOLDEN = Path(__file__).parents[2] / "golden" / "workflow"
NOW = datetime(2024, 2, 12, 10, 14, 53, tzinfo=UTC)
GO_DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+(\.\d+)?(ns|µs|ms|s))$")
KM = "knowledge-m-f252bb2b"
OUT = "outprod-4b54ca80"
SYNC_POD = "depl-knowledge-m-f252bb2b-c1a6414e-4973-45fb-9c6b-c767e2ffvh6zw"
ASYNC_KM_POD = "depl-knowledge-m-f252bb2b-dcc4a58f-050b-4d9c-a19e-8012275bnc22f"
ASYNC_OUT_POD = "depl-outprod-4b54ca80-e150d837-532b-4448-ae11-e6c646bd4707rn6c4"
UNSCHEDULABLE = (
    "0/2 nodes are available: 1 Insufficient memory, 1 node(s) had untolerated taint "
    "{CriticalAddonsOnly: true}. preemption: 0/2 nodes are available: 1 No preemption "
    "victims found for incoming pod, 1 Preemption is not helpful for scheduling.."
)
SYNC_START = "2024-02-12T10:12:57Z"
ASYNC_START = "2024-02-12T10:35:23Z"

Scenario = tuple[dict[str, Any], Observed]


def _sync(km_pod: dict[str, Any], km_available: int) -> Scenario:
    wf = workflow(mode="SYNC", services=[(KM, 1)], stream=("benthos", 1))
    return wf, Observed(
        deployments={
            "benthos": deployment("benthos", available=1),
            KM: deployment(KM, available=km_available),
        },
        replicasets={KM: [replicaset(KM, "c767e2ff")]},
        pods={KM: [km_pod]},
    )


def sync_unschedulable() -> Scenario:
    return _sync(
        pod(SYNC_POD, KM, "c767e2ff", scheduled=("False", "Unschedulable", UNSCHEDULABLE)), 0
    )


def sync_container_creating() -> Scenario:
    creating = pod(SYNC_POD, KM, "c767e2ff", started=SYNC_START, waiting=("ContainerCreating", ""))
    return _sync(creating, 0)


def sync_green() -> Scenario:
    running = pod(
        SYNC_POD, KM, "c767e2ff", phase="Running", started=SYNC_START, running=True, ready=True
    )
    return _sync(running, 1)


def _async(ready: bool) -> Scenario:
    wf = workflow(mode="ASYNC", services=[(KM, 1), (OUT, 1)])
    pods = {}
    for cid, name, h in ((KM, ASYNC_KM_POD, "8012275b"), (OUT, ASYNC_OUT_POD, "e6c646bd")):
        if ready:
            p = pod(name, cid, h, phase="Running", started=ASYNC_START, running=True, ready=True)
        else:
            p = pod(name, cid, h, started=ASYNC_START, waiting=("ContainerCreating", ""))
        pods[cid] = [p]
    return wf, Observed(
        deployments={c: deployment(c, available=int(ready)) for c in (KM, OUT)},
        replicasets={KM: [replicaset(KM, "8012275b")], OUT: [replicaset(OUT, "e6c646bd")]},
        pods=pods,
    )


def unpublished() -> Scenario:
    previous = {"desiredStatus": "PUBLISHED", "actualStatus": "GREEN", "publishingMode": "ASYNC"}
    wf = workflow(desired="UNPUBLISHED", mode="ASYNC", status=previous, generation=2)
    return wf, Observed()


SCENARIOS: dict[str, Callable[[], Scenario]] = {
    "sync-publishing-unschedulable": sync_unschedulable,
    "sync-publishing-container-creating": sync_container_creating,
    "sync-published-green": sync_green,
    "unpublished-after-publish": unpublished,
    "async-publishing-orange": lambda: _async(ready=False),
    "async-published-green": lambda: _async(ready=True),
}


def _normalise_ages(doc: dict[str, Any]) -> dict[str, Any]:
    for svc in doc.get("details", {}).get("services", []):
        for replica in svc.get("replicasDetail", []):
            assert GO_DURATION.match(replica["age"]), replica["age"]
            replica["age"] = "<age>"
    return doc


def test_every_seed_example_has_a_scenario() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.json")) == sorted(SCENARIOS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_seed_example_reproduced(name: str) -> None:
    body, observed = SCENARIOS[name]()
    status = aggregate(Workflow.from_body(body), observed, NOW)
    expected = json.loads((GOLDEN / f"{name}.json").read_text())
    assert _normalise_ages(status.document()) == _normalise_ages(expected)


def test_golden_copies_match_the_shared_seeds() -> None:
    shared = Path(__file__).parents[4] / "shared" / "seeds" / "workflow-status-examples"
    if not shared.is_dir():
        pytest.skip("shared/ is not beside this checkout")
    for path in shared.glob("*.json"):
        assert json.loads(path.read_text()) == json.loads((GOLDEN / path.name).read_text())
