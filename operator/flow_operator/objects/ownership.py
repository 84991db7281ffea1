"""Whose pod is it: the log endpoint streams a pod's log only when the pod is the one the
run's task made, not merely a pod its status names (issue 18: the status, or a pod labelled
like the operator's, could point anywhere in the namespace).

A task's pod belongs to it when its labels name the run and the task, and its controller
owner reference is the task's Job, by name and by uid (the Job as the operator's own watch
sees it: a uid cannot be chosen by whoever writes a manifest).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any

from flow_operator.builders.naming import FLOWRUN_LABEL, TASK_LABEL


def _meta(body: Mapping[str, Any]) -> Mapping[str, Any]:
    return body.get("metadata") or {}


class Whose(Enum):
    TASKS = "the task's"
    GONE = "not seen"  # the operator's watch does not see it: its log is the store's
    FOREIGN = "not the task's"  # there, but its labels or its owner say otherwise


def task_pod(
    pods: Iterable[Mapping[str, Any]],
    jobs: Iterable[Mapping[str, Any]],
    *,
    run: str,
    task: str,
    job: str | None,
    pod: str,
) -> Whose:
    """Whether the pod named `pod`, among the run's pods as the operator watches them, is
    the one the run's `task` made through its Job `job`."""
    found = next((p for p in pods if _meta(p).get("name") == pod), None)
    if found is None:
        return Whose.GONE
    labels = _meta(found).get("labels") or {}
    if labels.get(FLOWRUN_LABEL) != run or labels.get(TASK_LABEL) != task or not job:
        return Whose.FOREIGN
    theirs = next((j for j in jobs if _meta(j).get("name") == job), None)
    if theirs is None or not made_by_job(found, theirs):
        return Whose.FOREIGN
    return Whose.TASKS


def made_by_job(pod: Mapping[str, Any], job: Mapping[str, Any]) -> bool:
    """Whether the pod's controller owner reference is this Job, by name and by uid."""
    owner = next((o for o in _meta(pod).get("ownerReferences") or [] if o.get("controller")), None)
    if owner is None or owner.get("kind") != "Job":
        return False
    uid = owner.get("uid")
    return (
        owner.get("name") == _meta(job).get("name") and bool(uid) and uid == _meta(job).get("uid")
    )
