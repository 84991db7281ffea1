"""Time spent in each color over a window, from a Workflow's color transitions: pure.

The window is `[since, until)`. The color at `since` is that of the last transition
before it (`ColorHistory.before`); without one, the time until the first transition is
`unknown` (the store holds nothing of the Workflow then). A transition to the color the
Workflow is in already changes nothing (a restart may see one again). The seconds of the
colors and of `unknown` add up to the window's.
"""

from __future__ import annotations

from datetime import datetime

from flow_operator.history.store import ColorHistory, Time, Value

UNKNOWN = "unknown"


class TimeInColor(Value):
    """Seconds per color over the window (`unknown` before anything is known), and the
    share of the known time spent GREEN (None when nothing is known)."""

    since: Time
    until: Time
    seconds: dict[str, float]
    green_share: float | None = None


def time_in_color(history: ColorHistory, since: datetime, until: datetime) -> TimeInColor:
    """The seconds the Workflow spent in each color in `[since, until)`."""
    if until < since:
        raise ValueError(f"until ({until.isoformat()}) is before since ({since.isoformat()})")
    seconds: dict[str, float] = {}
    color = history.before.to_color if history.before is not None else UNKNOWN
    at = since
    for t in sorted(history.transitions, key=lambda t: t.time):
        when = min(max(t.time, since), until)
        if when > at:
            seconds[color] = seconds.get(color, 0.0) + (when - at).total_seconds()
            at = when
        color = t.to_color
    if until > at:
        seconds[color] = seconds.get(color, 0.0) + (until - at).total_seconds()
    known = sum(v for k, v in seconds.items() if k != UNKNOWN)
    share = seconds.get("GREEN", 0.0) / known if known else None
    return TimeInColor(since=since, until=until, seconds=seconds, green_share=share)
