"""Reconcile one Workflow: owned Deployments/Services toward the spec, then the status.

Reads only the in-memory view (fed by watches), so a reconcile costs no API reads;
writes only what differs: an object whose spec hash, replicas or images differ, and a
status whose significant part (docs/status.md) changed.

A status change that only touches the progress within a color (`details`: a pod went
from Pending to Running, a replica count moved; `servicesReady` and the conditions'
messages: one more service ready) is written a second after it first changed (later
while the API server is slow; reconcile/writes.py), with whatever changed meanwhile, so
the last state is always written. A change of the color, of a condition's status or
reason, or of the observed generation is written at once. During a large rollout this halves the
operator's writes to a saturated API server, and a Workflow's last service becoming
ready no longer waits behind the write of the one before it (docs/performance.md).
`kubectl wait` and GitOps tools read the color and the conditions' status: never
delayed; `kubectl get`'s Services column may be up to the interval behind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from flow_operator.builders.deployment import (
    desired_deployment,
    desired_service,
    needs_write,
    spec_hash,
)
from flow_operator.builders.naming import COMPONENT_LABEL
from flow_operator.errors import KubeError
from flow_operator.models.common import Condition, ConditionStatus
from flow_operator.models.security import SecurityDefault
from flow_operator.models.workflow import Color, DesiredStatus, Workflow, WorkflowStatus
from flow_operator.objects.body import Body, first, labels
from flow_operator.objects.times import rfc3339
from flow_operator.observers import WorkflowChanged
from flow_operator.ports import DEPLOYMENTS, SERVICES, WORKFLOWS, EventSink, Writer
from flow_operator.reconcile.workqueue import Key
from flow_operator.reconcile.writes import StatusWrites
from flow_operator.status.aggregate import Observed, aggregate, significant

log = logging.getLogger(__name__)
trace = logging.getLogger("flow_operator.trace")  # `run --trace`
View = Mapping[Key, Iterable[Body]]
OWNED = {"Deployment": DEPLOYMENTS, "Service": SERVICES}  # the kinds a Workflow owns
# (namespace, Secret name) -> (reason, message): the apiKeySecretRef's Secret as the HTTP
# API takes it (api/auth.py SecretKeys.verdict, one cache for both); reason ACCEPTED: fit.
ApiKeyCheck = Callable[[str, str], Awaitable[tuple[str, str]]]
API_KEY_CONDITION = "ApiKeySecret"
ACCEPTED = "Accepted"
# A Secret the check refused is checked again after this long: there is no Secret watch
# (it would need list/watch on every Secret of the namespace, docs/security.md).
API_KEY_RECHECK = 60.0


class WorkflowCluster(Writer, EventSink, Protocol):
    """What a Workflow reconcile asks of the cluster (flow_operator.ports)."""


@dataclass
class WorkflowView:
    """The indexes kopf keeps for Workflows and their children, keyed by (ns, workflow)."""

    workflows: View
    deployments: View
    replicasets: View
    pods: View
    services: View


def _by_component(items: Iterable[Body]) -> dict[str, list[Body]]:
    out: dict[str, list[Body]] = defaultdict(list)
    for item in items:
        out[labels(item).get(COMPONENT_LABEL, "")].append(item)
    return out


class WorkflowReconciler:
    """The Workflow controller's reconcile: owned objects toward the spec, then the status."""

    def __init__(
        self,
        view: WorkflowView,
        kube: WorkflowCluster,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        detail_interval: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        events: EventSink | None = None,
        security: SecurityDefault = SecurityDefault.NONE,
        check_api_keys: ApiKeyCheck | None = None,
    ) -> None:
        self.view = view
        self.check_api_keys = check_api_keys
        self.security = security  # --default-security-context
        self.kube = kube
        self.events: EventSink = events or kube  # flow_operator.events: posted in the background
        self.clock = clock
        self.writes: StatusWrites[Key] = StatusWrites(_headline, detail_interval, monotonic)
        self._applied: dict[tuple[str, str, str], str] = {}  # (ns, kind, name) -> spec hash
        self._failures: dict[Key, int] = defaultdict(int)
        # every decision, with the Workflow: to the topic's subscribers (metrics, the API)
        self.publish: Callable[[WorkflowChanged], None] | None = None

    async def __call__(self, key: Key) -> float | None:
        body = first(self.view.workflows.get(key, ()))
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            self._forget(key)
            return None  # deleted: garbage collection removes the owned objects
        try:
            wf = Workflow.from_body(body)
        except ValidationError as e:
            await self._write_invalid(key, body, e)
            return None
        deployments = {
            cid: items[0]
            for cid, items in _by_component(self.view.deployments.get(key, ())).items()
        }
        services = {
            cid: items[0] for cid, items in _by_component(self.view.services.get(key, ())).items()
        }
        errors = await self._converge(wf, deployments, services)
        observed = Observed(
            deployments=deployments,
            replicasets=_by_component(self.view.replicasets.get(key, ())),
            pods=_by_component(self.view.pods.get(key, ())),
            errors=errors,
        )
        status = aggregate(wf, observed, self.clock())
        status, recheck = await self._api_key_condition(wf, status)
        deferred = await self._write_status(key, body, wf.status, status)
        if self.publish is not None:
            uid = (body.get("metadata") or {}).get("uid", "")
            self.publish(WorkflowChanged(key, uid, body, status))
        if errors:
            self._failures[key] += 1
            return float(min(5 * 2 ** (self._failures[key] - 1), 300))
        self._failures.pop(key, None)
        return recheck if deferred is None else min(deferred, recheck or deferred)

    async def _api_key_condition(
        self, wf: Workflow, status: WorkflowStatus
    ) -> tuple[WorkflowStatus, float | None]:
        """The ApiKeySecret condition, when the Workflow names a Secret: True when every
        value is an accepted key, else False naming the field and the fix (and the Secret
        is checked again after API_KEY_RECHECK)."""
        ref = wf.spec.api_key_secret_ref
        if ref is None or self.check_api_keys is None:
            return status, None
        reason, message = await self.check_api_keys(wf.metadata.namespace, ref.name)
        fit = reason == ACCEPTED
        state = ConditionStatus.TRUE if fit else ConditionStatus.FALSE
        old = (wf.status.conditions if wf.status else None) or []
        before = next((c for c in old if c.type == API_KEY_CONDITION), None)
        condition = Condition(
            type=API_KEY_CONDITION,
            status=state,
            reason=reason,
            message=message,
            last_transition_time=(
                before.last_transition_time
                if before is not None and before.status == state
                else rfc3339(self.clock())
            ),
            observed_generation=wf.metadata.generation,
        )
        conditions = [*(status.conditions or []), condition]
        recheck = None if fit else API_KEY_RECHECK
        return status.model_copy(update={"conditions": conditions}), recheck

    def _forget(self, key: Key) -> None:
        self.writes.forget(key)
        self._failures.pop(key, None)
        if self.publish is not None:
            self.publish(WorkflowChanged(key, "", {}, None))

    async def _converge(
        self, wf: Workflow, deployments: dict[str, Body], services: dict[str, Body]
    ) -> dict[str, str]:
        errors: dict[str, str] = {}
        wanted: dict[tuple[str, str], Body] = {}
        writes = []
        if wf.spec.desired_status is DesiredStatus.PUBLISHED:
            for c in wf.spec.components():
                wanted[("Deployment", c.id)] = desired_deployment(wf, c, self.security)
                svc = desired_service(wf, c)
                if svc is not None:
                    wanted[("Service", c.id)] = svc
        for (kind, cid), desired in wanted.items():
            observed = (deployments if kind == "Deployment" else services).get(cid)
            ident = (wf.metadata.namespace, kind, desired["metadata"]["name"])
            if not needs_write(desired, observed):
                self._applied.pop(ident, None)
                continue
            in_flight = self._applied.get(ident) == spec_hash(desired) != spec_hash(observed)
            if in_flight:
                continue  # written already; the watch has not shown it yet
            writes.append(self._apply(cid, desired, ident, errors))
        # a Workflow's objects are independent: one round trip for all, not one each
        for failure in await asyncio.gather(*writes, return_exceptions=True):
            if isinstance(failure, BaseException):
                raise failure
        for kind, present in (("Deployment", deployments), ("Service", services)):
            for cid, obj in present.items():
                if (kind, cid) in wanted or (obj.get("metadata") or {}).get("deletionTimestamp"):
                    continue
                name = obj["metadata"]["name"]
                try:
                    await self.kube.delete(OWNED[kind], wf.metadata.namespace, name)
                    log.info("deleted %s %s/%s", kind, wf.metadata.namespace, name)
                except KubeError as e:
                    if e.status is None:
                        raise  # no answer at all: the reconcile is retried
                    errors[cid] = f"deleting {kind} {name}: {e.message}"
        return errors

    async def _apply(
        self, cid: str, desired: Body, ident: tuple[str, str, str], errors: dict[str, str]
    ) -> None:
        try:
            await self.kube.apply(OWNED[ident[1]], desired)
            self._applied[ident] = spec_hash(desired) or ""
            log.info("applied %s %s/%s", ident[1], ident[0], ident[2])
        except KubeError as e:
            if e.status is None:
                raise  # no answer at all: the reconcile is retried
            errors[cid] = f"{ident[1]} {ident[2]}: {e.message}"

    async def _write_status(
        self, key: Key, body: Body, old: WorkflowStatus | None, new: WorkflowStatus
    ) -> float | None:
        """Write the status if its significant part changed; a change of details only,
        within `detail_interval` of the last write, is put off: returns the seconds to
        wait before reconciling again (None: written, or nothing to write)."""
        doc = new.dump()
        wanted = significant(doc)
        # what the API server holds: our last write until the watch shows it (or a later one)
        current = self.writes.current(key, body, significant(body.get("status")))
        if wanted == current:
            self.writes.settled(key)
            return None
        wait = self.writes.wait(key, wanted)
        if wait > 0:
            return wait
        sent = self.writes.monotonic()
        made = await self.kube.replace_status(WORKFLOWS, key[0], key[1], doc)
        took = self.writes.monotonic() - sent
        self.writes.record(key, body, wanted, made or "", took)
        if trace.isEnabledFor(logging.DEBUG):
            trace.debug("write workflow %s/%s t=%.3f took=%.3f color=%s", *key, time.time(),
                        took, new.actualStatus.value)  # fmt: skip
        before = (current or {}).get("actualStatus") if isinstance(current, dict) else None
        if before != new.actualStatus.value:
            red = new.actualStatus is Color.RED
            await self.events.event(
                body,
                "ColorChanged",
                f"{before or 'none'} -> {new.actualStatus.value}",
                "Warning" if red else "Normal",
            )
        return None

    async def _write_invalid(self, key: Key, body: Body, error: ValidationError) -> None:
        """A spec the CRD schema let through but the model rejects: RED and Stalled."""
        message = "; ".join(
            f"spec.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            if err["loc"]
            else err["msg"]
            for err in error.errors()
        )
        now = rfc3339(self.clock())
        generation = (body.get("metadata") or {}).get("generation")
        spec = body.get("spec") or {}
        status = {
            "desiredStatus": spec.get("desiredStatus", "PUBLISHED"),
            "actualStatus": "RED",
            "publishingMode": spec.get("publishingMode", "ASYNC"),
            "details": {},
            "observedGeneration": generation,
            "conditions": [
                Condition(
                    type=t,
                    status=ConditionStatus.TRUE if t == "Stalled" else ConditionStatus.FALSE,
                    reason="InvalidSpec",
                    message=message,
                    last_transition_time=now,
                    observed_generation=generation,
                ).dump()
                for t in ("Ready", "Reconciling", "Stalled")
            ],
        }
        if significant(status) != significant(body.get("status")):
            await self.kube.replace_status(WORKFLOWS, key[0], key[1], status)
            await self.events.event(body, "InvalidSpec", message, "Warning")


def _headline(significant_status: Any) -> Any:
    """The part of a status that is written at once: the color, the conditions' status
    and reason, the generations. The progress within a color (`details`, `servicesReady`,
    the conditions' messages: "2/3 components ready") goes with the details."""
    if not isinstance(significant_status, dict):
        return significant_status
    conditions = [
        {k: v for k, v in c.items() if k != "message"}
        for c in significant_status.get("conditions") or []
        if isinstance(c, dict)
    ]
    return {
        **{k: v for k, v in significant_status.items() if k not in ("details", "servicesReady")},
        "conditions": conditions,
    }
