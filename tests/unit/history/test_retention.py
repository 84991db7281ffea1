"""Which finished runs may leave the cluster, and when the next becomes due: golden cases
(golden/retention/<case>.in.json: the time, the policy and the runs; <case>.out.json: the
plan) and a table of the rules, all at an injected time. Regenerate the golden files with
`UPDATE_GOLDEN=1 pytest tests/unit/history/test_retention.py` and review the diff."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from flow_operator.history.retention import FinishedRun, RetentionPolicy, Why, plan

GOLDEN = Path(__file__).parent / "golden" / "retention"
CASES = sorted(p.name.removesuffix(".in.json") for p in GOLDEN.glob("*.in.json"))
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.mark.parametrize("case", CASES)
def test_plan_matches_golden(case: str) -> None:
    given = json.loads((GOLDEN / f"{case}.in.json").read_text())
    now = TypeAdapter(datetime).validate_python(given["now"])
    runs = [FinishedRun.model_validate(r) for r in given["runs"]]
    got = plan(runs, RetentionPolicy.model_validate(given["policy"]), now).dump()
    out = GOLDEN / f"{case}.out.json"
    if os.environ.get("UPDATE_GOLDEN"):
        out.write_text(json.dumps(got, indent=2) + "\n")
    assert got == json.loads(out.read_text())


def test_golden_cases_are_all_there() -> None:
    assert len(CASES) == 4
    assert sorted(p.name.removesuffix(".out.json") for p in GOLDEN.glob("*.out.json")) == CASES


def run(key: str, ended: timedelta, status: str = "Completed", **fields: Any) -> FinishedRun:
    """A run that ended `ended` before NOW."""
    base: dict[str, Any] = {"namespace": "ml", "flow": "churn", "archived": True}
    return FinishedRun(key=key, status=status, end_time=NOW - ended, **{**base, **fields})


def keys(runs: Any) -> list[str]:
    return [d.key for d in runs]


def test_a_run_is_due_at_its_ttl_and_not_a_moment_before() -> None:
    policy = RetentionPolicy(ttl=HOUR)
    runs = [run("a", HOUR - timedelta(seconds=1)), run("b", 2 * HOUR)]
    early = plan(runs, policy, NOW)
    assert keys(early.delete) == ["b"] and early.delete[0].why is Why.TTL
    assert early.delete[0].due == NOW - HOUR
    assert early.next_due == NOW + timedelta(seconds=1)
    # At the moment the timer fires, the run is due.
    assert keys(plan(runs, policy, early.next_due).delete) == ["b", "a"]


def test_the_runs_own_ttl_wins_over_the_default_either_way() -> None:
    policy = RetentionPolicy(ttl=HOUR)
    runs = [
        run("short", 20 * timedelta(minutes=1), ttl=timedelta(minutes=10)),
        run("long", 2 * HOUR, ttl=3 * HOUR),
    ]
    got = plan(runs, policy, NOW)
    assert keys(got.delete) == ["short"]
    assert got.next_due == NOW + HOUR  # "long": 3 h after it ended, 2 h ago
    # Without an operator default, only runs with their own TTL are ever due.
    alone = plan([*runs, run("kept", 1000 * HOUR)], RetentionPolicy(), NOW)
    assert keys(alone.delete) == ["short"] and alone.next_due == NOW + HOUR


def test_nothing_is_deleted_before_the_store_has_it() -> None:
    policy = RetentionPolicy(ttl=HOUR, successful_kept=1)
    runs = [
        run("new", timedelta(0)),
        run("over", timedelta(minutes=1), archived=False),
        run("old", 2 * HOUR, archived=False, flow="etl"),
    ]
    got = plan(runs, policy, NOW)
    assert got.delete == ()
    assert [(d.key, d.why) for d in got.held] == [("old", Why.TTL), ("over", Why.HISTORY_LIMIT)]
    # A held run sets no timer: its archive confirmation is what brings it back.
    assert got.next_due == NOW + HOUR  # "new"'s TTL
    confirmed = [r.model_copy(update={"archived": True}) for r in runs]
    assert keys(plan(confirmed, policy, NOW).delete) == ["old", "over"]


def test_limits_count_per_flow_and_outcome_newest_by_end_time() -> None:
    policy = RetentionPolicy(successful_kept=1, failed_kept=2)
    runs = [
        run("ok-new", HOUR),
        run("ok-old", 2 * HOUR),
        run("fail-1", HOUR, "Failed"),
        run("crash-2", 2 * HOUR, "Crashed"),
        run("cancel-3", 3 * HOUR, "Cancelled"),
        run("etl-ok", 5 * HOUR, flow="etl"),
        run("ops-ok", 5 * HOUR, namespace="ops"),
    ]
    got = plan(runs, policy, NOW)
    assert keys(got.delete) == ["cancel-3", "ok-old"]
    assert all(d.why is Why.HISTORY_LIMIT and d.due == NOW for d in got.delete)
    assert got.next_due is None  # past a limit is due at once; nothing else ever is
    assert keys(
        plan(runs, RetentionPolicy(successful_kept=0, failed_kept=0), NOW).delete
    ) == sorted(r.key for r in runs)


def test_unfinished_runs_are_never_due() -> None:
    runs = [run(f"r-{s}", 100 * HOUR, s) for s in ("Submitted", "Queued", "Deployed")]
    got = plan(runs, RetentionPolicy(ttl=timedelta(0), successful_kept=0, failed_kept=0), NOW)
    assert got.delete == () and got.held == () and got.next_due is None


def test_a_negative_ttl_or_limit_is_refused() -> None:
    with pytest.raises(ValidationError):
        RetentionPolicy(ttl=-HOUR)
    with pytest.raises(ValidationError):
        RetentionPolicy(successful_kept=-1)
    with pytest.raises(ValidationError):
        run("a", HOUR, ttl=-HOUR)


def test_parse_duration_takes_the_flags_forms() -> None:
    from datetime import timedelta

    from flow_operator.history.retention import parse_duration

    assert parse_duration("90d") == timedelta(days=90)
    assert parse_duration("1d12h") == timedelta(hours=36)
    assert parse_duration("300") == timedelta(seconds=300)
    assert parse_duration("never") is None and parse_duration("") is None
    for bad in ("90x", "-1", "d", "\uff11"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)
