"""The event log and the materialized dossiers table, shared by the edge's and the hub's stores.

Every write goes through one pipeline: load the dossier's state, turn the request into a draft
(protocol.commands), stamp it as this node's next event (seq, hlc, prev hash), append it to the log,
fold it and upsert the dossier row — all in one transaction. Remote events are ingested the same way
in bulk. `dossiers` is always rebuildable from `events` (`rebuild`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

import aiosqlite

from protocol import codec
from protocol.attachments import attach_draft
from protocol.calendar import Calendar, is_overdue, local
from protocol.catalogue import DEFAULT_CATALOGUE, Catalogue, parse_catalogue
from protocol.commands import (
    Draft,
    apology_draft,
    comment_draft,
    resolve_draft,
    set_draft,
    transition_draft,
)
from protocol.communes import DEFAULT_COMMUNES, Communes, parse_communes
from protocol.errors import NotFound, StoreError, ValidationError
from protocol.events import Event, check_dossier_id
from protocol.hlc import Clock
from protocol.lifecycle import STATUSES
from protocol.merge import DossierState, apply, from_plain, to_plain
from protocol.refdata import DEFAULT_HOLIDAYS, parse_holidays
from protocol.stats import Period
from protocol.text import SEPARATOR, search_key
from protocol.views import dossier_view
from service import clock_flags, crashpoints
from service.blobs import BlobStore
from service.db import advisory_lock, index_hint, is_postgres
from service.search_text import search_text_of
from service.sqlite import transaction
from service.ui.formats import parse_day

log = logging.getLogger(__name__)

# Version 1 of the log's tables, on both sides (service/migrations.py): never edit it, add a
# migration to the plans of edge_node/schema.py and central_hub/schema.py.
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS refdata (
    kind TEXT PRIMARY KEY, version INTEGER NOT NULL, data BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    pos INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hlc INTEGER NOT NULL,
    dossier TEXT NOT NULL,
    commune TEXT NOT NULL,
    kind TEXT NOT NULL,
    hash BLOB NOT NULL,
    body BLOB NOT NULL,
    UNIQUE (origin, seq)
);
CREATE INDEX IF NOT EXISTS events_dossier ON events(dossier);
CREATE INDEX IF NOT EXISTS events_commune_pos ON events(commune, pos);
CREATE TABLE IF NOT EXISTS dossiers (
    id TEXT PRIMARY KEY,
    commune TEXT NOT NULL,
    code TEXT,
    procedure TEXT,
    status TEXT,
    name TEXT,
    name_fold TEXT,
    citizen_id TEXT,
    received_at INTEGER,
    due_at INTEGER,
    conflicts INTEGER NOT NULL DEFAULT 0,
    updated_hlc INTEGER NOT NULL,
    state BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS dossiers_order ON dossiers(received_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS dossiers_code ON dossiers(code);
CREATE INDEX IF NOT EXISTS dossiers_citizen ON dossiers(citizen_id);
CREATE INDEX IF NOT EXISTS dossiers_status ON dossiers(status, received_at DESC);
CREATE INDEX IF NOT EXISTS dossiers_commune ON dossiers(commune, received_at DESC);
CREATE INDEX IF NOT EXISTS dossiers_conflicts ON dossiers(conflicts) WHERE conflicts > 0;
CREATE INDEX IF NOT EXISTS dossiers_due ON dossiers(status, due_at);
CREATE INDEX IF NOT EXISTS dossiers_procedure ON dossiers(procedure, received_at DESC);
-- Search by name is a substring match: it walks this index newest first and reads no table row
-- until a page is full (every filter column is here too), ~35 ms for 100,000 dossiers at worst.
CREATE INDEX IF NOT EXISTS dossiers_search ON dossiers(received_at DESC, id DESC, name_fold, code,
    citizen_id, status, procedure, commune, due_at, conflicts);
"""
UPSERT_DOSSIER = (
    "INSERT INTO dossiers(id, commune, code, procedure, status, name, name_fold, citizen_id, "
    "received_at, due_at, conflicts, updated_hlc, state) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT(id) DO UPDATE SET commune=excluded.commune, code=excluded.code, "
    "procedure=excluded.procedure, status=excluded.status, name=excluded.name, "
    "name_fold=excluded.name_fold, citizen_id=excluded.citizen_id, "
    "received_at=excluded.received_at, due_at=excluded.due_at, conflicts=excluded.conflicts, "
    "updated_hlc=excluded.updated_hlc, state=excluded.state")
MAX_PAGE = 10_000
MAX_OFFSET = 1_000_000
CITIZEN_ID_RE = re.compile(r"^\d{12}$")
PHONE_RE = re.compile(r"^(\+84|0)\d{9,10}$")
PHONE_JUNK = re.compile(r"[\s.\-()]")
FULL_CODE_RE = re.compile(r"^\S+-\d{6}-\d{4,}$")
CHUNK = 500
WRITE_CHUNK = 500

Prepare = Callable[[DossierState | None], Awaitable[Draft | None]]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing, with the cursors of the next (older) and previous pages."""

    items: list[dict[str, Any]]
    next: str | None
    prev: str | None = None


def _cursor(token: str | None, name: str) -> tuple[int, str]:
    """A page cursor (`received_at~id`), or ValidationError naming the parameter."""
    at, _, last_id = (token or "").partition("~")
    try:
        return int(at), last_id
    except ValueError as exc:
        raise ValidationError(f"{name} must be a cursor from a previous page",
                              field=name) from exc


def overdue_statuses() -> list[str]:
    """The statuses in which a dossier past its due time counts as overdue (protocol.calendar)."""
    return [s for s in STATUSES if is_overdue(0, 1, s)]


def _like(text: str) -> str:
    """`text` as a literal inside a LIKE pattern (escape character: backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def wall_clock_ms() -> int:
    """The machine's clock in ms; stores add their offset to it."""
    return int(time.time() * 1000)


def dossier_row(state: DossierState, catalogue: Catalogue = DEFAULT_CATALOGUE
                ) -> tuple[Any, ...]:
    """The `dossiers` row for a state (commune … state blob); `name_fold` is its search text
    (`protocol.text.search_text`, with the catalogue's searchable fields of its procedure)."""
    header = state.header or {}
    name = state.value("applicant.full_name") or ""
    due = state.value("due_at")
    return (
        state.id,
        header.get("commune") or "",
        header.get("code"),
        header.get("procedure"),
        state.value("status"),
        name,
        search_text_of(state, catalogue),
        state.value("applicant.citizen_id"),
        header.get("received_at"),
        due if isinstance(due, int) else None,
        len(state.conflicts()),
        state.last_hlc,
        codec.pack(to_plain(state)),
    )


class DossierStore:
    """A node's event log and dossiers. Writes are serialized by one lock on one connection."""

    def __init__(self, conn: aiosqlite.Connection, reader: aiosqlite.Connection,
                 origin: str, scope: str | None) -> None:
        self.conn = conn
        self.reader = reader
        self.scope = scope  # the only commune this node may touch (None: all, at the hub)
        self.catalogue: Catalogue = DEFAULT_CATALOGUE
        self.calendar = Calendar.of(h.day for h in DEFAULT_HOLIDAYS)
        self.communes: Communes = DEFAULT_COMMUNES  # the province's units, its public pages
        self.ref_versions: dict[str, int] = {}  # kinds held from the hub's reference data
        self.origin = origin
        self.lock = asyncio.Lock()
        self.clock = Clock()
        self.own_seq = 0
        self.own_hash = b""
        self.correction_ms = 0  # hub time minus this machine's clock, from the last exchange
        self._anchor: tuple[int, float] | None = None  # (hub ms, monotonic s) in this process
        self._anchor_rtt = 0.0  # the round trip of that reading (s)
        self._pending_clock: Clock | None = None
        self.wall: Callable[[], int] = wall_clock_ms  # the machine's clock; tests skew it
        self._blobs: BlobStore | None = None

    @property
    def blobs(self) -> BlobStore:
        """The blob files next to the database."""
        if self._blobs is None:
            raise StoreError("this store has no blob directory")
        return self._blobs

    @blobs.setter
    def blobs(self, value: BlobStore) -> None:
        self._blobs = value

    # -- lifetime -------------------------------------------------------------------------------

    async def setup(self) -> None:
        """Load this node's position in its own chain and its clock (the opener has brought
        the tables to this code's schema version: service/migrations.py)."""
        self.own_seq, self.own_hash = await self._own_head()
        self.clock = Clock(int(await self.get_meta("hlc", 0)))
        async with self.conn.execute("SELECT kind, version, data FROM refdata") as cur:
            for kind, version, data in await cur.fetchall():
                self.use_refdata(kind, int(version), codec.unpack(data))
        self.correction_ms = int(await self.get_meta("clock_correction_ms", 0))

    async def _own_head(self) -> tuple[int, bytes]:
        """This node's last (seq, hash) in its own chain, as the database holds it."""
        async with self.conn.execute(
            "SELECT seq, hash FROM events WHERE origin=? ORDER BY seq DESC LIMIT 1", (self.origin,)
        ) as cur:
            row = await cur.fetchone()
        return (int(row[0]), bytes(row[1])) if row else (0, b"")

    async def close(self) -> None:
        """Close both connections (the writer first: on PostgreSQL it returns the pool's
        connection and closes the pool the reader borrows from)."""
        await self.conn.close()
        await self.reader.close()

    def now_ms(self) -> int:
        """Corrected time. After an exchange in this process: the hub's time then plus the
        monotonic time since, so a jump of the machine's clock changes nothing; before (after a
        restart): the machine's clock plus the correction learned at the last exchange."""
        if self._anchor is not None:
            hub_ms, mono = self._anchor
            return hub_ms + int((time.monotonic() - mono) * 1000)
        return self.wall() + self.correction_ms

    @property
    def hub_time_known(self) -> bool:
        """True once corrected time is anchored on the hub's clock in this process."""
        return self._anchor is not None

    @property
    def clock_offset_ms(self) -> int:
        """How far this machine's clock is ahead of the hub's (negative: behind)."""
        return self.wall() - self.now_ms()

    def set_hub_time(self, hub_ms: int, rtt_s: float, at_mono: float) -> int:
        """Anchor corrected time on the hub's clock read `rtt_s` ago-ish; return the correction.
        A reading over a round trip much slower than the anchor's (a new TLS connection, a busy
        link) is less precise: within ten minutes of the better one it is not taken (as NTP
        trusts the sample of least delay)."""
        estimate = hub_ms + int(rtt_s * 500)  # the hub read its clock about mid-way
        if self._anchor is not None and rtt_s > 2 * self._anchor_rtt + 0.05 \
                and at_mono - self._anchor[1] < 600:
            return self.correction_ms
        self._anchor, self._anchor_rtt = (estimate, at_mono), rtt_s
        self.correction_ms = estimate - self.wall()
        return self.correction_ms

    def use_refdata(self, kind: str, version: int, data: dict[str, Any]) -> None:
        """Adopt reference data (already validated) for validation and due dates."""
        if kind == "procedures":
            self.catalogue = parse_catalogue({**data, "version": version})
        elif kind == "holidays":
            self.calendar = Calendar.of(h.day for h in parse_holidays(data))
        elif kind == "communes":
            self.communes = parse_communes(data)
        else:
            return
        self.ref_versions[kind] = version

    async def save_refdata(self, kind: str, version: int, data: dict[str, Any]) -> None:
        """Store reference data inside the caller's transaction (adopt it after the commit)."""
        await self.conn.execute(
            "INSERT INTO refdata VALUES (?,?,?) ON CONFLICT(kind) DO UPDATE SET "
            "version=excluded.version, data=excluded.data", (kind, version, codec.pack(data)))

    def today(self) -> date:
        """Today in Vietnam, by corrected time."""
        return local(self.now_ms()).date()

    # -- meta -----------------------------------------------------------------------------------

    async def get_meta(self, key: str, default: Any = None) -> Any:
        """A value from the meta table."""
        async with self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)) as cur:
            row = await cur.fetchone()
        return default if row is None else row[0]

    async def set_meta(self, key: str, value: Any) -> None:
        """Set a meta value (inside the caller's transaction, if any). PostgreSQL keeps text:
        readers convert (`int(await get_meta(…))`), as they do for SQLite's loose column."""
        if is_postgres(self.conn) and value is not None:
            value = str(value)
        await self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?,?) ON CONFLICT(key) DO UPDATE SET "
            "value=excluded.value", (key, value))

    # -- reading --------------------------------------------------------------------------------

    async def load_state(self, dossier_id: str, *, committed: bool = False) -> DossierState | None:
        """The folded state of a dossier, or None (`committed`: read through the reader)."""
        conn = self.reader if committed else self.conn
        async with conn.execute("SELECT state FROM dossiers WHERE id=?", (dossier_id,)) as cur:
            row = await cur.fetchone()
        return None if row is None else from_plain(codec.unpack_stored(row[0]))

    async def history(self, dossier_id: str) -> list[Event]:
        """Every event of a dossier, in log order."""
        async with self.reader.execute(
            "SELECT body FROM events WHERE dossier=? ORDER BY pos", (dossier_id,)) as cur:
            rows = await cur.fetchall()
        return [codec.decode_stored(r[0]) for r in rows]

    async def view(self, dossier_id: str, commune: str | None = None) -> dict[str, Any]:
        """The API shape of a dossier; NotFound if unknown or outside `commune` or the scope."""
        commune = commune or self.scope
        try:
            dossier_id = check_dossier_id(dossier_id)
        except Exception as exc:
            raise NotFound("no such dossier") from exc
        state = await self.load_state(dossier_id, committed=True)
        if state is None or state.header is None:
            raise NotFound("no such dossier")
        if commune is not None and state.header.get("commune") != commune:
            raise NotFound("no such dossier")
        return dossier_view(state, self.now_ms(), await self.history(dossier_id))

    async def search(self, *, status: str | None = None, q: str | None = None,
                   commune: str | None = None, conflicts_only: bool = False,
                   limit: int = 50, after: str | None = None, procedure: str | None = None,
                   overdue_at: int | None = None, before: str | None = None,
                   offset: int = 0) -> Page:
        """Dossiers newest first, filtered, keyset-paged both ways: `after` is a page's `next`
        (the older page), `before` its `prev` (the newer page); without either, `offset` skips
        that many from the newest (a page number; the walk stays inside an index). `overdue_at`
        (a time in ms) keeps only dossiers overdue at that time."""
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationError(f"limit must be 1–{MAX_PAGE}", field="limit")
        if not 0 <= offset <= MAX_OFFSET:
            raise ValidationError(f"offset must be 0–{MAX_OFFSET}", field="offset")
        where, args, scan = self._filters(status, q, commune, conflicts_only, procedure,
                                          overdue_at)
        order, backwards = "DESC", False
        if after or before:
            at, last_id = _cursor(after or before, "after" if after else "before")
            backwards = before is not None and not after
            op = ">" if backwards else "<"
            where.append(f"(received_at {op} ? OR (received_at = ? AND id {op} ?))")
            args += [at, at, last_id]
            order = "ASC" if backwards else "DESC"
            offset = 0
        # Two steps: pick the page's ids from an index, then read only those rows' states.
        sql = (f"SELECT id, received_at FROM dossiers {scan} WHERE {' AND '.join(where)} "
               f"ORDER BY received_at {order}, id {order} LIMIT ? OFFSET ?")
        async with self.reader.execute(sql, (*args, limit + 1, offset)) as cur:
            rows = list(await cur.fetchall())
        more = len(rows) > limit
        rows = rows[:limit]
        if backwards:
            rows.reverse()
        states = await self._read_states([r[0] for r in rows])
        now = self.now_ms()
        items = [dossier_view(from_plain(codec.unpack_stored(states[r[0]])), now) for r in rows]
        for item in items:
            item.pop("history", None)
        first = f"{rows[0][1]}~{rows[0][0]}" if rows else None
        last = f"{rows[-1][1]}~{rows[-1][0]}" if rows else None
        if backwards:  # the page we came from is after this one
            return Page(items, last, first if more else None)
        return Page(items, last if more else None, first if (after or offset) else None)

    async def count(self, *, status: str | None = None, q: str | None = None,
                    commune: str | None = None, conflicts_only: bool = False,
                    procedure: str | None = None, overdue_at: int | None = None) -> int:
        """How many dossiers `search` finds with these filters (down the same indexes)."""
        where, args, scan = self._filters(status, q, commune, conflicts_only, procedure,
                                          overdue_at)
        async with self.reader.execute(
                f"SELECT count(*) FROM dossiers {scan} WHERE {' AND '.join(where)}", args) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    def _filters(self, status: str | None, q: str | None, commune: str | None,
                 conflicts_only: bool, procedure: str | None, overdue_at: int | None,
                 ) -> tuple[list[str], list[Any], str]:
        """The WHERE terms, their arguments and the index hint of a listing's filters."""
        where: list[str] = ["received_at IS NOT NULL"]
        args: list[Any] = []
        if status:
            where.append("status=?")
            args.append(status)
        if commune:
            where.append("commune=?")
            args.append(commune)
        if conflicts_only:
            where.append("conflicts>0")
        if procedure:
            where.append("procedure=?")
            args.append(procedure)
        if overdue_at is not None:
            running = overdue_statuses()
            where.append(f"status IN ({','.join('?' * len(running))}) AND due_at < ?")
            args += [*running, overdue_at]
        scan = ""
        if q and q.strip():
            term = q.strip()
            if CITIZEN_ID_RE.match(term):  # an exact ID or code: straight down its own index
                where.append("citizen_id=?")
                args.append(term)
            elif FULL_CODE_RE.match(term):
                where.append("code=?")
                args.append(term)
            elif PHONE_RE.match(phone := PHONE_JUNK.sub("", term)):  # its subscriber digits
                where.append("name_fold LIKE ? ESCAPE '\\'")
                args.append("%" + phone[-9:] + "%")
                scan = index_hint(self.reader, "dossiers_search")
            elif (day := parse_day(term)) is not None:  # received that day, or a form's date
                one = Period(date.fromisoformat(day), date.fromisoformat(day))
                where.append("(name_fold LIKE ? OR (received_at >= ? AND received_at < ?))")
                args += [f"%{SEPARATOR}{day}%", one.start_ms, one.end_ms]
                scan = index_hint(self.reader, "dossiers_search")
            elif any(ch.isdigit() for ch in term):  # the beginning of a code (names have none)
                where.append("code LIKE ? ESCAPE '\\'")
                args.append(_like(term) + "%")
                scan = index_hint(self.reader, "dossiers_search")
            else:  # part of a name (the applicant's or a searchable field's), diacritics optional
                where.append("name_fold LIKE ? ESCAPE '\\'")
                args.append("%" + _like(search_key(term)) + "%")
                scan = index_hint(self.reader, "dossiers_search")
        return where, args, scan

    async def _read_states(self, ids: list[str]) -> dict[str, bytes]:
        """The packed states of these dossiers, through the reader."""
        out: dict[str, bytes] = {}
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i:i + CHUNK]
            async with self.reader.execute(
                    f"SELECT id, state FROM dossiers WHERE id IN ({','.join('?' * len(chunk))})",
                    chunk) as cur:
                out.update({r[0]: r[1] for r in await cur.fetchall()})
        return out

    async def count_conflicts(self, commune: str | None = None) -> int:
        """How many dossiers have an open conflict."""
        sql = "SELECT count(*) FROM dossiers WHERE conflicts>0"
        args: list[Any] = []
        if commune:
            sql += " AND commune=?"
            args.append(commune)
        async with self.reader.execute(sql, args) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    # -- writing --------------------------------------------------------------------------------

    def _stamp(self, dossier_id: str, actor: str, draft: Draft, seq: int, prev: bytes,
               clock: Clock, state: DossierState | None) -> tuple[Event, Clock]:
        clock, hlc = clock.send(self.now_ms())
        if state is not None and hlc <= state.last_hlc:
            # A peer whose clock ran ahead wrote this dossier: stay after it (causal order in the
            # dossier) without letting that peer drag this node's clock forward.
            hlc = state.last_hlc + 1
        event = Event(self.origin, seq, hlc, dossier_id, actor, draft.kind,
                      codec.sorted_value(draft.payload), codec.sorted_value(draft.deps), prev)
        return event, clock

    async def write(self, dossier_id: str, actor: str, prepare: Prepare,
                    commune: str | None = None) -> DossierState:
        """Run `prepare` on the current state and commit the event it drafts, atomically.

        Shielded: a caller cancelled half-way (a client that went away, a shutdown) must not leave
        a commit done in SQLite's thread unknown to this object — the next write would reuse
        the seq. The write finishes, or rolls back, on its own."""
        return await asyncio.shield(self._write(dossier_id, actor, prepare, commune))

    async def _write(self, dossier_id: str, actor: str, prepare: Prepare,
                     commune: str | None) -> DossierState:
        async with self.lock, transaction(self.conn):
            state = await self.load_state(dossier_id)
            if is_postgres(self.conn):
                # Several hub processes share the database: one writer per commune (its
                # dossiers) and per chain at a time; locks are always taken commune → chain →
                # log (service.db), and the state is read again under them.
                where = (state.header or {}).get("commune") if state else commune
                await advisory_lock(self.conn, f"commune:{where or ''}")
                await advisory_lock(self.conn, f"chain:{self.origin}")
                state = await self.load_state(dossier_id)
            # Another process on this database may have extended this chain (hub workers).
            self.own_seq, self.own_hash = await self._own_head()
            if state is not None and commune is not None and \
                    (state.header or {}).get("commune") != commune:
                raise NotFound("no such dossier")
            draft = await prepare(state)
            if draft is None:
                if state is None:
                    raise NotFound("no such dossier")
                return state
            event, clock = self._stamp(dossier_id, actor, draft, self.own_seq + 1,
                                       self.own_hash, self.clock, state)
            new_hash = codec.event_hash(event)
            states = await self._apply_events([(event, new_hash)], {dossier_id: state})
            await self.set_meta("hlc", clock.last)
            await self.after_local_write(event)
            crashpoints.hit("store.write.before_commit")
        self.own_seq, self.own_hash, self.clock = event.seq, new_hash, clock
        return states[dossier_id]

    async def _command(self, dossier_id: str, actor: str,
                       make: Callable[[DossierState], Draft | None]) -> dict[str, Any]:
        try:
            dossier_id = check_dossier_id(dossier_id)
        except Exception as exc:
            raise NotFound("no such dossier") from exc

        async def prepare(state: DossierState | None) -> Draft | None:
            if state is None or state.header is None:
                raise NotFound("no such dossier")
            return make(state)

        await self.write(dossier_id, actor, prepare, commune=self.scope)
        return await self.view(dossier_id)

    async def edit(self, dossier_id: str, body: Any, actor: str) -> dict[str, Any]:
        """PATCH: set applicant or form fields based on the version the writer saw."""
        return await self._command(
            dossier_id, actor, lambda s: set_draft(body, s, self.catalogue, self.today()))

    async def transition(self, dossier_id: str, body: Any, actor: str) -> dict[str, Any]:
        """Move the dossier along the lifecycle."""
        return await self._command(
            dossier_id, actor, lambda s: transition_draft(body, s, self.calendar, self.now_ms(),
                                                 self.catalogue))

    async def resolve(self, dossier_id: str, body: Any, actor: str) -> dict[str, Any]:
        """Settle a conflict with one value."""
        return await self._command(
            dossier_id, actor, lambda s: resolve_draft(body, s, self.catalogue, self.today()))

    async def comment(self, dossier_id: str, body: Any, actor: str) -> dict[str, Any]:
        """Add a comment."""
        return await self._command(dossier_id, actor, lambda s: comment_draft(body, s))

    async def apologize(self, dossier_id: str, body: Any, actor: str) -> dict[str, Any]:
        """An apology with a new appointment (form 04); the due date stays."""
        return await self._command(
            dossier_id, actor, lambda s: apology_draft(body, s, self.calendar, self.now_ms()))

    async def attach(self, dossier_id: str, info: dict[str, Any], actor: str) -> dict[str, Any]:
        """Record a verified blob as an attachment of the dossier."""
        return await self._command(dossier_id, actor, lambda s: attach_draft(info, s))

    async def after_local_write(self, event: Event) -> None:
        """Hook for subclasses, inside the write's transaction: by default, note a stamp made
        with a clock that may be wrong (service.clock_flags)."""
        await clock_flags.note_stamp(self, event)

    async def on_events(self, events: list[Event]) -> None:
        """Hook for subclasses: events just appended (local or remote), inside the transaction."""

    async def _load_states(self, ids: Iterable[str]) -> dict[str, DossierState | None]:
        ids = list(dict.fromkeys(ids))
        out: dict[str, DossierState | None] = dict.fromkeys(ids)
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i:i + CHUNK]
            marks = ",".join("?" * len(chunk))
            async with self.conn.execute(
                f"SELECT id, state FROM dossiers WHERE id IN ({marks})", chunk) as cur:
                for row in await cur.fetchall():
                    out[row[0]] = from_plain(codec.unpack_stored(row[1]))
        return out

    async def _apply_events(self, events: list[tuple[Event, bytes]],
                            states: dict[str, DossierState | None] | None = None,
                            ) -> dict[str, DossierState]:
        """Append events to the log and fold them into `dossiers` (inside a transaction)."""
        if states is None:
            states = await self._load_states(e.dossier for e, _ in events)
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
                    commune = (state.header or {}).get("commune") or ""
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
        await clock_flags.note_events(self.conn, [e for e, _ in events])
        await self.on_events([e for e, _ in events])
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

    async def ingest(self, events: list[Event], now_ms: int, max_forward_ms: int | None = None,
                     *, hashes: dict[int, bytes] | None = None,
                     states: dict[str, DossierState | None] | None = None,
                     ) -> tuple[dict[str, DossierState], int]:
        """Apply remote events inside the caller's transaction; return states and how many
        carried a clock too far ahead. A caller that already hashed the events (by seq, one
        origin) or loaded their dossiers' states in this transaction passes them along."""
        if not events:
            return {}, 0
        # a group commit ingests several batches before its commit: go on from the last one's
        clock, ahead = self._pending_clock or self.clock, 0
        hashed = []
        for event in events:
            clock, too_far = clock.receive(event.hlc, now_ms, max_forward_ms)
            ahead += too_far
            digest = hashes.get(event.seq) if hashes is not None else None
            hashed.append((event, digest or codec.event_hash(event)))
        folded = await self._apply_events(hashed, states)
        await self.set_meta("hlc", clock.last)
        self._pending_clock = clock
        return folded, ahead

    def commit_clock(self) -> None:
        """After the caller's transaction committed, adopt the clock it advanced."""
        pending = self._pending_clock
        if pending is not None and pending.last > self.clock.last:
            self.clock = pending
        self._pending_clock = None

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
        async with self.conn.execute(
            "SELECT id, commune, code, procedure, status, name, name_fold, citizen_id, "
            "received_at, due_at, conflicts, updated_hlc, state FROM dossiers") as cur:
            return {r[0]: tuple(r) for r in await cur.fetchall()}
