"""The operator's FlowBackend: Flows and their runs from the operator's indexes; the Run
action through the API server.

`run` is the Run action (flows/manual.py decides it): the request is read (400 naming a
field of the wrong type or unknown), the version resolved and the parameters checked
against it (422, one error per field, nothing created), the run named from the
idempotency key (or a drawn suffix) and decided by the flow's concurrency policy (409
when Forbid skips it). Replace's runs are cancelled first (their uid in the patch: an
immutable field, so a run of that name made since is refused, not cancelled), then the
FlowRun is created with `spec.flowRef` and run type API unless the request says Manual.
"""

from __future__ import annotations

import contextlib
import secrets
import string
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from flow_operator.api.flows import FlowError
from flow_operator.errors import KubeError, NotFound, Refused
from flow_operator.flows.manual import RunRequest, plan_run
from flow_operator.flows.objects import with_flow_ref
from flow_operator.flows.runs import FlowRunRecord
from flow_operator.flows.versions import revision_to_read, spec_of_revision
from flow_operator.models.flow import Flow, FlowSpec
from flow_operator.models.flowrun import RunType
from flow_operator.objects.body import Body, first
from flow_operator.ports import CONTROLLERREVISIONS, FLOWRUNS, Resource
from flow_operator.views.flows import flow_detail, flow_row
from flow_operator.views.runs import row_of

Key = tuple[str, str]
View = Mapping[Key, Iterable[Body]]
ALPHABET = string.ascii_lowercase + string.digits
RUN_TYPES = (RunType.API.value, RunType.MANUAL.value)


class FlowActions(Protocol):
    """What the Run action asks of the cluster."""

    async def get(self, resource: Resource, namespace: str, name: str) -> Body: ...

    async def merge_patch(
        self, resource: Resource, namespace: str, name: str, patch: Body
    ) -> None: ...

    async def create_returning(self, resource: Resource, body: Body) -> Body: ...


def draw_suffix() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(5))


def read_request(raw: Mapping[str, Any]) -> RunRequest:
    """The request body as a RunRequest; a 400 naming each field that is wrong."""
    if not isinstance(raw, Mapping):
        raise FlowError(400, "BadRequest", "the body must be a JSON object")
    run_type = raw.get("runType", RunType.API.value)
    errors = []
    if run_type not in RUN_TYPES:
        errors.append(
            {"path": "runType", "message": f"runType must be API or Manual, not {run_type!r}"}
        )
    try:
        request = RunRequest.model_validate({**raw, "runType": RunType.API.value})
    except ValidationError as e:
        for err in e.errors():
            path = ".".join(str(p) for p in err["loc"]) or "body"
            errors.append({"path": path, "message": _hint(path, err["msg"])})
        request = None
    if errors or request is None:
        message = "; ".join(f"{e['path']}: {e['message']}" for e in errors)
        raise FlowError(400, "BadRequest", message, errors)
    return request.model_copy(update={"run_type": RunType(run_type)})


def _hint(path: str, message: str) -> str:
    hints = {
        "version": "a version number, e.g. 3 (absent: the current version)",
        "configuration": "the name of one of the flow's configurations",
        "idempotencyKey": "any string; the same key and request return the same run",
    }
    if path.startswith("parameters"):
        return f'{message}: parameters is an object of strings, e.g. {{"region": "eu"}}'
    if path in hints:
        return f"{message}: {hints[path]}"
    if "extra" in message.lower():
        return (
            f"{message}: the body takes version, configuration, parameters, runType, idempotencyKey"
        )
    return message


class IndexedFlows:
    """FlowBackend over the Flow index ({(ns, name): [body]}) and the runs of each flow
    ({(ns, flow): [run]}), as the Flow kind's handlers keep them."""

    def __init__(
        self,
        flows: View,
        runs: View,
        kube: FlowActions,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        suffix: Callable[[], str] = draw_suffix,
    ) -> None:
        self.flows, self.runs, self.kube = flows, runs, kube
        self.clock, self.suffix = clock, suffix

    def list(self, namespace: str | None = None) -> list[dict[str, Any]]:
        rows = [
            flow_row(b)
            for key, bodies in list(self.flows.items())
            if namespace is None or key[0] == namespace
            for b in bodies
        ]
        return sorted(rows, key=lambda r: (r["namespace"], r["name"]))

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        body = first(self.flows.get((namespace, name)))
        if body is None:
            return None
        return flow_detail(body, self.runs.get((namespace, name), ()))

    async def run(
        self, namespace: str, name: str, request: Mapping[str, Any]
    ) -> tuple[bool, dict[str, Any]]:
        asked = read_request(request)
        body = first(self.flows.get((namespace, name)))
        if body is None:
            raise FlowError(404, "NotFound", f"no flow {namespace}/{name}")
        try:
            flow = Flow.from_body(body)
        except ValidationError as e:
            raise FlowError(
                409,
                "FlowInvalid",
                f"flow {namespace}/{name} has an invalid spec (see its Stalled condition): "
                f"fix it first ({e.errors()[0]['msg']})",
            ) from None
        records = [r for b in self.runs.get((namespace, name), ()) if (r := _record(b))]
        decided = plan_run(
            flow,
            asked,
            definitions=await self._definitions(flow, asked.version),
            runs=records,
            now=self.clock(),
            suffix=self.suffix(),
        )
        if decided.errors:
            errors = [{"path": e.path, "message": e.message} for e in decided.errors]
            message = "; ".join(f"{e['path']}: {e['message']}" for e in errors)
            raise FlowError(422, "InvalidRequest", message, errors)
        if decided.existing is not None:
            try:
                return False, row_of(
                    await self.kube.get(FLOWRUNS, namespace, decided.existing)
                ).dump()
            except KubeError as e:
                raise FlowError(e.status or 502, "RunUnreadable", e.message) from None
        if decided.skipped is not None or decided.create is None:
            raise FlowError(409, "ConcurrencyForbid", decided.skipped or "the run was not started")
        for cancel in decided.cancel:
            patch = {"metadata": {"uid": cancel.uid}, "spec": {"cancel": True}}
            with contextlib.suppress(NotFound, Refused):  # gone, or a new run of that name
                await self.kube.merge_patch(FLOWRUNS, namespace, cancel.name, patch)
        try:
            created = await self.kube.create_returning(FLOWRUNS, with_flow_ref(decided.create.body))
        except KubeError as e:
            raise FlowError(e.status or 502, "RunRefused", e.message) from None
        return True, row_of(created).dump()

    async def _definitions(self, flow: Flow, wanted: int | None) -> dict[int, FlowSpec]:
        """The spec of an older version, from its ControllerRevision (the current one is
        the Flow's own spec)."""
        name = revision_to_read(flow, wanted)
        if name is None or wanted is None:
            return {}  # the current version, or one plan_run names as not kept
        try:
            revision = await self.kube.get(CONTROLLERREVISIONS, flow.metadata.namespace, name)
            return {wanted: spec_of_revision(revision)}
        except (KubeError, ValidationError):
            return {}  # plan_run answers that the definition could not be read


def _record(body: Body) -> FlowRunRecord | None:
    try:
        return FlowRunRecord.from_body(body)
    except (ValueError, ValidationError):
        return None
