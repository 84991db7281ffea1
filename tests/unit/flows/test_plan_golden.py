"""The Flow reconciler's decisions (flows/plan.py) and the Run action's (flows/manual.py),
against golden files.

Each scenario is `golden/<plan|run>/<name>.in.json` (a Flow body, its runs as records, the
time, and for the Run action the request) beside `<name>.out.json`, what the decision must
be. After an intended change, regenerate the outputs with
`UPDATE_GOLDEN=1 pytest tests/unit/flows/test_plan_golden.py` and review the diff.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flow_operator.flows.manual import RunRequest, plan_run
from flow_operator.flows.plan import plan
from flow_operator.flows.runs import FlowRunRecord
from flow_operator.history.retention import RetentionPolicy
from flow_operator.models.flow import Flow, FlowSpec

GOLDEN = Path(__file__).parent / "golden"
PLANS = sorted(p.name.removesuffix(".in.json") for p in (GOLDEN / "plan").glob("*.in.json"))
RUNS = sorted(p.name.removesuffix(".in.json") for p in (GOLDEN / "run").glob("*.in.json"))


def _load(kind: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GOLDEN / kind / f"{name}.in.json").read_text())
    return data


def _now(doc: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(doc["now"].replace("Z", "+00:00"))


def _runs(doc: dict[str, Any]) -> list[FlowRunRecord]:
    return [FlowRunRecord.model_validate(r) for r in doc.get("runs", [])]


def _retention(doc: dict[str, Any]) -> RetentionPolicy:
    raw = dict(doc.get("retention") or {})
    if "ttl" in raw:
        raw["ttl"] = timedelta(seconds=raw["ttl"])
    return RetentionPolicy.model_validate(raw)


def decide_plan(doc: dict[str, Any]) -> dict[str, Any]:
    result = plan(Flow.from_body(doc["flow"]), _runs(doc), _now(doc), _retention(doc))
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


def decide_run(doc: dict[str, Any]) -> dict[str, Any]:
    definitions = {
        int(k): FlowSpec.model_validate(v) for k, v in (doc.get("definitions") or {}).items()
    }
    result = plan_run(
        Flow.from_body(doc["flow"]),
        RunRequest.model_validate(doc["request"]),
        definitions=definitions,
        runs=_runs(doc),
        now=_now(doc),
        suffix=doc["suffix"],
    )
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


def _check(kind: str, name: str, got: dict[str, Any]) -> None:
    path = GOLDEN / kind / f"{name}.out.json"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(json.dumps(got, indent=2) + "\n")
    assert got == json.loads(path.read_text())


def test_every_output_has_an_input() -> None:
    for kind in ("plan", "run"):
        ins = {p.name.removesuffix(".in.json") for p in (GOLDEN / kind).glob("*.in.json")}
        outs = {p.name.removesuffix(".out.json") for p in (GOLDEN / kind).glob("*.out.json")}
        assert outs == ins, kind
    assert PLANS and RUNS


@pytest.mark.parametrize("name", PLANS)
def test_plan_matches_golden(name: str) -> None:
    doc = _load("plan", name)
    got = decide_plan(doc)
    assert got == decide_plan(doc), "the same inputs must give the same plan"
    _check("plan", name, got)


@pytest.mark.parametrize("name", RUNS)
def test_run_action_matches_golden(name: str) -> None:
    _check("run", name, decide_run(_load("run", name)))
