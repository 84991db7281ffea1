"""The Run action (the dashboard's Run button, `POST .../runs`, `flowctl start`), decided
before anything is created.

`plan_run` resolves the version (versions.select: the current one when none is asked
for), validates the parameters against that version's declarations (params.resolve),
names the run (from the client's idempotency key, or a suffix the caller drew) and
decides it with the flow's concurrency policy, like a tick. The answer is either the
FlowRun to create (with the runs to cancel for Replace), the run this idempotency key
already made, or errors, each with the field (`version`, `configuration`,
`parameters.<name>`, `idempotencyKey`, `flow`) and what would fix it: the 422 answer.
Forbid is not an error of the request: the answer carries the skip decision (a 409).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from flow_operator.flows.concurrency import REPLACING, Action, Decision, RunSlot, decide
from flow_operator.flows.params import resolve
from flow_operator.flows.plan import Cancel, Create
from flow_operator.flows.runs import FlowRunRecord, Record, build_run, manual_run_name, request_hash
from flow_operator.flows.versions import VersionNotKept, revision_hash, select
from flow_operator.models.flow import Flow, FlowSpec
from flow_operator.models.flowrun import FlowType, RunType


class RunRequest(Record):
    """What the client asks for."""

    version: int | None = None
    configuration: str | None = None
    parameters: dict[str, str] | None = None
    run_type: RunType = RunType.MANUAL
    idempotency_key: str | None = None


class FieldError(Record):
    path: str
    message: str


class RunPlan(Record):
    """Create `create` (after cancelling `cancel`); or answer with `existing`; or refuse."""

    create: Create | None = None
    cancel: tuple[Cancel, ...] = ()
    existing: str | None = None
    skipped: str | None = None  # Forbid: the decision's message
    errors: tuple[FieldError, ...] = ()


def plan_run(
    flow: Flow,
    request: RunRequest,
    *,
    definitions: Mapping[int, FlowSpec],
    runs: Sequence[FlowRunRecord],
    now: datetime,
    suffix: str,
) -> RunPlan:
    """The Run action's decision (module docstring). `definitions` holds the kept versions'
    specs (their ControllerRevision snapshots); the current version may be left out when
    the Flow's spec is still its text. `suffix` names the run when no key is given."""
    now = now.astimezone(UTC)
    name = flow.metadata.name
    if flow.spec.flow_type is FlowType.SUB_FLOW:
        return _refuse("flow", f"flow {name} is a sub-flow: it runs under a parent run only")
    status = flow.status
    try:
        version = select(
            status.versions if status else [], status.version if status else None, request.version
        )
    except VersionNotKept as e:
        return _refuse("version", str(e))
    definition = definitions.get(version.version)
    if definition is None and revision_hash(flow.spec) == version.revision:
        definition = flow.spec
    if definition is None:
        return _refuse(
            "version",
            f"version {version.version}'s definition could not be read (ControllerRevision "
            f"{version.revision_name}); try again, or name another version",
        )
    resolution = resolve(definition, request.configuration, request.parameters)
    if not resolution.ok:
        return RunPlan(
            errors=tuple(FieldError(path=e.path, message=e.message) for e in resolution.errors)
        )
    asked = request_hash(version.version, request.configuration, request.parameters or {})
    if request.idempotency_key is not None:
        run = manual_run_name(name, key=request.idempotency_key)
    else:
        run = manual_run_name(name, suffix=suffix)
    same = next((r for r in runs if r.name == run), None)
    if same is not None:
        if request.idempotency_key is not None and same.request == asked:
            return RunPlan(existing=run)
        if request.idempotency_key is not None:
            return _refuse(
                "idempotencyKey",
                f"idempotency key {request.idempotency_key!r} was used for another request "
                f"(run {run}); send a new key",
            )
        return _refuse("name", f"run {run} exists already; draw another suffix")
    others = [r.slot() for r in runs if not r.finished]
    decision: Decision = decide(flow.spec.concurrency, RunSlot(run, now), others)
    if decision.action is Action.SKIP:
        return RunPlan(skipped=decision.message)
    uids = {r.name: r.uid for r in runs}
    cancel = tuple(
        Cancel(
            name=v,
            uid=uids.get(v, ""),
            reason=REPLACING,
            message=f"cancelled to make room for {run} (concurrency Replace)",
        )
        for v in decision.cancel
    )
    body = build_run(
        flow=name,
        namespace=flow.metadata.namespace,
        definition=definition,
        version=version,
        name=run,
        run_type=request.run_type,
        resolution=resolution,
        decision=decision.action,
        request=asked,
    )
    return RunPlan(create=Create(name=run, decision=decision.action, body=body), cancel=cancel)


def _refuse(path: str, message: str) -> RunPlan:
    return RunPlan(errors=(FieldError(path=path, message=message),))
