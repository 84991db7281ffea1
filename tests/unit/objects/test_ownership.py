"""A task's pod is the one its Job made: labels for the run and the task, and the Job as
its controller, by name and uid (objects/ownership.py)."""

from __future__ import annotations

from typing import Any

from flow_operator.objects.ownership import Whose, task_pod

JOB = {"metadata": {"name": "r-extract", "uid": "job-uid"}}


def pod(name: str = "r-extract-x1", run: str = "r", task: str = "extract",
        owner: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    owner = owner if owner is not None else {"kind": "Job", "name": "r-extract",
                                             "uid": "job-uid", "controller": True}  # fmt: skip
    return {"metadata": {"name": name, "labels": {"flowops.io/flowrun": run,
                                                  "flowops.io/task": task},
                         "ownerReferences": [owner] if owner else []}}  # fmt: skip


def whose(p: dict[str, Any], jobs: list[dict[str, Any]] | None = None, **kw: Any) -> Whose:
    args: dict[str, Any] = {"run": "r", "task": "extract", "job": "r-extract",
                            "pod": "r-extract-x1", **kw}  # fmt: skip
    return task_pod([p], [JOB] if jobs is None else jobs, **args)


def test_the_tasks_own_pod() -> None:
    assert whose(pod()) is Whose.TASKS


def test_a_pod_the_watch_does_not_see_is_gone() -> None:
    assert whose(pod(name="other")) is Whose.GONE


def test_labels_or_owner_that_are_not_the_tasks_are_foreign() -> None:
    assert whose(pod(task="load")) is Whose.FOREIGN
    assert whose(pod(run="someone-else")) is Whose.FOREIGN
    assert whose(pod(owner={})) is Whose.FOREIGN  # no controller
    forged = {"kind": "Job", "name": "r-extract", "uid": "guessed", "controller": True}
    assert whose(pod(owner=forged)) is Whose.FOREIGN  # the name, not the Job's uid
    assert whose(pod(), jobs=[]) is Whose.FOREIGN  # no such Job in the watch
    assert whose(pod(), job=None) is Whose.FOREIGN
    rs = {"kind": "ReplicaSet", "name": "r-extract", "uid": "job-uid", "controller": True}
    assert whose(pod(owner=rs)) is Whose.FOREIGN
