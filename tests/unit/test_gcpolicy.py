"""gcpolicy: the survivors of a full collection are frozen, and thawed again later."""

from __future__ import annotations

import asyncio
import gc

from flow_operator import gcpolicy


async def test_survivors_of_a_full_collection_are_frozen_then_thawed() -> None:
    gc.unfreeze()
    task = asyncio.create_task(gcpolicy.keep_collections_short(every=0.01, thaw=0.2))
    try:
        await asyncio.sleep(0.02)
        keep = [{"a": [i]} for i in range(1000)]  # long-lived containers
        gc.collect()  # a full collection
        for _ in range(50):
            await asyncio.sleep(0.01)
            if gc.get_freeze_count() >= len(keep):
                break
        assert gc.get_freeze_count() >= len(keep)
        for _ in range(50):  # the thaw comes within 0.2 s
            await asyncio.sleep(0.01)
            if gc.get_freeze_count() == 0:
                break
        assert gc.get_freeze_count() == 0
    finally:
        task.cancel()
        gc.unfreeze()
