"""`GET /api/v1/flows/{ns}/{name}/stats`: the flow's runs over the window, read from the
runs backend (live runs merged with the run store) one page at a time, folded into the
pure maths of views/flowstats.py.

Bounded: pages of PAGE runs, of which only a small `RunSample` each is kept, and at most
MAX_RUNS runs (the newest; the answer says `truncated` when the window holds more). Each
page is awaited, so the event loop serves other requests between them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flow_operator.api.flowruns import FlowRunBackend
from flow_operator.objects.times import rfc3339
from flow_operator.views.flowstats import RunSample, flow_stats, sample_of, stats_query

PAGE = 1000
MAX_RUNS = 20_000


async def stats(
    runs: FlowRunBackend,
    namespace: str,
    name: str,
    params: Mapping[str, str],
    now: datetime,
    *,
    flow: Mapping[str, Any] | None = None,
    page: int = PAGE,
    max_runs: int = MAX_RUNS,
) -> dict[str, Any] | None:
    """The stats document, or None when the flow is neither live (`flow`) nor has runs in
    the window. BadStatsQuery (a ValueError) for a bad `window` or `last`."""
    asked, window, last = stats_query(params)
    since = now - window
    filters = {"flow": name, "namespace": namespace, "since": rfc3339(since)}
    samples: list[RunSample] = []
    cursor: str | None = None
    truncated = False
    while True:
        got = await runs.page(filters, limit=page, cursor=cursor, namespaces=[namespace])
        samples += (sample_of(row) for row in got.items)
        cursor = got.next
        if cursor is None:
            break
        if len(samples) >= max_runs:
            truncated = True
            break
    if flow is None and not samples:
        return None
    doc = flow_stats(samples[:max_runs], since=since, until=now, last=last, truncated=truncated)
    return {"namespace": namespace, "name": name, "windowAsked": asked, "last": last, **doc}
