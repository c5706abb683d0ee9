"""The edge's queue of blobs to move: its own attachments go up, the others' come down.

The event log notes every attachment it appends (`note`, inside the same transaction), so a
scan attached here is queued for upload in the transaction that records it, and one attached
elsewhere is queued for download in the transaction that brings its event. `BlobMover`
(edge_node/blobsync.py) empties the queue.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from protocol.events import Event
from protocol.merge import DossierState
from service.blobs import BlobStore

log = logging.getLogger(__name__)



class BlobQueue:
    """What is left to upload and download, in the edge database's `blobs` table."""

    def __init__(self, conn: Any, reader: Any, lock: Any, origin: str, files: BlobStore) -> None:
        self.conn, self.reader, self.lock = conn, reader, lock
        self.origin = origin
        self.files = files

    async def note(self, events: list[Event], states: Mapping[str, DossierState]) -> None:
        """Queue the blobs `events` attach (inside the log's transaction)."""
        rows = []
        for event in events:
            sha = event.payload.get("sha256") if event.kind == "attach" else None
            if sha is None:  # not an attachment, or a paper document listed without a scan
                continue
            size = event.payload["size"]
            if event.origin == self.origin:
                rows.append((sha, size, "up", 0))
            elif not self.files.has(sha):
                rows.append((sha, size, "down", 0))
        if rows:
            await self.conn.executemany("INSERT OR IGNORE INTO blobs VALUES (?,?,?,?)", rows)

    async def to_move(self, direction: str) -> list[tuple[str, int]]:
        """Blobs not yet uploaded ("up") or downloaded ("down"), oldest first."""
        async with self.reader.execute(
                "SELECT sha256, size FROM blobs WHERE direction=? AND done=0 ORDER BY rowid",
                (direction,)) as cur:
            return [(r[0], int(r[1])) for r in await cur.fetchall()]

    async def done(self, sha: str, direction: str) -> None:
        """Mark a blob as moved."""
        async with self.lock:
            await self.conn.execute("UPDATE blobs SET done=1 WHERE sha256=? AND direction=?",
                                    (sha, direction))

    async def pending(self) -> int:
        """Blobs still to upload or download."""
        async with self.reader.execute("SELECT count(*) FROM blobs WHERE done=0") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def uploads_waiting(self) -> int:
        """Uploads not confirmed yet (through the writer: inside its transaction, if any)."""
        async with self.conn.execute(
                "SELECT count(*) FROM blobs WHERE direction='up' AND done=0") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def check_uploads_again(self) -> None:
        """Ask the hub about every upload again (a hub restored from a backup may have lost
        scans it had confirmed), inside the caller's transaction."""
        await self.conn.execute("UPDATE blobs SET done=0 WHERE direction='up'")
