"""Every color rule, rollout reason and pod state the status document can show."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flow_operator.models.workflow import Color, PublishingMode, RolloutStatus, Workflow
from flow_operator.objects.podstate import pod_status
from flow_operator.status import rollout as r
from flow_operator.status.aggregate import (
    Observed,
    aggregate,
    component_color,
    significant,
    workflow_color,
)
from tests.unit.kube_objects import deployment, pod, workflow

NOW = datetime(2024, 2, 12, 10, 20, tzinfo=UTC)
SYNC, ASYNC = PublishingMode.SYNC, PublishingMode.ASYNC


@pytest.mark.parametrize(
    ("desired", "actual", "color"),
    [(3, 3, Color.GREEN), (3, 4, Color.GREEN), (0, 0, Color.GREEN), (3, 1, Color.YELLOW),
     (3, 0, Color.RED), (1, 0, Color.RED)],
)  # fmt: skip
def test_component_color(desired: int, actual: int, color: Color) -> None:
    assert component_color(desired, actual) is color


@pytest.mark.parametrize(
    ("mode", "counts", "error", "color"),
    [
        (SYNC, [(1, 1), (2, 2)], False, Color.GREEN),
        (SYNC, [(1, 1), (2, 1)], False, Color.YELLOW),
        (SYNC, [(1, 1), (2, 0)], False, Color.ORANGE),
        (SYNC, [(1, 0), (2, 0)], False, Color.RED),
        (ASYNC, [(1, 0), (2, 0)], False, Color.ORANGE),
        (ASYNC, [(1, 1), (2, 0)], False, Color.ORANGE),
        (ASYNC, [(1, 1), (2, 2)], True, Color.RED),
        (SYNC, [(1, 1), (0, 0)], False, Color.GREEN),
        (SYNC, [(2, 1), (0, 0)], False, Color.YELLOW),
    ],
)
def test_workflow_color(
    mode: PublishingMode, counts: list[tuple[int, int]], error: bool, color: Color
) -> None:
    assert workflow_color(mode, counts, error) is color


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"generation": 2, "observed": 1}, (RolloutStatus.IN_PROGRESS, r.OBSERVING_SPEC)),
        ({"deadline_exceeded": True}, (RolloutStatus.FAILED, r.DEADLINE_EXCEEDED)),
        ({"replicas": 3, "updated": 1}, (RolloutStatus.IN_PROGRESS, r.ROLLING_OUT)),
        ({"replicas": 2, "total": 3, "available": 2}, (RolloutStatus.IN_PROGRESS, r.TERMINATING_OLD)),
        ({"replicas": 2, "available": 1}, (RolloutStatus.IN_PROGRESS, r.ROLLING_OUT)),
        ({"replicas": 2, "available": 2}, (RolloutStatus.COMPLETE, None)),
    ],
)  # fmt: skip
def test_rollout(kwargs: dict[str, int], expected: tuple[RolloutStatus, str | None]) -> None:
    assert r.rollout(deployment("x", **kwargs)) == expected  # type: ignore[arg-type]


def test_rollout_without_deployment() -> None:
    assert r.rollout(None) == (RolloutStatus.IN_PROGRESS, r.CREATING_DEPLOYMENT)


CASES = {
    "unschedulable": (
        pod("p", "c", "h", scheduled=("False", "Unschedulable", "0/3 nodes: Insufficient cpu")),
        ("Unschedulable", "0/3 nodes: Insufficient cpu"),
    ),
    "pending": (pod("p", "c", "h"), ("Pending", None)),
    "container-creating": (pod("p", "c", "h", waiting=("ContainerCreating", "")), ("ContainerCreating", None)),
    "running": (pod("p", "c", "h", phase="Running", running=True, ready=True), ("Running", None)),
    "crashloop": (
        pod("p", "c", "h", phase="Running", waiting=("CrashLoopBackOff", "back-off 10s"), restarts=3),
        ("CrashLoopBackOff", "back-off 10s"),
    ),
    "image-pull": (pod("p", "c", "h", waiting=("ImagePullBackOff", "pull failed")), ("ImagePullBackOff", "pull failed")),
    "oomkilled": (pod("p", "c", "h", phase="Running", terminated=("OOMKilled", 137)), ("OOMKilled", None)),
    "error": (pod("p", "c", "h", phase="Failed", terminated=("Error", 1)), ("Error", None)),
    "exit-code": (pod("p", "c", "h", phase="Failed", terminated=("", 2)), ("ExitCode:2", None)),
    "completed": (pod("p", "c", "h", phase="Succeeded", terminated=("Completed", 0)), ("Completed", None)),
    "terminating": (pod("p", "c", "h", phase="Running", running=True, ready=True, deleting=True), ("Terminating", None)),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_pod_status(case: str) -> None:
    body, expected = CASES[case]
    assert pod_status(body) == expected


def test_init_container_states() -> None:
    body = pod("p", "c", "h")
    body["spec"]["initContainers"] = [{"name": "a"}, {"name": "b"}]
    body["status"]["initContainerStatuses"] = [
        {"name": "a", "state": {"terminated": {"exitCode": 0}}},
        {"name": "b", "state": {"running": {}}},
    ]
    assert pod_status(body) == ("Init:1/2", None)
    body["status"]["initContainerStatuses"][1]["state"] = {"terminated": {"exitCode": 3}}
    assert pod_status(body) == ("Init:ExitCode:3", None)


def _wf(**kw: object) -> Workflow:
    return Workflow.from_body(workflow(**kw))  # type: ignore[arg-type]


def test_failed_rollout_is_red_and_stalled() -> None:
    wf = _wf(services=[("a", 1), ("b", 1)])
    observed = Observed(
        deployments={
            "a": deployment("a", available=1),
            "b": deployment("b", deadline_exceeded=True),
        }
    )
    status = aggregate(wf, observed, NOW)
    assert status.actualStatus is Color.RED
    conds = {c.type: c for c in status.conditions or []}
    assert conds["Stalled"].status == "True" and "b" in conds["Stalled"].message
    assert conds["Ready"].status == "False" and conds["Reconciling"].status == "False"


def test_apply_error_is_red() -> None:
    status = aggregate(_wf(), Observed(errors={"svc": "forbidden: exceeded quota"}), NOW)
    assert status.actualStatus is Color.RED
    assert {c.type: c.reason for c in status.conditions or []}["Stalled"] == "ReconcileError"


def test_green_is_ready_with_observed_generation() -> None:
    wf = _wf(services=[("a", 2)], generation=7)
    status = aggregate(
        wf, Observed(deployments={"a": deployment("a", replicas=2, available=2)}), NOW
    )
    assert status.actualStatus is Color.GREEN and status.observedGeneration == 7
    assert status.servicesReady == "1/1"
    ready = next(c for c in status.conditions or [] if c.type == "Ready")
    assert ready.status == "True" and ready.observed_generation == 7


def test_unpublishing_with_deployments_left_is_orange() -> None:
    wf = _wf(desired="UNPUBLISHED")
    status = aggregate(wf, Observed(deployments={"svc": deployment("svc")}), NOW)
    assert status.actualStatus is Color.ORANGE and status.document()["details"] == {}


def test_transition_time_kept_while_status_holds() -> None:
    wf = _wf(services=[("a", 1)])
    observed = Observed(deployments={"a": deployment("a", available=1)})
    first = aggregate(wf, observed, NOW)
    wf.status = first
    later = aggregate(wf, observed, NOW.replace(minute=59))
    assert later.conditions == first.conditions
    assert significant(later.dump()) == significant(first.dump())
    assert later.firstPublishedAt == first.firstPublishedAt


def test_significant_ignores_age_only() -> None:
    wf = _wf(services=[("a", 1)])
    observed = Observed(deployments={"a": deployment("a")}, pods={"a": [pod("a-1", "a", "h")]})
    first = aggregate(wf, observed, NOW)
    wf.status = first
    one, two = first.dump(), aggregate(wf, observed, NOW.replace(minute=30)).dump()
    assert one != two and significant(one) == significant(two)
    observed.pods["a"][0]["status"]["phase"] = "Running"  # type: ignore[index]
    assert significant(aggregate(wf, observed, NOW).dump()) != significant(one)


def test_color_since_kept_while_the_color_holds_and_moved_when_it_changes() -> None:
    wf = _wf(services=[("a", 2)])
    green = Observed(deployments={"a": deployment("a", replicas=2, available=2)})
    first = aggregate(wf, green, NOW)
    assert first.actualStatus is Color.GREEN and first.colorSince == "2024-02-12T10:20:00.000000Z"
    wf.status = first
    assert aggregate(wf, green, NOW.replace(minute=40)).colorSince == first.colorSince
    yellow = Observed(deployments={"a": deployment("a", replicas=2, available=1)})
    moved = aggregate(wf, yellow, NOW.replace(minute=41))
    assert moved.actualStatus is Color.YELLOW and moved.colorSince == "2024-02-12T10:41:00.000000Z"
    # a status written before colorSince existed: the color is dated when first seen
    wf.status = first.model_copy(update={"colorSince": None})
    assert aggregate(wf, green, NOW.replace(minute=42)).colorSince == "2024-02-12T10:42:00.000000Z"


def test_significant_sees_whether_the_color_is_dated_not_when() -> None:
    wf = _wf(services=[("a", 1)])
    status = aggregate(wf, Observed(deployments={"a": deployment("a", available=1)}), NOW)
    dated = status.dump()
    moved = {**dated, "colorSince": "2024-02-12T11:00:00Z"}
    undated = {k: v for k, v in dated.items() if k != "colorSince"}
    assert significant(moved) == significant(dated) != significant(undated)
