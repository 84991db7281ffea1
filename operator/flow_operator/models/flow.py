"""The Flow resource: a versioned definition of a run, with its parameters and schedules.

A Flow holds what a FlowRun holds inline (tasks with the same schema and rules, level,
flow type, Workflow reference, deadlines), plus what makes it a definition: declared
parameters, named configurations, a concurrency policy and cron schedules. Each change
to its run-relevant part is a new immutable version (flows/versions.py decides what that
part is); the status lists the kept versions, the last run and each schedule's state.
docs/flows.md describes the resource; flows/ holds the pure decisions about it.

The CRD's schema and CEL rules refuse what the API server can judge cheaply; what CEL
cannot (a cron expression, a time zone, a regular expression, a configuration naming an
undeclared parameter) the validators here reject, and the operator marks such a Flow
Stalled with the field named.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from flow_operator.models.common import DNS1123_LABEL, ENV_NAME, Condition, KubeModel, ObjectMeta
from flow_operator.models.crd import Column, CrdDefinition
from flow_operator.models.flowrun import (
    MAX_TASKS,
    TASK_LIST,
    WEEK,
    Configuration,
    FlowType,
    Level,
    Phase,
    Seconds,
    Task,
    WorkflowRef,
    check_graph,
)

KIND = "Flow"
PLURAL = "flows"
MAX_PARAMETERS = 64  # as many as a FlowRun's configuration holds
MAX_CONFIGURATIONS = 32
MAX_SCHEDULES = 16
MAX_ENUM = 64
VALUE = Annotated[str, Field(max_length=32768)]
# Lists keyed by name: the API server refuses a repeated name and SSA merges per entry.
NAMED_LIST = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}
# The cron shorthands, spelled out in five fields (cronsim reads five or six fields only).
CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class ConcurrencyPolicy(StrEnum):
    """What a new run of the flow does when the flow already has unfinished runs."""

    ALLOW = "Allow"  # it starts; no limit
    FORBID = "Forbid"  # it is skipped while maxRunning runs are unfinished
    REPLACE = "Replace"  # the oldest unfinished run is cancelled, then it starts
    QUEUE = "Queue"  # it waits in Queued (WaitingForFlowConcurrency) for a free slot


class CatchUp(StrEnum):
    """Which ticks a schedule starts when it finds several due (after downtime)."""

    NONE = "None"  # only a tick that is on time; every missed one is skipped
    LATEST = "Latest"  # the latest due tick
    ALL = "All"  # every due tick, up to flows.schedule.MAX_CATCH_UP


class Parameter(KubeModel):
    """A value a run passes to every task as an environment variable of the same name."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!(has(self.enum) && has(self.pattern))",
                    "message": "a parameter takes either enum or pattern, not both",
                },
                {
                    "rule": "!(self.required && has(self.default))",
                    "message": "a required parameter takes no default (a default always "
                    "satisfies it): drop one of the two",
                },
                {
                    "rule": "!has(self.default) || !has(self.enum) || self.default in self.enum",
                    "message": "a parameter's default must be one of its enum values",
                    "fieldPath": ".default",
                },
            ]
        }
    )

    name: Annotated[
        str,
        Field(
            min_length=1,
            max_length=253,
            pattern=ENV_NAME,
            description="The parameter's name, also the environment variable the tasks see.",
        ),
    ]
    description: Annotated[
        str, Field(max_length=1024, description="What the value means, shown in the Run form.")
    ] = ""
    default: Annotated[
        str | None,
        Field(
            max_length=32768, description="The value when neither run nor configuration sets it."
        ),
    ] = None
    required: Annotated[
        bool,
        Field(description="A run must set it, itself or through its configuration."),
    ] = False
    enum: Annotated[
        list[Annotated[str, Field(max_length=1024)]] | None,
        Field(
            min_length=1,
            max_length=MAX_ENUM,
            description="The values allowed; any other is refused.",
            json_schema_extra={"x-kubernetes-list-type": "set"},
        ),
    ] = None
    pattern: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=1024,
            description="A regular expression (Python syntax) the whole value must match.",
        ),
    ] = None

    @model_validator(mode="after")
    def _rules(self) -> Parameter:
        # The CRD enforces the first three with CEL; the pattern is Python's, so only the
        # operator can compile it and match the default against it.
        if self.enum is not None and self.pattern is not None:
            raise ValueError(f"parameter {self.name}: takes either enum or pattern, not both")
        if self.required and self.default is not None:
            raise ValueError(f"parameter {self.name}: a required parameter takes no default")
        if self.default is not None and self.enum is not None and self.default not in self.enum:
            raise ValueError(
                f"parameter {self.name}: default {self.default!r} is not one of its enum values"
            )
        if self.pattern is not None:
            try:
                compiled = re.compile(self.pattern)
            except re.error as e:
                raise ValueError(
                    f"parameter {self.name}: pattern is not a regular expression: {e}"
                ) from None
            if self.default is not None and not compiled.fullmatch(self.default):
                raise ValueError(
                    f"parameter {self.name}: default {self.default!r} does not match its "
                    f"pattern {self.pattern}"
                )
        return self


class Concurrency(KubeModel):
    """How many runs of the flow may be unfinished at once, and what a new one does."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.policy != 'Allow' || !has(self.maxRunning)",
                    "message": "maxRunning limits Forbid, Replace and Queue; Allow has no limit",
                    "fieldPath": ".maxRunning",
                }
            ]
        }
    )

    policy: Annotated[
        ConcurrencyPolicy,
        Field(description="Allow, Forbid, Replace or Queue: what a run beyond maxRunning does."),
    ] = ConcurrencyPolicy.ALLOW
    max_running: Annotated[
        int | None,
        Field(
            ge=1,
            le=1000,
            description="How many runs may be unfinished at once (1 when absent); not with Allow.",
        ),
    ] = None

    @model_validator(mode="after")
    def _limit(self) -> Concurrency:
        if self.policy is ConcurrencyPolicy.ALLOW and self.max_running is not None:
            raise ValueError("maxRunning limits Forbid, Replace and Queue; Allow has no limit")
        return self

    def limit(self) -> int | None:
        """The number of unfinished runs allowed; None for no limit (Allow)."""
        if self.policy is ConcurrencyPolicy.ALLOW:
            return None
        return self.max_running or 1


def expand_cron(cron: str) -> str:
    """A cron shorthand (`@daily`) in five fields; anything else as written."""
    text = " ".join(cron.split())
    return CRON_MACROS.get(text.lower(), text)


def check_cron(cron: str) -> str:
    """The five-field expression; a ValueError that says what is wrong otherwise."""
    fields = expand_cron(cron)
    if fields.startswith("@"):
        raise ValueError(f"unknown cron shorthand {cron!r}: use one of {', '.join(CRON_MACROS)}")
    if len(fields.split()) != 5:
        raise ValueError(
            f"cron {cron!r} must have five fields (minute hour day-of-month month day-of-week)"
        )
    try:
        CronSim(fields, datetime(2026, 1, 1, tzinfo=UTC))
    except CronSimError as e:
        raise ValueError(f"cron {cron!r} is not a cron expression: {e}") from None
    return fields


def check_time_zone(name: str) -> ZoneInfo:
    """The IANA time zone; a ValueError naming it otherwise."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"timeZone {name!r} is not an IANA time zone (for example Europe/Berlin or UTC)"
        ) from None


class Schedule(KubeModel):
    """A cron schedule: each tick creates a FlowRun with run type Scheduled."""

    name: Annotated[
        str,
        Field(
            min_length=1,
            max_length=63,
            pattern=DNS1123_LABEL,
            description="The schedule's name, part of its runs' names and labels.",
        ),
    ]
    cron: Annotated[
        str,
        Field(
            min_length=1,
            max_length=128,
            description="Five cron fields (minute hour day-of-month month day-of-week) or a "
            "shorthand: @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually.",
        ),
    ]
    time_zone: Annotated[
        str,
        Field(
            min_length=1,
            max_length=64,
            description="The IANA time zone the cron fields are read in (docs/flows.md: DST).",
        ),
    ] = "UTC"
    configuration: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=253,
            description="The name of one of spec.configurations the tick's run uses.",
        ),
    ] = None
    parameters: Annotated[
        dict[str, VALUE] | None,
        Field(
            max_length=MAX_PARAMETERS,
            description="Parameter values for the tick's run, over the configuration's.",
        ),
    ] = None
    suspend: Annotated[bool, Field(description="True: this schedule starts no runs.")] = False
    starting_deadline_seconds: Annotated[
        int | None,
        Field(
            ge=1,
            le=WEEK,
            description="A tick not started within this many seconds of its time is missed.",
        ),
    ] = None
    catch_up: Annotated[
        CatchUp,
        Field(description="Which due ticks start after downtime: None, Latest or All (bounded)."),
    ] = CatchUp.LATEST

    @model_validator(mode="after")
    def _cron_and_zone(self) -> Schedule:
        try:
            check_cron(self.cron)
            check_time_zone(self.time_zone)
        except ValueError as e:
            raise ValueError(f"schedule {self.name}: {e}") from None
        return self


class History(KubeModel):
    """How many finished runs of the flow stay in the cluster; older ones are deleted once
    the run store has archived them (their record and logs stay readable there)."""

    successful_kept: Annotated[
        int | None,
        Field(
            ge=0,
            le=10000,
            description="Completed runs kept, the newest by end time; absent: no limit.",
        ),
    ] = None
    failed_kept: Annotated[
        int | None,
        Field(
            ge=0,
            le=10000,
            description="Failed, Crashed and Cancelled runs kept, the newest by end time; "
            "absent: no limit.",
        ),
    ] = None


class FlowSpec(KubeModel):
    """A flow's definition: what each of its runs does, and when runs start by themselves."""

    tasks: Annotated[
        list[Task],
        Field(
            min_length=1,
            max_length=MAX_TASKS,
            json_schema_extra=TASK_LIST,
            description="The steps of each run, with the same schema and rules as a FlowRun's.",
        ),
    ]
    level: Annotated[Level, Field(description="The flow's access level.")] = Level.USER
    flow_type: Annotated[
        FlowType,
        Field(description="standalone, or sub-flow: run only by a parent run, never scheduled."),
    ] = FlowType.STANDALONE
    workflow_ref: Annotated[
        WorkflowRef | None,
        Field(description="A Workflow in the namespace whose services the tasks use."),
    ] = None
    active_deadline_seconds: Annotated[
        Seconds | None,
        Field(description="Each run's deadline, counted from the moment it is Deployed."),
    ] = None
    queue_timeout_seconds: Annotated[
        Seconds | None,
        Field(description="How long a run may wait in Queued (the FlowRun default when absent)."),
    ] = None
    parameters: Annotated[
        list[Parameter] | None,
        Field(
            max_length=MAX_PARAMETERS,
            json_schema_extra=NAMED_LIST,
            description="The parameters a run may or must set.",
        ),
    ] = None
    configurations: Annotated[
        list[Configuration] | None,
        Field(
            max_length=MAX_CONFIGURATIONS,
            json_schema_extra=NAMED_LIST,
            description="Named sets of parameter values a run can choose by name.",
        ),
    ] = None
    concurrency: Annotated[
        Concurrency,
        Field(description="How many runs may be unfinished at once, and what a new one does."),
    ] = Field(default_factory=Concurrency)
    schedules: Annotated[
        list[Schedule] | None,
        Field(
            max_length=MAX_SCHEDULES,
            json_schema_extra=NAMED_LIST,
            description="Cron schedules; each tick creates a Scheduled run.",
        ),
    ] = None
    revision_history_limit: Annotated[
        int,
        Field(
            ge=1,
            le=1000,
            description="How many versions are kept, the current one included; a version an "
            "unfinished run uses is kept on top.",
        ),
    ] = 10
    suspend: Annotated[bool, Field(description="True: no schedule of this flow starts runs.")] = (
        False
    )
    history: Annotated[
        History | None,
        Field(description="How many finished runs stay in the cluster (absent: no limit)."),
    ] = None

    @model_validator(mode="after")
    def _rules(self) -> FlowSpec:
        # The CRD enforces the schedule rules with CEL; this keeps the pure core honest and
        # checks what CEL cannot afford (names against names, maps against lists).
        check_graph(self.tasks, "spec.tasks")
        declared = {p.name: p for p in self.parameters or ()}
        for c in self.configurations or ():
            unknown = sorted(set(c.parameters or {}) - set(declared))
            if unknown:
                raise ValueError(
                    f"spec.configurations[{c.name}] sets undeclared parameters: "
                    f"{', '.join(unknown)} (declare them in spec.parameters)"
                )
        configurations = {c.name for c in self.configurations or ()}
        for s in self.schedules or ():
            if s.configuration is not None and s.configuration not in configurations:
                raise ValueError(
                    f"spec.schedules[{s.name}].configuration {s.configuration!r} is not one "
                    "of spec.configurations"
                )
            unknown = sorted(set(s.parameters or {}) - set(declared))
            if unknown:
                raise ValueError(
                    f"spec.schedules[{s.name}].parameters sets undeclared parameters: "
                    f"{', '.join(unknown)} (declare them in spec.parameters)"
                )
        if self.flow_type is FlowType.SUB_FLOW and self.schedules:
            raise ValueError("spec.schedules: a sub-flow runs under a parent run only")
        return self


# CEL rules the API server enforces at admission (kept next to the model they guard).
SPEC_RULES: list[dict[str, str]] = [
    {
        "rule": "self.tasks.all(t, !has(t.dependsOn)"
        " || t.dependsOn.all(d, self.tasks.exists(u, u.name == d)))",
        "message": "spec.tasks[].dependsOn must name tasks of this flow",
        "fieldPath": ".tasks",
    },
    {
        "rule": "!has(self.schedules) || self.schedules.all(s, !has(s.configuration)"
        " || (has(self.configurations)"
        " && self.configurations.exists(c, c.name == s.configuration)))",
        "message": "spec.schedules[].configuration must name one of spec.configurations",
        "fieldPath": ".schedules",
    },
    {
        "rule": "self.flowType != 'sub-flow' || !has(self.schedules)",
        "message": "spec.schedules: a sub-flow runs under a parent run only",
        "fieldPath": ".schedules",
    },
]


class FlowVersion(KubeModel):
    """One kept version: its number, its revision hash and when it was made."""

    version: Annotated[int, Field(description="The version number: 1, 2, 3...")]
    revision: Annotated[str, Field(description="The hash of the version's run-relevant spec.")]
    revision_name: Annotated[
        str | None, Field(description="The ControllerRevision that holds its snapshot.")
    ] = None
    creation_time: Annotated[str, Field(description="When the version was made (RFC 3339).")]


class LastRun(KubeModel):
    """The flow's most recent run and where it stands."""

    name: Annotated[str, Field(description="The FlowRun's name.")]
    version: Annotated[int | None, Field(description="The flow version it runs.")] = None
    phase: Annotated[Phase | None, Field(description="Its phase (the LAST STATUS column).")] = None
    run_type: Annotated[str | None, Field(description="How it came to be (Scheduled...).")] = None
    creation_time: Annotated[str | None, Field(description="When it was created.")] = None


class ScheduleStatus(KubeModel):
    """One schedule's state: its last and next ticks and what it missed."""

    name: Annotated[str, Field(description="The schedule's name in spec.schedules.")]
    last_schedule_time: Annotated[
        str | None, Field(description="The latest tick dealt with, started or missed.")
    ] = None
    last_run: Annotated[
        str | None, Field(description="The FlowRun of the latest started tick.")
    ] = None
    next_schedule_time: Annotated[
        str | None, Field(description="The next tick; absent while suspended.")
    ] = None
    missed: Annotated[
        int, Field(ge=0, description="Ticks not started (downtime past the catch-up rule).")
    ] = 0
    suspended: Annotated[
        bool, Field(description="Whether the schedule was suspended when last reconciled.")
    ] = False


class FlowStatus(KubeModel):
    """What the operator observed: versions, the last run, each schedule's state."""

    observed_generation: Annotated[
        int | None, Field(description="The generation this status describes.")
    ] = None
    conditions: Annotated[
        list[Condition] | None, Field(description="Ready, Reconciling and Stalled (kstatus).")
    ] = None
    version: Annotated[int | None, Field(description="The current version's number.")] = None
    revision: Annotated[str | None, Field(description="The current version's revision hash.")] = (
        None
    )
    versions: Annotated[
        list[FlowVersion], Field(description="The kept versions, oldest first.")
    ] = Field(default_factory=list)
    last_run: Annotated[LastRun | None, Field(description="The most recent run.")] = None
    schedules: Annotated[
        list[ScheduleStatus], Field(description="Each schedule's state, in spec order.")
    ] = Field(default_factory=list)
    next_schedule_time: Annotated[
        str | None, Field(description="The earliest next tick of any active schedule.")
    ] = None
    schedule_summary: Annotated[
        str | None,
        Field(description="The schedules' names, suspended ones marked: the SCHEDULES column."),
    ] = None


class Flow(BaseModel):
    """A whole Flow object as read from the API (metadata, spec, status)."""

    model_config = ConfigDict(extra="ignore")

    metadata: ObjectMeta
    spec: FlowSpec
    status: FlowStatus | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Flow:
        """Parse an API body; an unreadable status is dropped (it is recomputed from the
        ControllerRevisions and the runs), an unreadable spec is an error."""
        data = dict(body)
        status = data.pop("status", None)
        flow = cls.model_validate(data)
        if status:
            try:
                flow.status = FlowStatus.model_validate(status)
            except ValueError:
                flow.status = None
        return flow


CRD = CrdDefinition(
    kind=KIND,
    plural=PLURAL,
    short_names=("fl",),
    spec_model=FlowSpec,
    status_model=FlowStatus,
    columns=(
        Column("Version", ".status.version", type="integer"),
        Column("Level", ".spec.level"),
        # A column shows the first value of a list only, so the status spells them out.
        Column("Schedules", ".status.scheduleSummary"),
        Column("Last Run", ".status.lastRun.name"),
        Column("Last Status", ".status.lastRun.phase"),
        Column("Next Run", ".status.nextScheduleTime", description="the earliest next tick"),
        Column("Age", ".metadata.creationTimestamp", type="date"),
    ),
    spec_rules=tuple(SPEC_RULES),
)
