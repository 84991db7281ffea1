"""A Flow's health over a window of its runs: what `GET /api/v1/flows/{ns}/{name}/stats`
answers and the Flow page draws (docs/flows.md, "Flow stats").

Pure: the runs come in as `RunSample`s (the API reads them from the run store, page by
page), the answer goes out as a JSON-ready dict. The definitions, once:

- a run counts when it has finished: Completed is a success, Failed and Crashed are
  failures, Cancelled is counted apart and in neither (someone stopped it);
- success rate = successes / (successes + failures); none when there are neither;
- a duration is the run's end time minus its start time (it started when Deployed), of
  Completed runs only (a failure that stops early would make a flow look fast);
- p50 and p95 interpolate linearly between the closest ranks (the "inclusive" method of
  Python's `statistics.quantiles`, numpy's default): of 1, 2, 3, 4 the p50 is 2.5;
- the trend is the last `last` finished runs, oldest first, each with its duration
  (failed ones too: the chart marks them apart);
- the flag compares the newest RECENT finished runs (successes and failures) with the
  window's runs before them (the baseline). "Markedly" means:
  * slower: at least MIN_DURATIONS successes on each side, the recent p50 at least
    SLOWER_RATIO (1.5) times the baseline's p50 and at least SLOWER_SECONDS (1 s) more;
  * failing more often: the recent failure rate at least FAILING_POINTS (25 percentage
    points) above the baseline's, with at least MIN_FAILURES (2) recent failures;
  * neither is judged without MIN_BASELINE (5) runs in the baseline (`enough` is false).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flow_operator.history.retention import parse_duration
from flow_operator.objects.times import parse_aware, rfc3339

SUCCESS = frozenset({"Completed"})
FAILURE = frozenset({"Failed", "Crashed"})
CANCELLED = frozenset({"Cancelled"})
FINISHED = SUCCESS | FAILURE | CANCELLED

RECENT = 5
MIN_BASELINE = 5
MIN_DURATIONS = 3
MIN_FAILURES = 2
SLOWER_RATIO = 1.5
SLOWER_SECONDS = 1.0
FAILING_POINTS = 0.25

DEFAULT_WINDOW = "7d"
MIN_WINDOW = timedelta(hours=1)
MAX_WINDOW = timedelta(days=90)
DEFAULT_LAST = 50
MAX_LAST = 500
NO_VERSION = "unknown"
NO_CONFIGURATION = "none"


class BadStatsQuery(ValueError):
    """A `window` or `last` the stats do not take (the message names it and the fix)."""


def stats_query(params: Mapping[str, str]) -> tuple[str, timedelta, int]:
    """(the window as asked, the window, last) of the query; BadStatsQuery otherwise."""
    text = (params.get("window") or DEFAULT_WINDOW).strip()
    try:
        window = parse_duration(text) if len(text) <= 32 else None
    except (ValueError, OverflowError):  # not a duration, or one past timedelta's range
        window = None
    if window is None or not MIN_WINDOW <= window <= MAX_WINDOW:
        raise BadStatsQuery(
            f"window must be a duration from 1h to 90d such as 24h, 7d or 30d, not {text[:40]!r}"
        )
    raw = (params.get("last") or str(DEFAULT_LAST)).strip()
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6) or not 1 <= int(raw) <= MAX_LAST:
        raise BadStatsQuery(f"last must be a whole number from 1 to {MAX_LAST}, not {raw[:40]!r}")
    return text, window, int(raw)


@dataclass(frozen=True)
class RunSample:
    """What the stats need of one run."""

    name: str
    status: str
    version: str | None = None
    configuration: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    created: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def at(self) -> datetime | None:
        """Where the run sits in time: its start, else its end, else its creation."""
        return self.start or self.end or self.created

    @property
    def seconds(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return max(0.0, (self.end - self.start).total_seconds())


def sample_of(row: Mapping[str, Any]) -> RunSample:
    """A run row of the API's list (views/runs.FlowRunRow, dumped) as a sample."""
    return RunSample(
        name=str(row.get("name") or ""),
        status=str(row.get("status") or ""),
        version=str(row["version"]) if row.get("version") not in (None, "") else None,
        configuration=row.get("configuration") or None,
        start=parse_aware(row.get("startTime")),
        end=parse_aware(row.get("endTime")),
    )


def quantile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) by linear interpolation between closest ranks; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def summary(runs: Iterable[RunSample]) -> dict[str, Any]:
    """Counts, success rate and p50/p95 duration of some runs."""
    runs = list(runs)
    succeeded = sum(r.status in SUCCESS for r in runs)
    failed = sum(r.status in FAILURE for r in runs)
    cancelled = sum(r.status in CANCELLED for r in runs)
    durations = [s for r in runs if r.status in SUCCESS and (s := r.seconds) is not None]
    judged = succeeded + failed
    return {
        "runs": len(runs),
        "unfinished": len(runs) - succeeded - failed - cancelled,
        "succeeded": succeeded,
        "failed": failed,
        "cancelled": cancelled,
        "successRate": _round(succeeded / judged, 4) if judged else None,
        "p50Seconds": _round(quantile(durations, 0.5)),
        "p95Seconds": _round(quantile(durations, 0.95)),
    }


def _version_key(name: str) -> tuple[int, float, str]:
    # newest version first: numbers by value, then anything else by name
    return (0, -float(name), "") if name.isdigit() else (1, 0.0, name)


def _groups(
    runs: Sequence[RunSample],
    key: Callable[[RunSample], str],
    order: Callable[[str], Any],
) -> list[dict[str, Any]]:
    grouped: dict[str, list[RunSample]] = {}
    for r in runs:
        grouped.setdefault(key(r), []).append(r)
    return [{"name": k, **summary(grouped[k])} for k in sorted(grouped, key=order)]


def _configuration(r: RunSample) -> str:
    return r.configuration or NO_CONFIGURATION


def _ordered(runs: Iterable[RunSample]) -> list[RunSample]:
    """Finished runs, oldest first (by start, end or creation; then name)."""
    done = [r for r in runs if r.finished and r.at is not None]
    return sorted(done, key=lambda r: (r.at, r.name))


def _side(runs: Sequence[RunSample]) -> dict[str, Any]:
    judged = [r for r in runs if r.status in SUCCESS | FAILURE]
    failures = sum(r.status in FAILURE for r in judged)
    durations = [s for r in judged if r.status in SUCCESS and (s := r.seconds) is not None]
    return {
        "runs": len(judged),
        "failures": failures,
        "failureRate": _round(failures / len(judged), 4) if judged else None,
        "successes": len(durations),
        "p50Seconds": _round(quantile(durations, 0.5)),
    }


def flag(runs: Iterable[RunSample]) -> dict[str, Any]:
    """Whether the newest runs are markedly slower or failing more than the baseline."""
    judged = [r for r in _ordered(runs) if r.status in SUCCESS | FAILURE]
    recent, baseline = judged[-RECENT:], judged[:-RECENT]
    now, before = _side(recent), _side(baseline)
    enough = before["runs"] >= MIN_BASELINE and now["runs"] > 0
    reasons: list[str] = []
    slower = failing = False
    if enough:
        p_now, p_before = now["p50Seconds"], before["p50Seconds"]
        if (
            now["successes"] >= MIN_DURATIONS
            and before["successes"] >= MIN_DURATIONS
            and p_now is not None
            and p_before is not None
            and p_now >= SLOWER_RATIO * p_before
            and p_now - p_before >= SLOWER_SECONDS
        ):
            slower = True
            reasons.append(
                f"the last {now['runs']} runs take {p_now:g}s at p50, "
                f"{p_now / p_before if p_before else math.inf:.1f}x the baseline's {p_before:g}s"
            )
        rate_now, rate_before = now["failureRate"] or 0.0, before["failureRate"] or 0.0
        if now["failures"] >= MIN_FAILURES and rate_now - rate_before >= FAILING_POINTS:
            failing = True
            reasons.append(
                f"{now['failures']} of the last {now['runs']} runs failed "
                f"({rate_now:.0%}), against {rate_before:.0%} before"
            )
    return {
        "slower": slower,
        "failing": failing,
        "enough": enough,
        "recent": now,
        "baseline": before,
        "reasons": reasons,
    }


def _trend_point(r: RunSample) -> dict[str, Any]:
    return {
        "name": r.name,
        "status": r.status,
        "version": r.version,
        "configuration": r.configuration,
        "startTime": rfc3339(r.start) if r.start else None,
        "endTime": rfc3339(r.end) if r.end else None,
        "durationSeconds": _round(r.seconds),
    }


def flow_stats(
    runs: Iterable[RunSample],
    *,
    since: datetime,
    until: datetime,
    last: int = DEFAULT_LAST,
    truncated: bool = False,
) -> dict[str, Any]:
    """The stats document of a flow's runs in [since, until)."""
    runs = list(runs)
    return {
        "window": {"since": rfc3339(since), "until": rfc3339(until)},
        "overall": summary(runs),
        "versions": _groups(runs, lambda r: r.version or NO_VERSION, _version_key),
        "configurations": _groups(runs, _configuration, lambda n: (n == NO_CONFIGURATION, n)),
        "trend": [_trend_point(r) for r in _ordered(runs)[-last:]] if last > 0 else [],
        "flag": flag(runs),
        "truncated": truncated,
        "definitions": {
            "recent": RECENT,
            "minBaseline": MIN_BASELINE,
            "slowerRatio": SLOWER_RATIO,
            "slowerSeconds": SLOWER_SECONDS,
            "failingPoints": FAILING_POINTS,
            "minFailures": MIN_FAILURES,
        },
    }
