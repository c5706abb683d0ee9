"""The dossier API both sides serve (CONTRACT §7): intake, reads and commands, over the event log.

A command loads the dossier's state inside a local write (`service/eventlog.py: EventLog.local`),
lets `protocol.commands` turn the request into a draft (validated, lifecycle-checked) and appends
it as this node's next event — one transaction. Reads go through the reader connection, so they
only ever see committed data. The reference data a node holds (procedure catalogue, holiday
calendar) lives here too: it is what validation and due dates use.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

from protocol import codec
from protocol.attachments import attach_draft
from protocol.calendar import Calendar, local
from protocol.catalogue import Catalogue, parse_catalogue
from protocol.commands import (
    Draft,
    apology_draft,
    comment_draft,
    create_draft,
    resolve_draft,
    set_draft,
    transition_draft,
    validate_create,
)
from protocol.communes import DEFAULT_COMMUNES, Communes, parse_communes
from protocol.errors import NotFound, StoreError, ValidationError
from protocol.events import Event, check_dossier_id, uuid7
from protocol.merge import DossierState
from protocol.refdata import DEFAULT_HOLIDAYS, parse_holidays
from protocol.scope import units_of
from protocol.tracking import RAND_BYTES, make_check
from protocol.transfer import transfer_draft
from protocol.views import dossier_view
from service import clock_flags, search
from service.blobs import BlobStore
from service.eventlog import EventLog, LocalWrite

log = logging.getLogger(__name__)


class DossierStore:
    """One node's dossiers: the API over its event log, within its scope (a commune, or all)."""

    def __init__(self, log: EventLog, scope: str | None, agency: str | None = None) -> None:
        self.log = log
        self.time = log.time
        self.reader = log.reader
        self.scope = scope  # the only commune this node may touch (None: all, at the hub)
        self.agency = agency  # prefix of the codes of dossiers taken in here (None: none are)
        self.calendar = Calendar.of(h.day for h in DEFAULT_HOLIDAYS)
        self.communes: Communes = DEFAULT_COMMUNES  # the province's units, its public pages
        self.ref_versions: dict[str, int] = {}  # kinds held from the hub's reference data
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

    @property
    def catalogue(self) -> Catalogue:
        """The procedure catalogue in force (validation; the rows' search text too)."""
        return self.log.catalogue

    def now_ms(self) -> int:
        """Corrected time (service/hubtime.py)."""
        return self.time.now_ms()

    def today(self) -> date:
        """Today in Vietnam, by corrected time."""
        return self.time.today()

    # -- reference data -------------------------------------------------------------------------

    async def load_refdata(self) -> None:
        """Adopt the reference data the database holds."""
        async with self.log.conn.execute("SELECT kind, version, data FROM refdata") as cur:
            for kind, version, data in await cur.fetchall():
                self.use_refdata(kind, int(version), codec.unpack(data))

    def use_refdata(self, kind: str, version: int, data: dict[str, Any]) -> None:
        """Adopt reference data (already validated) for validation and due dates."""
        if kind == "procedures":
            self.log.catalogue = parse_catalogue({**data, "version": version})
        elif kind == "holidays":
            self.calendar = Calendar.of(h.day for h in parse_holidays(data))
        elif kind == "communes":
            self.communes = parse_communes(data)
        else:
            return
        self.ref_versions[kind] = version

    async def save_refdata(self, kind: str, version: int, data: dict[str, Any]) -> None:
        """Store reference data inside the caller's transaction (adopt it after the commit)."""
        await self.log.conn.execute(
            "INSERT INTO refdata VALUES (?,?,?) ON CONFLICT(kind) DO UPDATE SET "
            "version=excluded.version, data=excluded.data", (kind, version, codec.pack(data)))

    # -- reading --------------------------------------------------------------------------------

    async def load_state(self, dossier_id: str, *, committed: bool = False) -> DossierState | None:
        """The folded state of a dossier, or None (`committed`: read through the reader)."""
        return await self.log.load_state(dossier_id, committed=committed)

    async def history(self, dossier_id: str) -> list[Event]:
        """Every event of a dossier, in log order."""
        return await self.log.history(dossier_id)

    async def view(self, dossier_id: str, commune: str | None = None) -> dict[str, Any]:
        """The API shape of a dossier; NotFound if unknown or neither of its units is `commune`.
        A node sees every dossier it holds: the hub delivered it in the node's scope (a commune
        it was transferred away from keeps reading what it received)."""
        try:
            dossier_id = check_dossier_id(dossier_id)
        except Exception as exc:
            raise NotFound("no such dossier") from exc
        state = await self.load_state(dossier_id, committed=True)
        if state is None or state.header is None:
            raise NotFound("no such dossier")
        unit_of, units = self.log.mergers.unit_of, units_of(state)
        if commune is not None and \
                (units is None or unit_of(commune) not in units.resolved(unit_of).all()):
            raise NotFound("no such dossier")
        return dossier_view(state, self.now_ms(), await self.history(dossier_id))

    async def search(self, *, status: str | None = None, q: str | None = None,
                     commune: str | None = None, conflicts_only: bool = False,
                     limit: int = 50, after: str | None = None, procedure: str | None = None,
                     overdue_at: int | None = None, before: str | None = None,
                     offset: int = 0) -> search.Page:
        """Dossiers newest first, filtered, keyset-paged both ways (`after` a page's `next`,
        `before` its `prev`; else `offset` from the newest): `service/search.py`."""
        return await search.search(
            self.reader, self.now_ms(), status=status, q=q, commune=self.units(commune),
            conflicts_only=conflicts_only, limit=limit, after=after, procedure=procedure,
            overdue_at=overdue_at, before=before, offset=offset)

    async def count(self, *, status: str | None = None, q: str | None = None,
                    commune: str | None = None, conflicts_only: bool = False,
                    procedure: str | None = None, overdue_at: int | None = None) -> int:
        """How many dossiers `search` finds with these filters."""
        return await search.count(self.reader, status=status, q=q, commune=self.units(commune),
                                  conflicts_only=conflicts_only, procedure=procedure,
                                  overdue_at=overdue_at)

    async def count_conflicts(self, commune: str | None = None) -> int:
        """How many dossiers have an open conflict."""
        return await search.count_conflicts(self.reader, self.units(commune))

    def units(self, commune: str | None) -> tuple[str, ...] | None:
        """Every code whose dossiers are `commune`'s unit's now (mergers: `EventLog.mergers`)."""
        return None if not commune else self.log.mergers.units_of(commune)

    # -- intake ---------------------------------------------------------------------------------

    async def create(self, body: Any, actor: str) -> dict[str, Any]:
        """Validate and record a new dossier received at the counter; return its view."""
        if self.agency is None or self.scope is None:
            raise StoreError("this node takes in no dossiers")
        new = validate_create(body, self.catalogue, self.today())
        competent = self.competent(body.get("commune"))
        now = self.now_ms()
        dossier_id = uuid7(now, os.urandom(10))
        track = make_check(os.urandom(RAND_BYTES))  # printed on the receipt (protocol.tracking)
        received_by = self.scope if competent != self.scope else None

        async def prepare() -> Draft:
            return create_draft(new, commune=competent, code=await self._next_code(now),
                                received_ms=now, calendar=self.calendar, track=track,
                                received_by=received_by)

        state = await self.write_new(dossier_id, actor, prepare)
        return dossier_view(state, self.now_ms(), await self.history(dossier_id))

    def competent(self, raw: Any) -> str:
        """The competent commune of a dossier taken in here: this desk's (absent), or a unit of
        the province's commune list, mergers followed; ValidationError naming it otherwise."""
        assert self.scope is not None
        if raw is None or raw == "" or raw == self.scope:
            return self.scope
        if not isinstance(raw, str) or self.communes.get(raw) is None:
            raise ValidationError(f"commune {raw!r} is not a commune of this province",
                                  field="commune")
        return self.communes.resolve(raw, self.today())

    async def write_new(self, dossier_id: str, actor: str,
                        prepare: Callable[[], Awaitable[Draft]],
                        commune: str | None = None) -> DossierState:
        """Write the create `prepare` makes inside the write's transaction (where it may count
        a code or note a row that commits with the create or not at all), shielded like every
        local write (`EventLog.local`); `commune`: the unit the hub writes it for."""
        async def run() -> DossierState:
            async with self.log.local(dossier_id, commune=commune) as write:
                return await self._append(write, await prepare(), actor)
        return await asyncio.shield(run())

    async def _next_code(self, now_ms: int) -> str:
        """The next dossier code of the day, counted in the caller's transaction (a number is
        never reused: it commits with the create event or not at all)."""
        day = local(now_ms).strftime("%y%m%d")
        await self.log.conn.execute(
            "INSERT INTO code_counter(day, n) VALUES (?, 1) ON CONFLICT(day) DO UPDATE SET n=n+1",
            (day,))
        async with self.log.conn.execute("SELECT n FROM code_counter WHERE day=?", (day,)) as cur:
            row = await cur.fetchone()
        assert row is not None
        return f"{self.agency}-{day}-{int(row[0]):04d}"

    # -- commands -------------------------------------------------------------------------------

    async def _command(self, dossier_id: str, actor: str,
                       make: Callable[[DossierState], Draft | None]) -> dict[str, Any]:
        try:
            dossier_id = check_dossier_id(dossier_id)
        except Exception as exc:
            raise NotFound("no such dossier") from exc
        await asyncio.shield(self._apply(dossier_id, actor, make))  # see EventLog.local
        return await self.view(dossier_id)

    async def _apply(self, dossier_id: str, actor: str,
                     make: Callable[[DossierState], Draft | None]) -> None:
        async with self.log.local(dossier_id, commune=self.scope) as write:
            if write.state is None or write.state.header is None:
                raise NotFound("no such dossier")
            draft = make(write.state)
            if draft is not None:
                await self._append(write, draft, actor)

    async def _append(self, write: LocalWrite, draft: Draft, actor: str) -> DossierState:
        """Append a local write's event, noting a stamp made with a suspect clock
        (service/clock_flags.py) in the same transaction."""
        state = await write.append(draft, actor)
        assert write.event is not None
        await clock_flags.note_stamp(self, write.event)
        return state

    async def amend(self, dossier_id: str, actor: str,
                    make: Callable[[DossierState | None], Draft | None],
                    commune: str | None = None) -> DossierState | None:
        """Write the draft `make` makes of the dossier's current state (None: nothing to write),
        in one shielded local write; NotFound if the dossier is outside `commune`. Return the
        state after it."""
        return await asyncio.shield(self._amend(dossier_id, actor, make, commune))

    async def _amend(self, dossier_id: str, actor: str,
                     make: Callable[[DossierState | None], Draft | None],
                     commune: str | None) -> DossierState | None:
        async with self.log.local(dossier_id, commune=commune) as write:
            draft = make(write.state)
            if draft is None:
                return write.state
            return await self._append(write, draft, actor)

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

    async def apologize(self, dossier_id: str, body: Any, actor: str) -> dict[str, Any]:
        """An apology with a new appointment (form 04); the due date stays."""
        return await self._command(
            dossier_id, actor, lambda s: apology_draft(body, s, self.calendar, self.now_ms()))

    async def transfer(self, dossier_id: str, body: Any, actor: str) -> dict[str, Any]:
        """Move competence to another commune (protocol/transfer.py)."""
        return await self._command(dossier_id, actor, lambda s: transfer_draft(
            body, s, self.communes, self.today()))

    async def comment(self, dossier_id: str, body: Any, actor: str) -> dict[str, Any]:
        """Add a comment."""
        return await self._command(dossier_id, actor, lambda s: comment_draft(body, s))

    async def attach(self, dossier_id: str, info: dict[str, Any], actor: str) -> dict[str, Any]:
        """Record a verified blob as an attachment of the dossier."""
        return await self._command(dossier_id, actor, lambda s: attach_draft(info, s))
