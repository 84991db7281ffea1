"""A Workflow's color history as GET /api/v1/workflows/{namespace}/{name}/colors serves it:
the window from the query, and the answer from the store's transitions (docs/api.md).

`since` and `until` are RFC 3339 times with an offset; `until` defaults to now (and is
never later: the future has no color yet), `since` to a day before `until`. The answer
lists the transitions in the window, oldest first, the color the window starts in, and
the seconds spent in each color (history/availability.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from flow_operator.history.availability import time_in_color
from flow_operator.history.store import ColorHistory

DEFAULT_WINDOW = timedelta(days=1)
MAX_WINDOW = timedelta(days=400)


class BadWindow(ValueError):
    """A `since` or `until` that is not a time, or a window that is not one."""


def _time(query: Mapping[str, str], name: str) -> datetime | None:
    raw = query.get(name, "")
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        raise BadWindow(
            f"query parameter {name} must be an RFC 3339 time with an offset "
            f"(e.g. {name}=2026-11-24T09:00:00Z), not {shown!r}"
        )
    return value


def window(query: Mapping[str, str], now: datetime) -> tuple[datetime, datetime]:
    """The `[since, until)` a request asks for; BadWindow naming the parameter."""
    until = min(_time(query, "until") or now, now)
    try:
        since = _time(query, "since") or until - DEFAULT_WINDOW
    except OverflowError:  # an until in year 1: a day before it is no time
        raise BadWindow(f"until ({until.isoformat()}) is too early: give a since") from None
    if since > until:
        raise BadWindow(
            f"since ({since.isoformat()}) is after until ({until.isoformat()}, or now): "
            "give a since before it"
        )
    if until - since > MAX_WINDOW:
        raise BadWindow(f"the window is longer than {MAX_WINDOW.days} days: narrow since/until")
    return since, until


def document(
    namespace: str, name: str, history: ColorHistory, since: datetime, until: datetime
) -> dict[str, Any]:
    """The answer: the window, the color it starts in, its transitions and time in color."""
    spent = time_in_color(history, since, until).dump()
    return {
        "namespace": namespace,
        "name": name,
        "since": spent["since"],
        "until": spent["until"],
        "colorAtStart": history.before.to_color if history.before is not None else None,
        "transitions": [
            {k: v for k, v in t.dump().items() if k not in ("namespace", "name")}
            for t in history.transitions
        ],
        "seconds": spent["seconds"],
        "greenShare": spent["greenShare"],
    }
