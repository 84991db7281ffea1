"""The FlowRun resource: one run of a flow's tasks, each a Job (or a child run), in a DAG.

The spec carries the columns of the seed's Flow Run Status page (flow name, version,
level, run type, configuration, flow type) and what running needs: tasks with their
containers, `dependsOn`, timeouts and retries, a run deadline, a queue timeout and a
cancel request. The status is the page's row (phase, start, end, duration, message) with
its tasks, plus kstatus conditions and the history of phase transitions. docs/flowrun.md
describes both; flowrun/machine.py moves a run through its phases.

The CRD's schema and CEL rules refuse what they can at admission; what CEL cannot judge
(a cycle in `dependsOn`, parameter names, a sub-flow's own task graph) the validators
here reject, and the operator marks such a run Failed and Stalled.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flow_operator.models.common import (
    DNS1123_LABEL,
    ENV_NAME,
    Args,
    Command,
    Condition,
    EnvList,
    Image,
    KubeModel,
    ObjectMeta,
    Resources,
)
from flow_operator.models.crd import Column, CrdDefinition
from flow_operator.models.security import ContainerSecurity, PodSecurity

KIND = "FlowRun"
PLURAL = "flowruns"
MAX_TASKS = 50
MAX_DEPENDENCIES = 20
WEEK = 7 * 24 * 3600
# spec.version of a flowRef run that names no version, until it is resolved.
LATEST = "latest"


# The seed's six states, and Cancelled for a run stopped by its cancel request.
class Phase(StrEnum):
    """Where the run is; Completed, Failed, Crashed and Cancelled are final."""

    SUBMITTED = "Submitted"
    QUEUED = "Queued"
    DEPLOYED = "Deployed"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CRASHED = "Crashed"
    CANCELLED = "Cancelled"


TERMINAL = frozenset({Phase.COMPLETED, Phase.FAILED, Phase.CRASHED, Phase.CANCELLED})


class TaskPhase(StrEnum):
    PENDING = "Pending"  # waiting for its dependencies, or for its Job to show up
    RUNNING = "Running"  # its Job (or child run) exists and has not finished
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"  # non-zero exit after its retries, its timeout, a refused Job
    CRASHED = "Crashed"  # OOMKilled, evicted, unschedulable, over quota
    CANCELLED = "Cancelled"  # stopped while running because the run ended
    SKIPPED = "Skipped"  # never started because the run ended first


class Level(StrEnum):
    USER = "user"
    ORGANIZATION = "organization"
    PLATFORM = "platform"


# The seed names the column but its list of options is cut off; docs/flowrun.md says why
# these four.
class RunType(StrEnum):
    """Who started the run: a person, a schedule, an event or parent run, or a program."""

    MANUAL = "Manual"  # someone pressed Run (dashboard rerun, kubectl)
    SCHEDULED = "Scheduled"  # a schedule created it
    TRIGGERED = "Triggered"  # an event or a parent run created it (every sub-flow run)
    API = "API"  # a program, through the HTTP API


class FlowType(StrEnum):
    STANDALONE = "standalone"
    SUB_FLOW = "sub-flow"


TaskName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS1123_LABEL)]
FlowName = Annotated[str, Field(min_length=1, max_length=253)]
Version = Annotated[str, Field(min_length=1, max_length=64)]
Seconds = Annotated[int, Field(ge=1, le=WEEK)]
# Tasks are keyed by name, so the API server refuses duplicates and SSA merges per task.
TASK_LIST = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}


class Configuration(KubeModel):
    """A named set of parameters; every task gets each parameter as an environment variable."""

    name: Annotated[
        str, Field(min_length=1, max_length=253, description="The configuration's name.")
    ]
    parameters: Annotated[
        dict[str, Annotated[str, Field(max_length=32768)]] | None,
        Field(
            max_length=64,
            description="Parameter name to value (at most 64); each reaches every task as an "
            "environment variable, under a task's own env.",
        ),
    ] = None

    @model_validator(mode="after")
    def _parameter_names(self) -> Configuration:
        # CEL can't bound map keys cheaply enough to match them, so the model checks them.
        bad = sorted(
            k for k in self.parameters or {} if len(k) > 253 or not re.fullmatch(ENV_NAME, k)
        )
        if bad:
            raise ValueError(
                f"configuration.parameters names must be environment variable names: "
                f"{', '.join(bad)}"
            )
        return self


class WorkflowRef(KubeModel):
    """A Workflow in the run's namespace whose services the tasks use."""

    name: Annotated[str, Field(min_length=1, max_length=253, description="The Workflow's name.")]


class TaskBase(KubeModel):
    """One step of a flow; with an image, it runs as a Job."""

    name: Annotated[
        TaskName,
        Field(description="The task's name (a DNS label, unique in the run): part of its Job's."),
    ]
    version: Annotated[Version | None, Field(description="The task's version, for the record.")] = (
        None
    )
    image: Image | None = None
    command: Command = None
    args: Args = None
    env: EnvList = None
    resources: Resources | None = None
    pod_security_context: PodSecurity = None
    container_security_context: ContainerSecurity = None
    depends_on: Annotated[
        list[TaskName] | None,
        Field(
            max_length=MAX_DEPENDENCIES,
            json_schema_extra={"x-kubernetes-list-type": "set"},
            description="Names of tasks of the run that must succeed first (at most 20, no cycle).",
        ),
    ] = None
    # The Job's activeDeadlineSeconds: it bounds every attempt together.
    timeout_seconds: Annotated[
        Seconds | None,
        Field(
            description="Seconds all attempts together may take (the Job's "
            "activeDeadlineSeconds), 1 to 604800; absent: no limit.",
        ),
    ] = None
    # The Job's backoffLimit: attempts after the first.
    retries: Annotated[
        int,
        Field(
            ge=0,
            le=10,
            description="Attempts after the first (the Job's backoffLimit), 0 to 10, default 0.",
        ),
    ] = 0


class SubFlowTask(TaskBase):
    """A task of a sub-flow: always a Job (sub-flows nest one level in a manifest)."""

    @model_validator(mode="after")
    def _has_image(self) -> SubFlowTask:
        if self.image is None:
            raise ValueError(f"sub-flow task {self.name}: image is required")
        return self


class SubFlow(KubeModel):
    """The child FlowRun a task launches and follows (flowType sub-flow, parentRun set)."""

    flow_name: Annotated[FlowName, Field(description="The sub-flow's name.")]
    version: Annotated[Version, Field(description="The sub-flow's version.")]
    # The parent's configuration when absent.
    configuration: Annotated[
        Configuration | None,
        Field(description="The child run's configuration; absent: the parent's."),
    ] = None
    tasks: Annotated[
        list[SubFlowTask],
        Field(
            min_length=1,
            max_length=MAX_TASKS,
            json_schema_extra=TASK_LIST,
            description="The child run's tasks, 1 to 50, each a Job (an image is required).",
        ),
    ]

    @model_validator(mode="after")
    def _graph(self) -> SubFlow:
        check_graph(self.tasks, "subFlow.tasks")
        return self


class Task(TaskBase):
    """A task of a run: a Job from its container fields, or a child run from `subFlow`."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.image) != has(self.subFlow)",
                    "message": "a task has either image (a Job) or subFlow (a child FlowRun)",
                },
                {
                    "rule": "!has(self.subFlow) || (self.retries == 0 && !has(self.command)"
                    " && !has(self.args) && !has(self.env) && !has(self.resources))",
                    "message": "a subFlow task takes no command, args, env, resources or retries",
                },
                {
                    "rule": "!has(self.subFlow) || (!has(self.podSecurityContext)"
                    " && !has(self.containerSecurityContext))",
                    "message": "a subFlow task takes no podSecurityContext or "
                    "containerSecurityContext: its sub-flow's tasks carry their own",
                },
            ]
        }
    )

    sub_flow: Annotated[
        SubFlow | None,
        Field(description="Instead of image: a child FlowRun to launch and follow."),
    ] = None

    @model_validator(mode="after")
    def _job_or_child(self) -> Task:
        if (self.image is None) == (self.sub_flow is None):
            raise ValueError(
                f"task {self.name}: needs either image (a Job) or subFlow (a child FlowRun)"
            )
        container = (self.command, self.args, self.env, self.resources)
        if self.sub_flow is not None and (self.retries or any(f is not None for f in container)):
            raise ValueError(
                f"task {self.name}: a subFlow task takes no command, args, env, resources "
                "or retries"
            )
        security = (self.pod_security_context, self.container_security_context)
        if self.sub_flow is not None and any(f is not None for f in security):
            raise ValueError(
                f"task {self.name}: a subFlow task takes no podSecurityContext or "
                "containerSecurityContext: its sub-flow's tasks carry their own"
            )
        return self


class FlowRef(KubeModel):
    """The Flow (same namespace) and version a run is made from. With tasks, a record of
    where they came from (a run the operator made); without, a request: the operator
    resolves the version and the parameters and records the definition in
    status.definition, so the run reads the same after its Flow changes or is deleted."""

    name: Annotated[
        FlowName, Field(description="The Flow in the run's namespace this run is made from.")
    ]
    version: Annotated[
        int | None,
        Field(
            ge=1,
            description="The Flow's version (1, 2, 3...) the run's tasks are (or are to be) a "
            "copy of; absent: the Flow's current version when the run is resolved.",
        ),
    ] = None
    configuration: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=253,
            description="Without tasks: one of the Flow's named configurations, the values "
            "under the run's own parameters.",
        ),
    ] = None
    parameters: Annotated[
        dict[str, Annotated[str, Field(max_length=32768)]] | None,
        Field(
            max_length=64,
            description="Without tasks: the run's own values of the Flow's declared "
            "parameters (at most 64), over the configuration's and the defaults.",
        ),
    ] = None


def _names_from_flow_ref(schema: dict[str, Any]) -> None:
    """The CRD: flowName and version may be left out when spec.flowRef names the Flow (the
    CEL rules below keep them required otherwise)."""
    required = [r for r in schema.get("required", []) if r not in OPTIONAL_WITH_REF]
    if required:
        schema["required"] = required
    else:
        schema.pop("required", None)


OPTIONAL_WITH_REF = ("flowName", "version")


class FlowRunSpec(KubeModel):
    """The run: which flow and version, who started it, its tasks and its limits."""

    model_config = ConfigDict(json_schema_extra=_names_from_flow_ref)

    flow_name: Annotated[FlowName, Field(description="The flow this run executes: FLOW column.")]
    version: Annotated[Version, Field(description="The flow's version: the VERSION column.")]
    flow_ref: Annotated[
        FlowRef | None,
        Field(
            description="The Flow and version this run is made from; without tasks, the "
            "operator resolves it (status.definition). Absent: an inline run."
        ),
    ] = None
    level: Annotated[
        Level, Field(description="Who owns the flow: user (default), organization or platform.")
    ] = Level.USER
    run_type: Annotated[
        RunType,
        Field(description="Who started the run: Manual (default), Scheduled, Triggered or API."),
    ] = RunType.MANUAL
    configuration: Annotated[
        Configuration | None,
        Field(description="The named parameters every task gets as environment variables."),
    ] = None
    flow_type: Annotated[
        FlowType,
        Field(description="standalone (default), or sub-flow: launched by parentRun."),
    ] = FlowType.STANDALONE
    # The FlowRun (same namespace) that launched this one; required iff sub-flow.
    parent_run: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=253,
            description="The FlowRun in the namespace that launched this one: required for a "
            "sub-flow, refused otherwise.",
        ),
    ] = None
    workflow_ref: Annotated[
        WorkflowRef | None,
        Field(description="A Workflow whose services the tasks use; the run waits for it."),
    ] = None
    tasks: Annotated[
        list[Task] | None,
        Field(
            min_length=1,
            max_length=MAX_TASKS,
            json_schema_extra=TASK_LIST,
            description="The run's steps, 1 to 50, unique by name: each a Job (image) or a "
            "child run (subFlow), started when its dependsOn have succeeded. Absent: the "
            "tasks of the Flow that spec.flowRef names (status.definition).",
        ),
    ] = None
    # The run's deadline, counted from the moment it is Deployed.
    active_deadline_seconds: Annotated[
        Seconds | None,
        Field(description="Seconds the run may take once Deployed, 1 to 604800; absent: no limit."),
    ] = None
    # How long the run may wait in Queued, for capacity or for its Workflow.
    queue_timeout_seconds: Annotated[
        Seconds,
        Field(
            description="Seconds the run may wait in Queued before it fails, 1 to 604800, "
            "default 3600.",
        ),
    ] = 3600
    cancel: Annotated[
        bool, Field(description="true: cancel the run (its Jobs are deleted); default false.")
    ] = False
    ttl_seconds_after_finished: Annotated[
        int | None,
        Field(
            ge=0,
            description="Seconds after the run finished when it (with its Jobs and pods) is "
            "deleted from the cluster, once the run store holds its final record and logs; "
            "absent: the operator's --finished-run-ttl (history off: never deleted).",
        ),
    ] = None

    @model_validator(mode="before")
    @classmethod
    def _from_flow_ref(cls, data: Any) -> Any:
        """A run that names its Flow may leave out flowName (the Flow's) and version (the
        one asked for, else `latest` until resolved: status.definition.version)."""
        if not isinstance(data, Mapping):
            return data
        ref = data.get("flowRef", data.get("flow_ref"))
        if isinstance(ref, FlowRef):
            ref = ref.model_dump(by_alias=True)
        if not isinstance(ref, Mapping) or not ref.get("name"):
            return data
        out = dict(data)
        if "flowName" not in out and "flow_name" not in out:
            out["flowName"] = ref["name"]
        if "version" not in out:
            out["version"] = str(ref["version"]) if ref.get("version") else LATEST
        return out

    @model_validator(mode="after")
    def _rules(self) -> FlowRunSpec:
        # The CRD enforces the first three with CEL; this keeps the pure core honest.
        if self.tasks is None and self.flow_ref is None:
            raise ValueError("spec.tasks is required unless spec.flowRef names a Flow")
        if self.flow_type is FlowType.SUB_FLOW and self.parent_run is None:
            raise ValueError("spec.parentRun is required when spec.flowType is sub-flow")
        if self.flow_type is FlowType.STANDALONE and self.parent_run is not None:
            raise ValueError("spec.parentRun is only allowed when spec.flowType is sub-flow")
        if self.tasks is not None:
            check_graph(self.tasks, "spec.tasks")
        return self

    @property
    def steps(self) -> list[Task]:
        """The tasks (none until a flowRef run's definition is filled in)."""
        return self.tasks or []


def check_graph(tasks: Sequence[TaskBase], where: str) -> None:
    """Task names unique, every dependency a known task, and no cycle."""
    names = [t.name for t in tasks]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{where}[].name must be unique, repeated: {', '.join(repeated)}")
    for t in tasks:
        unknown = [d for d in t.depends_on or () if d not in names]
        if unknown:
            raise ValueError(f"{where}: task {t.name} depends on unknown {', '.join(unknown)}")
    cycle = find_cycle({t.name: list(t.depends_on or ()) for t in tasks})
    if cycle:
        raise ValueError(
            f"{where}: dependsOn forms a cycle: {' -> '.join(cycle)} (each depends on the next)"
        )


def find_cycle(deps: Mapping[str, Sequence[str]]) -> list[str] | None:
    """The first cycle a depth-first walk in declaration order meets, closed: [a, b, a]."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        path.append(node)
        for dep in deps.get(node, ()):
            if dep in path:
                return [*path[path.index(dep) :], dep]
            if dep not in done and (found := visit(dep)):
                return found
        path.pop()
        done.add(node)
        return None

    for node in deps:
        if node not in done and (found := visit(node)):
            return found
    return None


# CEL rules the API server enforces at admission (kept next to the model they guard).
SPEC_RULES: list[dict[str, str]] = [
    {
        "rule": "has(self.tasks) || has(self.flowRef)",
        "message": "spec.tasks is required unless spec.flowRef names a Flow",
        "fieldPath": ".tasks",
    },
    {
        "rule": "(has(self.flowName) && has(self.version)) || has(self.flowRef)",
        "message": "spec.flowName and spec.version are required unless spec.flowRef names a Flow",
    },
    {
        "rule": "self.flowType != 'sub-flow' || has(self.parentRun)",
        "message": "spec.parentRun is required when spec.flowType is sub-flow",
        "fieldPath": ".parentRun",
    },
    {
        "rule": "self.flowType != 'standalone' || !has(self.parentRun)",
        "message": "spec.parentRun is only allowed when spec.flowType is sub-flow",
        "fieldPath": ".parentRun",
    },
    {
        "rule": "!has(self.tasks) || self.tasks.all(t, !has(t.dependsOn)"
        " || t.dependsOn.all(d, self.tasks.exists(u, u.name == d)))",
        "message": "spec.tasks[].dependsOn must name tasks of this run",
        "fieldPath": ".tasks",
    },
]


class TaskStatus(KubeModel):
    """One task's line under its run: status, times, attempts and where to find it."""

    name: Annotated[str, Field(description="The task's name in the spec.")]
    version: Annotated[str | None, Field(description="The task's version.")] = None
    status: Annotated[
        TaskPhase,
        Field(description="Pending, Running, Succeeded, Failed, Crashed, Cancelled or Skipped."),
    ] = TaskPhase.PENDING
    reason: Annotated[
        str | None, Field(description="Why it ended so (BackoffLimitExceeded, OOMKilled...).")
    ] = None
    message: Annotated[str | None, Field(description="What happened, for a person.")] = None
    start_time: Annotated[
        str | None, Field(description="When its Job or child run started (RFC 3339).")
    ] = None
    end_time: Annotated[str | None, Field(description="When it ended (RFC 3339).")] = None
    runtime: Annotated[
        str | None, Field(description="endTime - startTime, in Go's duration format.")
    ] = None
    job_name: Annotated[str | None, Field(description="Its Job's name.")] = None
    pod_name: Annotated[
        str | None, Field(description="The newest attempt's pod, where the logs are read.")
    ] = None
    child_run: Annotated[str | None, Field(description="The child FlowRun, for a subFlow.")] = None
    attempts: Annotated[int, Field(description="Pods its Job has started.")] = 0


class Transition(KubeModel):
    """One phase change of the run."""

    phase: Annotated[Phase, Field(description="The phase entered.")]
    time: Annotated[str, Field(description="When (RFC 3339).")]
    reason: Annotated[str, Field(description="Why, in one CamelCase word (QueueTimeout...).")]
    message: Annotated[str, Field(description="Why, in words; may be empty.")] = ""


class ResolvedDefinition(KubeModel):
    """What a run made from spec.flowRef runs: its Flow's version as resolved when the run
    was accepted, kept here so the run runs and reads the same after its Flow changes or
    is deleted."""

    flow_name: Annotated[str, Field(description="The Flow's name.")]
    version: Annotated[int, Field(description="The Flow's version the run uses.")]
    revision: Annotated[str, Field(description="That version's revision hash.")]
    revision_name: Annotated[
        str | None, Field(description="Its ControllerRevision (pruned in time; this copy stays).")
    ] = None
    level: Annotated[Level, Field(description="The flow's access level.")] = Level.USER
    configuration: Annotated[
        Configuration | None,
        Field(
            description="The resolved parameters (named after the chosen configuration, or "
            "custom), each an environment variable of every task."
        ),
    ] = None
    workflow_ref: Annotated[
        WorkflowRef | None, Field(description="The version's Workflow, if it names one.")
    ] = None
    tasks: Annotated[list[Task], Field(description="The version's tasks.")]
    active_deadline_seconds: Annotated[
        int | None, Field(description="The version's run deadline, unless the run sets one.")
    ] = None
    queue_timeout_seconds: Annotated[
        int | None, Field(description="The version's queue timeout, unless the run sets one.")
    ] = None


class FlowRunStatus(KubeModel):
    """The run's phase and timing (the kubectl get row), its tasks and its history."""

    phase: Phase
    reason: Annotated[
        str | None, Field(description="Why the run is in its phase (TaskFailed...).")
    ] = None
    message: Annotated[
        str | None, Field(description="Progress or outcome, for a person: the MESSAGE column.")
    ] = None
    # When the run was Deployed (its execution began); absent while it waits.
    start_time: Annotated[
        str | None,
        Field(description="When the run was Deployed (RFC 3339); absent while it waits."),
    ] = None
    end_time: Annotated[
        str | None, Field(description="When the run reached a final phase (RFC 3339).")
    ] = None
    duration: Annotated[
        str | None,
        Field(description="endTime - startTime, in Go's duration format: the DURATION column."),
    ] = None
    observed_generation: Annotated[
        int | None, Field(description="The generation this status describes.")
    ] = None
    conditions: Annotated[
        list[Condition] | None, Field(description="Ready, Reconciling and Stalled (kstatus).")
    ] = None
    tasks: Annotated[list[TaskStatus], Field(description="Each task's state, in spec order.")] = (
        Field(default_factory=list)
    )
    history: Annotated[list[Transition], Field(description="The phase changes, oldest first.")] = (
        Field(default_factory=list)
    )
    definition: Annotated[
        ResolvedDefinition | None,
        Field(description="A spec.flowRef run's resolved Flow version: what it runs."),
    ] = None


class FlowRun(BaseModel):
    """A whole FlowRun object as read from the API (metadata, spec, status)."""

    model_config = ConfigDict(extra="ignore")

    metadata: ObjectMeta
    spec: FlowRunSpec
    status: FlowRunStatus | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> FlowRun:
        """Parse an API body. Unlike a Workflow's, an unreadable status is an error, never
        a fresh start: starting over could run finished tasks again."""
        data = dict(body)
        if not data.get("status"):
            data.pop("status", None)
        return cls.model_validate(data)


CRD = CrdDefinition(
    kind=KIND,
    plural=PLURAL,
    short_names=("fr",),
    spec_model=FlowRunSpec,
    status_model=FlowRunStatus,
    columns=(
        Column("Flow", ".spec.flowName"),
        Column("Version", ".spec.version"),
        Column("Run Type", ".spec.runType"),
        Column("Status", ".status.phase"),
        Column("Start", ".status.startTime", type="date"),
        Column("Duration", ".status.duration"),
        Column("Message", ".status.message"),
    ),
    spec_rules=tuple(SPEC_RULES),
)
