"""A Workflow's color transitions, from what its reconcile decided: pure.

The reconciler dates each color in `status.colorSince` (status/aggregate.py). A transition
is a change of color against the last one seen of that Workflow; the first time a Workflow
is seen (the operator's start, or a new Workflow) the status it already holds is a
transition too (its color since its `colorSince`, from an unknown color), which is how a
restart (even after kill -9) rebuilds a transition it decided but did not store. The store
keys them by (uid, time, color), so seeing one again stores nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flow_operator.history.store import ColorTransition
from flow_operator.models.workflow import WorkflowStatus
from flow_operator.objects.times import parse_aware


@dataclass(frozen=True)
class Seen:
    """The color last seen of a Workflow (by its key), and of which uid."""

    uid: str
    color: str
    since: str | None


def _reason(status: Mapping[str, Any]) -> str:
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return str(condition.get("reason") or "")
    return ""


def transitions(
    body: Mapping[str, Any], status: WorkflowStatus, seen: Seen | None
) -> tuple[list[ColorTransition], Seen | None]:
    """The transitions a reconcile's `status` of `body` shows after `seen`, and what is
    seen now (None when the body has no uid, namespace or name)."""
    meta = body.get("metadata") or {}
    uid, namespace, name = (str(meta.get(k) or "") for k in ("uid", "namespace", "name"))
    if not (uid and namespace and name):
        return [], seen
    doc = status.dump()
    color, since = str(doc["actualStatus"]), doc.get("colorSince")
    out: list[ColorTransition] = []

    def add(to: str, when: object, source: Mapping[str, Any], before: str | None) -> None:
        time = parse_aware(when)
        if time is not None:
            out.append(
                ColorTransition(
                    uid=uid,
                    namespace=namespace,
                    name=name,
                    time=time,
                    from_color=before,
                    to_color=to,
                    reason=_reason(source),
                )
            )

    if seen is None or seen.uid != uid:
        held = body.get("status") or {}
        held_color = held.get("actualStatus") if isinstance(held, Mapping) else None
        if held_color:
            add(str(held_color), held.get("colorSince"), held, None)
        if held_color != color:
            add(color, since, doc, str(held_color) if held_color else None)
    elif seen.color != color:
        add(color, since, doc, seen.color)
    return out, Seen(uid, color, since)
