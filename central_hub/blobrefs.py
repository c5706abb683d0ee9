"""Which communes may fetch (and upload) which blob: those whose dossiers an attachment names.

The hub's event log notes every attachment it appends (`note`, inside the same transaction), from
a node's batch or from an operator at the hub, under the commune of the dossier it attaches to.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from protocol.events import Event
from protocol.merge import DossierState
from protocol.scope import units_of

log = logging.getLogger(__name__)


class BlobRefs:
    """The hub's `blob_refs` table."""

    def __init__(self, conn: Any, reader: Any) -> None:
        self.conn, self.reader = conn, reader

    async def note(self, events: list[Event], states: Mapping[str, DossierState]) -> None:
        """Let the dossiers' communes fetch the blobs `events` attach (inside the transaction)."""
        rows = []
        for event in events:
            if event.kind == "attach" and "sha256" in event.payload:  # not a paper document
                units = units_of(states.get(event.dossier))
                if units is not None:  # both units: the receiving desk took it in
                    rows += [(event.payload["sha256"], u) for u in sorted(units.all())]
        if rows:
            await self.conn.executemany(
                "INSERT INTO blob_refs VALUES (?,?) ON CONFLICT DO NOTHING", rows)

    async def allowed(self, sha: str, commune: str) -> bool:
        """True iff an attachment of this commune's dossiers names the blob."""
        async with self.reader.execute(
                "SELECT 1 FROM blob_refs WHERE sha256=? AND commune=?", (sha, commune)) as cur:
            return await cur.fetchone() is not None
