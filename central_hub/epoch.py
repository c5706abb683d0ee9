"""The hub log's epoch: a name for one history of positions, rotated by a restore.

Positions in a restored log restart lower, so a cursor an edge kept from before would skip what the
hub receives next. A new epoch makes every edge read its scope again from the start (events it
holds are skipped by id) and send again its own events the hub lost (the hub's ack is now lower
than the one it kept). The sync path reads the epoch and the restored mark here on every exchange.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from central_hub.store import ORIGIN_KEY, HubStore
from protocol import HUB_ORIGIN
from service.sqlite import transaction

log = logging.getLogger(__name__)

EPOCH_KEY = "log_epoch"
RESTORED_KEY = "restored_at"


async def committed_meta(store: HubStore, key: str) -> Any:
    """A meta value through the reader: every exchange asks, and should not wait on writes."""
    async with store.reader.execute("SELECT value FROM meta WHERE key=?", (key,)) as cur:
        row = await cur.fetchone()
    return None if row is None else row[0]


async def log_epoch(store: HubStore) -> str:
    """This log's epoch, created on first need (the same one whichever process creates it)."""
    epoch = await committed_meta(store, EPOCH_KEY)
    if epoch:
        return str(epoch)
    async with store.lock, transaction(store.conn):
        # Several hub processes (PostgreSQL) may get here at once: the first insert wins.
        await store.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING",
            (EPOCH_KEY, secrets.token_hex(8)))
        epoch = await store.log.get_meta(EPOCH_KEY)
    return str(epoch)


async def rotate_epoch(store: HubStore) -> str:
    """Give the log a new epoch, mark the hub restored, and have it write under a new origin
    (`hub.<epoch>`): the ids after the backup's last hub event may be held by edges with
    content the restored hub lost, and must not be reused. Return the epoch."""
    epoch = secrets.token_hex(8)
    origin = f"{HUB_ORIGIN}.{epoch}"
    async with store.lock, transaction(store.conn):
        await store.log.set_meta(EPOCH_KEY, epoch)
        await store.log.set_meta(RESTORED_KEY, store.now_ms())
        await store.log.set_meta(ORIGIN_KEY, origin)
    store.log.write_as(origin, (0, b""))
    log.warning("log epoch rotated to %s: every edge reads the log again from the start", epoch)
    return epoch
