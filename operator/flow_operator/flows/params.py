"""A run's parameters, resolved from the Flow's declarations, a configuration and values.

Each value comes from the first that sets it: the run's own values, then its named
configuration, then the parameter's default. Every problem is reported at once, one
error per parameter, each naming the parameter and what would fix it, so a 422 answer or
an InvalidSpec message lists them all:
- a value or a configuration for an undeclared parameter;
- a required parameter that nothing sets;
- a value outside the parameter's enum, or not matching its pattern (a Python regular
  expression, matched against the whole value).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from flow_operator.models.flow import FlowSpec, Parameter
from flow_operator.models.flowrun import Configuration


@dataclass(frozen=True)
class ParameterError:
    """One problem: the parameter (or `configuration`) it is about, and what to do."""

    name: str
    message: str

    @property
    def path(self) -> str:
        """Where the problem sits in a run request: `parameters.<name>` or `configuration`."""
        return "configuration" if self.name == "configuration" else f"parameters.{self.name}"


@dataclass(frozen=True)
class Resolution:
    """The values a run gets (in declaration order), or the errors that stop it."""

    values: dict[str, str] = field(default_factory=dict)
    configuration: str | None = None
    errors: tuple[ParameterError, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors

    def message(self) -> str:
        """The errors on one line, for a status message."""
        return "; ".join(e.message for e in self.errors)


def _check(p: Parameter, value: str) -> str | None:
    if p.enum is not None and value not in p.enum:
        return f"parameter {p.name} must be one of {', '.join(p.enum)}; got {value!r}"
    if p.pattern is not None and not re.fullmatch(p.pattern, value):
        return (
            f"parameter {p.name} must match the pattern {p.pattern} (the whole value); "
            f"got {value!r}"
        )
    return None


def resolve(
    spec: FlowSpec,
    configuration: str | None = None,
    values: Mapping[str, str] | None = None,
) -> Resolution:
    """The run's parameters from the flow's declarations, a configuration and its values."""
    declared = {p.name: p for p in spec.parameters or ()}
    known = ", ".join(declared) or "none"
    errors: list[ParameterError] = []
    chosen: Configuration | None = None
    if configuration is not None:
        configs = {c.name: c for c in spec.configurations or ()}
        chosen = configs.get(configuration)
        if chosen is None:
            errors.append(
                ParameterError(
                    "configuration",
                    f"configuration {configuration!r} is not one of this flow's: "
                    f"{', '.join(configs) or 'it has none'}",
                )
            )
    given = dict(values or {})
    from_config = dict(chosen.parameters or {}) if chosen else {}
    for name in given:
        if name not in declared:
            errors.append(
                ParameterError(
                    name,
                    f"parameter {name} is not declared by this flow (declared: {known}); "
                    "remove it or declare it in spec.parameters",
                )
            )
    for name in from_config:
        if name not in declared:
            errors.append(
                ParameterError(
                    name,
                    f"configuration {configuration} sets {name}, which this flow does not "
                    f"declare (declared: {known})",
                )
            )
    resolved: dict[str, str] = {}
    for name, p in declared.items():
        value = given.get(name, from_config.get(name, p.default))
        if value is None:
            if p.required:
                errors.append(
                    ParameterError(
                        name,
                        f"parameter {name} is required: give it a value, or choose a "
                        "configuration that sets it",
                    )
                )
            continue
        problem = _check(p, value)
        if problem:
            errors.append(ParameterError(name, problem))
        resolved[name] = value
    if errors:
        return Resolution(configuration=configuration, errors=tuple(errors))
    return Resolution(values=resolved, configuration=configuration)


def check_schedules(spec: FlowSpec) -> list[ParameterError]:
    """The problems each schedule's runs would meet, found before any tick: a schedule's
    configuration and values resolved as a tick will resolve them. The reconciler marks
    the Flow Stalled with these, rather than failing every tick's run."""
    found: list[ParameterError] = []
    for s in spec.schedules or ():
        for e in resolve(spec, s.configuration, s.parameters).errors:
            found.append(ParameterError(e.name, f"schedule {s.name}: {e.message}"))
    return found
