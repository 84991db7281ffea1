"""A recording stand-in for flow_operator.kube.Kube: handler tests see every write."""

from __future__ import annotations

import json
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

Body = dict[str, Any]


class FakeKube:
    def __init__(self) -> None:
        self.applied: list[Body] = []
        self.deleted: list[tuple[str, str, str]] = []
        self.statuses: list[tuple[str, str, str, Body]] = []
        self.events: list[tuple[str, str, str]] = []
        self.created: list[Body] = []
        self.refuse: dict[str, str] = {}  # object name -> message of a 422/403

    async def apply(self, body: Body) -> None:
        name = body["metadata"]["name"]
        if name in self.refuse:
            e = ApiException(status=403, reason="Forbidden")
            e.body = json.dumps({"message": self.refuse[name]})
            raise e
        self.applied.append(body)

    async def create(self, body: Body) -> None:
        self.created.append(body)

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        self.deleted.append((kind, namespace, name))

    async def replace_status(
        self, plural: str, namespace: str, name: str, status: Body, group: str, version: str
    ) -> str:
        self.statuses.append((plural, namespace, name, status))
        return f"made-{len(self.statuses)}"  # the resourceVersion the write made

    async def event(self, involved: Body, reason: str, message: str, type_: str = "Normal") -> None:
        self.events.append((reason, message, type_))

    def writes(self) -> int:
        return len(self.applied) + len(self.deleted) + len(self.statuses) + len(self.created)
