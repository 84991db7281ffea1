"""FlowRun bodies, as the API server returns them, mapped to the records history keeps,
against golden files: golden/record/<case>.in.json in, <case>.out.json beside it out.
After an intended change, regenerate with
`UPDATE_GOLDEN=1 pytest tests/unit/history/test_record_golden.py` and review the diff."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from flow_operator.history.record import record_of
from flow_operator.history.store import InvalidRecord, RunRecord

GOLDEN = Path(__file__).parent / "golden" / "record"
CASES = sorted(p.name.removesuffix(".in.json") for p in GOLDEN.glob("*.in.json"))


def test_every_case_has_its_output() -> None:
    assert sorted(p.name.removesuffix(".out.json") for p in GOLDEN.glob("*.out.json")) == CASES
    assert len(CASES) >= 5


@pytest.mark.parametrize("case", CASES)
def test_record_matches_golden(case: str) -> None:
    body = json.loads((GOLDEN / f"{case}.in.json").read_text())
    got = record_of(body).dump()
    out = GOLDEN / f"{case}.out.json"
    if os.environ.get("UPDATE_GOLDEN"):
        out.write_text(json.dumps(got, indent=2) + "\n")
    assert got == json.loads(out.read_text())
    # What is stored reads back as the same record.
    assert RunRecord.model_validate(got).dump() == got


def test_a_record_reads_its_revision_and_order() -> None:
    body = json.loads((GOLDEN / "completed-dag.in.json").read_text())
    record = record_of(body)
    assert record.revision == (4, 48213)
    assert record.sort_time == record.start_time and record.finished
    fresh = record_of(json.loads((GOLDEN / "new-without-status.in.json").read_text()))
    assert fresh.sort_time == fresh.created and fresh.revision == (0, 777)
    assert not fresh.finished


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        ("uid", r"no metadata\.uid"),
        ("namespace", r"no metadata\.namespace"),
        ("name", r"no metadata\.name"),
        ("creationTimestamp", r"no metadata\.creationTimestamp"),
    ],
)
def test_a_body_without_what_a_record_needs_is_refused(drop: str, message: str) -> None:
    body = json.loads((GOLDEN / "completed-dag.in.json").read_text())
    del body["metadata"][drop]
    with pytest.raises(InvalidRecord, match=message):
        record_of(body)
    with pytest.raises(InvalidRecord, match=r"no metadata\.uid"):
        record_of({})
