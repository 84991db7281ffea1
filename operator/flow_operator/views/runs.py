"""Flow runs as the API, the dashboard and flowctl show them: the seed's table and tasks.

The rows are the columns of the seed's Flow Run Status page; the search matches name,
configuration, run type and status (case-insensitive substring), the other filters match
exactly. The list is newest first: by start time (a run not started yet first), then
namespace and name, which is also the key its pages continue from (`paging`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from flow_operator import GROUP, VERSION
from flow_operator.flows.runs import flow_of
from flow_operator.models.flowrun import KIND, Phase
from flow_operator.objects.body import Body
from flow_operator.views.paging import Page, SortKey, paginate

RERUN_OF = f"{GROUP}/rerun-of"
RUN_STATES = tuple(p.value for p in Phase)
NOT_STARTED = "9999"  # sorts a run without a start time before every started one


class Row(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def dump(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, mode="json")


class TaskRow(Row):
    name: str
    version: str | None = None
    status: str
    startTime: str | None = None
    endTime: str | None = None
    runtime: str | None = None
    message: str | None = None
    pod: str | None = None
    # The run page's detail (the graph, the timeline): what the table does not show.
    dependsOn: list[str] | None = None
    attempts: int | None = None
    reason: str | None = None
    childRun: str | None = None
    # One run, live, its pods in view: each attempt's segments (views/attempts.py).
    attemptDetail: list[dict[str, Any]] | None = None


class Transition(Row):
    """One phase change of the run (status.history), for the run page."""

    phase: str
    time: str
    reason: str | None = None
    message: str | None = None


class FlowRunRow(Row):
    namespace: str
    name: str
    flowName: str
    flow: str | None = None  # the Flow it is a run of (flows/runs.flow_of); None: inline
    version: str | None = None
    level: str | None = None
    runType: str | None = None
    configuration: str | None = None
    flowType: str | None = None
    startTime: str | None = None
    endTime: str | None = None
    duration: str | None = None
    status: str
    message: str | None = None
    reason: str | None = None
    tasks: list[TaskRow] | None = None
    history: list[Transition] | None = None


def _fold(value: str | None) -> str:
    return (value or "").casefold()


def matches(row: FlowRunRow, filters: Mapping[str, str]) -> bool:
    search = _fold(filters.get("search"))
    if search:
        fields = (row.name, row.flowName, row.configuration, row.runType, row.status)
        if not any(search in _fold(f) for f in fields):
            return False
    exact = {
        "name": (row.name, row.flowName),
        "configuration": (row.configuration,),
        "runType": (row.runType,),
        "status": (row.status,),
        "namespace": (row.namespace,),
    }
    for key, values in exact.items():
        wanted = filters.get(key)
        if wanted and _fold(wanted) not in {_fold(v) for v in values}:
            return False
    return True


def run_key(row: Mapping[str, Any]) -> SortKey:
    """The list's sort key of a dumped row (descending: newest first)."""
    return (str(row.get("startTime") or NOT_STARTED), str(row["namespace"]), str(row["name"]))


def select(rows: Iterable[FlowRunRow], filters: Mapping[str, str]) -> list[dict[str, Any]]:
    """Matching rows, newest first, without their tasks and history (the list view)."""
    chosen = [
        r.model_copy(update={"tasks": None, "history": None}).dump()
        for r in rows
        if matches(r, filters)
    ]
    chosen.sort(key=run_key, reverse=True)
    return chosen


def page_of(
    listed: Sequence[dict[str, Any]], *, limit: int | None = None, cursor: str | None = None
) -> Page[dict[str, Any]]:
    """One page of a list `select` gave, with the count of runs in each state."""
    return paginate(
        listed, run_key, limit=limit, cursor=cursor, status=lambda r: str(r.get("status"))
    )


def list_runs(
    rows: Iterable[FlowRunRow],
    filters: Mapping[str, str],
    *,
    limit: int | None = None,
    cursor: str | None = None,
) -> Page[dict[str, Any]]:
    """The list view: matching rows, newest first, at most `limit` after `cursor`."""
    return page_of(select(rows, filters), limit=limit, cursor=cursor)


def row_of(body: Mapping[str, Any]) -> FlowRunRow:
    """A FlowRun body as the seed's table row, with its tasks."""
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    status = body.get("status") or {}
    lines = {t.get("name"): t for t in status.get("tasks") or []}
    tasks = []
    for task in spec.get("tasks") or []:
        line = lines.get(task.get("name")) or {}
        tasks.append(
            TaskRow(
                name=str(task.get("name")),
                version=task.get("version"),
                status=str(line.get("status") or "Pending"),
                startTime=line.get("startTime"),
                endTime=line.get("endTime"),
                runtime=line.get("runtime"),
                message=line.get("message"),
                pod=line.get("podName"),
                dependsOn=list(task.get("dependsOn") or []) or None,
                attempts=line.get("attempts") or None,
                reason=line.get("reason"),
                childRun=line.get("childRun"),
            )
        )
    return FlowRunRow(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        flowName=str(spec.get("flowName") or ""),
        flow=flow_of(body),
        version=spec.get("version"),
        level=spec.get("level"),
        runType=spec.get("runType"),
        configuration=(spec.get("configuration") or {}).get("name"),
        flowType=spec.get("flowType"),
        startTime=status.get("startTime"),
        endTime=status.get("endTime"),
        duration=status.get("duration"),
        status=str(status.get("phase") or Phase.SUBMITTED.value),
        message=status.get("message"),
        reason=status.get("reason"),
        tasks=tasks,
        history=[
            Transition(
                phase=str(h.get("phase")),
                time=str(h.get("time")),
                reason=h.get("reason"),
                message=h.get("message") or None,
            )
            for h in status.get("history") or []
        ]
        or None,
    )


def rerun_body(body: Mapping[str, Any], *, latest: bool = False) -> Body:
    """The new FlowRun of a rerun (the dashboard's and flowctl's action on a row): the old
    spec, started by hand, `cancel` cleared, named after the old run. A run made from a
    Flow keeps its version: a spec.flowRef run is rerun from its recorded definition
    (status.definition, inline), so a later version or a pruned one changes nothing.
    `latest`: the Flow's current version instead, with the old run's configuration and
    values, resolved by the operator (ValueError for a run of no Flow)."""
    meta = body.get("metadata") or {}
    old = {k: v for k, v in (body.get("spec") or {}).items() if k != "cancel"}
    definition = (body.get("status") or {}).get("definition")
    labels = dict(meta.get("labels") or {})
    if latest:
        spec = _latest(old)
        labels.pop(FLOW_VERSION_LABEL, None)
    elif definition and not old.get("tasks"):
        spec = _pinned(old, definition)
    else:
        spec = old
    spec["runType"] = "Manual"
    name = str(meta.get("name") or "run")
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "generateName": f"{name[:56]}-",
            "namespace": meta.get("namespace"),
            "labels": labels,
            "annotations": {RERUN_OF: name},
        },
        "spec": spec,
    }


FLOW_VERSION_LABEL = f"{GROUP}/flow-version"
# A flowRef run's spec fields its version decides (status.definition), not the run.
FROM_VERSION = ("tasks", "version", "level", "configuration", "workflowRef",
                "activeDeadlineSeconds", "queueTimeoutSeconds")  # fmt: skip


def _pinned(spec: Mapping[str, Any], definition: Mapping[str, Any]) -> Body:
    """A flowRef run's spec with its recorded definition inline: the same version again."""
    ref = spec.get("flowRef") or {}
    out: Body = {k: v for k, v in spec.items() if k != "flowRef"}
    out["flowName"] = spec.get("flowName") or definition.get("flowName") or ref.get("name")
    out["version"] = str(definition.get("version"))
    out["flowRef"] = {"name": ref.get("name"), "version": definition.get("version")}
    for key in ("tasks", "level", "configuration", "workflowRef"):
        if definition.get(key) is not None:
            out[key] = definition[key]
    for key in ("activeDeadlineSeconds", "queueTimeoutSeconds"):
        if key not in spec and definition.get(key) is not None:
            out[key] = definition[key]
    return out


def _latest(spec: Mapping[str, Any]) -> Body:
    """A spec asking for the Flow's current version: the old run's request when it named
    its Flow without tasks, else its configuration (unless custom) and resolved values."""
    ref = spec.get("flowRef")
    if not ref or not ref.get("name"):
        raise ValueError("it was not made from a Flow (no spec.flowRef): rerun it as it is")
    if not spec.get("tasks"):
        request = {k: v for k, v in ref.items() if k != "version"}
        return {**{k: v for k, v in spec.items() if k not in ("flowRef", "version")},
                "flowRef": request}  # fmt: skip
    asked: Body = {"name": ref["name"]}
    configuration = spec.get("configuration") or {}
    if configuration.get("name") and configuration["name"] != "custom":
        asked["configuration"] = configuration["name"]
    if configuration.get("parameters"):
        asked["parameters"] = dict(configuration["parameters"])
    keep = {k: v for k, v in spec.items() if k not in (*FROM_VERSION, "flowRef")}
    return {**keep, "flowRef": asked}
