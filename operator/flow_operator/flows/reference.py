"""A FlowRun that names its Flow (`spec.flowRef: {name, version?, configuration?,
parameters?}`) instead of carrying tasks: which version it runs, with which values.

`resolve_ref` is the FlowRun reconciler's decision, made once, when the run is first
seen: the version (the Flow's current one unless the ref names one; versions.select),
that version's spec (its ControllerRevision's snapshot, or the Flow's own spec when its
hash is that version's), the parameters judged by that version's declarations
(params.resolve). The answer is the definition to record in the run's status (version,
revision hash, tasks, resolved configuration, level, Workflow, deadlines), so the run runs
and reads the same after its Flow changes or is deleted; or why it can never start
(InvalidSpec, each problem with its field and, for a parameter, its name); or a wait, for
a Flow not seen yet or not given a version yet by its reconciler (applied together with
the run), for at most FLOW_GRACE after the run's creation.

`effective` is the run as the state machine steps it: the spec filled in from the recorded
definition. A run that carries tasks is never resolved (the runs a Flow makes carry their
version's tasks and name the Flow for the record).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from flow_operator.flows.params import resolve
from flow_operator.flows.runs import run_configuration
from flow_operator.flows.versions import VersionNotKept, revision_hash, select
from flow_operator.models.flow import Flow, FlowSpec, FlowVersion
from flow_operator.models.flowrun import (
    TERMINAL,
    FlowRef,
    FlowRun,
    FlowType,
    ResolvedDefinition,
)
from flow_operator.objects.times import parse_time

# How long after its creation a run may wait for its Flow to show up with a version.
FLOW_GRACE = timedelta(seconds=30)
RETRY = 2.0


@dataclass(frozen=True)
class Resolved:
    definition: ResolvedDefinition


@dataclass(frozen=True)
class Invalid:
    """The run can never start: Failed, reason InvalidSpec, with this message."""

    message: str


@dataclass(frozen=True)
class Waiting:
    """Not yet: look again in `retry_after` seconds (nothing is written meanwhile)."""

    message: str
    retry_after: float = RETRY


Outcome = Resolved | Invalid | Waiting


def needs_resolving(run: FlowRun) -> bool:
    """Whether the run names its Flow instead of carrying tasks and has not been resolved
    (nor refused: a finished run is never resolved again)."""
    status = run.status
    pending = status is None or (status.definition is None and status.phase not in TERMINAL)
    return run.spec.tasks is None and run.spec.flow_ref is not None and pending


def to_read(ref: FlowRef, flow: Flow | None) -> FlowVersion | None:
    """The version whose ControllerRevision the resolution needs; None when there is none
    to read (no such Flow or version, or the Flow's own spec is that version)."""
    if flow is None or flow.status is None:
        return None
    try:
        version = select(flow.status.versions, flow.status.version, ref.version)
    except VersionNotKept:
        return None
    if revision_hash(flow.spec) == version.revision or not version.revision_name:
        return None
    return version


def resolve_ref(
    run: FlowRun,
    flow: Flow | None,
    definitions: Mapping[int, FlowSpec],
    now: datetime,
) -> Outcome:
    """The definition `run` (whose spec.flowRef names `flow`, None when it is not found)
    runs; `definitions`: the kept versions' specs read so far, by number."""
    ref = run.spec.flow_ref
    assert ref is not None
    ns = run.metadata.namespace
    created = parse_time(run.metadata.creationTimestamp)
    young = created is not None and now - created < FLOW_GRACE
    if flow is None:
        message = f"spec.flowRef.name: flow {ref.name} does not exist in namespace {ns}"
        return Waiting(message) if young else Invalid(message)
    if flow.spec.flow_type is FlowType.SUB_FLOW:
        return Invalid(
            f"spec.flowRef.name: flow {ref.name} is a sub-flow: it runs under a parent run only"
        )
    status = flow.status
    try:
        version = select(
            status.versions if status else [], status.version if status else None, ref.version
        )
    except VersionNotKept as e:
        if ref.version is None and young:
            return Waiting(f"spec.flowRef: {e}")
        return Invalid(f"spec.flowRef.version: {e}")
    definition = definitions.get(version.version)
    if definition is None and revision_hash(flow.spec) == version.revision:
        definition = flow.spec
    if definition is None:
        return Invalid(
            f"spec.flowRef.version: version {version.version}'s definition could not be read "
            f"(ControllerRevision {version.revision_name}); name another version"
        )
    resolution = resolve(definition, ref.configuration, ref.parameters)
    if not resolution.ok:
        return Invalid("; ".join(f"spec.flowRef.{e.path}: {e.message}" for e in resolution.errors))
    return Resolved(
        ResolvedDefinition(
            flow_name=ref.name,
            version=version.version,
            revision=version.revision,
            revision_name=version.revision_name,
            level=definition.level,
            configuration=run_configuration(resolution),
            workflow_ref=definition.workflow_ref,
            tasks=definition.tasks,
            active_deadline_seconds=definition.active_deadline_seconds,
            queue_timeout_seconds=definition.queue_timeout_seconds,
        )
    )


def effective(run: FlowRun, definition: ResolvedDefinition) -> FlowRun:
    """The run with its spec filled in from its recorded definition (the run's own
    workflowRef and deadlines, where it sets them, win)."""
    spec = run.spec
    given = spec.model_fields_set
    update = {
        "tasks": definition.tasks,
        "version": str(definition.version),
        "level": definition.level,
        "configuration": definition.configuration,
        "workflow_ref": spec.workflow_ref or definition.workflow_ref,
        "active_deadline_seconds": spec.active_deadline_seconds
        or definition.active_deadline_seconds,
    }
    if "queue_timeout_seconds" not in given and definition.queue_timeout_seconds is not None:
        update["queue_timeout_seconds"] = definition.queue_timeout_seconds
    return run.model_copy(update={"spec": spec.model_copy(update=update)})
