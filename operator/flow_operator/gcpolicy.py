"""Short garbage collections for a process that holds many long-lived objects.

The informers keep every watched child (slim JSON: dicts and lists) for as long as it
exists: with 1,000 Workflows, millions of container objects. CPython's full collection
walks all of them, and it runs each time that population has grown by a quarter; the
event loop, and every watch event, API answer and reconcile with it, stands still
meanwhile: at scale these pauses (`flowops_gc_pause_seconds`) were the tail of the
status lag (docs/performance.md).

So what survives a full collection is frozen (`gc.freeze`): later collections skip it,
and each full collection walks only what is newer. Reference counting still frees a
frozen object the moment nothing refers to it; only a reference cycle among frozen
objects that became garbage would wait, so every `thaw` seconds everything is unfrozen
once and the next full collection looks at the whole heap again.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable


def _full_collections() -> int:
    return int(gc.get_stats()[2]["collections"])


async def keep_collections_short(
    every: float = 1.0, thaw: float = 600.0, clock: Callable[[], float] = time.monotonic
) -> None:
    """Run for ever: every `every` seconds, freeze the survivors if a full collection
    ran since the last look (the collector's own count); unfreeze all every `thaw`."""
    seen = _full_collections()
    thawed = clock()
    while True:
        await asyncio.sleep(every)
        if clock() - thawed >= thaw:
            gc.unfreeze()
            thawed = clock()
            seen = _full_collections()
        elif _full_collections() != seen:
            gc.freeze()
            seen = _full_collections()
