"""The clock-check flag: dossiers whose legal times were stamped while the clock was detectably wrong.

Theory. The flag is a register of the dossier, `check.clock` (`protocol.events.CLOCK_CHECK`),
written by ordinary `set` events: it syncs, folds, conflicts and stays in the history like every
other field. An edge raises it (value: the estimated error of the clock that stamped the dossier,
in ms, negative when behind); staff at either end clear it once they have checked the received-at
and due dates (value None). Which stamps are suspect is noted inside the write's transaction
(`note_stamp`, edges only: the hub's clock is the reference), for the kinds that set legal times
(create, transition):

* `behind` — stamped before this process learned the hub's time, more than `THRESHOLD_MS` below
  a time known to have passed: the hub's time at the last successful exchange. The machine's
  clock went back (a dead BIOS battery, a wrong manual
  fix). Flagged at the next `settle`, even offline, with that lower bound of the error.
* `saved` — stamped before this process learned the hub's time, with the machine's clock plus the
  correction kept from the last exchange. Decided once the hub's time is learned: flagged when the
  stamp was more than `THRESHOLD_MS` off, else forgotten.

How far off a stamp was is known exactly when the monotonic clock has run since (same boot): the
hub's time now minus the monotonic time elapsed is the true time of the write. After a reboot it
is estimated as the correction used minus the correction learned (the machine's clock assumed
not to have moved in between). The reference of `behind` is not the persisted HLC itself: hub
events and other nodes' stamps move the HLC forward without this machine's clock being wrong.
`clock_checks` keeps the ids of dossiers whose register was ever written, so listing the flagged
ones reads those few states instead of every dossier; the folded state says whether a flag stands.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any

from protocol import codec
from protocol.calendar import iso
from protocol.commands import Draft
from protocol.errors import NotFound
from protocol.events import CLOCK_CHECK, Event
from protocol.hlc import wall_ms
from protocol.merge import DossierState, from_plain

log = logging.getLogger(__name__)

THRESHOLD_MS = 2 * 60 * 1000  # as the clock warning (GET /api/sync, hub health)
ACTOR = "clock-check"
LEGAL_KINDS = ("create", "transition")  # the events that set received_at / due_at

# Migration 4 of both databases (edge_node/schema.py, central_hub/schema.py): never edit it, add a
# migration there.
SCHEMA = """
CREATE TABLE IF NOT EXISTS clock_suspects (
    seq INTEGER PRIMARY KEY, dossier TEXT NOT NULL, basis TEXT NOT NULL,
    correction_ms INTEGER NOT NULL, error_ms INTEGER NOT NULL, stamp_ms INTEGER NOT NULL,
    boot TEXT NOT NULL, mono_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS clock_checks (dossier TEXT PRIMARY KEY);
"""


def _boot_id() -> str:
    """This boot's id (the monotonic clock's epoch); a fresh id per process where unknown."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or uuid.uuid4().hex
    except OSError:
        return uuid.uuid4().hex


BOOT = _boot_id()


def _mono_ms() -> int:
    return int(time.monotonic() * 1000)


def _touches(event: Event) -> bool:
    if event.kind == "set":
        return CLOCK_CHECK in event.payload.get("set", {})
    return event.kind == "resolve" and event.payload.get("field") == CLOCK_CHECK


async def note_events(conn: Any, events: list[Event]) -> None:
    """Remember the dossiers whose flag was written (inside the caller's transaction)."""
    ids = list({e.dossier for e in events if _touches(e)})
    if ids:
        await conn.executemany("INSERT INTO clock_checks(dossier) VALUES (?) "
                               "ON CONFLICT DO NOTHING", [(i,) for i in ids])


async def note_stamp(store: Any, event: Event) -> None:
    """Note a local write stamped with a suspect clock (inside its transaction; a
    `DossierStore`). Only edges judge their clock: the hub's is the reference."""
    if store.scope is None or store.hub_time_known or event.kind not in LEGAL_KINDS:
        return  # the hub's clock is the reference; by the hub's time, a stamp is right
    now, passed = store.now_ms(), await _passed(store)
    basis = "behind" if passed and now < passed - THRESHOLD_MS else "saved"
    await store.conn.execute(
        "INSERT INTO clock_suspects VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(seq) DO NOTHING",
        (event.seq, event.dossier, basis, store.correction_ms,
         now - passed if basis == "behind" else 0, now, BOOT, _mono_ms()))


async def _passed(store: Any) -> int:
    """A time known to have passed: the hub's at the last successful exchange (0: none)."""
    return int(await store.get_meta("last_success_at", 0) or 0)


async def went_back(store: Any) -> int | None:
    """Before the hub's time is learned: when corrected time is more than `THRESHOLD_MS` below
    the time of this node's previous write, the machine's clock went back; return the
    estimated offset of this machine's clock then (ms, a bound: at least that far behind)."""
    if store.scope is None or store.hub_time_known:
        return None
    passed = await _passed(store)
    if not passed or store.now_ms() >= passed - THRESHOLD_MS:
        return None
    return int(min(store.clock_offset_ms, store.wall() - passed))


def _decide(row: tuple[Any, ...], store: Any) -> int | None:
    """The clock error to flag a suspect stamp with, 0 to forget it, None: not yet known."""
    _, _, basis, correction, error, stamp, boot, mono = row
    if not store.hub_time_known:
        return int(error) if basis == "behind" else None
    if boot == BOOT:  # the true time of the write: the hub's now, less the monotonic time since
        off = int(stamp) - (store.now_ms() - (_mono_ms() - int(mono)))
    else:
        off = int(correction) - int(store.correction_ms)
    return off if abs(off) > THRESHOLD_MS else 0


async def settle(store: Any) -> int:
    """Flag the dossiers whose suspect stamps are now known to be off (own commune only: a node
    writes only its commune's dossiers); return how many flags were written."""
    if store.scope is None:
        return 0
    async with store.reader.execute(
            "SELECT seq, dossier, basis, correction_ms, error_ms, stamp_ms, boot, mono_ms "
            "FROM clock_suspects ORDER BY seq") as cur:
        rows = list(await cur.fetchall())
    errors: dict[str, int] = {}
    decided: list[int] = []
    for row in rows:
        verdict = _decide(tuple(row), store)
        if verdict is None:
            continue
        seq, dossier = int(row[0]), str(row[1])
        decided.append(seq)
        if verdict and abs(verdict) >= abs(errors.get(dossier, 0)):
            errors[dossier] = verdict
    written = 0
    for dossier, error in errors.items():
        written += await _flag(store, dossier, error)
    if decided:
        async with store.lock:
            await store.conn.executemany("DELETE FROM clock_suspects WHERE seq=?",
                                         [(s,) for s in decided])
    if written:
        log.warning("%d dossier(s) flagged for a clock check (legal times stamped with a clock "
                    "off by up to %d s)", written, max(abs(e) for e in errors.values()) // 1000)
    return written


async def _flag(store: Any, dossier: str, error_ms: int) -> int:
    flagged = 0

    async def prepare(state: DossierState | None) -> Draft | None:
        nonlocal flagged
        if state is None or state.header is None or state.value(CLOCK_CHECK) \
                or state.header.get("commune") != store.scope:
            return None  # gone, already flagged, or not this node's to write
        flagged = 1
        return Draft("set", {"set": {CLOCK_CHECK: error_ms}}, dict(state.vv))

    try:
        await store.write(dossier, ACTOR, prepare)
    except NotFound:
        return 0
    return flagged


async def clear(store: Any, dossier_id: str, actor: str) -> dict[str, Any]:
    """Staff checked the dossier's legal times: clear its flag (a no-op if none stands);
    return the dossier's view."""

    async def prepare(state: DossierState | None) -> Draft | None:
        if state is None or state.header is None:
            raise NotFound("no such dossier")
        if not state.registers.get(CLOCK_CHECK) or (
                not state.value(CLOCK_CHECK) and len(state.registers[CLOCK_CHECK]) == 1):
            return None
        return Draft("set", {"set": {CLOCK_CHECK: None}}, dict(state.vv))

    await store.write(dossier_id, actor, prepare, commune=store.scope)
    return dict(await store.view(dossier_id))


async def flagged(store: Any, commune: str | None = None, limit: int = 500
                  ) -> list[dict[str, Any]]:
    """The dossiers whose clock-check flag stands (newest received first)."""
    sql = ("SELECT d.id, d.commune, d.code, d.received_at, d.due_at, d.state FROM clock_checks c "
           "JOIN dossiers d ON d.id = c.dossier")
    args: list[Any] = []
    if commune:
        sql += " WHERE d.commune=?"
        args.append(commune)
    async with store.reader.execute(sql + " ORDER BY d.received_at DESC", args) as cur:
        rows = list(await cur.fetchall())
    out = []
    for dossier, where, code, received, due, blob in rows:
        state = from_plain(codec.unpack_stored(blob))
        writes = state.registers.get(CLOCK_CHECK) or ()
        if not writes or not writes[0].value:
            continue
        out.append({"id": dossier, "commune": where, "code": code,
                    "received_at": iso(received), "due_at": iso(due) if due else None,
                    "status": state.value("status"),
                    "applicant": state.value("applicant.full_name") or "",
                    "error_ms": writes[0].value, "flagged_by": writes[0].origin,
                    "flagged_at": iso(wall_ms(writes[0].hlc))})
        if len(out) >= limit:
            break
    return out


async def count_flagged(store: Any, commune: str | None = None) -> int:
    """How many dossiers carry a standing clock-check flag."""
    return len(await flagged(store, commune, limit=1_000_000))
