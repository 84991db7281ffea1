"""gcpolicy: the survivors of a full collection are frozen, and thawed again later. In
virtual time (tests/unit/virtual_time.py), the policy's clock the loop's: its looks and
its thaw happen at exact times, whatever a loaded machine does meanwhile."""

from __future__ import annotations

import asyncio
import gc

from flow_operator import gcpolicy
from tests.unit.virtual_time import virtual_time


@virtual_time
async def test_the_survivors_of_a_full_collection_are_frozen() -> None:
    gc.unfreeze()
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(gcpolicy.keep_collections_short(1.0, 3600, loop.time))
    try:
        await asyncio.sleep(1.5)  # a look with no full collection since the start
        keep = [{"a": [i]} for i in range(1000)]  # long-lived containers
        gc.collect()  # a full collection
        await asyncio.sleep(1.0)  # the next look sees it and freezes what survived
        assert gc.get_freeze_count() >= len(keep)
    finally:
        task.cancel()
        gc.unfreeze()


@virtual_time
async def test_everything_is_thawed_every_so_often() -> None:
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(gcpolicy.keep_collections_short(1.0, 600, loop.time))
    try:
        await asyncio.sleep(599.5)
        assert gc.get_freeze_count() > frozen // 2  # not yet: the thaw is every 600 s
        await asyncio.sleep(1.0)
        assert gc.get_freeze_count() == 0
    finally:
        task.cancel()
        gc.unfreeze()
