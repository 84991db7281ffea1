"""Go's `time.Duration.String()` format, as the reference document's `age` uses it."""

from __future__ import annotations

from datetime import datetime, timedelta


def _frac(value: int, precision: int) -> str:
    """value / 10**precision, printed with trailing zeros (and a bare dot) trimmed."""
    whole, rest = divmod(value, 10**precision)
    digits = f"{rest:0{precision}d}".rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def go_duration_ns(ns: int) -> str:
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_frac(ns, 3)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_frac(ns, 6)}ms"
    hours, ns = divmod(ns, 3_600_000_000_000)
    minutes, ns = divmod(ns, 60_000_000_000)
    out = f"{hours}h" if hours else ""
    if hours or minutes:
        out += f"{minutes}m"
    return f"{sign}{out}{_frac(ns, 9)}s"


def go_duration(seconds: float) -> str:
    """Seconds as Go prints a Duration: `512.171355ms`, `1m56.138865794s`, `2h0m0s`."""
    return go_duration_ns(round(seconds * 1_000_000_000))


def since(start: datetime, now: datetime) -> str:
    """Age of something created at `start`, never negative (clocks of two hosts differ)."""
    delta = now - start
    return go_duration_ns(max(0, delta // timedelta(microseconds=1) * 1000))
