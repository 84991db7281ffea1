"""Schedules: cron maths with an injected clock, DST in Europe/Berlin, catch-up after
downtime, the starting deadline, and the tick's deterministic run name."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from flow_operator.flows.schedule import (
    COUNT_LIMIT,
    MAX_CATCH_UP,
    ON_TIME_SECONDS,
    Cron,
    parse_stamp,
    plan,
    run_name,
    tick_labels,
)
from flow_operator.models.flow import CatchUp
from tests.unit.flows.conftest import BERLIN, Clock, berlin, utc

EVERY_MINUTE = Cron.parse("* * * * *")


def ticks_on(cron: Cron, day_start: datetime, hours: int = 24) -> list[datetime]:
    start = day_start.astimezone(UTC)  # real hours: wall-clock arithmetic would skip DST
    found, more = cron.ticks(start, start + timedelta(hours=hours))
    assert not more
    return found


def wall(ticks: list[datetime]) -> list[str]:
    return [t.astimezone(BERLIN).strftime("%H:%M%z") for t in ticks]


# --- next tick ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cron", "zone", "after", "expected"),
    [
        ("* * * * *", "UTC", "2026-11-24 12:00:00", "2026-11-24 12:01"),
        ("* * * * *", "UTC", "2026-11-24 12:00:59.900", "2026-11-24 12:01"),
        ("* * * * *", "UTC", "2026-11-24 12:01:00.500", "2026-11-24 12:02"),
        ("*/15 * * * *", "UTC", "2026-11-24 12:14", "2026-11-24 12:15"),
        ("@hourly", "UTC", "2026-11-24 12:00", "2026-11-24 13:00"),
        ("@daily", "UTC", "2026-11-24 12:00", "2026-11-25 00:00"),
        ("@midnight", "UTC", "2026-11-24 12:00", "2026-11-25 00:00"),
        ("@weekly", "UTC", "2026-11-24 12:00", "2026-11-29 00:00"),  # a Sunday
        ("@monthly", "UTC", "2026-11-24 12:00", "2026-12-01 00:00"),
        ("@yearly", "UTC", "2026-11-24 12:00", "2027-01-01 00:00"),
        ("@ANNUALLY", "UTC", "2026-11-24 12:00", "2027-01-01 00:00"),
        ("0 9 * * 1-5", "UTC", "2026-11-27 10:00", "2026-11-30 09:00"),  # Friday to Monday
        ("0 9 * * *", "Europe/Berlin", "2026-11-24 12:00", "2026-11-25 08:00"),  # CET = UTC+1
        ("0 9 * * *", "Europe/Berlin", "2026-07-01 12:00", "2026-07-02 07:00"),  # CEST = UTC+2
        ("0 9 * * *", "America/New_York", "2026-11-24 12:00", "2026-11-24 14:00"),
        ("0 0 29 2 *", "UTC", "2026-03-01 00:00", "2028-02-29 00:00"),
    ],
)
def test_next_tick_after(cron: str, zone: str, after: str, expected: str) -> None:
    assert Cron.parse(cron, zone).next_after(utc(after)) == utc(expected)


def test_next_tick_is_the_same_from_any_time_zone_of_now() -> None:
    cron = Cron.parse("30 2 * * *", "Europe/Berlin")
    assert cron.next_after(berlin("2026-11-24 13:00")) == cron.next_after(utc("2026-11-24 12:00"))


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        EVERY_MINUTE.next_after(datetime(2026, 11, 24, 12, 0))


@pytest.mark.parametrize(
    ("cron", "zone", "message"),
    [
        ("* * * *", "UTC", "five fields"),
        ("0 * * * * *", "UTC", "five fields"),  # cronsim reads seconds; a schedule does not
        ("61 * * * *", "UTC", "not a cron expression"),
        ("* * 30 2 *", "UTC", "not a cron expression"),
        ("@every 5m", "UTC", "unknown cron shorthand"),
        ("@reboot", "UTC", "unknown cron shorthand"),
        ("* * * * *", "Mars/Olympus", "not an IANA time zone"),
        ("* * * * *", "../etc/passwd", "not an IANA time zone"),
    ],
)
def test_bad_cron_or_zone_is_refused_with_the_reason(cron: str, zone: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Cron.parse(cron, zone)


# --- DST, Europe/Berlin -------------------------------------------------------------------------


def test_spring_forward_a_missing_fixed_time_is_shifted_to_the_end_of_the_gap() -> None:
    # 2026-03-29: clocks go from 02:00 CET to 03:00 CEST; 02:30 does not exist that day.
    cron = Cron.parse("30 2 * * *", "Europe/Berlin")
    days = cron.ticks(berlin("2026-03-28 00:00"), berlin("2026-03-31 00:00"))[0]
    assert [d.astimezone(cron.zone).isoformat() for d in days] == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",  # shifted to the first minute after the gap, once
        "2026-03-30T02:30:00+02:00",
    ]


def test_spring_forward_a_cadence_has_no_tick_in_the_missing_hour() -> None:
    cron = Cron.parse("30 * * * *", "Europe/Berlin")
    day = ticks_on(cron, berlin("2026-03-29 00:00"), hours=23)  # that day has 23 hours
    assert len(day) == 23
    assert wall(day)[:3] == ["00:30+0100", "01:30+0100", "03:30+0200"]


def test_fall_back_a_repeated_fixed_time_runs_once() -> None:
    # 2026-10-25: clocks go from 03:00 CEST back to 02:00 CET; 02:30 happens twice.
    cron = Cron.parse("30 2 * * *", "Europe/Berlin")
    days = cron.ticks(berlin("2026-10-24 00:00"), berlin("2026-10-27 00:00"))[0]
    assert [d.isoformat() for d in days] == [
        "2026-10-24T00:30:00+00:00",
        "2026-10-25T00:30:00+00:00",  # 02:30 CEST, the first pass; not 01:30 UTC as well
        "2026-10-26T01:30:00+00:00",
    ]


def test_fall_back_once_even_when_asked_from_inside_the_repeated_hour() -> None:
    cron = Cron.parse("30 2 * * *", "Europe/Berlin")
    # 02:10 CET, the second pass: the day's 02:30 has run (at 02:30 CEST), the next is tomorrow.
    assert cron.next_after(berlin("2026-10-25 02:10", fold=1)) == utc("2026-10-26 01:30")
    # The planner, woken in the second pass after the first 02:30 ran, starts nothing.
    second_pass = berlin("2026-10-25 02:31", fold=1)
    p = plan(cron, last=utc("2026-10-25 00:30"), now=second_pass, catch_up=CatchUp.ALL)
    assert (p.start, p.missed) == ((), 0)


def test_fall_back_a_cadence_runs_in_both_passes_of_the_repeated_hour() -> None:
    cron = Cron.parse("30 * * * *", "Europe/Berlin")
    day = ticks_on(cron, berlin("2026-10-25 00:00"), hours=25)  # that day has 25 hours
    assert len(day) == 25 == len(set(day))
    assert wall(day)[1:5] == ["01:30+0200", "02:30+0200", "02:30+0100", "03:30+0100"]


@pytest.mark.parametrize("cron", ["30 2 * * *", "30 * * * *", "*/7 * * * *", "15 2,3 * * *"])
@pytest.mark.parametrize("day", ["2026-03-28 12:00", "2026-10-24 12:00"])
def test_next_after_any_minute_is_the_next_of_one_fixed_set_of_ticks(cron: str, day: str) -> None:
    """Across both DST days, asking at any moment gives the next tick of a single sequence:
    what makes the run names (and so the no-duplicate guarantee) stable across restarts."""
    parsed = Cron.parse(cron, "Europe/Berlin")
    start = utc(day)
    sequence = ticks_on(parsed, start - timedelta(hours=2), hours=80)
    assert sequence == sorted(set(sequence))
    t = start
    while t < start + timedelta(hours=48):
        expected = next(s for s in sequence if s > t)
        assert parsed.next_after(t) == expected, t
        t += timedelta(minutes=4, seconds=7)


# --- catch-up -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("catch_up", "started", "missed"),
    [(CatchUp.NONE, 0, 10), (CatchUp.LATEST, 1, 9), (CatchUp.ALL, 10, 0)],
)
def test_catch_up_after_ten_minutes_of_downtime(
    clock: Clock, catch_up: CatchUp, started: int, missed: int
) -> None:
    last = clock.now  # 12:00, the last tick the operator dealt with, then it went down
    clock.advance(minutes=10, seconds=45)  # back at 12:10:45: ticks 12:01 ... 12:10 are due
    p = plan(EVERY_MINUTE, last=last, now=clock.now, catch_up=catch_up)
    assert (len(p.start), p.missed, p.missed_more) == (started, missed, False)
    assert p.start == tuple(utc(f"2026-11-24 12:{m:02}") for m in range(11 - started, 11))
    assert p.last_schedule_time == utc("2026-11-24 12:10")
    assert p.next_time == utc("2026-11-24 12:11")


@pytest.mark.parametrize("catch_up", list(CatchUp))
def test_a_tick_on_time_starts_whatever_the_policy(clock: Clock, catch_up: CatchUp) -> None:
    last = clock.now
    clock.advance(minutes=1, seconds=ON_TIME_SECONDS)  # the 12:01 timer fired, late but on time
    p = plan(EVERY_MINUTE, last=last, now=clock.now, catch_up=catch_up)
    assert (p.start, p.missed) == ((utc("2026-11-24 12:01"),), 0)


def test_catch_up_none_skips_a_tick_later_than_on_time(clock: Clock) -> None:
    last = clock.now
    clock.advance(minutes=1, seconds=ON_TIME_SECONDS + 1)
    p = plan(EVERY_MINUTE, last=last, now=clock.now, catch_up=CatchUp.NONE)
    assert (p.start, p.missed, p.last_schedule_time) == ((), 1, utc("2026-11-24 12:01"))


def test_nothing_due_starts_nothing_and_keeps_the_last_schedule_time(clock: Clock) -> None:
    p = plan(EVERY_MINUTE, last=clock.now, now=clock.advance(seconds=59))
    assert p == type(p)((), 0, False, None, utc("2026-11-24 12:01"))


def test_catch_up_all_is_bounded_and_reports_the_rest_missed(clock: Clock) -> None:
    last = clock.now
    clock.advance(minutes=250, seconds=5)  # 250 ticks due
    p = plan(EVERY_MINUTE, last=last, now=clock.now, catch_up=CatchUp.ALL)
    assert len(p.start) == MAX_CATCH_UP
    assert p.start[0] == utc("2026-11-24 14:31") and p.start[-1] == utc("2026-11-24 16:10")
    assert (p.missed, p.missed_more) == (250 - MAX_CATCH_UP, False)


def test_a_long_outage_costs_a_bounded_scan_and_never_locks_the_schedule_out(clock: Clock) -> None:
    last = clock.now
    clock.advance(days=30, seconds=5)  # 43,200 ticks due: a CronJob would stop for good
    p = plan(EVERY_MINUTE, last=last, now=clock.now, catch_up=CatchUp.ALL)
    assert len(p.start) == MAX_CATCH_UP and p.start[-1] == utc("2026-12-24 12:00")
    assert p.start == tuple(sorted(p.start))
    assert (p.missed, p.missed_more) == (COUNT_LIMIT - MAX_CATCH_UP, True)
    assert p.last_schedule_time == utc("2026-12-24 12:00")
    assert p.next_time == utc("2026-12-24 12:01")
    latest = plan(EVERY_MINUTE, last=last, now=clock.now, catch_up=CatchUp.LATEST)
    assert latest.start == (utc("2026-12-24 12:00"),)


@pytest.mark.parametrize(
    ("catch_up", "started"),
    [(CatchUp.NONE, ()), (CatchUp.LATEST, ("12:10",)), (CatchUp.ALL, ("12:09", "12:10"))],
)
def test_the_starting_deadline_misses_older_ticks_under_every_policy(
    clock: Clock, catch_up: CatchUp, started: tuple[str, ...]
) -> None:
    last = clock.now
    clock.advance(minutes=10, seconds=45)  # 12:09 is 105 s old, 12:08 is 165 s old
    p = plan(EVERY_MINUTE, last=last, now=clock.now, catch_up=catch_up,
             starting_deadline_seconds=120)  # fmt: skip
    assert p.start == tuple(utc(f"2026-11-24 {s}") for s in started)
    assert p.missed == 10 - len(started)


def test_a_timer_loop_starts_every_tick_once_across_a_restart(clock: Clock) -> None:
    """The reconciler's loop as the planner sees it: wake at the next tick (a little late),
    start what the plan says, keep lastScheduleTime; crash at a tick and come back 25 s
    later with only the status. Each minute is started exactly once, none is missed."""
    started: list[datetime] = []
    last = clock.now  # lastScheduleTime, the only state that survives a restart
    wake = clock.now
    for minute in range(1, 121):
        lateness = 25 if minute == 60 else (minute % 7) / 10  # the restart at 13:00
        clock.set(utc("2026-11-24 12:00") + timedelta(minutes=minute, seconds=lateness))
        assert wake <= clock.now
        p = plan(EVERY_MINUTE, last=last, now=clock.now, catch_up=CatchUp.LATEST)
        assert p.missed == 0
        started += p.start
        last = p.last_schedule_time or last
        wake = p.next_time or wake
        # A second replica (or the crashed leader's last act) planning the same moment makes
        # the same names: its creates meet AlreadyExists.
        again = plan(EVERY_MINUTE, last=last - timedelta(minutes=1), now=clock.now)
        assert [run_name("etl", "nightly", t) for t in again.start] == [
            run_name("etl", "nightly", t) for t in p.start
        ]
    assert started == [utc("2026-11-24 12:00") + timedelta(minutes=m) for m in range(1, 121)]


# --- run names and labels -----------------------------------------------------------------------

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def test_run_name_golden() -> None:
    # Frozen: a change renames every scheduled run and would start a tick a second time.
    assert run_name("etl", "nightly", utc("2026-10-25 00:30")) == "etl-nightly-202610250030-deaf85"


def test_run_name_is_stable_and_tells_apart_each_tick_flow_and_schedule() -> None:
    tick = utc("2026-10-25 00:30")
    same = {run_name("etl", "nightly", tick) for _ in range(3)}
    assert len(same) == 1
    names = {
        run_name("a-b", "c", tick),
        run_name("a", "b-c", tick),  # joins to the same text as the one above
        run_name("etl", "nightly", tick),
        run_name("etl", "nightly", tick + timedelta(minutes=1)),
        run_name("etl", "nightly", utc("2026-10-25 01:30")),  # the other 02:30 in Berlin
    }
    assert len(names) == 5


@pytest.mark.parametrize(
    ("flow", "schedule"),
    [("etl", "nightly"), ("a" * 63, "b" * 63), ("my.flow", "x"), ("f" * 40, "s-" * 20 + "t")],
)
def test_run_name_fits_a_label_and_is_dns_safe(flow: str, schedule: str) -> None:
    tick = utc("2026-10-25 00:30")
    name = run_name(flow, schedule, tick)
    assert len(name) <= 63 and DNS_LABEL.match(name), name
    assert name.endswith(name.rsplit("-", 1)[1]) and "-202610250030-" in name
    assert run_name(flow, schedule + "x", tick) != name


def test_tick_labels_name_flow_schedule_and_time() -> None:
    tick = berlin("2026-10-25 03:30")  # CET
    labels = tick_labels("etl", "nightly", tick)
    assert labels == {
        "flowops.io/flow": "etl",
        "flowops.io/schedule": "nightly",
        "flowops.io/scheduled-time": "202610250230",
    }
    assert parse_stamp(labels["flowops.io/scheduled-time"]) == tick
