"""Which finished FlowRuns may leave the cluster, and when the next one becomes due.

Pure: the caller passes the finished runs it knows, the policy and the time. One policy:
- a TTL after the run finished: the run's own `spec.ttlSecondsAfterFinished`, else the
  operator's default (`--finished-run-ttl`); no TTL keeps the run;
- per flow (namespace and flow name), the newest `successfulKept` Completed runs and the
  newest `failedKept` runs that did not complete (Failed, Crashed, Cancelled), newest by
  end time; the ones past a limit are due at once (newer runs only push them further).
Nothing is lost: a run is deleted only once the store confirmed its final record and its
logs (`archived`). A due run that is not archived yet is `held`, and is planned again when
its archive is confirmed. `nextDue` is the earliest moment a run not due yet will be, so
the caller sets one timer instead of polling; runs that are not finished are never due.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, Field

from flow_operator.history.store import TERMINAL_STATES, Time, Value
from flow_operator.models.flowrun import Phase

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_NEVER = ("", "never", "none", "off")


def parse_duration(text: str) -> timedelta | None:
    """ "90d", "1h30m", "45s", "300" (seconds); "never" (or "none", "off", ""): None.
    ValueError otherwise (the operator's flags use it too, settings.duration)."""
    text = text.strip().lower()
    if text in _NEVER:
        return None
    if text.isascii() and text.isdigit():
        return timedelta(seconds=int(text))
    if re.fullmatch(r"(?:\d+[smhdw])+", text) is None:
        raise ValueError(f"not a duration: {text!r} (e.g. 90d, 12h, 30m, 45s, 0 or never)")
    return timedelta(
        seconds=sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)([smhdw])", text))
    )


class Why(StrEnum):
    TTL = "ttl"
    HISTORY_LIMIT = "history-limit"


def _not_negative(value: timedelta | None) -> timedelta | None:
    if value is not None and value < timedelta(0):
        raise ValueError(f"a TTL cannot be negative: {value}")
    return value


TTL = Annotated[timedelta | None, AfterValidator(_not_negative)]


class FinishedRun(Value):
    """What retention needs of a run: who it is, its flow, how and when it ended."""

    key: str  # whatever the caller deletes it by ("namespace/name")
    namespace: str
    flow: str
    status: str
    end_time: Time
    ttl: TTL = None  # spec.ttlSecondsAfterFinished
    archived: bool = False  # the store has its final record and its logs


Kept = Annotated[int, Field(ge=0)]


class RetentionPolicy(Value):
    ttl: TTL = None
    successful_kept: Kept | None = None
    failed_kept: Kept | None = None


class Due(Value):
    key: str
    why: Why
    due: Time


class Plan(Value):
    """Deletable now, due but waiting for the archive, and the next moment to look again."""

    delete: tuple[Due, ...] = ()
    held: tuple[Due, ...] = ()
    next_due: Time | None = None


def _over_limit(runs: list[FinishedRun], policy: RetentionPolicy) -> set[str]:
    groups: dict[tuple[str, str, bool], list[FinishedRun]] = defaultdict(list)
    for run in runs:
        groups[(run.namespace, run.flow, run.status == Phase.COMPLETED.value)].append(run)
    over: set[str] = set()
    for (_, _, succeeded), group in groups.items():
        kept = policy.successful_kept if succeeded else policy.failed_kept
        if kept is None:
            continue
        group.sort(key=lambda r: (r.end_time, r.key), reverse=True)
        over.update(r.key for r in group[kept:])
    return over


def plan(runs: Iterable[FinishedRun], policy: RetentionPolicy, now: datetime) -> Plan:
    """What may be deleted at `now` under `policy`, and when to look again."""
    finished = [r for r in runs if r.status in TERMINAL_STATES]
    over = _over_limit(finished, policy)
    delete: list[Due] = []
    held: list[Due] = []
    later: list[datetime] = []
    for run in finished:
        ttl = run.ttl if run.ttl is not None else policy.ttl
        if run.key in over:
            due = Due(key=run.key, why=Why.HISTORY_LIMIT, due=now)
        elif ttl is not None and run.end_time + ttl <= now:
            due = Due(key=run.key, why=Why.TTL, due=run.end_time + ttl)
        else:
            if ttl is not None:
                later.append(run.end_time + ttl)
            continue
        (delete if run.archived else held).append(due)
    order = lambda d: (d.due, d.key)  # noqa: E731
    return Plan(
        delete=tuple(sorted(delete, key=order)),
        held=tuple(sorted(held, key=order)),
        next_due=min(later, default=None),
    )
