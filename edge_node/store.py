"""The edge node's database: one commune's dossiers and its sync state with the hub.

Composed over one writer connection (WAL, `synchronous=FULL`: a dossier the clerk saw as saved is
on disk before the API answers) and one committed-only reader:

- `log` (`service/eventlog.py`): the event log pipeline — append, fold, this node's chain;
- `dossiers` (`service/dossier_store.py`): the dossier API — intake with the day's codes, reads,
  commands — that the desk and the JSON API use;
- `sync` (`edge_node/syncstore.py`): the position with the hub, and what an answer commits;
- `queue` (`edge_node/blobqueue.py`): the scans to upload and download, noted by the log.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from edge_node.blobqueue import BlobQueue
from edge_node.schema import MIGRATIONS
from edge_node.syncstore import EdgeSync
from service import clock_flags
from service.blobs import BlobStore
from service.dossier_store import DossierStore
from service.eventlog import EventLog
from service.hubtime import HubTime
from service.migrations import upgraded
from service.sqlite import connect

log = logging.getLogger(__name__)


class EdgeStore:
    """One commune's database: its parts share one connection, one reader and one lock."""

    def __init__(self, conn: Any, reader: Any, node: str, commune: str, agency: str,
                 blobs: BlobStore) -> None:
        self.time = HubTime()
        self.log = EventLog(conn, reader, node, self.time)
        self.conn, self.reader, self.lock = conn, reader, self.log.lock
        self.blobs = blobs
        self.queue = BlobQueue(conn, reader, self.lock, node, blobs)
        self.log.book = self.queue
        self.dossiers = DossierStore(self.log, commune, agency)
        self.dossiers.blobs = blobs
        self.sync = EdgeSync(self.log, self.dossiers, self.queue)
        self.agency = agency

    @classmethod
    async def open(cls, path: Path, node: str, commune: str, agency: str) -> EdgeStore:
        """Open (creating if needed) the edge database at `path`."""
        conn = await upgraded(await connect(path, synchronous="FULL"), MIGRATIONS, str(path))
        try:
            store = cls(conn, await connect(path), node, commune, agency,
                        BlobStore(path.parent / "blobs"))
        except BaseException:
            await conn.close()
            raise
        await store.log.setup()
        await store.dossiers.load_refdata()
        await store.sync.load_unit()
        store.time.correction_ms = int(await store.log.get_meta("clock_correction_ms", 0))
        return store

    @property
    def commune(self) -> str:
        """This node's unit: the commune it enrolled for, or the one a merger made it a desk of."""
        return str(self.dossiers.scope)

    @property
    def origin(self) -> str:
        """This node's id: the origin of its events."""
        return self.log.origin

    async def health(self) -> dict[str, Any]:
        """What this database says of the node's health to the hub, with every request."""
        pending, oldest = await self.sync.pending_stats()
        return {"pending_events": pending, "pending_blobs": await self.queue.pending(),
                "oldest_pending_age_s": oldest, "clock_offset_ms": self.time.offset_ms,
                "conflicts_open": await self.dossiers.count_conflicts(),
                "dossiers": await self.dossier_count()}

    async def settle_clock(self) -> int:
        """Flag the dossiers whose legal times are now known to have been stamped with a wrong
        clock (service/clock_flags.py); return how many."""
        return await clock_flags.settle(self.dossiers)

    def now_ms(self) -> int:
        """Corrected time (service/hubtime.py)."""
        return self.time.now_ms()

    async def dossier_count(self) -> int:
        """How many dossiers this node holds."""
        async with self.conn.execute("SELECT count(*) FROM dossiers") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def close(self) -> None:
        """Close both connections."""
        await self.log.close()


async def open_store(data_dir: Path, identity: dict[str, Any]) -> EdgeStore:
    """Open the edge database in `data_dir` for the enrolled identity."""
    return await EdgeStore.open(data_dir / "edge.db", identity["node"], identity["commune"],
                                identity["agency"])
