"""Cron maths for Flow schedules, as functions of an injected `now`.

The cron expressions are read by cronsim (a maintained library, the one healthchecks.io
runs on), never by a parser of ours. Five fields, or a shorthand (`@hourly`, `@daily`...),
read in the schedule's IANA `timeZone` (zoneinfo). Every time in and out is an aware
datetime; a tick is an instant, named by its UTC minute.

Daylight saving time follows Debian cron, which cronsim implements:
- A schedule at a fixed wall time (minute and hour both fixed, e.g. `30 2 * * *`) is an
  appointment. If the wall time does not exist (02:30 Europe/Berlin on 2026-03-29, when
  clocks jump from 02:00 to 03:00) the tick is shifted to the first minute after the gap
  (03:00 CEST). If it happens twice (02:30 on 2026-10-25) it runs once, at the first.
- A schedule with a wildcard or step in its minute or hour (`*/15 * * * *`, `30 * * * *`)
  is a cadence in real time: no tick in the hour that does not exist, and both passes of
  the hour that repeats (each is a different instant).

Catch-up. The ticks due are those after the last one dealt with (`last`: the schedule's
lastScheduleTime, or the moment it became active: created or resumed) up to `now`. Of
them, the ones older than `startingDeadlineSeconds` are missed, whatever the policy; of
the rest, `catchUp` starts:
- None: only a tick that is on time, at most ON_TIME_SECONDS late (the timer's lag, a
  leader handover); every other is missed;
- Latest: the latest one;
- All: each of them, the latest MAX_CATCH_UP if there are more.
Everything else is counted as missed (up to COUNT_LIMIT, then "or more"), and the schedule
goes on: there is no lockout after too many missed ticks.

The run of a tick has a name derived from the flow, the schedule and the tick, so a
restarted operator, a new leader or a second replica that creates it again meets
AlreadyExists: the tick is started once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim

from flow_operator.models.flow import CatchUp, FlowSpec, Schedule, check_cron, check_time_zone
from flow_operator.objects.times import utc

MAX_CATCH_UP = 100  # catchUp All starts at most this many ticks at once
COUNT_LIMIT = 1_000  # missed ticks are counted up to this (the scan is bounded), then "or more"
ON_TIME_SECONDS = 30  # catchUp None still starts a tick this late
MAX_RUN_NAME = 63  # a FlowRun's name is a label value
STAMP = "%Y%m%d%H%M"  # a tick in names and labels: its UTC minute
FLOW_LABEL = "flowops.io/flow"
SCHEDULE_LABEL = "flowops.io/schedule"
SCHEDULED_TIME_LABEL = "flowops.io/scheduled-time"


@dataclass(frozen=True)
class Cron:
    """A parsed schedule: five cron fields read in a time zone."""

    fields: str
    zone: ZoneInfo

    @classmethod
    def parse(cls, cron: str, time_zone: str = "UTC") -> Cron:
        """A ValueError saying what is wrong with the expression or the zone."""
        return cls(check_cron(cron), check_time_zone(time_zone))

    @classmethod
    def of(cls, schedule: Schedule) -> Cron:
        return cls.parse(schedule.cron, schedule.time_zone)

    def next_after(self, t: datetime) -> datetime | None:
        """The first tick strictly after `t` (UTC); None if there is none in 50 years."""
        after = utc(t)
        # cronsim can hand back a fixed-time tick from earlier in a repeated hour when it
        # starts in the hour's second pass: such a tick is not after `t`, so look further.
        for local in CronSim(self.fields, after.astimezone(self.zone)):
            tick = local.astimezone(UTC)
            if tick > after:
                return tick
        return None

    def ticks(
        self, after: datetime, until: datetime, limit: int | None = None
    ) -> tuple[list[datetime], bool]:
        """The ticks in (after, until], oldest first; at most `limit`, and whether there
        were more."""
        found: list[datetime] = []
        end = utc(until)
        t = self.next_after(after)
        while t is not None and t <= end:
            if limit is not None and len(found) == limit:
                return found, True
            found.append(t)
            t = self.next_after(t)
        return found, False

    def latest(self, after: datetime, until: datetime, count: int) -> list[datetime]:
        """The newest `count` ticks in (after, until], oldest first: forward scans of a
        window that grows back from `until`, so a long gap costs no more than its end."""
        start, end = utc(after), utc(until)
        span = timedelta(hours=1)
        while True:
            begin = max(start, end - span)
            found, _ = self.ticks(begin, end)
            if len(found) >= count or begin == start:
                return found[-count:] if count else []
            span *= 8


@dataclass(frozen=True)
class Plan:
    """What a schedule does at `now`."""

    start: tuple[datetime, ...]  # the ticks to start, oldest first
    missed: int  # due ticks not started
    missed_more: bool  # and more than that: COUNT_LIMIT were counted
    last_schedule_time: datetime | None  # the latest due tick (the new lastScheduleTime)
    next_time: datetime | None  # when to look again: the next tick after now


def plan(
    cron: Cron,
    *,
    last: datetime,
    now: datetime,
    catch_up: CatchUp = CatchUp.LATEST,
    starting_deadline_seconds: int | None = None,
) -> Plan:
    """Which due ticks to start and how many were missed (module docstring: catch-up)."""
    now = utc(now)
    due, more = cron.ticks(last, now, COUNT_LIMIT)
    next_time = cron.next_after(now)
    if not due:
        return Plan((), 0, False, None, next_time)
    recent = cron.latest(last, now, MAX_CATCH_UP) if more else due[-MAX_CATCH_UP:]
    startable = [
        t
        for t in recent
        if starting_deadline_seconds is None
        or (now - t).total_seconds() <= starting_deadline_seconds
    ]
    if catch_up is CatchUp.ALL:
        chosen = startable
    elif catch_up is CatchUp.LATEST:
        chosen = startable[-1:]
    else:
        chosen = [t for t in startable[-1:] if (now - t).total_seconds() <= ON_TIME_SECONDS]
    return Plan(tuple(chosen), len(due) - len(chosen), more, recent[-1], next_time)


def stamp(tick: datetime) -> str:
    """A tick as names and labels carry it: its UTC minute, YYYYMMDDHHMM."""
    return utc(tick).strftime(STAMP)


def run_name(flow: str, schedule: str, tick: datetime) -> str:
    """The FlowRun of a tick: `<flow>-<schedule>-<UTC minute>-<hash>`, at most 63 characters.

    The hash (of flow and schedule) keeps two pairs apart whose names join alike
    (`a-b` + `c`, `a` + `b-c`); a long pair is cut, the hash still telling it apart.
    """
    suffix = f"-{stamp(tick)}-{hashlib.sha256(f'{flow}/{schedule}'.encode()).hexdigest()[:6]}"
    prefix = f"{flow}-{schedule}"[: MAX_RUN_NAME - len(suffix)].rstrip("-.")
    return prefix + suffix


def tick_labels(flow: str, schedule: str, tick: datetime) -> dict[str, str]:
    """The labels of a tick's run: which flow, which schedule, which scheduled time."""
    return {FLOW_LABEL: flow, SCHEDULE_LABEL: schedule, SCHEDULED_TIME_LABEL: stamp(tick)}


def parse_stamp(value: str) -> datetime:
    """The tick a scheduled-time label names."""
    return datetime.strptime(value, STAMP).replace(tzinfo=UTC)


def summary(spec: FlowSpec) -> str:
    """The SCHEDULES column: `nightly,hourly(suspended)`; `-` for none."""
    names = [
        f"{s.name}(suspended)" if spec.suspend or s.suspend else s.name
        for s in spec.schedules or ()
    ]
    return ",".join(names) or "-"
