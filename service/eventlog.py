"""The event log pipeline: append events, fold them into the `dossiers` rows, over one connection.

One `EventLog` per database owns its writer connection, its reader (committed rows only) and the
lock that serializes writes, this node's own hash chain (last seq and hash) and its HLC. Every
change to the log goes through it, inside the caller's transaction:

- `local(dossier)` opens a local write: the dossier's state under the write's locks; its
  `append(draft)` stamps the draft as this node's next event (seq, HLC, prev hash), appends it,
  folds it and upserts the row. The own chain and clock move on only after the commit.
- `receive(events)` takes other origins' events (the hub's answer at the edge, a node's batch at
  the hub): merges their clocks into the HLC, appends, folds. `commit_clock` after the commit.
- `append` is the step both share: log rows, then the fold, then the dossiers whose clock-check
  flag was written (`service/clock_flags.py`) and what the side keeps about the blobs the events
  name (`BlobBook`, given at construction), all in one transaction.

Nothing is hooked in from outside: the parts that use the log (the dossier API, the edge's sync
state, the hub's ingest) call these steps and add their own rows around them, in the same
transaction. `dossiers` is always rebuildable from `events` (`rebuild`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol

from protocol import codec
from protocol.catalogue import DEFAULT_CATALOGUE, Catalogue
from protocol.commands import Draft
from protocol.communes import Mergers
from protocol.errors import Forbidden, NotFound, StoreError
from protocol.events import Event
from protocol.hlc import Clock
from protocol.merge import DossierState, apply, from_plain
from protocol.scope import may_write, role_of, units_of
from protocol.stamp import stamp
from service import clock_flags, crashpoints
from service.db import advisory_lock, is_postgres
from service.hubtime import HubTime
from service.schema import DOSSIER_COLUMNS, UPSERT_DOSSIER, dossier_row
from service.sqlite import transaction

log = logging.getLogger(__name__)

CHUNK = 500  # ids per IN (…) when loading states
WRITE_CHUNK = 500  # events folded while SQLite writes the previous chunk


class BlobBook(Protocol):
    """What one side notes of appended events (inside the transaction): the blobs they name,
    at the hub also the tracking checks of creates."""

    async def note(self, events: list[Event], states: Mapping[str, DossierState]) -> None:
        """Record the blobs `events` attach; `states`: their dossiers, folded."""


class LocalWrite:
    """A local write in progress, inside its transaction: the dossier's current state, and
    `append` to commit a draft as this node's next event."""

    def __init__(self, log: EventLog, dossier: str, state: DossierState | None,
                 commune: str | None = None) -> None:
        self.log = log
        self.commune = commune  # the writer's commune (None: the hub, which may write anything)
        self.dossier = dossier
        self.state = state
        self.event: Event | None = None
        self.hash = b""
        self.clock = log.clock

    async def append(self, draft: Draft, actor: str) -> DossierState:
        """Stamp `draft` as this node's next event, append it, fold it; return the new state."""
        if self.event is not None:
            raise StoreError("one local write appends one event")
        units = units_of(self.state)
        if self.commune is not None and units is not None:  # the hub's write rules, here first
            unit_of = self.log.mergers.unit_of
            role = role_of(units.resolved(unit_of), (unit_of(self.commune),))
            why = may_write(role, draft.kind, draft.payload.get("to"))
            if why is not None:
                raise Forbidden(why)
        event, clock = self.log.stamp(self.dossier, actor, draft, self.state)
        digest = codec.event_hash(event)
        states = await self.log.append([(event, digest)], {self.dossier: self.state})
        await self.log.set_meta("hlc", clock.last)
        self.event, self.hash, self.clock = event, digest, clock
        self.state = states[self.dossier]
        return self.state


class EventLog:
    """One database's event log and its fold; writes serialized by one lock on one connection."""

    def __init__(self, conn: Any, reader: Any, origin: str, time: HubTime,
                 book: BlobBook | None = None) -> None:
        self.conn = conn
        self.reader = reader
        self.lock = asyncio.Lock()
        self.origin = origin
        self.time = time
        self.book = book
        # the procedures whose searchable fields the rows' search text holds (the node's
        # reference data: service/dossier_store.py adopts it here)
        self.catalogue: Catalogue = DEFAULT_CATALOGUE
        # the commune mergers this side knows: a dossier under an old code is the successor's
        # (the hub's from its `unit_mergers`, an edge's from its re-scope: docs/reorganisation.md)
        self.mergers = Mergers()
        self.clock = Clock()
        self.own_seq = 0
        self.own_hash = b""
        self._pending_clock: Clock | None = None  # advanced by `receive`, not yet committed

    async def setup(self) -> None:
        """Load this node's head in its own chain and its clock (the opener has brought the
        tables to this code's schema version: service/migrations.py)."""
        self.own_seq, self.own_hash = await self.own_head()
        self.clock = Clock(int(await self.get_meta("hlc", 0)))

    async def own_head(self) -> tuple[int, bytes]:
        """This node's last (seq, hash) in its own chain, as the database holds it."""
        async with self.conn.execute(
            "SELECT seq, hash FROM events WHERE origin=? ORDER BY seq DESC LIMIT 1", (self.origin,)
        ) as cur:
            row = await cur.fetchone()
        return (int(row[0]), bytes(row[1])) if row else (0, b"")

    def write_as(self, origin: str, head: tuple[int, bytes]) -> None:
        """Write under another origin from now on (a restored hub), whose chain is at `head`."""
        self.origin, (self.own_seq, self.own_hash) = origin, head

    async def close(self) -> None:
        """Close both connections (the writer first: on PostgreSQL it returns the pool's
        connection and closes the pool the reader borrows from)."""
        await self.conn.close()
        await self.reader.close()

    # -- meta -----------------------------------------------------------------------------------

    async def get_meta(self, key: str, default: Any = None) -> Any:
        """A value from the meta table (through the writer: inside its transaction, if any)."""
        async with self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)) as cur:
            row = await cur.fetchone()
        return default if row is None else row[0]

    async def get_metas(self, keys: Iterable[str]) -> dict[str, Any]:
        """Several meta values at once (the keys absent from the table are absent here)."""
        wanted = list(keys)
        async with self.conn.execute(
                f"SELECT key, value FROM meta WHERE key IN ({','.join('?' * len(wanted))})",
                wanted) as cur:
            return {str(k): v for k, v in await cur.fetchall()}

    async def set_meta(self, key: str, value: Any) -> None:
        """Set a meta value (inside the caller's transaction, if any). PostgreSQL keeps text:
        readers convert (`int(await get_meta(…))`), as they do for SQLite's loose column."""
        if is_postgres(self.conn) and value is not None:
            value = str(value)
        await self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?,?) ON CONFLICT(key) DO UPDATE SET "
            "value=excluded.value", (key, value))

    async def delete_meta(self, keys: Iterable[str]) -> None:
        """Remove meta values (inside the caller's transaction)."""
        gone = list(keys)
        await self.conn.execute(
            f"DELETE FROM meta WHERE key IN ({','.join('?' * len(gone))})", gone)

    # -- states ---------------------------------------------------------------------------------

    async def load_state(self, dossier_id: str, *, committed: bool = False) -> DossierState | None:
        """The folded state of a dossier, or None (`committed`: read through the reader)."""
        conn = self.reader if committed else self.conn
        async with conn.execute("SELECT state FROM dossiers WHERE id=?", (dossier_id,)) as cur:
            row = await cur.fetchone()
        return None if row is None else from_plain(codec.unpack_stored(row[0]))

    async def load_states(self, ids: Iterable[str]) -> dict[str, DossierState | None]:
        """The folded states of these dossiers (None: unknown), through the writer."""
        wanted = list(dict.fromkeys(ids))
        out: dict[str, DossierState | None] = dict.fromkeys(wanted)
        for i in range(0, len(wanted), CHUNK):
            chunk = wanted[i:i + CHUNK]
            async with self.conn.execute(
                f"SELECT id, state FROM dossiers WHERE id IN ({','.join('?' * len(chunk))})",
                chunk) as cur:
                for row in await cur.fetchall():
                    out[row[0]] = from_plain(codec.unpack_stored(row[1]))
        return out

    # -- local writes ---------------------------------------------------------------------------

    def stamp(self, dossier_id: str, actor: str, draft: Draft, state: DossierState | None
              ) -> tuple[Event, Clock]:
        """`draft` as this node's next event (protocol/stamp.py), and the clock after it."""
        return stamp(draft, origin=self.origin, seq=self.own_seq + 1, prev=self.own_hash,
                     clock=self.clock, now_ms=self.time.now_ms(), dossier=dossier_id,
                     actor=actor, state=state)

    @asynccontextmanager
    async def local(self, dossier_id: str, commune: str | None = None
                    ) -> AsyncIterator[LocalWrite]:
        """One local write's transaction, under the lock: NotFound if the dossier is outside
        `commune`. Callers shield it (`asyncio.shield`): a caller cancelled half-way must not
        leave a commit done in SQLite's thread unknown here (the next write would reuse the seq)."""
        async with self.lock:
            async with transaction(self.conn):
                state = await self.load_state(dossier_id)
                if is_postgres(self.conn):
                    # Several hub processes share the database: one writer per commune (its
                    # dossiers) and per chain at a time; locks are always taken commune → chain
                    # → log (service.db), and the state is read again under them.
                    where = (state.header or {}).get("commune") if state else commune
                    await advisory_lock(self.conn,
                                        f"commune:{self.mergers.unit_of(where or '')}")
                    await advisory_lock(self.conn, f"chain:{self.origin}")
                    state = await self.load_state(dossier_id)
                # Another process on this database may have extended this chain (hub workers).
                self.own_seq, self.own_hash = await self.own_head()
                unit_of = self.mergers.unit_of
                units = units_of(state)
                if units is not None and commune is not None and \
                        unit_of(commune) not in units.resolved(unit_of).all():
                    raise NotFound("no such dossier")
                write = LocalWrite(self, dossier_id, state, commune)
                yield write
                if write.event is not None:
                    crashpoints.hit("store.write.before_commit")
            if write.event is not None:
                self.own_seq, self.own_hash, self.clock = write.event.seq, write.hash, write.clock

    # -- the pipeline ---------------------------------------------------------------------------

    async def append(self, events: list[tuple[Event, bytes]],
                     states: Mapping[str, DossierState | None] | None = None,
                     ) -> dict[str, DossierState]:
        """Append (event, hash) pairs to the log, fold them into `dossiers` and note the blobs
        they name, inside the caller's transaction; return the dossiers' new states. `states`:
        their current states, if the caller loaded them in this transaction."""
        if states is None:
            states = await self.load_states(e.dossier for e, _ in events)
        folded: dict[str, DossierState] = {}
        # Fold chunk k+1 here while SQLite (in aiosqlite's thread) writes chunk k: on two cores
        # the Python work and the database work overlap.
        writing: asyncio.Future[None] | None = None
        try:
            for start in range(0, len(events), WRITE_CHUNK):
                event_rows, touched = [], {}
                for event, digest in events[start:start + WRITE_CHUNK]:
                    state = apply(folded.get(event.dossier) or states.get(event.dossier), event)
                    folded[event.dossier] = touched[event.dossier] = state
                    commune = state.value("commune") or (state.header or {}).get("commune") or ""
                    event_rows.append((event.origin, event.seq, event.hlc, event.dossier, commune,
                                       event.kind, digest, codec.canonical(event)))
                dossier_rows = [dossier_row(s, self.catalogue) for s in touched.values()]
                if writing is not None:
                    await writing
                writing = asyncio.ensure_future(self._write_rows(event_rows, dossier_rows))
            if writing is not None:
                await writing
        except BaseException:
            if writing is not None and not writing.done():
                writing.cancel()
                await asyncio.gather(writing, return_exceptions=True)
            raise
        appended = [e for e, _ in events]
        await clock_flags.note_events(self.conn, appended)
        if self.book is not None:
            await self.book.note(appended, folded)
        return folded

    async def _write_rows(self, event_rows: list[tuple[Any, ...]],
                          dossier_rows: list[tuple[Any, ...]]) -> None:
        try:
            # PostgreSQL: positions come from a sequence, so two processes could commit them out
            # of order and a reader past the larger one would skip the smaller. One appender at
            # a time, holding the lock until commit, makes commit order position order.
            await advisory_lock(self.conn, "log")
            await self.conn.executemany(
                "INSERT INTO events(origin, seq, hlc, dossier, commune, kind, hash, body)"
                " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING", event_rows)
            await self.conn.executemany(UPSERT_DOSSIER, dossier_rows)
        except Exception as exc:
            raise StoreError(f"cannot store events: {exc}") from exc

    async def receive(self, events: list[Event], now_ms: int, max_forward_ms: int | None = None,
                      *, hashes: Mapping[int, bytes] | None = None,
                      states: Mapping[str, DossierState | None] | None = None,
                      ) -> tuple[dict[str, DossierState], int]:
        """Append and fold other origins' events inside the caller's transaction; return the
        states and how many carried a clock more than `max_forward_ms` ahead of `now_ms`. A
        caller that already hashed the events (by seq, one origin) or loaded their dossiers'
        states in this transaction passes them along."""
        if not events:
            return {}, 0
        # a group commit takes several batches before its commit: go on from the last one's
        clock, ahead = self._pending_clock or self.clock, 0
        hashed = []
        for event in events:
            clock, too_far = clock.receive(event.hlc, now_ms, max_forward_ms)
            ahead += too_far
            digest = hashes.get(event.seq) if hashes is not None else None
            hashed.append((event, digest or codec.event_hash(event)))
        folded = await self.append(hashed, states)
        await self.set_meta("hlc", clock.last)
        self._pending_clock = clock
        return folded, ahead

    def commit_clock(self) -> None:
        """After the caller's transaction committed, adopt the clock `receive` advanced."""
        pending = self._pending_clock
        if pending is not None and pending.last > self.clock.last:
            self.clock = pending
        self._pending_clock = None

    def forget_clock(self) -> None:
        """After the caller's transaction rolled back: forget the clock `receive` advanced."""
        self._pending_clock = None

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A part of the caller's transaction that rolls back alone on error (its clock
        advance too)."""
        clock = self._pending_clock
        await self.conn.execute("SAVEPOINT part")
        try:
            yield
        except Exception:  # (anything else ends the whole transaction)
            await self.conn.execute("ROLLBACK TO SAVEPOINT part")
            await self.conn.execute("RELEASE SAVEPOINT part")
            self._pending_clock = clock
            raise
        await self.conn.execute("RELEASE SAVEPOINT part")

    # -- the log as a whole ---------------------------------------------------------------------

    async def history(self, dossier_id: str) -> list[Event]:
        """Every event of a dossier, in log order (committed)."""
        async with self.reader.execute(
                "SELECT body FROM events WHERE dossier=? ORDER BY pos", (dossier_id,)) as cur:
            rows = await cur.fetchall()
        return [codec.decode_stored(r[0]) for r in rows]

    async def rebuild(self) -> int:
        """Recompute every dossier row from the log; return how many dossiers."""
        async with self.lock, transaction(self.conn):
            await advisory_lock(self.conn, "log")
            await self.conn.execute("DELETE FROM dossiers")
            states: dict[str, DossierState] = {}
            last = 0
            while True:  # in slices: a national log does not fit in one fetch
                async with self.conn.execute(
                        "SELECT pos, body FROM events WHERE pos>? ORDER BY pos LIMIT 5000",
                        (last,)) as cur:
                    rows = list(await cur.fetchall())
                if not rows:
                    break
                last = rows[-1][0]
                for _, body in rows:
                    event = codec.decode_stored(body)
                    states[event.dossier] = apply(states.get(event.dossier), event)
            await self.conn.executemany(UPSERT_DOSSIER,
                                        [dossier_row(s, self.catalogue)
                                         for s in states.values()])
        return len(states)

    async def dossier_rows(self) -> dict[str, tuple[Any, ...]]:
        """Every dossier row by id (for comparing replicas and rebuilds)."""
        async with self.conn.execute(f"SELECT {DOSSIER_COLUMNS} FROM dossiers") as cur:
            return {r[0]: tuple(r) for r in await cur.fetchall()}
