"""A FlowRun that names its Flow (flows/reference.py): the version resolved (the current one,
or the one named, from its ControllerRevision), the parameters judged by that version, the
definition recorded; what can never start is InvalidSpec with the field and parameter
named; a Flow not seen yet is waited for, briefly."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from flow_operator.flows.reference import (
    FLOW_GRACE,
    Invalid,
    Resolved,
    Waiting,
    effective,
    needs_resolving,
    resolve_ref,
    to_read,
)
from flow_operator.flows.versions import revision_hash, revision_name
from flow_operator.models.flow import Flow, FlowSpec, FlowStatus, FlowVersion
from flow_operator.models.flowrun import FlowRun, FlowRunSpec
from flow_operator.objects.times import rfc3339
from tests.unit.flows.conftest import flow_spec, task, utc

NOW = utc("2026-11-24 12:00")
PARAMS = [
    {"name": "REGION", "enum": ["eu", "us"], "default": "eu"},
    {"name": "DAY", "pattern": r"\d{4}-\d{2}-\d{2}", "required": True},
]
V1 = FlowSpec.model_validate(flow_spec(tasks=[task("old")], parameters=PARAMS))
V2 = FlowSpec.model_validate(
    flow_spec(
        parameters=PARAMS,
        configurations=[{"name": "nightly", "parameters": {"REGION": "us"}}],
        queueTimeoutSeconds=120,
    )
)


def _version(n: int, spec: FlowSpec) -> FlowVersion:
    h = revision_hash(spec)
    return FlowVersion(
        version=n, revision=h, revision_name=revision_name("etl", n, h), creation_time=rfc3339(NOW)
    )


def _flow(spec: FlowSpec = V2, versions: tuple[int, ...] = (1, 2), **extra: Any) -> Flow:
    kept = [_version(n, {1: V1, 2: V2}[n]) for n in versions]
    status = FlowStatus(version=max(versions), versions=kept) if versions else None
    body = {"metadata": {"name": "etl", "namespace": "ml"}, "spec": spec.dump()}
    return Flow.model_validate({**body, "status": status.dump() if status else None, **extra})


def _run(created: datetime = NOW - 2 * FLOW_GRACE, **ref: Any) -> FlowRun:
    return FlowRun.model_validate(
        {
            "metadata": {
                "name": "r1",
                "namespace": "ml",
                "creationTimestamp": rfc3339(created),
            },
            "spec": {"flowRef": {"name": "etl", **ref}},
        }
    )


def test_a_flow_ref_run_needs_no_flow_name_version_or_tasks() -> None:
    run = _run(version=1)
    assert (run.spec.flow_name, run.spec.version, run.spec.tasks) == ("etl", "1", None)
    assert _run().spec.version == "latest"
    assert needs_resolving(run)
    with pytest.raises(ValueError, match=r"spec\.tasks is required unless spec\.flowRef"):
        FlowRunSpec.model_validate({"flowName": "etl", "version": "1"})


def test_latest_is_the_current_version_with_its_values_and_configuration() -> None:
    out = resolve_ref(_run(configuration="nightly", parameters={"DAY": "2026-11-24"}),
                      _flow(), {}, NOW)  # fmt: skip
    assert isinstance(out, Resolved), out
    d = out.definition
    assert (d.version, d.revision, d.flow_name) == (2, revision_hash(V2), "etl")
    assert [t.name for t in d.tasks] == ["extract", "load"]
    assert d.configuration is not None and d.configuration.name == "nightly"
    assert d.configuration.parameters == {"REGION": "us", "DAY": "2026-11-24"}
    assert d.queue_timeout_seconds == 120


def test_an_older_version_comes_from_its_revision_and_is_judged_by_its_declarations() -> None:
    flow = _flow()
    old, latest = _run(version=1).spec.flow_ref, _run().spec.flow_ref
    assert old is not None and latest is not None
    wanted = to_read(old, flow)
    assert wanted is not None and wanted.version == 1
    assert to_read(latest, flow) is None  # the Flow's own spec is the current version
    out = resolve_ref(_run(version=1, parameters={"DAY": "2026-01-01"}), flow, {1: V1}, NOW)
    assert isinstance(out, Resolved) and [t.name for t in out.definition.tasks] == ["old"]
    assert out.definition.configuration is not None
    assert out.definition.configuration.name == "custom"
    unread = resolve_ref(_run(version=1, parameters={"DAY": "2026-01-01"}), flow, {}, NOW)
    assert isinstance(unread, Invalid) and "could not be read" in unread.message


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ({"parameters": {"DAY": "2026-11-24", "COLOR": "red"}},
         "spec.flowRef.parameters.COLOR: parameter COLOR is not declared by this flow"),
        ({}, "spec.flowRef.parameters.DAY: parameter DAY is required"),
        ({"parameters": {"DAY": "tomorrow"}},
         "spec.flowRef.parameters.DAY: parameter DAY must match the pattern"),
        ({"parameters": {"DAY": "2026-11-24", "REGION": "mars"}},
         "spec.flowRef.parameters.REGION: parameter REGION must be one of eu, us; got 'mars'"),
        ({"configuration": "weekly", "parameters": {"DAY": "2026-11-24"}},
         "spec.flowRef.configuration: configuration 'weekly' is not one of this flow's"),
        ({"version": 7, "parameters": {"DAY": "2026-11-24"}},
         "spec.flowRef.version: version 7 is not kept (kept: 1, 2)"),
    ],
)  # fmt: skip
def test_what_can_never_start_is_invalid_with_its_field(ref: dict[str, Any], expected: str) -> None:
    out = resolve_ref(_run(**ref), _flow(), {}, NOW)
    assert isinstance(out, Invalid) and expected in out.message, out


def test_a_flow_not_seen_yet_is_waited_for_then_refused() -> None:
    young = _run(created=NOW - FLOW_GRACE / 2)
    assert isinstance(resolve_ref(young, None, {}, NOW), Waiting)
    assert isinstance(resolve_ref(young, _flow(versions=()), {}, NOW), Waiting)
    old = resolve_ref(_run(), None, {}, NOW)
    assert isinstance(old, Invalid)
    assert old.message == "spec.flowRef.name: flow etl does not exist in namespace ml"
    assert isinstance(resolve_ref(_run(), _flow(versions=()), {}, NOW), Invalid)


def test_a_sub_flow_is_not_run_by_reference() -> None:
    sub = FlowSpec.model_validate(flow_spec(flowType="sub-flow"))
    out = resolve_ref(_run(), _flow(sub, versions=()), {}, NOW)
    assert isinstance(out, Invalid) and "sub-flow" in out.message


def test_the_effective_run_carries_the_definition_and_its_own_settings_win() -> None:
    out = resolve_ref(_run(parameters={"DAY": "2026-11-24"}), _flow(), {}, NOW)
    assert isinstance(out, Resolved)
    run = _run()
    mine = run.model_copy(
        update={"spec": run.spec.model_copy(update={"active_deadline_seconds": 60})}
    )
    spec = effective(mine, out.definition).spec
    assert [t.name for t in spec.steps] == ["extract", "load"]
    assert (spec.version, spec.active_deadline_seconds, spec.queue_timeout_seconds) == (
        "2",
        60,
        120,
    )
    assert spec.configuration is not None and spec.configuration.parameters == {
        "REGION": "eu",
        "DAY": "2026-11-24",
    }
