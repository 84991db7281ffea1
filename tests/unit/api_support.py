"""Fakes and helpers for the HTTP API tests: an operator view, a Secret store, a clock,
and validation of responses against the served OpenAPI document."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import jsonschema

from flow_operator.api.auth import FailureLimiter, SecretKeys
from flow_operator.api.flowruns import FlowRunBackend
from flow_operator.api.openapi import document
from flow_operator.api.server import Api, Readiness
from flow_operator.api.workflows import WorkflowDirectory
from flow_operator.models.workflow import Workflow
from flow_operator.status.aggregate import Observed, aggregate

Body = dict[str, Any]
NOW = datetime(2024, 2, 12, 10, 14, 53, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Secrets:
    """Secrets by (namespace, name): values in the clear; records every read."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], dict[str, str]] = {}
        self.reads: list[tuple[str, str]] = []

    def put(self, namespace: str, name: str, **values: str) -> None:
        self.values[(namespace, name)] = values

    async def read(self, namespace: str, name: str) -> Mapping[str, str] | None:
        self.reads.append((namespace, name))
        values = self.values.get((namespace, name))
        if values is None:
            return None
        return {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}


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
