"""Fakes and helpers for the HTTP API tests: an operator view, a Secret store, a clock,
and validation of responses against the served OpenAPI document."""

from __future__ import annotations

import base64
import itertools
from collections.abc import AsyncIterator, Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema

from flow_operator.api.auth import API_KEY_TYPE, FailureLimiter, SecretKeys
from flow_operator.api.flowrun_backend import matches
from flow_operator.api.flowruns import FlowRunBackend, FlowRunError, run_query
from flow_operator.api.openapi import document
from flow_operator.api.server import Api, Readiness
from flow_operator.api.workflows import WorkflowDirectory
from flow_operator.errors import NotFound
from flow_operator.history.store import (
    AuditPage,
    AuditQuery,
    ColorHistory,
    PrunePolicy,
    PruneReport,
    RunRecord,
    TaskRecord,
)
from flow_operator.models.workflow import Workflow
from flow_operator.objects.times import parse_aware
from flow_operator.ports import SecretData
from flow_operator.status.aggregate import Observed, aggregate
from flow_operator.views.paging import Page
from flow_operator.views.runs import FlowRunRow, TaskRow, page_of, select

Body = dict[str, Any]
FINISHED = frozenset({"Completed", "Failed", "Crashed", "Cancelled"})
NOW = datetime(2024, 2, 12, 10, 14, 53, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Secrets:
    """Secrets by (namespace, name): values in the clear, of type flowops.io/api-key unless
    `put` says otherwise; records every read."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], dict[str, str]] = {}
        self.types: dict[tuple[str, str], str] = {}
        self.reads: list[tuple[str, str]] = []

    def put(
        self, namespace: str, name: str, secret_type: str = API_KEY_TYPE, **values: str
    ) -> None:
        self.values[(namespace, name)] = values
        self.types[(namespace, name)] = secret_type

    async def read(self, namespace: str, name: str) -> SecretData:
        self.reads.append((namespace, name))
        values = self.values.get((namespace, name))
        if values is None:
            raise NotFound(f'secrets "{name}" not found', status=404)
        data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
        return SecretData(self.types[(namespace, name)], data)


class View:
    """The two indexes the API reads, as plain dicts of lists (kopf's shape)."""

    def __init__(self) -> None:
        self.workflows: dict[tuple[str, str], list[Body]] = {}
        self.pods: dict[tuple[str, str], list[Body]] = {}

    def add(
        self,
        body: Body,
        observed: Observed | None = None,
        *,
        secret: str | None = None,
        published: bool = True,
    ) -> Body:
        """Index `body` with the status the reconciler would write for `observed`."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        if secret:
            body["spec"]["apiKeySecretRef"] = {"name": secret}
        if observed is not None:
            status = aggregate(Workflow.from_body(body), observed, NOW).dump()
            if not published:
                status.pop("firstPublishedAt", None)
            body["status"] = status
            self.pods[key] = [p for pods in observed.pods.values() for p in pods]
        meta.setdefault("resourceVersion", "1")
        self.workflows[key] = [body]
        return body


def make_api(
    view: View,
    secrets: Secrets,
    *,
    clock: Clock | None = None,
    flowruns: FlowRunBackend | None = None,
    token_secret: tuple[str, str] | None = ("flow-system", "flow-operator-api"),
) -> Api:
    clock = clock or Clock()
    return Api(
        directory=WorkflowDirectory(view.workflows, view.pods, clock=lambda: NOW),
        secrets=SecretKeys(secrets.read, ttl=30.0, clock=clock),
        token_secret=token_secret,
        flowruns=flowruns,
        limiter=FailureLimiter(burst=5, per_second=0.5, clock=clock),
        readiness=Readiness(ready=True, reason="test"),
    )


OPENAPI = document()


def validate(path: str, method: str, status: int, body: Any) -> None:
    """`body` must match the schema the document gives for this response."""
    op = OPENAPI["paths"][path][method.lower()]
    response = op["responses"][str(status)]
    schema = response["content"]["application/json"]["schema"]
    root = {**schema, "components": OPENAPI["components"]}
    jsonschema.validate(body, root, cls=jsonschema.Draft202012Validator)


def schema_of(name: str) -> Body:
    return {"$ref": f"#/components/schemas/{name}", "components": OPENAPI["components"]}


def sample_runs() -> list[FlowRunRow]:
    """A few runs in the seed's states, with tasks, for the flow-run tests and the dashboard."""

    def task(name: str, status: str, start: str | None, end: str | None, rt: str | None,
             message: str | None = None) -> TaskRow:  # fmt: skip
        return TaskRow(name=name, version="1.0", status=status, startTime=start, endTime=end,
                       runtime=rt, message=message, pod=f"{name}-pod" if start else None)  # fmt: skip

    return [
        FlowRunRow(namespace="analytics", name="churn-weekly-7f3k", flowName="churn-weekly",
                   version="3", level="organization", runType="Scheduled",
                   configuration="churn-prod", flowType="standalone",
                   startTime="2024-02-12T09:00:00Z", endTime="2024-02-12T09:14:05Z",
                   duration="14m5s", status="Completed", message="all 3 tasks completed",
                   tasks=[task("extract", "Succeeded", "2024-02-12T09:00:02Z", "2024-02-12T09:03:10Z", "3m8s"),
                          task("train", "Succeeded", "2024-02-12T09:03:12Z", "2024-02-12T09:12:40Z", "9m28s"),
                          task("publish", "Succeeded", "2024-02-12T09:12:42Z", "2024-02-12T09:14:05Z", "1m23s")]),
        FlowRunRow(namespace="analytics", name="sales-forecast-x2p9", flowName="sales-forecast",
                   version="12", level="user", runType="Manual", configuration="emea",
                   flowType="standalone", startTime="2024-02-12T10:01:00Z", duration="13m53s",
                   status="Deployed", message="2 of 3 tasks done; running: score",
                   tasks=[task("load", "Succeeded", "2024-02-12T10:01:03Z", "2024-02-12T10:02:00Z", "57s"),
                          task("features", "Succeeded", "2024-02-12T10:02:01Z", "2024-02-12T10:09:30Z", "7m29s"),
                          task("score", "Running", "2024-02-12T10:09:31Z", None, None)]),
        FlowRunRow(namespace="ml", name="nlp-tagging-k8d1", flowName="nlp-tagging", version="2",
                   level="platform", runType="Triggered", configuration="default",
                   flowType="sub-flow", startTime="2024-02-12T08:30:00Z",
                   endTime="2024-02-12T08:31:12Z", duration="1m12s", status="Failed",
                   message="task tokenize failed: exit code 2 (Error)",
                   tasks=[task("tokenize", "Failed", "2024-02-12T08:30:05Z", "2024-02-12T08:31:12Z", "1m7s", "exit code 2 (Error)"),
                          task("tag", "Skipped", None, None, None)]),
        FlowRunRow(namespace="ml", name="nightly-etl-q1w2", flowName="nightly-etl", version="5",
                   level="organization", runType="Scheduled", configuration="warehouse",
                   flowType="standalone", status="Queued", message="waiting for capacity",
                   tasks=[task("copy", "Pending", None, None, None)]),
    ]  # fmt: skip


def _record(row: FlowRunRow) -> RunRecord:
    """A row as the store would hold it, for the operator's query semantics."""
    return RunRecord(
        uid=f"{row.namespace}/{row.name}",
        namespace=row.namespace,
        name=row.name,
        flow_name=row.flowName,
        level=row.level,
        run_type=row.runType,
        configuration=row.configuration,
        status=row.status,
        created=NOW,
        start_time=parse_aware(row.startTime),
        tasks=tuple(TaskRecord(name=t.name, status=t.status) for t in row.tasks or []),
    )


class MemoryFlowRuns:
    """A FlowRunBackend over rows in memory that answers as the operator's does
    (api/flowrun_backend.py; tests/unit/api_contract.py holds both to one contract):

    - cancel answers the run as it stands, message `cancel requested`; the run turns
      Cancelled only when "the operator" acts (`settle()`): running tasks Cancelled,
      pending ones Skipped, as flowrun/machine.py does;
    - rerun creates `<name>-<5 letters>` (generateName), Manual, Submitted, tasks Pending;
    - task statuses are the operator's own (Succeeded, not Completed)."""

    def __init__(self, rows: list[FlowRunRow] | None = None) -> None:
        self.rows = {
            (r.namespace, r.name): r for r in (rows if rows is not None else sample_runs())
        }
        self.logs_text: dict[str, str] = {}
        self.actions: list[tuple[str, str, str]] = []
        self.cancel_requested: set[tuple[str, str]] = set()
        self.pruned: list[PrunePolicy] = []
        self._names = itertools.count()

    def list(self, **filters: str) -> list[dict[str, Any]]:
        return select(self.rows.values(), filters)

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        row = self.rows.get((namespace, name))
        return row.dump() if row else None

    async def namespaces(self) -> set[str]:
        return {ns for ns, _ in self.rows}

    async def page(
        self,
        filters: Mapping[str, str],
        *,
        limit: int | None = None,
        cursor: str | None = None,
        namespaces: Collection[str] | None = None,
    ) -> Page[dict[str, Any]]:
        """The operator's query semantics (flowrun_backend.matches) over the rows."""
        query = run_query(filters)
        chosen = [
            r
            for r in self.rows.values()
            if matches(_record(r), query) and (namespaces is None or r.namespace in namespaces)
        ]
        unfiltered = [
            r
            for r in self.rows.values()
            if matches(_record(r), query, status=False)
            and (namespaces is None or r.namespace in namespaces)
        ]
        page = page_of(select(chosen, {}), limit=limit, cursor=cursor)
        counts: dict[str, int] = {}
        for r in unfiltered:
            counts[r.status] = counts.get(r.status, 0) + 1
        return Page(items=page.items, next=page.next, total=page.total, counts=counts)

    async def detail(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get(namespace, name)

    @property
    def retention(self) -> PrunePolicy:
        return PrunePolicy(max_age=timedelta(days=90))

    async def prune(self, policy: PrunePolicy, *, dry_run: bool) -> PruneReport:
        self.pruned.append(policy)
        self.actions.append(("prune-dry-run" if dry_run else "prune", "", ""))
        return PruneReport(dry_run=dry_run)

    async def colors(
        self, namespace: str, name: str, since: datetime, until: datetime
    ) -> ColorHistory:
        return ColorHistory()

    async def audit(
        self, query: AuditQuery, *, limit: int | None = None, cursor: str | None = None
    ) -> AuditPage:
        return AuditPage(items=())

    def _row(self, namespace: str, name: str) -> FlowRunRow:
        row = self.rows.get((namespace, name))
        if row is None:
            raise FlowRunError(404, "NotFound", f"no flow run {namespace}/{name}")
        return row

    async def logs(
        self,
        namespace: str,
        name: str,
        task: str,
        *,
        follow: bool,
        tail_lines: int | None,
        attempt: int | None = None,
        limit_bytes: int | None = None,
    ) -> AsyncIterator[bytes]:
        row = self._row(namespace, name)
        found = next((t for t in row.tasks or [] if t.name == task), None)
        if found is None:
            raise FlowRunError(404, "NotFound", f"flow run {namespace}/{name} has no task {task}")
        if found.pod is None:
            raise FlowRunError(409, "Conflict", f"task {task} has no pod yet")
        text = self.logs_text.get(task, f"{task}: starting\n{task}: working\n{task}: done\n")
        lines = text.splitlines(keepends=True)
        lines = lines[-tail_lines:] if tail_lines is not None else lines
        data = [line.encode() for line in lines]
        if limit_bytes is not None:  # as pods/log: the tail, then the byte limit
            data = [b"".join(data)[:limit_bytes]]

        async def chunks() -> AsyncIterator[bytes]:
            for piece in data:
                yield piece

        return chunks()

    async def cancel(self, namespace: str, name: str) -> dict[str, Any]:
        row = self._row(namespace, name)
        if row.status in FINISHED:
            raise FlowRunError(409, "Conflict", f"flow run {name} already finished ({row.status})")
        self.cancel_requested.add((namespace, name))
        self.actions.append(("cancel", namespace, name))
        return row.model_copy(update={"message": "cancel requested"}).dump()

    def settle(self) -> None:
        """What the operator does next: every run whose cancel was requested is Cancelled."""
        for key in sorted(self.cancel_requested):
            row = self.rows[key]
            stopped = "stopped: the run is Cancelled"
            tasks = [
                t.model_copy(update={"status": "Cancelled", "message": stopped})
                if t.status == "Running"
                else t.model_copy(update={"status": "Skipped"})
                if t.status == "Pending"
                else t
                for t in row.tasks or []
            ]
            self.rows[key] = row.model_copy(
                update={
                    "status": "Cancelled",
                    "message": "cancelled on request (spec.cancel)",
                    "tasks": tasks,
                }
            )
        self.cancel_requested.clear()

    async def rerun(self, namespace: str, name: str, *, latest: bool = False) -> dict[str, Any]:
        row = self._row(namespace, name)
        suffix = "".join("bcdfghjklmnpqrstvwxz"[int(d)] for d in f"{next(self._names):05d}")
        new = row.model_copy(
            update={
                "name": f"{name[:56]}-{suffix}",
                "runType": "Manual",
                "status": "Submitted",
                "startTime": None,
                "endTime": None,
                "duration": None,
                "message": None,
                "tasks": [
                    TaskRow(name=t.name, version=t.version, status="Pending")
                    for t in row.tasks or []
                ],
            }
        )
        self.rows[(namespace, new.name)] = new
        self.actions.append(("rerun", namespace, name))
        return new.dump()


def demo_view() -> View:
    """The six reference examples as six Workflows in two namespaces (dashboard, screenshots)."""
    from tests.unit.status.test_golden_workflow_status import SCENARIOS

    names = {
        "sync-published-green": ("live", "live-scoring"),
        "sync-publishing-container-creating": ("live", "fraud-check"),
        "sync-publishing-unschedulable": ("live", "recommender"),
        "async-published-green": ("batch", "churn-analysis"),
        "async-publishing-orange": ("batch", "doc-indexing"),
        "unpublished-after-publish": ("batch", "legacy-export"),
    }
    view = View()
    for scenario, (ns, name) in names.items():
        body, observed = SCENARIOS[scenario]()
        body["metadata"].update(namespace=ns, name=name)
        if scenario == "unpublished-after-publish":
            body["status"]["firstPublishedAt"] = "2024-02-12T09:00:00Z"
        view.add(body, observed, secret="keys")
    return view
