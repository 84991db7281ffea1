"""The Flow read model the HTTP API and flowctl both render: a list row (version, level,
schedules, next run, last run) and the detail (versions, parameters, configurations,
each schedule's state, recent runs). Read from the bodies as they are, so a Flow whose
spec the model refuses still lists (its Stalled condition says why).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flow_operator.objects.body import Body

RECENT_RUNS = 20


def _condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), None)


def flow_row(body: Mapping[str, Any]) -> Body:
    """One Flow as the list shows it (the kubectl columns, and why it is not Ready)."""
    meta, spec, status = (
        body.get("metadata") or {},
        body.get("spec") or {},
        body.get("status") or {},
    )
    stalled = _condition(status, "Stalled")
    return {
        "namespace": meta.get("namespace", ""),
        "name": meta.get("name", ""),
        "version": status.get("version"),
        "level": spec.get("level", "user"),
        "flowType": spec.get("flowType", "standalone"),
        "concurrency": (spec.get("concurrency") or {}).get("policy", "Allow"),
        "schedules": status.get("scheduleSummary") or "",
        "nextRun": status.get("nextScheduleTime"),
        "lastRun": status.get("lastRun"),
        "suspended": bool(spec.get("suspend")),
        "problem": stalled.get("message") if stalled and stalled.get("status") == "True" else None,
        "created": meta.get("creationTimestamp"),
    }


def _run_summary(run: Mapping[str, Any]) -> Body:
    meta, spec, status = run.get("metadata") or {}, run.get("spec") or {}, run.get("status") or {}
    labels = meta.get("labels") or {}
    return {
        "name": meta.get("name", ""),
        "version": labels.get("flowops.io/flow-version", spec.get("version")),
        "runType": spec.get("runType"),
        "status": status.get("phase") or "Submitted",
        "created": meta.get("creationTimestamp"),
        "startTime": status.get("startTime"),
        "endTime": status.get("endTime"),
    }


def flow_detail(body: Mapping[str, Any], runs: Iterable[Mapping[str, Any]]) -> Body:
    """One Flow with what a Run form needs and what it did: versions, parameters,
    configurations, schedules (spec and state side by side), its newest runs."""
    spec, status = body.get("spec") or {}, body.get("status") or {}
    states = {s.get("name"): s for s in status.get("schedules") or []}
    schedules = [
        {
            "name": s.get("name"),
            "cron": s.get("cron"),
            "timeZone": s.get("timeZone", "UTC"),
            "configuration": s.get("configuration"),
            "suspend": bool(s.get("suspend")) or bool(spec.get("suspend")),
            **{
                k: v
                for k, v in (states.get(s.get("name")) or {}).items()
                if k in ("lastScheduleTime", "lastRun", "nextScheduleTime", "missed")
            },
        }
        for s in spec.get("schedules") or []
    ]
    recent = sorted(
        (_run_summary(r) for r in runs),
        key=lambda r: (str(r["created"] or ""), r["name"]),
        reverse=True,
    )[:RECENT_RUNS]
    return {
        **flow_row(body),
        "versions": status.get("versions") or [],
        "parameters": spec.get("parameters") or [],
        "configurations": [
            {"name": c.get("name"), "parameters": c.get("parameters") or {}}
            for c in spec.get("configurations") or []
        ],
        "schedules": schedules,
        "scheduleSummary": status.get("scheduleSummary") or "",
        "runs": recent,
    }
