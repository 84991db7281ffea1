"""Parameters: values from the run, its configuration or the default; one error per
parameter, naming it and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from flow_operator.flows.params import resolve
from flow_operator.models.flow import FlowSpec
from tests.unit.flows.conftest import flow_spec

PARAMETERS = [
    {"name": "REGION", "enum": ["eu", "us"], "default": "eu"},
    {"name": "DAY", "pattern": r"\d{4}-\d{2}-\d{2}", "required": True},
    {"name": "LIMIT", "description": "rows per batch"},
]
CONFIGURATIONS = [
    {"name": "nightly", "parameters": {"REGION": "us", "DAY": "2026-11-24"}},
    {"name": "small", "parameters": {"LIMIT": "10"}},
]
SPEC = FlowSpec.model_validate(flow_spec(parameters=PARAMETERS, configurations=CONFIGURATIONS))


@pytest.mark.parametrize(
    ("configuration", "values", "expected"),
    [
        (None, {"DAY": "2026-11-25"}, {"REGION": "eu", "DAY": "2026-11-25"}),  # default, no LIMIT
        ("nightly", None, {"REGION": "us", "DAY": "2026-11-24"}),
        ("nightly", {"REGION": "eu"}, {"REGION": "eu", "DAY": "2026-11-24"}),  # the run's wins
        ("small", {"DAY": "2026-01-01"}, {"REGION": "eu", "DAY": "2026-01-01", "LIMIT": "10"}),
    ],
)
def test_values_come_from_the_run_then_the_configuration_then_the_default(
    configuration: str | None, values: dict[str, str] | None, expected: dict[str, str]
) -> None:
    r = resolve(SPEC, configuration, values)
    assert r.ok and r.errors == ()
    assert r.values == expected
    assert list(r.values) == [
        k for k in ("REGION", "DAY", "LIMIT") if k in expected
    ]  # declared order


@pytest.mark.parametrize(
    ("configuration", "values", "errors"),
    [
        (
            None,
            {},
            [
                (
                    "parameters.DAY",
                    "parameter DAY is required: give it a value, or choose a configuration that sets it",
                )
            ],
        ),
        (
            None,
            {"DAY": "2026-11-25", "COLOR": "red"},
            [
                (
                    "parameters.COLOR",
                    "parameter COLOR is not declared by this flow (declared: REGION, DAY, LIMIT); remove it or declare it in spec.parameters",
                )
            ],
        ),
        (
            None,
            {"DAY": "2026-11-25", "REGION": "mars"},
            [("parameters.REGION", "parameter REGION must be one of eu, us; got 'mars'")],
        ),
        (
            None,
            {"DAY": "tomorrow"},
            [
                (
                    "parameters.DAY",
                    r"parameter DAY must match the pattern \d{4}-\d{2}-\d{2} (the whole value); got 'tomorrow'",
                )
            ],
        ),
        (
            None,
            {"DAY": "2026-11-25x"},
            [
                (
                    "parameters.DAY",
                    r"parameter DAY must match the pattern \d{4}-\d{2}-\d{2} (the whole value); got '2026-11-25x'",
                )
            ],
        ),
        (
            "weekly",
            {"DAY": "2026-11-25"},
            [("configuration", "configuration 'weekly' is not one of this flow's: nightly, small")],
        ),
    ],
)
def test_each_bad_parameter_is_named_with_its_fix(
    configuration: str | None, values: dict[str, str], errors: list[tuple[str, str]]
) -> None:
    r = resolve(SPEC, configuration, values)
    assert not r.ok and r.values == {}
    assert [(e.path, e.message) for e in r.errors] == errors


def test_every_problem_is_reported_at_once() -> None:
    r = resolve(SPEC, None, {"REGION": "mars", "COLOR": "red"})
    assert sorted(e.name for e in r.errors) == ["COLOR", "DAY", "REGION"]
    assert "parameter DAY is required" in r.message() and "; " in r.message()


def test_a_flow_without_parameters_refuses_any_value() -> None:
    bare = FlowSpec.model_validate(flow_spec())
    assert resolve(bare).values == {}
    (error,) = resolve(bare, None, {"X": "1"}).errors
    assert "(declared: none)" in error.message
    (error,) = resolve(bare, "nightly").errors
    assert error.message.endswith("it has none")


def test_a_configuration_that_no_longer_fits_is_reported() -> None:
    # The model refuses this Flow; a stored snapshot read without validation could carry it.
    loose: Any = FlowSpec.model_construct(
        tasks=SPEC.tasks,
        parameters=SPEC.parameters,
        configurations=[SPEC.configurations[0].model_copy(update={"parameters": {"OLD": "1"}})],  # type: ignore[index]
    )
    (error,) = [e for e in resolve(loose, "nightly", {"DAY": "2026-11-25"}).errors]
    assert error.name == "OLD" and "configuration nightly sets OLD" in error.message


def test_schedules_are_checked_before_their_first_tick() -> None:
    from flow_operator.flows.params import check_schedules

    schedules = [
        {"name": "good", "cron": "@daily", "configuration": "nightly"},
        {"name": "no-day", "cron": "@daily"},
        {
            "name": "bad-region",
            "cron": "@daily",
            "parameters": {"DAY": "2026-11-24", "REGION": "mars"},
        },
    ]
    spec = FlowSpec.model_validate(
        flow_spec(parameters=PARAMETERS, configurations=CONFIGURATIONS, schedules=schedules)
    )
    assert [e.message for e in check_schedules(spec)] == [
        "schedule no-day: parameter DAY is required: give it a value, or choose a configuration that sets it",
        "schedule bad-region: parameter REGION must be one of eu, us; got 'mars'",
    ]
    assert check_schedules(SPEC) == []
