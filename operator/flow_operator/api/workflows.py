"""The Workflow status as the HTTP API serves it, read from the operator's in-memory view.

The status comes from the Workflow index (the status subresource the leader wrote, seen
by every replica's watch), or from the reconciler's latest result while the watch has not
yet shown that write (`on_status`). `age` is recomputed at request time from the pods'
creationTimestamp in the pod index: the stored one is the age at the last status write.
The document and the list rows themselves are the shared read models (`views.workflows`).

A `workflowId` is `{namespace}.{name}` or a plain `{name}`. Namespaces have no dots, so
the first dot splits the qualified form; a plain name may match Workflows in several
namespaces, and the server then answers 409 (docs/api.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from flow_operator.models.workflow import WorkflowStatus
from flow_operator.objects.body import Body, first, resource_version
from flow_operator.views.workflows import live_document, parse_status

Key = tuple[str, str]
View = Mapping[Key, Iterable[Body]]


class WorkflowDirectory:
    def __init__(
        self,
        workflows: View,
        pods: View,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        deployments: View | None = None,
    ) -> None:
        self.workflows = workflows
        self.pods = pods
        self.clock = clock
        # The services' Deployments (the Workflow page's rollout counts); None: not watched.
        self.deployments: View = deployments if deployments is not None else {}
        # key -> (status, resourceVersion of the body the reconciler computed it from)
        self._latest: dict[Key, tuple[WorkflowStatus, str]] = {}

    def on_status(self, key: Key, status: WorkflowStatus | None) -> None:
        """The reconciler's hook: remember its latest status until the watch catches up."""
        if status is None:
            self._latest.pop(key, None)
            return
        self._latest[key] = (status, self._version(self.body(key)))

    @staticmethod
    def _version(body: Body | None) -> str:
        return resource_version(body)

    def indexed(self) -> list[Key]:
        return sorted(k for k in self.workflows if self.body(k) is not None)

    def body(self, key: Key) -> Body | None:
        return first(self.workflows.get(key))

    def resolve(self, workflow_id: str) -> list[Key]:
        """Every Workflow `workflow_id` may name: qualified `{ns}.{name}`, or a plain name."""
        found: set[Key] = set()
        namespace, dot, rest = workflow_id.partition(".")
        if dot and rest and self.body((namespace, rest)) is not None:
            found.add((namespace, rest))
        found.update(k for k in self.workflows if k[1] == workflow_id and self.body(k) is not None)
        return sorted(found)

    def secret_name(self, key: Key) -> str | None:
        spec = (self.body(key) or {}).get("spec") or {}
        ref = spec.get("apiKeySecretRef") or {}
        name = ref.get("name")
        return str(name) if name else None

    def status(self, key: Key) -> WorkflowStatus | None:
        body = self.body(key)
        if body is None:
            return None
        latest = self._latest.get(key)
        if latest is not None and latest[1] == self._version(body):
            return latest[0]  # the reconciler's result; its write is not in the view yet
        return parse_status(body.get("status"))

    def published(self, key: Key) -> WorkflowStatus | None:
        """The status, if the Workflow was ever published (else the API answers 404)."""
        status = self.status(key)
        return status if status is not None and status.firstPublishedAt else None

    def document(self, key: Key, status: WorkflowStatus) -> dict[str, Any]:
        """The reference document, with every replica's `age` as of now."""
        return live_document(status, self.pods.get(key) or (), self.clock())

    def pods_of(self, key: Key) -> list[Body]:
        return list(self.pods.get(key) or ())

    def deployments_of(self, key: Key) -> list[Body]:
        return list(self.deployments.get(key) or ())
