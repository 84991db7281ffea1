"""A Flow's FlowRuns: the labels that tie a run to its flow, the run as the planner sees it
(`FlowRunRecord`), deterministic names, and the pure builder of a new run's body.

A run of a flow is an ordinary FlowRun that carries its whole definition (the tasks and
settings of its version, the resolved parameters as its configuration), so it runs and
reads the same after the Flow changes or is deleted. The link back is in labels (the flow,
its version, and for a tick the schedule and the scheduled minute) and annotations (the
revision hash, the concurrency decision it was created under, a hash of the request that
made it). It has no ownerReference to the Flow: deleting a Flow must not delete its runs
(retention does that, after archiving).

Names are deterministic, so a create that is repeated (a crash between create and status
write, a new leader) meets AlreadyExists and is done: a tick's run is named from the flow,
the schedule and the tick (schedule.run_name); a manual run from the client's
idempotency key, or from a suffix the caller draws (the randomness stays outside).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from flow_operator import API_VERSION, MANAGER
from flow_operator.flows.concurrency import WAITING, Action, RunSlot
from flow_operator.flows.params import Resolution
from flow_operator.flows.schedule import (
    FLOW_LABEL,
    MAX_RUN_NAME,
    SCHEDULE_LABEL,
    SCHEDULED_TIME_LABEL,
    parse_stamp,
    tick_labels,
)
from flow_operator.models.flow import FlowSpec, FlowVersion
from flow_operator.models.flowrun import (
    KIND,
    TERMINAL,
    Configuration,
    FlowRunSpec,
    FlowType,
    Phase,
    RunType,
)
from flow_operator.objects.body import Body
from flow_operator.objects.times import parse_time, utc

MANAGED_BY = "app.kubernetes.io/managed-by"
VERSION_LABEL = "flowops.io/flow-version"
REVISION_ANNOTATION = "flowops.io/flow-revision"
# The concurrency decision the run was created under (Start, Queue or Replace): until the
# FlowRun reconciler has admitted it, a Queue or Replace run does not hold a slot yet.
DECISION_ANNOTATION = "flowops.io/concurrency"
# A hash of the request that made a manual run: a reused idempotency key is told apart.
REQUEST_ANNOTATION = "flowops.io/request"
# The configuration name of a run whose values come from defaults and its own values only.
CUSTOM_CONFIGURATION = "custom"
SUFFIX = re.compile(r"^[a-z0-9]{1,16}$")
KEY_HASH = 10


Time = Annotated[datetime, AfterValidator(utc)]


class Record(BaseModel):
    """Frozen, camelCase in JSON (the golden files), strict about unknown fields."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid"
    )


def flow_of(body: Mapping[str, Any]) -> str | None:
    """The Flow a FlowRun belongs to: its `flowops.io/flow` label (the runs a Flow makes:
    ticks and Run) or, for a run applied by hand, the Flow its `spec.flowRef` names; None
    for an inline run. Both count alike for the flow's concurrency, last run and history."""
    labels = (body.get("metadata") or {}).get("labels") or {}
    ref = (body.get("spec") or {}).get("flowRef") or {}
    name = labels.get(FLOW_LABEL) or (ref.get("name") if isinstance(ref, Mapping) else None)
    return str(name) if name else None


def version_of(body: Mapping[str, Any]) -> str | None:
    """The flow version a FlowRun runs: its label, its spec's, or the one resolved for
    its flowRef (status.definition)."""
    labels = (body.get("metadata") or {}).get("labels") or {}
    definition = ((body.get("status") or {}).get("definition")) or {}
    version = labels.get(VERSION_LABEL) or (body.get("spec") or {}).get("version")
    if not version and isinstance(definition, Mapping):
        version = definition.get("version")
    return str(version) if version not in (None, "") else None


class FlowRunRecord(Record):
    """One FlowRun of the flow, as the planner needs it."""

    name: str
    uid: str = ""
    version: int | None = None
    phase: Phase | None = None  # None: no status yet (it is about to be Submitted)
    reason: str | None = None
    run_type: RunType | None = None
    created: Time
    end: Time | None = None
    schedule: str | None = None
    scheduled: Time | None = None  # the tick it was made for
    cancel: bool = False  # its cancel request is out
    decision: Action | None = None  # DECISION_ANNOTATION
    request: str | None = None  # REQUEST_ANNOTATION

    @property
    def finished(self) -> bool:
        return self.phase in TERMINAL

    @property
    def holding(self) -> bool:
        """Whether it holds a concurrency slot (concurrency.py): not while it waits for one."""
        if self.phase is Phase.QUEUED and self.reason == WAITING:
            return False
        not_admitted = self.phase in (None, Phase.SUBMITTED)
        return not (not_admitted and self.decision in (Action.QUEUE, Action.REPLACE))

    def slot(self) -> RunSlot:
        return RunSlot(self.name, self.created, self.holding, self.cancel)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> FlowRunRecord | None:
        """The record of a FlowRun body; None when it names no flow (an inline run)."""
        meta = body.get("metadata") or {}
        labels = meta.get("labels") or {}
        notes = meta.get("annotations") or {}
        if flow_of(body) is None:
            return None
        status = body.get("status") or {}
        spec = body.get("spec") or {}
        version = version_of(body)
        stamp = labels.get(SCHEDULED_TIME_LABEL)
        decision = notes.get(DECISION_ANNOTATION)
        created = parse_time(meta.get("creationTimestamp"))
        if created is None:
            raise ValueError(f"FlowRun {meta.get('name')} has no creationTimestamp")
        return cls(
            name=meta["name"],
            uid=meta.get("uid", ""),
            version=int(version) if version and version.isdigit() else None,
            phase=status.get("phase"),
            reason=status.get("reason"),
            run_type=spec.get("runType"),
            created=created,
            end=parse_time(status.get("endTime")),
            schedule=labels.get(SCHEDULE_LABEL),
            scheduled=parse_stamp(stamp) if stamp else None,
            cancel=bool(spec.get("cancel")),
            decision=decision if decision in tuple(Action) else None,
            request=notes.get(REQUEST_ANNOTATION),
        )


def manual_run_name(flow: str, *, key: str | None = None, suffix: str | None = None) -> str:
    """A manual run's name: `<flow>-<hash of the idempotency key>`, or `<flow>-<suffix>`
    with a suffix the caller drew (lower-case letters and digits, at most 16)."""
    if key is not None:
        tail = hashlib.sha256(f"{flow}/{key}".encode()).hexdigest()[:KEY_HASH]
    elif suffix is not None and SUFFIX.fullmatch(suffix):
        tail = suffix
    else:
        raise ValueError(
            f"a manual run's name needs an idempotency key or a suffix of 1-16 lower-case "
            f"letters and digits; got {suffix!r}"
        )
    return f"{flow[: MAX_RUN_NAME - 1 - len(tail)].rstrip('-.')}-{tail}"


def request_hash(version: int, configuration: str | None, values: Mapping[str, str]) -> str:
    """What a manual run was asked for, as REQUEST_ANNOTATION keeps it."""
    text = json.dumps(
        {"version": version, "configuration": configuration, "parameters": dict(values)},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_configuration(resolution: Resolution) -> Configuration | None:
    """The resolved parameters as a run's configuration: named after the chosen one, or
    `custom` when they come from defaults and the run's own values only."""
    if resolution.configuration is None and not resolution.values:
        return None
    return Configuration(
        name=resolution.configuration or CUSTOM_CONFIGURATION,
        parameters=dict(resolution.values) or None,
    )


def build_run(
    *,
    flow: str,
    namespace: str,
    definition: FlowSpec,
    version: FlowVersion,
    name: str,
    run_type: RunType,
    resolution: Resolution,
    decision: Action,
    schedule: str | None = None,
    tick: datetime | None = None,
    request: str | None = None,
) -> Body:
    """The FlowRun body of one run of `definition` (the spec of `version`)."""
    labels = {MANAGED_BY: MANAGER, FLOW_LABEL: flow, VERSION_LABEL: str(version.version)}
    if schedule is not None and tick is not None:
        labels.update(tick_labels(flow, schedule, tick))
    annotations = {REVISION_ANNOTATION: version.revision, DECISION_ANNOTATION: decision.value}
    if request is not None:
        annotations[REQUEST_ANNOTATION] = request
    configuration = run_configuration(resolution)
    spec = FlowRunSpec(
        flow_name=flow,
        version=str(version.version),
        level=definition.level,
        run_type=run_type,
        configuration=configuration,
        flow_type=FlowType.STANDALONE,
        workflow_ref=definition.workflow_ref,
        tasks=definition.tasks,
        active_deadline_seconds=definition.active_deadline_seconds,
    )
    if definition.queue_timeout_seconds is not None:  # else the FlowRun's own default
        spec = spec.model_copy(update={"queue_timeout_seconds": definition.queue_timeout_seconds})
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": spec.dump(),
    }
