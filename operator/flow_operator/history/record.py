"""A FlowRun body, as the API server returns it, mapped to the `RunRecord` history keeps.

Pure and lenient: a body is read as the cluster holds it, not validated against today's
model (history outlives schema changes), so an unknown field is ignored and a missing one
is null. Only what a record cannot do without is required: uid, namespace, name and
creation time. Each task of the spec gets a line, with its status line when there is one
(`Pending` before the operator wrote it), as the dashboard shows the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flow_operator.flows.runs import flow_of, version_of
from flow_operator.history.store import (
    InvalidRecord,
    RunRecord,
    TaskRecord,
    TransitionRecord,
)
from flow_operator.models.flowrun import Phase, TaskPhase
from flow_operator.objects.times import parse_aware


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _str(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _task(spec_task: Mapping[str, Any], line: Mapping[str, Any]) -> TaskRecord:
    depends = spec_task.get("dependsOn")
    return TaskRecord(
        name=str(spec_task.get("name")),
        version=_str(spec_task.get("version")) or _str(line.get("version")),
        depends_on=tuple(str(d) for d in depends) if isinstance(depends, list) else (),
        status=_str(line.get("status")) or TaskPhase.PENDING.value,
        reason=_str(line.get("reason")),
        message=_str(line.get("message")),
        start_time=parse_aware(line.get("startTime")),
        end_time=parse_aware(line.get("endTime")),
        runtime=_str(line.get("runtime")),
        job_name=_str(line.get("jobName")),
        pod_name=_str(line.get("podName")),
        child_run=_str(line.get("childRun")),
        attempts=_int(line.get("attempts")) or 0,
    )


def _tasks(spec: Mapping[str, Any], status: Mapping[str, Any]) -> tuple[TaskRecord, ...]:
    lines = {str(t["name"]): t for t in _list(status.get("tasks")) if t.get("name")}
    named = [t for t in _list(spec.get("tasks")) if t.get("name")]
    tasks = [_task(t, lines.pop(str(t["name"]), {})) for t in named]
    # A status line whose task left the spec (it cannot, but history keeps what it sees).
    tasks += [_task({"name": name}, line) for name, line in lines.items()]
    return tuple(tasks)


def _history(status: Mapping[str, Any]) -> tuple[TransitionRecord, ...]:
    return tuple(
        TransitionRecord(
            phase=str(t.get("phase")),
            time=parse_aware(t.get("time")),
            reason=_str(t.get("reason")) or "",
            message=_str(t.get("message")) or "",
        )
        for t in _list(status.get("history"))
        if t.get("phase")
    )


def record_of(body: Mapping[str, Any]) -> RunRecord:
    """The record of a FlowRun body; InvalidRecord when it lacks what a record needs."""
    meta, spec = _map(body.get("metadata")), _map(body.get("spec"))
    status = _map(body.get("status"))
    missing = [k for k in ("uid", "namespace", "name") if not _str(meta.get(k))]
    created = parse_aware(meta.get("creationTimestamp"))
    if created is None:
        missing.append("creationTimestamp")
    if missing or created is None:
        where = f"{meta.get('namespace')}/{meta.get('name')}"
        raise InvalidRecord(f"FlowRun {where}: no metadata.{', metadata.'.join(missing)}")
    labels = {str(k): str(v) for k, v in _map(meta.get("labels")).items()}
    return RunRecord(
        uid=str(meta["uid"]),
        namespace=str(meta["namespace"]),
        name=str(meta["name"]),
        # a run applied with spec.flowRef: its Flow, and the version resolved for it
        flow_name=_str(spec.get("flowName")) or flow_of(body) or "",
        version=_str(spec.get("version")) or version_of(body),
        level=_str(spec.get("level")),
        run_type=_str(spec.get("runType")),
        configuration=_str(_map(spec.get("configuration")).get("name")),
        flow_type=_str(spec.get("flowType")),
        parent_run=_str(spec.get("parentRun")),
        workflow=_str(_map(spec.get("workflowRef")).get("name")),
        # A run the operator has not written yet is the Submitted it is about to become.
        status=_str(status.get("phase")) or Phase.SUBMITTED.value,
        reason=_str(status.get("reason")),
        message=_str(status.get("message")),
        created=created,
        start_time=parse_aware(status.get("startTime")),
        end_time=parse_aware(status.get("endTime")),
        duration=_str(status.get("duration")),
        labels=labels,
        tasks=_tasks(spec, status),
        history=_history(status),
        generation=_int(meta.get("generation")),
        observed_generation=_int(status.get("observedGeneration")),
        resource_version=_int(meta.get("resourceVersion")) or 0,
    )
