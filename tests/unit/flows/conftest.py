"""Fixtures of the Flow core's tests: instants written as text, and a clock the test moves.

Nothing here sleeps: every function under test takes `now`, and the clock only says what
`now` is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

BERLIN = ZoneInfo("Europe/Berlin")


def utc(text: str) -> datetime:
    """`2026-10-25 00:30` (or with seconds) as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def berlin(text: str, fold: int = 0) -> datetime:
    """A Berlin wall time as an aware datetime (fold=1: the second pass of a repeated hour)."""
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN, fold=fold)


@dataclass
class Clock:
    """The injected `now`: starts where the test says and moves only when told."""

    now: datetime

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    def set(self, when: datetime) -> datetime:
        self.now = when
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(utc("2026-11-24 12:00"))


def task(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox:1.36", **extra}


def flow_spec(**fields: Any) -> dict[str, Any]:
    """A valid Flow spec (manifest spelling) with `fields` added or, as None, removed."""
    spec: dict[str, Any] = {"tasks": [task("extract"), task("load", dependsOn=["extract"])]}
    for key, value in fields.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    return spec
