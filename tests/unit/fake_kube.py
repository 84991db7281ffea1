"""A recording stand-in for the cluster (flow_operator.ports: Writer, Reader, LogReader,
EventSink), as flow_operator.kube.Kube implements them: reconciler tests see every write."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from flow_operator.errors import Forbidden, NotFound
from flow_operator.objects.body import Body
from flow_operator.ports import Page, Resource


class FakeKube:
    def __init__(self) -> None:
        self.applied: list[Body] = []
        self.deleted: list[tuple[str, str, str]] = []  # (kind, namespace, name)
        self.statuses: list[tuple[str, str, str, Body]] = []  # (plural, namespace, name, status)
        self.events: list[tuple[str, str, str]] = []
        self.created: list[Body] = []
        self.patched: list[tuple[str, str, str, Body]] = []
        self.refuse: dict[str, str] = {}  # object name -> message of a 403 to its apply

    # --- Writer ---
    async def apply(self, resource: Resource, body: Body) -> None:
        name = body["metadata"]["name"]
        if name in self.refuse:
            raise Forbidden(self.refuse[name], status=403, reason="Forbidden")
        self.applied.append(body)

    async def create(self, resource: Resource, body: Body) -> bool:
        self.created.append(body)
        return True

    async def delete(self, resource: Resource, namespace: str, name: str) -> None:
        self.deleted.append((resource.kind, namespace, name))

    async def merge_patch(self, resource: Resource, namespace: str, name: str, patch: Body) -> None:
        self.patched.append((resource.plural, namespace, name, patch))

    async def replace_status(
        self, resource: Resource, namespace: str, name: str, status: Body
    ) -> str:
        self.statuses.append((resource.plural, namespace, name, status))
        return f"made-{len(self.statuses)}"  # the resourceVersion the write made

    # --- Reader, LogReader ---
    async def get(self, resource: Resource, namespace: str, name: str) -> Body:
        raise NotFound(f'{resource.plural} "{name}" not found', status=404, reason="NotFound")

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        limit: int | None = None,
        continue_token: str = "",
        label_selector: str = "",
        field_selector: str = "",
    ) -> Page:
        return Page()

    async def pod_log(
        self,
        namespace: str,
        pod: str,
        *,
        follow: bool = False,
        tail_lines: int | None = None,
        limit_bytes: int | None = None,
    ) -> AsyncIterator[bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            yield b""

        return chunks()

    # --- EventSink ---
    async def event(
        self,
        involved: Body,
        reason: str,
        message: str,
        type_: str = "Normal",
        at: datetime | None = None,
    ) -> None:
        self.events.append((reason, message, type_))

    def writes(self) -> int:
        return len(self.applied) + len(self.deleted) + len(self.statuses) + len(self.created)
