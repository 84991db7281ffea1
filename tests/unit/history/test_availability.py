"""The time a Workflow spent in each color over a window (history/availability.py) against
golden files: golden/colors/<case>.in.json (the window, the last transition before it, those
inside) in, <case>.out.json beside it out. Regenerate with
`UPDATE_GOLDEN=1 pytest tests/unit/history/test_availability.py` and review the diff."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flow_operator.history.availability import time_in_color
from flow_operator.history.store import ColorHistory

GOLDEN = Path(__file__).parent / "golden" / "colors"
CASES = sorted(p.name.removesuffix(".in.json") for p in GOLDEN.glob("*.in.json"))


def test_every_case_has_its_output() -> None:
    assert sorted(p.name.removesuffix(".out.json") for p in GOLDEN.glob("*.out.json")) == CASES
    assert len(CASES) >= 5


@pytest.mark.parametrize("case", CASES)
def test_time_in_color_matches_golden(case: str) -> None:
    given = json.loads((GOLDEN / f"{case}.in.json").read_text())
    history = ColorHistory.model_validate(
        {"before": given["before"], "transitions": given["transitions"]}
    )
    since, until = (datetime.fromisoformat(given[k]) for k in ("since", "until"))
    got: dict[str, Any] = time_in_color(history, since, until).dump()
    out = GOLDEN / f"{case}.out.json"
    if os.environ.get("UPDATE_GOLDEN"):
        out.write_text(json.dumps(got, indent=2) + "\n")
    assert got == json.loads(out.read_text())
    assert sum(got["seconds"].values()) == (until - since).total_seconds()


def test_a_window_that_ends_before_it_starts_is_refused() -> None:
    at = datetime(2026, 11, 24, tzinfo=UTC)
    with pytest.raises(ValueError, match=r"until .* is before since"):
        time_in_color(ColorHistory(), at, at.replace(year=2025))
