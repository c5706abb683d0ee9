"""A write whose task is cancelled part-way (aiohttp cancels a handler when its client goes away
if `handler_cancellation` is on, as in aiohttp's TestServer; a shutdown cancels what still runs)
must leave the store usable: either the write committed and the store knows it, or nothing did."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from edge_node.store import EdgeStore
from tests.faults.workload import unique_citizen_id
from tests.harness import birth


async def test_a_cancelled_write_leaves_the_store_usable(tmp_path: Path) -> None:
    store = await EdgeStore.open(tmp_path / "edge.db", "02245.01", "02245", "02245.01")
    try:
        broken: list[str] = []
        for step in range(80):  # cancel at every moment of a write, one after another
            task = asyncio.create_task(store.dossiers.create(birth(citizen_id=unique_citizen_id()),
                                                    "clerk"))
            await asyncio.sleep(step * 0.0005)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            try:
                await store.dossiers.create(birth(citizen_id=unique_citizen_id()), "clerk")
            except Exception as exc:  # the next clerk's dossier must still be taken in
                broken.append(f"cancelled after {step * 0.5:.1f} ms: {exc}")
                break
            conn = sqlite3.connect(tmp_path / "edge.db")
            top = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
            conn.close()
            if top != store.log.own_seq:
                broken.append(f"cancelled after {step * 0.5:.1f} ms: the log ends at seq {top}, "
                              f"the store believes {store.log.own_seq}")
                break
        assert not broken, broken
    finally:
        await store.close()
