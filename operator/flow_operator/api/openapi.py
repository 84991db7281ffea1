"""The OpenAPI 3.1 document of the HTTP API, served at /openapi.json.

Written by hand so that the Workflow status schemas say exactly what the reference
document shows (required fields, optional fields that are omitted rather than null, no
extra fields). tests/unit/api/test_api_openapi.py keeps it true: every route is documented
and every documented path is routed, the six reference examples validate, and responses
in the tests are validated against these schemas.
"""

from __future__ import annotations

import copy
from typing import Any

from flow_operator.views.runs import RUN_STATES

S = dict[str, Any]
MAX_LIMIT = 1000  # server.MAX_LIMIT (a unit test keeps the two equal)


def _ref(name: str) -> S:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: dict[str, S], optional: dict[str, S] | None = None, **extra: Any) -> S:
    return {
        "type": "object",
        "required": sorted(required),
        "properties": {**required, **(optional or {})},
        "additionalProperties": False,
        **extra,
    }


STR: S = {"type": "string"}
# server.READY_REASONS (a unit test keeps the two equal): one word, never an error's text.
READY_REASON: S = {
    "type": "string",
    "enum": ["forbidden", "indexed", "indexing", "starting", "unknown", "unreachable"],
}
INT: S = {"type": "integer", "minimum": 0}
BOOL: S = {"type": "boolean"}
COLOR: S = {"type": "string", "enum": ["GREEN", "YELLOW", "ORANGE", "RED"]}
GO_DURATION: S = {
    "type": "string",
    "pattern": r"^-?(\d+h)?(\d+m)?\d+(\.\d+)?(ns|µs|ms|s)$",
    "examples": ["512.171355ms", "1m56.138865794s"],
}

FLOW_FIELDS: dict[str, S] = {
    "version": {"type": ["integer", "null"], "description": "the current version"},
    "level": STR,
    "flowType": STR,
    "concurrency": {"type": "string", "enum": ["Allow", "Forbid", "Replace", "Queue"]},
    "nextRun": {"type": ["string", "null"], "description": "the earliest next tick"},
    "lastRun": {"type": ["object", "null"], "description": "the newest run and its phase"},
    "suspended": BOOL,
    "problem": {"type": ["string", "null"], "description": "why it is Stalled"},
    "created": {"type": ["string", "null"]},
}

SCHEMAS: dict[str, S] = {
    "WorkflowStatus": _obj(
        {
            "desiredStatus": {"type": "string", "enum": ["PUBLISHED", "UNPUBLISHED"]},
            "actualStatus": COLOR,
            "publishingMode": {"type": "string", "enum": ["SYNC", "ASYNC"]},
            "details": _ref("Details"),
        },
        description="The reference Workflow status document, field for field.",
    ),
    "Details": _obj(
        {},
        {"stream": _ref("StreamStatus"), "services": {"type": "array", "items": _ref("Service")}},
        description="Empty for an unpublished workflow; `stream` only in SYNC mode.",
    ),
    "StreamStatus": _obj({"id": STR, "desired": INT, "actual": INT, "status": COLOR}),
    "Service": _obj(
        {
            "id": STR,
            "desired": INT,
            "actual": INT,
            "status": COLOR,
            "rolloutStatus": {"type": "string", "enum": ["InProgress", "Complete", "Failed"]},
            "replicasDetail": {"type": "array", "items": _ref("ReplicaDetail")},
        },
        {"rolloutStatusReason": STR, "message": STR},
    ),
    "ReplicaDetail": _obj(
        {
            "name": STR,
            "ready": BOOL,
            "available": BOOL,
            "age": GO_DURATION,
            "status": STR,
            "atLatestSpec": BOOL,
        },
        {"startedAt": {"type": "string", "format": "date-time"}, "statusMessage": STR},
    ),
    "WorkflowSummary": _obj(
        {
            "id": {**STR, "description": "`{namespace}.{name}`: the qualified workflowId"},
            "namespace": STR,
            "name": STR,
            "desiredStatus": STR,
            "publishingMode": STR,
            "actualStatus": {"oneOf": [COLOR, {"type": "null"}]},
            "servicesReady": {"type": ["string", "null"]},
            "published": BOOL,
            "message": STR,
            "status": {"oneOf": [_ref("WorkflowStatus"), {"type": "null"}]},
        }
    ),
    "WorkflowList": _obj(
        {"items": {"type": "array", "items": _ref("WorkflowSummary")}},
    ),
    "ColorTransition": _obj(
        {
            "uid": {**STR, "description": "the Workflow's uid (one made again has another)"},
            "time": {**STR, "format": "date-time"},
            "fromColor": {
                "oneOf": [COLOR, {"type": "null"}],
                "description": "null: not known (the first color the operator saw, or one "
                "rebuilt from the status at start)",
            },
            "toColor": COLOR,
            "reason": {**STR, "description": "the Ready condition's reason then"},
        },
        description="One change of a Workflow's color.",
    ),
    "AuditRecord": _obj(
        {
            "id": {**STR, "description": "made once per action"},
            "time": {**STR, "format": "date-time"},
            "user": STR,
            "groups": {"type": "array", "items": STR},
            "action": {**STR, "description": "cancel, rerun, run or pruneHistory"},
            "namespace": STR,
            "kind": {**STR, "description": "the target's kind (FlowRun, Flow; '' for a prune)"},
            "name": STR,
            "result": {"type": "string", "enum": ["done", "refused", "failed"]},
            "status": {"type": "integer", "description": "the HTTP status answered"},
            "created": {"type": ["string", "null"], "description": "the run the action made"},
            "detail": {**STR, "description": "why it was refused or failed"},
        },
        description="One audited API action.",
    ),
    "AuditList": _obj(
        {
            "items": {"type": "array", "items": _ref("AuditRecord")},
            "continue": {
                "type": ["string", "null"],
                "description": "pass as `continue` for the next page (null: the last)",
            },
        }
    ),
    "WorkflowPods": _obj(
        {
            "namespace": STR,
            "name": STR,
            "services": {
                "type": "array",
                "description": "each service in spec order, with its Deployment's counts",
                "items": _obj(
                    {
                        "id": STR,
                        "desired": {**INT, "description": "the replicas asked for"},
                        "updated": {**INT, "description": "pods at the latest template"},
                        "ready": INT,
                        "available": {**INT, "description": "ready for minReadySeconds"},
                    },
                    {
                        "rolloutStatus": {"type": ["string", "null"]},
                        "rolloutStatusReason": {"type": ["string", "null"]},
                        "message": {
                            "type": ["string", "null"],
                            "description": "why its pods cannot be created",
                        },
                    },
                ),
            },
            "pods": {
                "type": "array",
                "description": "the Workflow's pods, by service then name",
                "items": _obj(
                    {
                        "name": STR,
                        "service": {"type": ["string", "null"]},
                        "status": {**STR, "description": "kubectl's STATUS, or Unschedulable"},
                        "message": {
                            "type": ["string", "null"],
                            "description": "the scheduler's (or kubelet's) message",
                        },
                        "ready": {**STR, "pattern": r"^\d+/\d+$"},
                        "restarts": INT,
                        "node": {"type": ["string", "null"]},
                        "created": {"type": ["string", "null"]},
                        "age": GO_DURATION,
                        "scheduled": {
                            "type": ["string", "null"],
                            "description": "PodScheduled: True, or its reason (Unschedulable)",
                        },
                    }
                ),
            },
        },
        description="The Workflow page's rollout counts and pods, from the operator's watches.",
    ),
    "WorkflowRuns": _obj(
        {"items": {"type": "array", "items": _ref("FlowRun")}},
        description="The live runs that use the Workflow, newest first (without tasks).",
    ),
    "WorkflowColors": _obj(
        {
            "namespace": STR,
            "name": STR,
            "since": {**STR, "format": "date-time"},
            "until": {**STR, "format": "date-time", "description": "never later than now"},
            "colorAtStart": {
                "oneOf": [COLOR, {"type": "null"}],
                "description": "the color at `since` (null: nothing stored before it)",
            },
            "transitions": {
                "type": "array",
                "items": _ref("ColorTransition"),
                "description": "in the window, oldest first",
            },
            "seconds": {
                "type": "object",
                "additionalProperties": {"type": "number", "minimum": 0},
                "description": "seconds in each color over the window; `unknown` before "
                "the first transition stored (they add up to the window)",
            },
            "greenShare": {
                "type": ["number", "null"],
                "description": "GREEN's share of the known time (null: none known)",
            },
        },
        description="A Workflow's color history over a window (docs/history.md).",
    ),
    "Task": _obj(
        {"name": STR, "status": STR},
        {
            "version": STR,
            "startTime": STR,
            "endTime": STR,
            "runtime": STR,
            "message": STR,
            "pod": STR,
            "dependsOn": {"type": "array", "items": STR, "description": "spec.tasks[].dependsOn"},
            "attempts": {**INT, "description": "pods its Job has started (absent: none)"},
            "reason": STR,
            "childRun": {**STR, "description": "the child FlowRun of a subFlow task"},
            "attemptDetail": {
                "type": "array",
                "items": _ref("Attempt"),
                "description": "one run, live, its pods in view: each attempt's time "
                "waiting, pending and running (docs/dashboard.md)",
            },
        },
    ),
    "Attempt": _obj(
        {
            "attempt": {"type": "integer", "minimum": 1},
            "outcome": STR,
            "segments": {
                "type": "array",
                "items": _obj(
                    {
                        "kind": {
                            "type": "string",
                            "enum": [
                                "waiting",
                                "backoff",
                                "unscheduled",
                                "starting",
                                "pending",
                                "running",
                            ],
                        },
                        "start": STR,
                        "end": STR,
                    },
                    {"reason": STR, "message": STR},
                ),
            },
        },
        {
            "pod": STR,
            "created": {"type": ["string", "null"]},
            "start": {"type": ["string", "null"]},
            "end": {"type": ["string", "null"]},
            "reason": STR,
            "exitCode": {"type": "integer"},
            "message": STR,
        },
        description="One attempt (pod) of a task: Succeeded, Failed, OOMKilled, Evicted, "
        "Running or Pending, and its segments in order.",
    ),
    "Transition": _obj(
        {"phase": {"type": "string", "enum": list(RUN_STATES)}, "time": STR},
        {"reason": STR, "message": STR},
        description="One phase change of the run (status.history).",
    ),
    "FlowRun": _obj(
        {
            "namespace": STR,
            "name": STR,
            "flowName": STR,
            "status": {"type": "string", "enum": list(RUN_STATES)},
        },
        {
            "flow": {
                "type": "string",
                "description": "the Flow it is a run of (its flowops.io/flow label, or "
                "the Flow its spec.flowRef names); absent for an inline run",
            },
            "version": STR,
            "level": STR,
            "runType": STR,
            "configuration": STR,
            "flowType": STR,
            "startTime": STR,
            "endTime": STR,
            "duration": STR,
            "message": STR,
            "reason": STR,
            "tasks": {"type": "array", "items": _ref("Task")},
            "history": {
                "type": "array",
                "items": _ref("Transition"),
                "description": "the phase changes, oldest first (one run, not the list)",
            },
        },
        description="One run: the columns of the Flow Run Status table, its tasks and "
        "(one run) its phase history.",
    ),
    "FlowRunList": _obj(
        {
            "items": {"type": "array", "items": _ref("FlowRun")},
            "total": {**INT, "description": "matching runs, on every page"},
            "counts": {
                "type": "object",
                "description": "matching runs in each state, on every page",
                "propertyNames": {"enum": list(RUN_STATES)},
                "additionalProperties": INT,
            },
        },
        {
            "continue": {
                **STR,
                "description": "present when more runs follow: pass it as `continue`",
            }
        },
    ),
    "FlowSummary": _obj(
        {"namespace": STR, "name": STR},
        {
            **FLOW_FIELDS,
            "schedules": {**STR, "description": "the schedules' names (the SCHEDULES column)"},
        },
        description="One Flow: the columns of `kubectl get flows`.",
    ),
    "FlowList": _obj({"items": {"type": "array", "items": _ref("FlowSummary")}}),
    "Flow": _obj(
        {"namespace": STR, "name": STR},
        {
            **FLOW_FIELDS,
            "schedules": {
                "type": "array",
                "items": {"type": "object", "description": "spec fields and their state"},
            },
            "scheduleSummary": STR,
            "versions": {"type": "array", "items": {"type": "object"}},
            "parameters": {"type": "array", "items": {"type": "object"}},
            "configurations": {"type": "array", "items": {"type": "object"}},
            "runs": {"type": "array", "items": {"type": "object"}, "description": "newest first"},
        },
        description="One Flow with what a Run form needs (parameters, configurations), "
        "its versions, each schedule (spec and state) and its newest runs.",
    ),
    "FlowStats": _obj(
        {
            "namespace": STR,
            "name": STR,
            "windowAsked": {**STR, "description": "the window as asked (default 7d)"},
            "last": {"type": "integer", "minimum": 1, "maximum": 500},
            "window": _obj({"since": STR, "until": STR}),
            "overall": _ref("RunSummary"),
            "versions": {
                "type": "array",
                "items": _ref("RunGroup"),
                "description": "newest version first",
            },
            "configurations": {"type": "array", "items": _ref("RunGroup")},
            "trend": {
                "type": "array",
                "description": "the last `last` finished runs, oldest first",
                "items": _obj(
                    {"name": STR, "status": STR},
                    {
                        "version": {"type": ["string", "null"]},
                        "configuration": {"type": ["string", "null"]},
                        "startTime": {"type": ["string", "null"]},
                        "endTime": {"type": ["string", "null"]},
                        "durationSeconds": {"type": ["number", "null"]},
                    },
                ),
            },
            "flag": _obj(
                {
                    "slower": BOOL,
                    "failing": BOOL,
                    "enough": {**BOOL, "description": "false: too few runs to judge"},
                    "recent": _ref("RunSide"),
                    "baseline": _ref("RunSide"),
                    "reasons": {"type": "array", "items": STR},
                }
            ),
            "truncated": {**BOOL, "description": "the window held more runs than are read"},
            "definitions": {"type": "object", "description": "the flag's thresholds"},
        },
        description="A flow's health over a window (docs/flows.md, Flow stats): success "
        "rate and p50/p95 duration per version and configuration, the duration trend of "
        "its last runs, and whether the newest runs are markedly slower or failing more.",
    ),
    "RunSummary": _obj(
        {k: INT for k in ("runs", "unfinished", "succeeded", "failed", "cancelled")},
        {
            "successRate": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "p50Seconds": {"type": ["number", "null"], "minimum": 0},
            "p95Seconds": {"type": ["number", "null"], "minimum": 0},
        },
    ),
    "RunGroup": _obj(
        {
            "name": STR,
            **{k: INT for k in ("runs", "unfinished", "succeeded", "failed", "cancelled")},
        },
        {
            "successRate": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "p50Seconds": {"type": ["number", "null"], "minimum": 0},
            "p95Seconds": {"type": ["number", "null"], "minimum": 0},
        },
    ),
    "RunSide": _obj(
        {"runs": INT, "failures": INT, "successes": INT},
        {
            "failureRate": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "p50Seconds": {"type": ["number", "null"], "minimum": 0},
        },
    ),
    "RunRequest": {
        "type": "object",
        "properties": {
            "version": {"type": "integer", "minimum": 1, "description": "absent: the current"},
            "configuration": {**STR, "description": "one of the flow's configurations"},
            "parameters": {"type": "object", "additionalProperties": STR},
            "runType": {"type": "string", "enum": ["API", "Manual"], "default": "API"},
            "idempotencyKey": {
                **STR,
                "description": "the same key and request answer the run it made (200)",
            },
        },
        "additionalProperties": False,
    },
    "FieldErrors": _obj(
        {
            "error": STR,
            "message": STR,
            "errors": {
                "type": "array",
                "items": _obj({"path": STR, "message": STR}),
                "description": "each field at fault (`parameters.region`) and what fixes it",
            },
        }
    ),
    "Error": _obj({"error": STR, "message": STR}),
    "Me": _obj(
        {
            "user": STR,
            "groups": {"type": "array", "items": STR},
            "authMode": {"type": "string", "enum": ["kubernetes", "token"]},
            "readOnly": BOOL,
            "clusterWide": {
                "type": "array",
                "items": {"type": "string", "enum": ["flowruns", "workflows", "flows"]},
                "description": "what the caller may list in every namespace",
            },
            "namespaces": {
                "type": "array",
                "items": _obj(
                    {
                        "namespace": STR,
                        "actions": {
                            "type": "array",
                            "items": {
                                "type": "string",
                                "enum": [
                                    "flowruns",
                                    "workflows",
                                    "flows",
                                    "logs",
                                    "cancel",
                                    "rerun",
                                    "run",
                                ],
                            },
                        },
                    }
                ),
                "description": "each namespace the operator serves where the caller may do "
                "something, and what (lists, logs, actions; none of the actions when read-only)",
            },
        },
        description="The caller of GET /api/v1/me and what they may do (docs/security.md).",
    ),
    "Health": _obj({"status": STR}, {"reason": READY_REASON}),
    "PruneReport": _obj(
        {
            "dryRun": BOOL,
            "byAge": {**INT, "description": "runs past maxAge"},
            "byCount": {**INT, "description": "runs past keepPerFlowStatus"},
            "colorTransitions": {
                **INT,
                "description": "Workflow color transitions past maxAge (each Workflow's "
                "newest is kept)",
            },
            "auditRecords": {**INT, "description": "audit records past maxAge"},
            "batches": {**INT, "description": "delete transactions (0 in a dry run)"},
            "examples": {
                "type": "array",
                "items": STR,
                "description": "up to 20 of them, as namespace/name (uid)",
            },
            "total": INT,
        },
        description="What a prune of the run history deleted, or would delete.",
    ),
}


def _response(description: str, schema: str | None = None, media: str = "application/json") -> S:
    out: S = {"description": description}
    if schema is not None:
        out["content"] = {media: {"schema": _ref(schema)}}
    return out


ERR = "Error"
UNAUTHORIZED = _response("Missing or wrong credential", ERR)
LIMITED = _response("Too many failed authentications from this address", ERR)
UNAVAILABLE = _response("Flow runs are not served by this operator", ERR)
NAMESPACE: S = {"name": "namespace", "in": "path", "required": True, "schema": STR}
NAME: S = {"name": "name", "in": "path", "required": True, "schema": STR}
BEARER_OP: S = {"security": [{"operatorToken": []}]}


def _flowrun_op(summary: str, ok: S, *, extra: dict[str, S] | None = None, **more: Any) -> S:
    return {
        "summary": summary,
        **BEARER_OP,
        "parameters": [NAMESPACE, NAME, *more.pop("parameters", [])],
        "responses": {
            **ok,
            "401": UNAUTHORIZED,
            "404": _response("No such flow run (or task)", ERR),
            "429": LIMITED,
            "503": UNAVAILABLE,
            **(extra or {}),
        },
        **more,
    }


RERUN_VERSION: S = {
    "name": "version",
    "in": "query",
    "required": False,
    "description": "Absent: the rerun keeps the run's Flow version. `latest`: the Flow's "
    "current version, with the run's configuration and values (409 for a run of no Flow).",
    "schema": {"type": "string", "enum": ["latest"]},
}


def _action(verb: str, ok: str) -> S:
    more: dict[str, Any] = {"parameters": [RERUN_VERSION]} if verb == "rerun" else {}
    extra = {"409": _response(f"The run cannot be {verb}led now", ERR)}
    if verb == "rerun":
        extra["400"] = _response("version is neither absent nor latest", ERR)
    return {
        "post": _flowrun_op(
            f"{verb.capitalize()} a flow run",
            {ok: _response(f"The run after `{verb}`", "FlowRun")},
            extra=extra,
            operationId=f"{verb}FlowRun",
            **more,
        )
    }


def _flows_op(summary: str, ok: S, **more: Any) -> S:
    return {
        "summary": summary,
        **BEARER_OP,
        "responses": {
            **ok,
            "401": UNAUTHORIZED,
            "429": LIMITED,
            "503": _response("Flows are not served by this operator", ERR),
            **more.pop("responses", {}),
        },
        **more,
    }


FLOW_PATHS: dict[str, S] = {
    "/api/v1/flows": {
        "get": _flows_op(
            "List Flows with their version, schedules, next run and last run",
            {"200": _response("The Flows", "FlowList")},
            operationId="listFlows",
            parameters=[{"name": "namespace", "in": "query", "schema": STR}],
        )
    },
    "/api/v1/flows/{namespace}/{name}": {
        "get": _flows_op(
            "One Flow: versions, parameters, configurations, schedules, recent runs",
            {"200": _response("The Flow", "Flow")},
            operationId="getFlow",
            parameters=[NAMESPACE, NAME],
            responses={"404": _response("No such flow", ERR)},
        )
    },
    "/api/v1/flows/{namespace}/{name}/stats": {
        "get": _flows_op(
            "A flow's success rate, p50/p95 duration and trend over a window, and a flag "
            "when its newest runs are markedly slower or failing more often",
            {"200": _response("The flow's stats", "FlowStats")},
            operationId="getFlowStats",
            parameters=[
                NAMESPACE,
                NAME,
                {
                    "name": "window",
                    "in": "query",
                    "required": False,
                    "description": "how far back, 1h to 90d (e.g. 24h, 7d, 30d); default 7d",
                    "schema": {"type": "string", "pattern": r"^(\d+[smhdw])+$", "default": "7d"},
                },
                {
                    "name": "last",
                    "in": "query",
                    "required": False,
                    "description": "the trend's runs, 1 to 500; default 50",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                },
            ],
            responses={
                "400": _response("window or last is not what it takes (named)", ERR),
                "404": _response("No such flow, live or with runs in the window", ERR),
            },
        )
    },
    "/api/v1/flows/{namespace}/{name}/runs": {
        "post": _flows_op(
            "Run the flow: a FlowRun of the version asked for (the current one by default)",
            {
                "201": _response("The new run", "FlowRun"),
                "200": _response("The run this idempotency key made before", "FlowRun"),
            },
            operationId="runFlow",
            parameters=[NAMESPACE, NAME],
            requestBody={
                "required": False,
                "content": {"application/json": {"schema": _ref("RunRequest")}},
            },
            responses={
                "400": _response("The body is not what it takes (fields named)", "FieldErrors"),
                "404": _response("No such flow", ERR),
                "409": _response(
                    "Not started: concurrency Forbid skipped it, or the flow is invalid", ERR
                ),
                "422": _response(
                    "The version, configuration or parameters are refused (fields named); "
                    "nothing was created",
                    "FieldErrors",
                ),
            },
        )
    },
}


PATHS: dict[str, S] = {
    "/healthz": {
        "get": {
            "summary": "Liveness: the process serves HTTP",
            "operationId": "healthz",
            "responses": {"200": _response("Alive", "Health")},
        }
    },
    "/readyz": {
        "get": {
            "summary": "Readiness: startup finished and the Workflow index is filled",
            "operationId": "readyz",
            "responses": {
                "200": _response("Ready", "Health"),
                "503": _response("Not ready yet", "Health"),
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "operationId": "openapi",
            "responses": {"200": {"description": "The OpenAPI document"}},
        }
    },
    "/": {
        "get": {
            "summary": "The dashboard (HTML; its data comes from the JSON endpoints)",
            "operationId": "dashboard",
            "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
        }
    },
    "/static/{filename}": {
        "get": {
            "summary": "The dashboard's scripts, style sheet, icon and vendored libraries",
            "operationId": "static",
            "parameters": [{"name": "filename", "in": "path", "required": True, "schema": STR}],
            "responses": {
                "200": {"description": "The file"},
                "404": _response("No such file", ERR),
            },
        }
    },
    "/api/v1/runtime/workflow/{workflowId}/action/status": {
        "get": {
            "summary": "Status of a workflow (the reference Workflow status API)",
            "operationId": "workflowStatus",
            "security": [{"apiKey": []}],
            "parameters": [
                {
                    "name": "workflowId",
                    "in": "path",
                    "required": True,
                    "description": "`{namespace}.{name}`, or a plain name unique across "
                    "the namespaces the key is valid for",
                    "schema": STR,
                }
            ],
            "responses": {
                "200": _response("The status document", "WorkflowStatus"),
                "401": UNAUTHORIZED,
                "404": _response("The workflow was never published", ERR),
                "409": _response("A plain name the key is valid for in several namespaces", ERR),
                "429": LIMITED,
            },
        }
    },
    "/api/v1/workflows": {
        "get": {
            "summary": "Every Workflow with its status (the dashboard's Workflows page)",
            "operationId": "listWorkflows",
            **BEARER_OP,
            "parameters": [{"name": "namespace", "in": "query", "schema": STR}],
            "responses": {
                "200": _response("The workflows", "WorkflowList"),
                "401": UNAUTHORIZED,
                "429": LIMITED,
            },
        }
    },
    "/api/v1/workflows/{namespace}/{name}/colors": {
        "get": {
            "summary": "A Workflow's color transitions and time in each color over a window",
            "description": "From the run store (docs/history.md); takes `get workflows` in "
            "the namespace (kubernetes auth mode).",
            "operationId": "getWorkflowColors",
            **BEARER_OP,
            "parameters": [
                NAMESPACE,
                NAME,
                *(
                    {
                        "name": n,
                        "in": "query",
                        "description": d + " (RFC 3339 with an offset)",
                        "schema": {**STR, "format": "date-time"},
                    }
                    for n, d in (
                        ("since", "the window's start (absent: a day before until)"),
                        ("until", "the window's end, exclusive (absent, or later: now)"),
                    )
                ),
            ],
            "responses": {
                "200": _response("The window's transitions and time in color", "WorkflowColors"),
                "400": _response("since or until is not a time, or the window is not one", ERR),
                "401": UNAUTHORIZED,
                "404": _response("No such Workflow, live or in the run store", ERR),
                "429": LIMITED,
                "503": _response("The run store cannot be read now", ERR),
            },
        }
    },
    "/api/v1/workflows/{namespace}/{name}/pods": {
        "get": {
            "summary": "A Workflow's services' rollout and its pods (the Workflow page)",
            "description": "From the operator's watches of the Workflow's Deployments and "
            "pods, no API read per request; takes `get workflows` and `list pods` in the "
            "namespace (kubernetes auth mode).",
            "operationId": "getWorkflowPods",
            **BEARER_OP,
            "parameters": [NAMESPACE, NAME],
            "responses": {
                "200": _response("The rollout counts and the pods", "WorkflowPods"),
                "401": UNAUTHORIZED,
                "404": _response("No such Workflow", ERR),
                "429": LIMITED,
            },
        }
    },
    "/api/v1/workflows/{namespace}/{name}/runs": {
        "get": {
            "summary": "The live runs that use a Workflow (the Workflow page)",
            "description": "Runs whose spec.workflowRef, or whose Flow version's, names the "
            "Workflow, from the FlowRun index (runs gone from the cluster are not listed); "
            "takes `get workflows` and `list flowruns` in the namespace.",
            "operationId": "getWorkflowRuns",
            **BEARER_OP,
            "parameters": [NAMESPACE, NAME],
            "responses": {
                "200": _response("The runs, newest first", "WorkflowRuns"),
                "401": UNAUTHORIZED,
                "404": _response("No such Workflow", ERR),
                "429": LIMITED,
                "503": _response("Flow runs are not served", ERR),
            },
        }
    },
    "/api/v1/audit": {
        "get": {
            "summary": "The API's audited actions, newest first (admins only)",
            "description": "From the run store's audit table (docs/security.md, Audit). "
            "Takes `list audits.flowops.io` cluster-wide (kubernetes auth mode).",
            "operationId": "listAudit",
            **BEARER_OP,
            "parameters": [
                *(
                    {"name": n, "in": "query", "description": d, "schema": STR}
                    for n, d in (
                        ("user", "the caller, exact"),
                        ("namespace", "the target's namespace, exact"),
                        ("action", "exact: cancel, rerun, run, pruneHistory"),
                        ("continue", "the `continue` of the previous page (same filters)"),
                    )
                ),
                {
                    "name": "limit",
                    "in": "query",
                    "description": "at most this many (absent: 50)",
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                },
            ],
            "responses": {
                "200": _response("One page of the audit", "AuditList"),
                "400": _response("A query parameter is not what it takes", ERR),
                "401": UNAUTHORIZED,
                "429": LIMITED,
                "503": _response("The run store cannot be read now", ERR),
            },
        }
    },
    "/api/v1/flowruns": {
        "get": {
            "summary": "Flow runs, live and from the history, newest first, filtered",
            "description": "The live runs merged with the run store's history (the live "
            "object wins; docs/history.md), newest first by start (or creation) time, one "
            "page at a time: pass `continue` for the next.",
            "operationId": "listFlowRuns",
            **BEARER_OP,
            "parameters": [
                {
                    "name": "search",
                    "in": "query",
                    "description": "substring of name, flow, configuration, run type or status",
                    "schema": STR,
                },
                *(
                    {"name": n, "in": "query", "description": d, "schema": STR}
                    for n, d in (
                        ("name", "substring of the run's or the flow's name"),
                        ("configuration", "substring of the configuration's name"),
                        ("runType", "exact (any case)"),
                        ("status", "exact (any case); `counts` ignore it"),
                        ("flow", "the flow's name, exact"),
                        ("namespace", "exact"),
                        ("level", "exact (any case)"),
                        ("logContains", "substring of any task's stored log"),
                    )
                ),
                *(
                    {
                        "name": n,
                        "in": "query",
                        "description": d + " (RFC 3339 with a zone)",
                        "schema": {**STR, "format": "date-time"},
                    }
                    for n, d in (
                        ("since", "runs started (or created) at or after this time"),
                        ("until", "runs started (or created) before this time"),
                    )
                ),
                {
                    "name": "limit",
                    "in": "query",
                    "description": f"at most this many runs (absent: {MAX_LIMIT})",
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                },
                {
                    "name": "continue",
                    "in": "query",
                    "description": "the `continue` of the previous page (same filters)",
                    "schema": STR,
                },
            ],
            "responses": {
                "200": _response("The runs (without their tasks)", "FlowRunList"),
                "400": _response("A query parameter is not what it takes", ERR),
                "401": UNAUTHORIZED,
                "429": LIMITED,
                "503": UNAVAILABLE,
            },
        }
    },
    "/api/v1/flowruns/{namespace}/{name}": {
        "get": _flowrun_op(
            "One flow run with its tasks",
            {"200": _response("The run", "FlowRun")},
            operationId="getFlowRun",
        )
    },
    "/api/v1/flowruns/{namespace}/{name}/tasks/{task}/logs": {
        "get": _flowrun_op(
            "A task's log, streamed from its pod, or from the history once the pod is gone",
            {
                "200": {
                    "description": "The log. From the history, the headers say so: "
                    "X-Log-Source: history, X-Log-Attempt, X-Log-Truncated (true: only the "
                    "tail was kept, --log-cap), X-Log-Size (bytes before the cut), X-Log-Lost "
                    "(why there is no log, e.g. `log lost: pod deleted before capture`)",
                    "headers": {
                        h: {"schema": STR}
                        for h in (
                            "X-Log-Source",
                            "X-Log-Attempt",
                            "X-Log-Truncated",
                            "X-Log-Size",
                            "X-Log-Lost",
                        )
                    },
                    "content": {"text/plain": {"schema": STR}},
                }
            },
            extra={
                "400": _response("A query parameter is not what it takes", ERR),
                "409": _response("The task has no pod (yet)", ERR),
                "429": _response(
                    "Too many failed authentications from this address, or "
                    "--max-log-streams task logs are being streamed already "
                    "(TooManyLogStreams; Retry-After says when to retry)",
                    ERR,
                ),
            },
            operationId="taskLogs",
            parameters=[
                {"name": "task", "in": "path", "required": True, "schema": STR},
                {"name": "follow", "in": "query", "schema": {"type": "boolean"}},
                {
                    "name": "tailLines",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
                },
                {
                    "name": "limitBytes",
                    "in": "query",
                    "description": "at most this many bytes of the log (after tailLines; may "
                    "end mid-line); absent: the whole log",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1 << 30},
                },
                {
                    "name": "attempt",
                    "in": "query",
                    "description": "this attempt's stored log (absent: the latest, live if "
                    "its pod is there)",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 10_000},
                },
            ],
        )
    },
    "/api/v1/flowruns/{namespace}/{name}/cancel": _action("cancel", "200"),
    "/api/v1/flowruns/{namespace}/{name}/rerun": _action("rerun", "201"),
    **FLOW_PATHS,
    "/api/v1/history/prune": {
        "post": {
            "summary": "Prune the run history now (flowctl history prune)",
            "description": "By age and by count per namespace, flow and status, each the "
            "operator's setting (--history-retention, --history-keep-per-flow-status) unless "
            "given. `dryRun=true` reports what would be deleted and deletes nothing. A "
            "prune is an action: refused under --read-only, audited; kubernetes auth mode "
            "needs `deletecollection flowruns` cluster-wide (a dry run: `list`).",
            "operationId": "pruneHistory",
            **BEARER_OP,
            "parameters": [
                {"name": "dryRun", "in": "query", "schema": BOOL},
                {
                    "name": "maxAge",
                    "in": "query",
                    "description": "runs that ended longer ago go: 90d, 12h, 1d12h, seconds, "
                    "or never",
                    "schema": STR,
                },
                {
                    "name": "keepPerFlowStatus",
                    "in": "query",
                    "description": "keep the newest N per namespace, flow and status (none: "
                    "no limit)",
                    "schema": STR,
                },
            ],
            "responses": {
                "200": _response("What was (or with dryRun would be) deleted", "PruneReport"),
                "400": _response("A query parameter is not what it takes", ERR),
                "401": UNAUTHORIZED,
                "429": LIMITED,
                "500": _response("The prune failed", ERR),
                "503": _response("The history database cannot be reached", ERR),
            },
        }
    },
    "/api/v1/stream": {
        "get": {
            "summary": "Live updates: Server-Sent Events of run and Workflow changes",
            "description": "Events `run` (data: kind, namespace, name, run: a FlowRun with its "
            "tasks and history) and `workflow` (data: kind, namespace, name, actualStatus, gone), "
            "each with a sequence `id`; `ready` first on a fresh connection; `reset` when a "
            "`Last-Event-ID` is older than the server's ring (fetch again). See docs/api.md.",
            "operationId": "stream",
            **BEARER_OP,
            "parameters": [
                {"name": "namespace", "in": "query", "schema": STR},
                {
                    "name": "run",
                    "in": "query",
                    "description": "one run's events (needs namespace)",
                    "schema": STR,
                },
                {
                    "name": "kinds",
                    "in": "query",
                    "description": "runs, workflows or both (comma-separated; default both)",
                    "schema": STR,
                },
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "description": "resume after this event",
                    "schema": STR,
                },
            ],
            "responses": {
                "200": {
                    "description": "The event stream (open until the client leaves)",
                    "content": {"text/event-stream": {"schema": STR}},
                },
                "400": _response("A query parameter is not what it takes", ERR),
                "401": UNAUTHORIZED,
                "429": _response("Too many failed authentications, or too many streams", ERR),
                "503": _response("Live updates are not served by this operator", ERR),
            },
        }
    },
}

DOCUMENT: S = {
    "openapi": "3.1.0",
    "info": {
        "title": "Flow Operator API",
        "version": "v1",
        "description": "Workflow status (the reference API), flow runs and the dashboard's "
        "data. See docs/api.md.",
    },
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "apiKey": {
                "type": "apiKey",
                "in": "header",
                "name": "X-API-KEY",
                "description": "A value of the Secret named in the Workflow's spec.apiKeySecretRef",
            },
            "operatorToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "--auth-mode kubernetes: a Kubernetes token (`kubectl create "
                "token`, or OIDC); --auth-mode token: a value of the operator's token Secret",
            },
        },
    },
}


FORBIDDEN = _response(
    "Authenticated, but not allowed: the message names the missing permission "
    "(`cannot patch flowruns in team-b`), or says the API is read-only",
    ERR,
)
VERIFY_FAILED = _response(
    "The token or the permission could not be checked now (kubernetes auth mode)", ERR
)
PATHS["/api/v1/me"] = {
    "get": {
        "summary": "Who the bearer token is, and per namespace what they may see and do",
        "operationId": "me",
        **BEARER_OP,
        "responses": {
            "200": _response("The caller", "Me"),
            "401": UNAUTHORIZED,
            "429": LIMITED,
            "503": VERIFY_FAILED,
        },
    }
}


def _with_403(doc: S) -> S:
    """Every bearer operation may answer 403 (a permission missing, or read-only)."""
    for item in doc["paths"].values():
        for op in item.values():
            if op.get("security") == BEARER_OP["security"]:
                op["responses"].setdefault("403", FORBIDDEN)
                op["responses"].setdefault("503", VERIFY_FAILED)
    return doc


def document() -> S:
    return _with_403(copy.deepcopy(DOCUMENT))
