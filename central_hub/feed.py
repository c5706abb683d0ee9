"""The delivery feed: which node reads which event, so a dossier can enter a scope after the fact.

`dossier_units` holds each dossier's units (competent commune, receiving unit), kept in the
append transaction from the events alone — creates insert, transfers update — so scope checks
and delivery never need a fold. `feed` has one row per (unit, event): an event is fed to every
commune its dossier is in when it is appended (a transfer also to the commune it leaves, which
receives the transfer itself and then no more), and a transfer to a commune that did not hold
the dossier feeds it every earlier event of the dossier. A node reads the rows of its scope set
in feed order (`read`): its cursor is a feed position. The migration backfilled `feed.pos =
events.pos` under each event's commune, so every cursor held before keeps its meaning. Feed
positions are taken under the log's lock (PostgreSQL: `advisory_lock("log")`, held since the
events were written), so they are in commit order like the log's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from protocol import codec
from protocol.events import Event
from protocol.scope import Units
from service.db import is_postgres

log = logging.getLogger(__name__)

CHUNK = 500

FEED_SCHEMA = """
CREATE TABLE IF NOT EXISTS dossier_units (
    dossier TEXT PRIMARY KEY, commune TEXT NOT NULL, received_by TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dossier_units_commune ON dossier_units(commune);
CREATE INDEX IF NOT EXISTS dossier_units_received ON dossier_units(received_by);
CREATE TABLE IF NOT EXISTS feed (
    pos INTEGER PRIMARY KEY AUTOINCREMENT,
    unit TEXT NOT NULL,
    event_pos INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS feed_unit_event ON feed(unit, event_pos);
CREATE INDEX IF NOT EXISTS feed_unit_pos ON feed(unit, pos);
"""
_FEED_ONE = ("INSERT INTO feed(unit, event_pos) SELECT ?, pos FROM events WHERE origin=? AND "
             "seq=? ON CONFLICT DO NOTHING")
_FEED_PAST = ("INSERT INTO feed(unit, event_pos) SELECT ?, pos FROM events WHERE dossier=? "
              "ORDER BY pos ON CONFLICT DO NOTHING")
_UNITS = ("INSERT INTO dossier_units VALUES (?,?,?) ON CONFLICT(dossier) DO UPDATE SET "
          "commune=excluded.commune, received_by=excluded.received_by")


async def backfill_feed(conn: Any) -> None:
    """A migration step: every event already logged is fed under its commune at its own
    position (edges' cursors keep their meaning), and every dossier's units are noted."""
    await conn.execute("INSERT INTO feed(pos, unit, event_pos) SELECT pos, commune, pos "
                       "FROM events WHERE commune<>'' ORDER BY pos")
    if is_postgres(conn):  # explicit positions do not move the identity's sequence
        await conn.execute("SELECT setval(pg_get_serial_sequence('feed', 'pos'), "
                           "(SELECT coalesce(max(pos), 0) + 1 FROM feed), false)")
    last = 0
    while True:
        async with conn.execute(
                "SELECT pos, body FROM events WHERE kind='create' AND pos>? ORDER BY pos "
                "LIMIT 5000", (last,)) as cur:
            rows = list(await cur.fetchall())
        if not rows:
            return
        last = rows[-1][0]
        units = [Units.of_create(codec.decode_stored(body)) for _, body in rows]
        await conn.executemany(
            "INSERT INTO dossier_units VALUES (?,?,?) ON CONFLICT DO NOTHING",
            [(codec.decode_stored(b).dossier, u.commune, u.received_by)
             for (_, b), u in zip(rows, units, strict=True)])


class Feed:
    """The hub's `dossier_units` and `feed` tables."""

    def __init__(self, conn: Any, reader: Any) -> None:
        self.conn, self.reader = conn, reader

    async def units(self, ids: Iterable[str], *, committed: bool = False) -> dict[str, Units]:
        """The units of these dossiers the hub holds (absent: unknown)."""
        wanted = list(dict.fromkeys(ids))
        conn = self.reader if committed else self.conn
        out: dict[str, Units] = {}
        for i in range(0, len(wanted), CHUNK):
            chunk = wanted[i:i + CHUNK]
            async with conn.execute(
                    "SELECT dossier, commune, received_by FROM dossier_units WHERE dossier IN "
                    f"({','.join('?' * len(chunk))})", chunk) as cur:
                out.update({d: Units(c, r) for d, c, r in await cur.fetchall()})
        return out

    async def note(self, events: list[Event]) -> None:
        """Feed `events` (just appended, in order) to their dossiers' communes and move the
        dossiers' units (inside the append's transaction)."""
        units = await self.units(e.dossier for e in events)
        changed: dict[str, Units] = {}
        rows: list[tuple[str, str, int]] = []
        for event in events:
            before = units.get(event.dossier)
            if event.kind == "create" and before is None:
                after: Units | None = Units.of_create(event)
            else:
                after = before.moved(event) if before is not None else None
            if after is None:
                continue  # not a dossier the hub holds (ingest refuses such events)
            held = before.all() if before is not None else frozenset()
            rows += [(u, event.origin, event.seq) for u in sorted(held | after.all())]
            gained = sorted(after.all() - held) if before is not None else []
            if gained:  # a transfer to a commune that did not hold it: its past too, in order
                await self._flush(rows)
                await self.conn.executemany(_FEED_PAST, [(u, event.dossier) for u in gained])
            if after != before:
                units[event.dossier] = changed[event.dossier] = after
        await self._flush(rows)
        if changed:
            await self.conn.executemany(
                _UNITS, [(d, u.commune, u.received_by) for d, u in changed.items()])

    async def _flush(self, rows: list[tuple[str, str, int]]) -> None:
        if rows:
            await self.conn.executemany(_FEED_ONE, rows)
            rows.clear()

    async def read(self, units: Iterable[str], node: str, cursor: int, want_bytes: int
                   ) -> tuple[list[Event], int, bool]:
        """Events fed to `units` after `cursor` (not `node`'s own), about `want_bytes` of them;
        return (events, new cursor, more). Committed rows only, through the reader."""
        held = sorted(units)
        marks = ",".join("?" * len(held))
        out: list[Event] = []
        size, new_cursor, seen = 0, cursor, set()
        while True:
            async with self.reader.execute(
                    "SELECT f.pos, e.pos, CASE WHEN e.origin=? THEN NULL ELSE e.body END "
                    "FROM feed f JOIN events e ON e.pos=f.event_pos "
                    f"WHERE f.unit IN ({marks}) AND f.pos>? ORDER BY f.pos LIMIT 1000",
                    (node, *held, new_cursor)) as cur:
                rows = await cur.fetchall()
            if not rows:
                return out, new_cursor, False
            for pos, event_pos, body in rows:
                if body is not None and event_pos not in seen:  # one event, several units
                    if out and size + len(body) > want_bytes:
                        return out, new_cursor, True
                    out.append(codec.decode_stored(body))
                    seen.add(event_pos)
                    size += len(body)
                new_cursor = pos

    async def end(self) -> int:
        """The highest feed position (where a node's cursor can be at most)."""
        async with self.reader.execute("SELECT coalesce(max(pos), 0) FROM feed") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0
