"""The operator's FlowRunBackend: rows from the FlowRun index (no API read per request);
logs, cancel and rerun through the API server.

- logs: the task's pod (status.tasks[].podName) through `pods/log`, streamed;
- cancel: a merge patch `spec.cancel: true`; the reconciler then deletes the Jobs and moves
  the run to Cancelled (the answer is the run as it stands, with the request noted);
- rerun: a new FlowRun (generateName `<old name>-`) with the old spec, `runType: Manual`,
  `cancel` cleared and the annotation `flowops.io/rerun-of`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, Protocol

from flow_operator.api.flowruns import FlowRunError, rerun_body, row_of, select
from flow_operator.errors import KubeError, NotFound
from flow_operator.models.flowrun import TERMINAL
from flow_operator.objects.body import Body
from flow_operator.ports import FLOWRUNS, LogReader, Resource

Key = tuple[str, str]


class FlowRunActions(LogReader, Protocol):
    """What the HTTP API's flow runs ask of the cluster: logs, a cancel, a rerun."""

    async def merge_patch(
        self, resource: Resource, namespace: str, name: str, patch: Body
    ) -> None: ...

    async def create_returning(self, resource: Resource, body: Body) -> Body: ...


class IndexedFlowRuns:
    """FlowRunBackend over kopf's FlowRun index ({(ns, name): [body]})."""

    def __init__(self, runs: Mapping[Key, Iterable[Body]], kube: FlowRunActions) -> None:
        self.runs = runs
        self.kube = kube

    def _bodies(self) -> Iterable[Body]:
        for items in list(self.runs.values()):
            yield from items

    def _body(self, namespace: str, name: str) -> Body:
        body = next(iter(self.runs.get((namespace, name), ())), None)
        if body is None:
            raise FlowRunError(404, "NotFound", f"no flow run {namespace}/{name}")
        return body

    def list(self, **filters: str) -> list[dict[str, Any]]:
        return select((row_of(b) for b in self._bodies()), filters)

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        body = next(iter(self.runs.get((namespace, name), ())), None)
        return row_of(body).dump() if body is not None else None

    async def logs(
        self, namespace: str, name: str, task: str, *, follow: bool, tail_lines: int | None
    ) -> AsyncIterator[bytes]:
        row = row_of(self._body(namespace, name))
        found = next((t for t in row.tasks or [] if t.name == task), None)
        if found is None:
            raise FlowRunError(404, "NotFound", f"flow run {namespace}/{name} has no task {task}")
        if found.pod is None:
            raise FlowRunError(409, "Conflict", f"task {task} has no pod yet")
        try:
            return await self.kube.pod_log(
                namespace, found.pod, follow=follow, tail_lines=tail_lines
            )
        except KubeError as e:
            status = 404 if isinstance(e, NotFound) else 502
            raise FlowRunError(status, "LogsUnavailable", e.message) from None

    async def cancel(self, namespace: str, name: str) -> dict[str, Any]:
        body = self._body(namespace, name)
        row = row_of(body)
        if row.status in {p.value for p in TERMINAL}:
            raise FlowRunError(409, "Conflict", f"flow run {name} already finished ({row.status})")
        try:
            await self.kube.merge_patch(FLOWRUNS, namespace, name, {"spec": {"cancel": True}})
        except KubeError as e:
            raise FlowRunError(e.status or 502, "CancelRefused", e.message) from None
        note = "cancel requested"
        return row.model_copy(update={"message": note}).dump()

    async def rerun(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            created = await self.kube.create_returning(
                FLOWRUNS, rerun_body(self._body(namespace, name))
            )
        except KubeError as e:
            raise FlowRunError(e.status or 502, "RerunRefused", e.message) from None
        return row_of(created).dump()
