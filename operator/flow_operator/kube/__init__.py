"""The client package: the only place that imports the client libraries (kubernetes_asyncio
for the operator, the official sync client for flowctl).

`Kube` (client.py) implements the ports of flow_operator.ports against the API server and
raises the project's own errors (flow_operator.errors); the informers (informer.py) list
and watch the operator's children through it; `PodLogs` (client.py) is the HTTP API's log
reader, a client and connection pool apart from Kube's; leader.py elects a leader on a Lease;
sync.py is flowctl's client. The names below load client.py on first use, so flowctl,
which needs only sync.py, does not pay for importing kubernetes_asyncio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flow_operator.kube.client import (
        OBJECT_WRITES,
        Kube,
        ListWatch,
        PodLogs,
        direct,
        edge,
        path,
        read_json,
    )

__all__ = ["OBJECT_WRITES", "Kube", "ListWatch", "PodLogs", "direct", "edge", "path", "read_json"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from flow_operator.kube import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
