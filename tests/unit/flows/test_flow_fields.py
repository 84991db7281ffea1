"""The fields the Flow edge added: a FlowRun's `spec.flowRef` and a Flow's `spec.history`."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flow_operator.flows.versions import revision_hash
from flow_operator.models.flow import FlowSpec, History
from flow_operator.models.flowrun import FlowRef, FlowRunSpec
from tests.unit.flows.conftest import flow_spec, task


def test_a_flowrun_may_name_the_flow_and_version_it_was_made_from() -> None:
    spec = FlowRunSpec.model_validate(
        {
            "flowName": "etl",
            "version": "3",
            "tasks": [task("a")],
            "flowRef": {"name": "etl", "version": 3},
        }
    )
    assert spec.flow_ref == FlowRef(name="etl", version=3)
    assert spec.dump()["flowRef"] == {"name": "etl", "version": 3}


def test_an_inline_flowrun_has_no_flow_ref() -> None:
    spec = FlowRunSpec.model_validate({"flowName": "etl", "version": "1", "tasks": [task("a")]})
    assert spec.flow_ref is None
    assert "flowRef" not in spec.dump()


@pytest.mark.parametrize(
    "ref", [{"version": 1}, {"name": "", "version": 1}, {"name": "x", "version": 0}]
)
def test_a_bad_flow_ref_is_refused(ref: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        FlowRunSpec.model_validate(
            {"flowName": "etl", "version": "1", "tasks": [task("a")], "flowRef": ref}
        )


def test_history_limits_are_read_and_absent_means_no_limit() -> None:
    spec = FlowSpec.model_validate(flow_spec(history={"successfulKept": 5, "failedKept": 0}))
    assert spec.history == History(successful_kept=5, failed_kept=0)
    assert FlowSpec.model_validate(flow_spec()).history is None


def test_a_negative_history_limit_is_refused() -> None:
    with pytest.raises(ValidationError):
        FlowSpec.model_validate(flow_spec(history={"successfulKept": -1}))


def test_history_is_not_run_relevant_it_makes_no_new_version() -> None:
    plain = FlowSpec.model_validate(flow_spec())
    kept = FlowSpec.model_validate(flow_spec(history={"successfulKept": 2}))
    assert revision_hash(plain) == revision_hash(kept)
