"""The flow-run endpoints' port: the `FlowRunBackend` the HTTP layer talks to, its errors.

The operator's backend (api/flowrun_backend.py) reads the FlowRun index and calls the API
server only for logs and actions. The rows themselves (the seed's Flow Run Status table)
are the shared read model in `flow_operator.views.runs`, re-exported here for the
backends that import them from this module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from flow_operator.views.runs import (
    RERUN_OF,
    RUN_STATES,
    FlowRunRow,
    TaskRow,
    matches,
    rerun_body,
    row_of,
    select,
)

__all__ = [
    "RERUN_OF",
    "RUN_STATES",
    "FlowRunBackend",
    "FlowRunError",
    "FlowRunRow",
    "TaskRow",
    "matches",
    "rerun_body",
    "row_of",
    "select",
]


class FlowRunError(Exception):
    """An action or a log request the backend refuses, with the HTTP status to answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class FlowRunBackend(Protocol):
    def list(self, **filters: str) -> list[dict[str, Any]]: ...

    def get(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    async def logs(
        self, namespace: str, name: str, task: str, *, follow: bool, tail_lines: int | None
    ) -> AsyncIterator[bytes]: ...

    async def cancel(self, namespace: str, name: str) -> dict[str, Any]: ...

    async def rerun(self, namespace: str, name: str) -> dict[str, Any]: ...
