"""The hub's database: the union of all communes' logs, the nodes, and the trust records.

Composed over one writer connection and one committed-only reader (SQLite; or PostgreSQL through
`service/db.py`, shared by several hub processes):

- `log` (`service/eventlog.py`): the event log pipeline — append, fold, the hub's own chain;
- `dossiers` (`service/dossier_store.py`): the dossier API operators use (the hub writes as its own
  origin, `hub`, or `hub.<epoch>` after a restore);
- `ingest` (`central_hub/ingest.py`): nodes' batches into the log, committed before the ack;
- `trust` (`central_hub/trust_store.py`): enrollment, credentials, certificates, alerts, audit;
- `sessions` (`central_hub/nodes/sessions.py`): what each node reported and how its exchanges went;
- `refs` (`central_hub/blobrefs.py`): which commune may fetch which blob, noted by the log, as
  are the tracking checks of creates (`central_hub/tracking.py`).
Here: opening it, reference data the hub publishes, and the node's scope as an answer reads it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from central_hub.blobrefs import BlobRefs
from central_hub.feed import Feed
from central_hub.ingest import Ingest
from central_hub.mergers import load_mergers
from central_hub.nodes.sessions import Sessions
from central_hub.schema import MIGRATIONS
from central_hub.tracking import tracking_rows
from central_hub.trust_store import TOKEN_TTL_MS as TOKEN_TTL_MS
from central_hub.trust_store import Enrollment as Enrollment
from central_hub.trust_store import Node as Node
from central_hub.trust_store import TrustStore
from central_hub.trust_store import check_commune as check_commune
from protocol import HUB_ORIGIN, codec
from protocol.errors import ValidationError
from protocol.events import Event
from protocol.merge import DossierState
from protocol.refdata import DEFAULT_REFDATA
from protocol.refdata import KINDS as REF_KINDS
from service.blobs import BlobStore
from service.db import PgConnection, is_pg_url, redact
from service.dossier_store import DossierStore
from service.eventlog import EventLog
from service.hubtime import HubTime
from service.migrations import upgrade
from service.sqlite import connect, transaction

log = logging.getLogger(__name__)

ORIGIN_KEY = "hub_origin"  # meta: the origin the hub writes under (`hub` until a restore)


class _HubBook:
    """What the hub notes of each appended event, inside its transaction: which communes may
    fetch the blobs it attaches (central_hub/blobrefs.py) and the tracking check a create
    carries (central_hub/tracking.py)."""

    def __init__(self, refs: BlobRefs, conn: Any, feed: Feed) -> None:
        self.refs, self.conn, self.feed = refs, conn, feed

    async def note(self, events: list[Event], states: Mapping[str, DossierState]) -> None:
        """Note `events` (`states`: their dossiers, folded)."""
        tracked = tracking_rows(events)
        if tracked:
            await self.conn.executemany(
                "INSERT INTO tracking VALUES (?,?,?) ON CONFLICT DO NOTHING", tracked)
        await self.feed.note(events)
        await self.refs.note(events, states)


class HubStore:
    """The province's copy of every commune's dossiers: its parts share one connection, one
    reader and one lock."""

    def __init__(self, conn: Any, reader: Any) -> None:
        self.time = HubTime()
        self.log = EventLog(conn, reader, HUB_ORIGIN, self.time)
        self.conn, self.reader, self.lock = conn, reader, self.log.lock
        self.refs = BlobRefs(conn, reader)
        self.feed = Feed(conn, reader)
        self.log.book = _HubBook(self.refs, conn, self.feed)
        self.dossiers = DossierStore(self.log, None)
        self.trust = TrustStore(self.log)
        self.ingest = Ingest(self.log, self.trust, self.scope_of, self.feed)
        self.sessions = Sessions(self.log)
        self.path = Path("hub.db")  # the SQLite file, or where blobs and locks live beside

    @classmethod
    async def open(cls, path: Path, db: str = "sqlite") -> HubStore:
        """Open (creating if needed) the hub database: the SQLite file at `path`, or the
        PostgreSQL database `db` (a postgresql:// URL). Blobs live next to `path` either way."""
        conn: Any
        reader: Any
        if is_pg_url(db):
            conn, reader = await PgConnection.open(db)
        else:
            conn, reader = await connect(path, synchronous="FULL"), None
        try:
            await upgrade(conn, MIGRATIONS, redact(db) if is_pg_url(db) else str(path))
            store = cls(conn, reader or await connect(path))
        except BaseException:
            await conn.close()
            raise
        store.path = path
        store.dossiers.blobs = BlobStore(path.parent / "blobs")
        await store.log.setup()
        await store.dossiers.load_refdata()
        store.log.mergers = await load_mergers(conn)
        origin = await store.log.get_meta(ORIGIN_KEY)
        if origin and origin != store.log.origin:  # restored from a backup: a chain of its own
            store.log.write_as(str(origin), await store.log.own_head())
        if not store.dossiers.ref_versions:
            async with store.lock, transaction(conn):
                for kind, data in DEFAULT_REFDATA.items():
                    await store.dossiers.save_refdata(kind, 1, data)
            for kind, data in DEFAULT_REFDATA.items():
                store.dossiers.use_refdata(kind, 1, data)
        return store

    @property
    def origin(self) -> str:
        """The origin the hub writes under."""
        return self.log.origin

    @property
    def blobs(self) -> BlobStore:
        """The blob files next to the database."""
        return self.dossiers.blobs

    def now_ms(self) -> int:
        """The hub's time."""
        return self.time.now_ms()

    async def close(self) -> None:
        """Write the exchanges still waiting, then close."""
        try:
            await self.sessions.close()
        finally:
            await self.log.close()

    # -- reference data -------------------------------------------------------------------------

    async def publish(self, kind: str, data: dict[str, Any]) -> int:
        """Publish a new version of reference data (validated by the caller); return it."""
        if kind not in REF_KINDS:
            raise ValidationError(f"unknown reference data {kind!r}")
        version = self.dossiers.ref_versions.get(kind, 0) + 1
        async with self.lock, transaction(self.conn):
            await self.dossiers.save_refdata(kind, version, data)
        self.dossiers.use_refdata(kind, version, data)
        return version

    async def refdata(self, kind: str) -> dict[str, Any] | None:
        """The latest published data of `kind`, or None (read from the database)."""
        async with self.reader.execute("SELECT data FROM refdata WHERE kind=?", (kind,)) as cur:
            row = await cur.fetchone()
        return None if row is None else dict(codec.unpack(row[0]))

    async def refdata_newer(self, held: dict[str, int]) -> dict[str, dict[str, Any]]:
        """The reference data newer than what a node holds (read from the database, so data
        published by `central-hub … import` while the server runs goes out at once)."""
        out: dict[str, dict[str, Any]] = {}
        versions = self.dossiers.ref_versions
        async with self.reader.execute("SELECT kind, version FROM refdata") as cur:
            current = {k: int(v) for k, v in await cur.fetchall()}
        for kind, version in current.items():
            if held.get(kind, 0) < version or versions.get(kind, 0) < version:
                async with self.reader.execute(
                        "SELECT data FROM refdata WHERE kind=?", (kind,)) as cur:
                    row = await cur.fetchone()
                if row is None:
                    continue
                data = codec.unpack(row[0])
                if versions.get(kind, 0) < version:
                    self.dossiers.use_refdata(kind, version, data)
                if held.get(kind, 0) < version:
                    out[kind] = {"version": version, "data": data}
        return out

    # -- what a node reads ----------------------------------------------------------------------

    def scope_of(self, commune: str) -> frozenset[str]:
        """A node's scope set, the one place delivery and the write rules ask: its commune and
        every code merged into it (`central-hub commune merge`: `EventLog.mergers`)."""
        return frozenset(self.log.mergers.units_of(commune))

    async def read_scope(self, node: Node, cursor: int, want_bytes: int,
                         units: tuple[str, ...] = ()) -> tuple[list[Event], int, bool]:
        """Events fed to the node's scope set (`units` when given: what the exchange resolved)
        after `cursor` (a feed position; not its own), about `want_bytes` of them; return
        (events, new cursor, more). On PostgreSQL a feed position only becomes visible after
        every smaller one committed (the log lock), so the cursor never skips one."""
        return await self.feed.read(units or self.scope_of(node.commune), node.node, cursor,
                                    want_bytes)

    async def log_size(self) -> int:
        """The highest position in the hub log."""
        async with self.reader.execute("SELECT coalesce(max(pos), 0) FROM events") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0
