"""What a Workflow reconcile's decision adds to its color transitions (history/colors.py):
the color the status holds when first seen (a restart rebuilds from it), then each change."""

from __future__ import annotations

from typing import Any

from flow_operator.history.colors import Seen, transitions
from flow_operator.models.workflow import WorkflowStatus


def _status(color: str, since: str, reason: str = "Published") -> WorkflowStatus:
    return WorkflowStatus.model_validate(
        {
            "desiredStatus": "PUBLISHED",
            "actualStatus": color,
            "publishingMode": "ASYNC",
            "colorSince": since,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": reason,
                    "message": "",
                    "lastTransitionTime": since,
                }
            ],
        }
    )


def _body(held: WorkflowStatus | None, uid: str = "u1") -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"uid": uid, "namespace": "ml", "name": "shop"}}
    if held is not None:
        body["status"] = held.dump()
    return body


def _moves(found: list[Any]) -> list[tuple[str | None, str, str]]:
    return [(t.from_color, t.to_color, t.time.isoformat()) for t in found]


def test_the_first_sight_adds_the_color_the_status_holds() -> None:
    # a restart (a kill -9 included): the status the Workflow holds is a transition too
    held = _status("GREEN", "2026-11-24T09:00:00Z")
    found, seen = transitions(_body(held), held, None)
    assert _moves(found) == [(None, "GREEN", "2026-11-24T09:00:00+00:00")]
    assert found[0].reason == "Published" and seen == Seen("u1", "GREEN", held.colorSince)
    # then the reconcile moves it on: held YELLOW, decided GREEN
    yellow = _status("YELLOW", "2026-11-24T09:05:00Z", "Publishing")
    green = _status("GREEN", "2026-11-24T09:07:00Z")
    found, _ = transitions(_body(yellow), green, None)
    assert _moves(found) == [
        (None, "YELLOW", "2026-11-24T09:05:00+00:00"),
        ("YELLOW", "GREEN", "2026-11-24T09:07:00+00:00"),
    ]


def test_a_new_workflow_and_a_change_of_color_after_it_was_seen() -> None:
    first = _status("RED", "2026-11-24T09:00:00Z", "Publishing")
    found, seen = transitions(_body(None), first, None)
    assert _moves(found) == [(None, "RED", "2026-11-24T09:00:00+00:00")]
    # the same color again (a reconcile on a view lagging its write dates it anew): nothing
    again, seen = transitions(_body(first), _status("RED", "2026-11-24T09:00:03Z"), seen)
    assert again == []
    green = _status("GREEN", "2026-11-24T09:02:00Z")
    found, seen = transitions(_body(first), green, seen)
    assert _moves(found) == [("RED", "GREEN", "2026-11-24T09:02:00+00:00")]
    # a Workflow of that name made again (another uid) is seen anew
    found, _ = transitions(_body(None, uid="u2"), green, seen)
    assert [t.uid for t in found] == ["u2"]


def test_a_body_without_uid_adds_nothing() -> None:
    status = _status("GREEN", "2026-11-24T09:00:00Z")
    assert transitions({"metadata": {"name": "shop"}}, status, None) == ([], None)
