"""The Flow endpoints' port: the `FlowBackend` the HTTP layer talks to, and its errors.

The operator's backend (api/flow_backend.py) reads the Flow index and the runs of each
flow from the operator's indexes and calls the API server only to create a run (and to
read an older version's ControllerRevision). The rows are the shared read model in
`flow_operator.views.flows`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class FlowError(Exception):
    """A request the backend refuses, with the HTTP status to answer and, for a 400 or a
    422, the fields at fault: [{"path": "parameters.region", "message": "..."}]."""

    def __init__(
        self, status: int, code: str, message: str, errors: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.errors = status, code, errors or []


class FlowBackend(Protocol):
    def list(self, namespace: str | None = None) -> list[dict[str, Any]]: ...

    def get(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def run(
        self, namespace: str, name: str, request: Mapping[str, Any]
    ) -> tuple[bool, dict[str, Any]]:
        """Start a run: (True, the new run) or (False, the run this idempotency key made
        before); FlowError otherwise (400, 404, 409 under Forbid, 422)."""
        ...
