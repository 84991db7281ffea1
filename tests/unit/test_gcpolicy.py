"""gcpolicy: the survivors of a full collection are frozen, and thawed again later."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

from flow_operator import gcpolicy


async def _until(check: Callable[[], bool], rounds: int = 200) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0.01)
        if check():
            return


async def test_the_survivors_of_a_full_collection_are_frozen() -> None:
    gc.unfreeze()
    task = asyncio.create_task(gcpolicy.keep_collections_short(every=0.01, thaw=3600))
    try:
        await asyncio.sleep(0.02)
        keep = [{"a": [i]} for i in range(1000)]  # long-lived containers
        gc.collect()  # a full collection (slow in a big test process: no thaw meanwhile)
        await _until(lambda: gc.get_freeze_count() >= len(keep))
        assert gc.get_freeze_count() >= len(keep)
    finally:
        task.cancel()
        gc.unfreeze()


async def test_everything_is_thawed_every_so_often() -> None:
    gc.collect()
    gc.freeze()
    assert gc.get_freeze_count() > 0
    task = asyncio.create_task(gcpolicy.keep_collections_short(every=0.01, thaw=0.05))
    try:
        await _until(lambda: gc.get_freeze_count() == 0)
        assert gc.get_freeze_count() == 0
    finally:
        task.cancel()
        gc.unfreeze()
