"""The flow stats' maths (views/flowstats.py): quantiles, success rates, groups, the trend
and the "markedly slower / failing more often" flag, with numbers worked out by hand; and
one golden scenario (`golden/flowstats/<name>.in.json` -> `.out.json`, rewritten with
`UPDATE_GOLDEN=1` and reviewed as a diff)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flow_operator.views.flowstats import (
    BadStatsQuery,
    RunSample,
    flag,
    flow_stats,
    quantile,
    sample_of,
    stats_query,
    summary,
)

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
GOLDEN = Path(__file__).parent / "golden" / "flowstats"


def run(i: int, status: str = "Completed", seconds: float = 10.0, **kw: str) -> RunSample:
    start = T0 + timedelta(minutes=10 * i)
    return RunSample(
        name=f"r{i}",
        status=status,
        start=start,
        end=start + timedelta(seconds=seconds),
        version=kw.get("version", "1"),
        configuration=kw.get("configuration"),
    )


def test_quantile_interpolates_between_ranks() -> None:
    assert quantile([], 0.5) is None
    assert quantile([7.0], 0.95) == 7.0
    assert quantile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.5
    # of 1..20: rank (20 - 1) * 0.95 = 18.05, between 19 and 20
    assert quantile([float(v) for v in range(1, 21)], 0.95) == pytest.approx(19.05)
    assert quantile([1.0, 2.0, 3.0, 4.0, 5.0], 0.0) == 1.0
    assert quantile([1.0, 2.0, 3.0, 4.0, 5.0], 1.0) == 5.0


def test_summary_counts_cancelled_apart_and_times_only_successes() -> None:
    runs = [
        run(0, seconds=10),
        run(1, seconds=20),
        run(2, seconds=30),
        run(3, "Failed", seconds=1),
        run(4, "Crashed", seconds=2),
        run(5, "Cancelled", seconds=99),
        RunSample(name="r6", status="Deployed", start=T0),
    ]
    s = summary(runs)
    assert s == {
        "runs": 7,
        "unfinished": 1,
        "succeeded": 3,
        "failed": 2,
        "cancelled": 1,
        "successRate": 0.6,  # 3 / (3 + 2)
        "p50Seconds": 20.0,
        "p95Seconds": 29.0,  # rank 2 * 0.95 = 1.9: 20 + 0.9 * 10
    }
    assert summary([run(0, "Cancelled")])["successRate"] is None


def test_groups_by_version_newest_first_and_by_configuration() -> None:
    runs = [
        run(0, version="1", configuration="nightly"),
        run(1, "Failed", version="2", configuration="nightly"),
        run(2, version="10", configuration="adhoc"),
        run(3, version="2"),
    ]
    doc = flow_stats(runs, since=T0, until=T0 + timedelta(days=1))
    assert [v["name"] for v in doc["versions"]] == ["10", "2", "1"]
    v2 = doc["versions"][1]
    assert (v2["runs"], v2["succeeded"], v2["failed"], v2["successRate"]) == (2, 1, 1, 0.5)
    assert [c["name"] for c in doc["configurations"]] == ["adhoc", "nightly", "none"]
    assert doc["configurations"][1]["successRate"] == 0.5
    assert doc["overall"]["runs"] == 4


def test_trend_is_the_last_n_finished_runs_oldest_first() -> None:
    runs = [run(i, seconds=i + 1) for i in range(8)]
    runs.append(RunSample(name="live", status="Deployed", start=T0 + timedelta(days=1)))
    doc = flow_stats(list(reversed(runs)), since=T0, until=T0 + timedelta(days=2), last=3)
    assert [p["name"] for p in doc["trend"]] == ["r5", "r6", "r7"]
    assert [p["durationSeconds"] for p in doc["trend"]] == [6.0, 7.0, 8.0]
    assert doc["trend"][0]["startTime"] == "2026-12-01T08:50:00Z"


def test_flag_needs_a_baseline() -> None:
    f = flag([run(i, "Failed") for i in range(9)])
    assert f["enough"] is False  # 4 before the newest 5
    assert not f["failing"] and not f["slower"]


def test_flag_failing_more_often() -> None:
    runs = [run(i) for i in range(6)] + [run(6), run(7, "Failed"), run(8, "Failed"), run(9)]
    runs.append(run(10))
    f = flag(runs)
    assert f["enough"] and f["failing"] and not f["slower"]
    assert f["recent"] == {
        "runs": 5,
        "failures": 2,
        "failureRate": 0.4,
        "successes": 3,
        "p50Seconds": 10.0,
    }
    assert f["baseline"]["failureRate"] == 0.0
    assert f["reasons"] == ["2 of the last 5 runs failed (40%), against 0% before"]


def test_flag_one_recent_failure_is_not_marked() -> None:
    runs = [run(i) for i in range(6)] + [run(6, "Failed")] + [run(i) for i in range(7, 11)]
    assert flag(runs)["failing"] is False


def test_flag_slower_needs_ratio_and_seconds() -> None:
    base = [run(i, seconds=10) for i in range(6)]
    slow = [run(i, seconds=15) for i in range(6, 11)]
    f = flag(base + slow)
    assert f["slower"] and f["recent"]["p50Seconds"] == 15.0
    assert f["reasons"] == ["the last 5 runs take 15s at p50, 1.5x the baseline's 10s"]
    # 1.4x is not marked
    assert not flag(base + [run(i, seconds=14) for i in range(6, 11)])["slower"]
    # 3x of a fast flow, but only 0.6 s more: not marked
    fast = [run(i, seconds=0.3) for i in range(6)] + [run(i, seconds=0.9) for i in range(6, 11)]
    assert not flag(fast)["slower"]


def test_cancelled_runs_are_not_in_the_flag() -> None:
    runs = [run(i) for i in range(6)] + [run(i, "Cancelled") for i in range(6, 20)]
    f = flag(runs)
    assert f["recent"]["runs"] == 5 and f["baseline"]["runs"] == 1  # the newest 5 judged
    assert f["enough"] is False


def test_sample_of_a_list_row() -> None:
    s = sample_of(
        {
            "name": "a",
            "status": "Completed",
            "version": "3",
            "configuration": "eu",
            "startTime": "2026-12-01T08:00:00Z",
            "endTime": "2026-12-01T08:01:30Z",
        }
    )
    assert (s.version, s.configuration, s.seconds) == ("3", "eu", 90.0)
    assert sample_of({"name": "b", "status": "Queued"}).seconds is None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ("7d", timedelta(days=7), 50)),
        ({"window": "24h", "last": "10"}, ("24h", timedelta(hours=24), 10)),
        ({"window": "90d", "last": "500"}, ("90d", timedelta(days=90), 500)),
    ],
)
def test_stats_query(params: dict[str, str], expected: tuple[str, timedelta, int]) -> None:
    assert stats_query(params) == expected


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"window": "30m"}, "window"),
        ({"window": "91d"}, "window"),
        ({"window": "soon"}, "window"),
        ({"window": "never"}, "window"),
        ({"last": "0"}, "last"),
        ({"last": "501"}, "last"),
        ({"last": "-3"}, "last"),
        ({"window": "99999999999999999999d"}, "window"),
        ({"last": "9" * 40}, "last"),
    ],
)
def test_stats_query_refuses_naming_the_field(params: dict[str, str], named: str) -> None:
    with pytest.raises(BadStatsQuery, match=f"^{named} must be"):
        stats_query(params)


@pytest.mark.parametrize(
    "name", sorted(p.name[: -len(".in.json")] for p in GOLDEN.glob("*.in.json"))
)
def test_golden(name: str) -> None:
    given = json.loads((GOLDEN / f"{name}.in.json").read_text())
    runs = [sample_of(r) for r in given["runs"]]
    got = flow_stats(
        runs,
        since=datetime.fromisoformat(given["since"]),
        until=datetime.fromisoformat(given["until"]),
        last=given["last"],
    )
    out = GOLDEN / f"{name}.out.json"
    if os.environ.get("UPDATE_GOLDEN"):
        out.write_text(json.dumps(got, indent=2) + "\n")
    assert got == json.loads(out.read_text())


def test_there_is_a_golden_scenario() -> None:
    assert list(GOLDEN.glob("*.in.json"))
