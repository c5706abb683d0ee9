"""The edge node's store: the dossier log plus sync state (ack, cursor, clock offset) and codes.

The hub's ack and cursor are committed in the same transaction as the events they cover, so a crash
at any point leaves a state from which the next session simply resends or re-asks: harmless.

The hub's answer is authoritative, also backwards: a hub restored from an older backup acks less than
it did (the ack rewinds and the events after it are sent again) and answers from the start of its
log when the cursor is of another log epoch (the cursor follows). Both are warnings for staff, never
a loss: events already held are skipped by id, so a re-pull applies only what is new. Such a warning
ends by itself once all is sent and read again; one for a disagreement that no later answer heals (an
id the hub reused, hub edits the restored hub lost) stays a week.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

import aiosqlite

from edge_node.schema import MIGRATIONS
from protocol import HUB_ORIGIN, codec, is_hub_origin
from protocol.calendar import local
from protocol.commands import create_draft, validate_create
from protocol.errors import RemoteProtocolError
from protocol.events import Event, uuid7
from protocol.hlc import wall_ms
from protocol.merge import DossierState
from protocol.messages import SyncResponse
from protocol.refdata import check_refdata
from protocol.tracking import RAND_BYTES, make_check
from protocol.views import dossier_view
from service import crashpoints
from service.blobs import BlobStore
from service.dossier_store import DossierStore
from service.migrations import upgraded
from service.sqlite import connect, transaction

log = logging.getLogger(__name__)

# What the kept sync warning is about (`EdgeStore.sync_warning()["code"]`, translated for staff by
# the desk). A restore's warnings end by themselves once what it undid is done again; a reused id or
# hub edits the restored hub lost are disagreements that do not heal here (`LASTING`), so they stay
# a week and are not hidden by a later restore's.
HUB_RESTORED = "hub_restored"  # the hub acks less than it had: this node sends its events again
HUB_LOG_RESET = "hub_log_reset"  # the hub's log restarted (new epoch): it is read again from 0
HUB_ID_REUSED = "hub_id_reused"  # the hub sent an id held here with other content: kept ours
HUB_EDITS_LOST = "hub_edits_lost"  # the restored hub lacks its own edits held here: kept here
HUB_WARNING = "hub_warning"  # a warning kept by a version that stored no code
WARNING_RANK = {HUB_ID_REUSED: 0, HUB_EDITS_LOST: 0, HUB_RESTORED: 1, HUB_LOG_RESET: 1}
LASTING = (HUB_ID_REUSED, HUB_EDITS_LOST)  # disagreements that no later answer heals
LASTING_KEEP_MS = 7 * 24 * 3600 * 1000
WARNING_KEYS = ("sync_warning", "sync_warning_code", "sync_warning_at", "sync_warning_until")

class EdgeStore(DossierStore):
    """One commune's dossiers and its sync position with the hub."""

    def __init__(self, conn: aiosqlite.Connection, reader: aiosqlite.Connection, node: str,
                 commune: str, agency: str) -> None:
        super().__init__(conn, reader, node, commune)
        self.commune = commune
        self.agency = agency

    @classmethod
    async def open(cls, path: Path, node: str, commune: str, agency: str) -> EdgeStore:
        """Open (creating if needed) the edge database at `path`."""
        conn = await upgraded(await connect(path, synchronous="FULL"), MIGRATIONS, str(path))
        store = cls(conn, await connect(path), node, commune, agency)
        store.blobs = BlobStore(path.parent / "blobs")
        await store.setup()
        return store

    async def on_events(self, events: list[Event]) -> None:
        """Track blobs to move: our attachments go up, others' come down."""
        rows = []
        for event in events:
            sha = event.payload.get("sha256") if event.kind == "attach" else None
            if sha is None:  # not an attachment, or a paper document listed without a scan
                continue
            size = event.payload["size"]
            if event.origin == self.origin:
                rows.append((sha, size, "up", 0))
            elif not self.blobs.has(sha):
                rows.append((sha, size, "down", 0))
        if rows:
            await self.conn.executemany("INSERT OR IGNORE INTO blobs VALUES (?,?,?,?)", rows)

    async def blobs_to_move(self, direction: str) -> list[tuple[str, int]]:
        """Blobs not yet uploaded ("up") or downloaded ("down"), oldest first."""
        async with self.reader.execute(
                "SELECT sha256, size FROM blobs WHERE direction=? AND done=0 ORDER BY rowid",
                (direction,)) as cur:
            return [(r[0], int(r[1])) for r in await cur.fetchall()]

    async def blob_done(self, sha: str, direction: str) -> None:
        """Mark a blob as moved."""
        async with self.lock:
            await self.conn.execute("UPDATE blobs SET done=1 WHERE sha256=? AND direction=?",
                                    (sha, direction))

    async def pending_blobs(self) -> int:
        """Blobs still to upload or download."""
        async with self.reader.execute("SELECT count(*) FROM blobs WHERE done=0") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    # -- intake and processing ------------------------------------------------------------------

    async def create(self, body: Any, actor: str) -> dict[str, Any]:
        """Validate and record a new dossier received at the counter; return its view."""
        new = validate_create(body, self.catalogue, self.today())
        now = self.now_ms()
        dossier_id = uuid7(now, os.urandom(10))
        track = make_check(os.urandom(RAND_BYTES))  # printed on the receipt (protocol.tracking)

        async def prepare(_: DossierState | None) -> Any:
            return create_draft(new, commune=self.commune, code=await self._next_code(now),
                                received_ms=now, calendar=self.calendar, track=track)

        state = await self.write(dossier_id, actor, prepare)
        return dossier_view(state, self.now_ms(), await self.history(dossier_id))

    async def _next_code(self, now_ms: int) -> str:
        day = local(now_ms).strftime("%y%m%d")
        await self.conn.execute(
            "INSERT INTO code_counter(day, n) VALUES (?, 1) ON CONFLICT(day) DO UPDATE SET n=n+1",
            (day,))
        async with self.conn.execute("SELECT n FROM code_counter WHERE day=?", (day,)) as cur:
            row = await cur.fetchone()
        assert row is not None
        return f"{self.agency}-{day}-{int(row[0]):04d}"

    # -- sync state -----------------------------------------------------------------------------

    async def ack(self) -> int:
        """Highest own seq the hub has durably acknowledged."""
        return int(await self.get_meta("ack", 0))

    async def cursor(self) -> int:
        """Last hub log position applied here."""
        return int(await self.get_meta("cursor", 0))

    async def hub_epoch(self) -> str:
        """The hub log epoch the cursor belongs to ("" before the first answer naming one)."""
        return str(await self.get_meta("hub_epoch", ""))

    async def sync_warning(self) -> dict[str, Any] | None:
        """What the hub's answers said is wrong with it and still stands, or None:
        {"code": one of the kinds above, "message": the English log line, "at": hub time ms}."""
        message = await self.get_meta("sync_warning")
        if not message:
            return None
        return {"code": str(await self.get_meta("sync_warning_code") or HUB_WARNING),
                "message": str(message), "at": int(await self.get_meta("sync_warning_at", 0))}

    async def _warn(self, warnings: list[tuple[str, str]], at_ms: int) -> None:
        """Log `warnings` ((code, message) of one answer) and keep them for the sync status as
        the most serious code, unless a more serious warning still stands (inside the caller's
        transaction). A restore's warning ends once this node's last seq now is acked again."""
        message = "; ".join(text for _, text in warnings)
        log.warning("%s", message)
        code = min((c for c, _ in warnings), key=lambda c: WARNING_RANK.get(c, 9))
        kept = await self.get_meta("sync_warning_code") if await self.get_meta("sync_warning") \
            else None
        if kept is not None and (WARNING_RANK.get(kept, 9) < WARNING_RANK[code]
                                 or (kept in LASTING and code in LASTING)):
            return  # a more serious one stands, or a lasting one: its week runs from the first
        await self.set_meta("sync_warning", message)
        await self.set_meta("sync_warning_code", code)
        await self.set_meta("sync_warning_at", at_ms)
        await self.set_meta("sync_warning_until", self.own_seq)

    async def _settle_warning(self, more: bool, now_ms: int) -> None:
        """Drop the kept warning once it is over (inside the caller's transaction, after an
        answer that warned of nothing). A restore's is over when the hub acks this node's events
        up to its last seq at the time of the warning, has sent the end of its log (`more`
        false) and no scan is left to check again: all re-sent and re-read, staff need not
        know more. A lasting one (`LASTING`: a reused id, hub edits the restored hub lost) is
        not healed by any later answer, so the edge cannot see it end: it goes a week after it
        was raised, long enough for staff to see it and call the province."""
        if not await self.get_meta("sync_warning"):
            return
        if await self.get_meta("sync_warning_code") in LASTING:
            if now_ms - int(await self.get_meta("sync_warning_at", 0)) < LASTING_KEEP_MS:
                return
        elif more or await self.ack() < int(await self.get_meta("sync_warning_until", 0)):
            return
        else:
            async with self.conn.execute(
                    "SELECT count(*) FROM blobs WHERE direction='up' AND done=0") as cur:
                row = await cur.fetchone()
            if row and int(row[0]):
                return
        log.info("sync warning over: %s", await self.get_meta("sync_warning"))
        await self.conn.execute(
            f"DELETE FROM meta WHERE key IN ({','.join('?' * len(WARNING_KEYS))})", WARNING_KEYS)

    async def pending(self, max_bytes: int) -> list[Event]:
        """Own events after the ack, oldest first, at most `max_bytes` of them (at least one)."""
        out: list[Event] = []
        size = 0
        async with self.reader.execute(
            "SELECT body FROM events WHERE origin=? AND seq>? ORDER BY seq",
            (self.origin, await self.ack())) as cur:
            async for (body,) in cur:
                if out and size + len(body) > max_bytes:
                    break
                out.append(codec.decode_stored(body))
                size += len(body)
        return out

    async def pending_batch(self, after: int, max_bytes: int) -> tuple[dict[str, Any], int, int]:
        """Own events after seq `after` in compact wire form, about `max_bytes` of them;
        return (batch, first seq, last seq) — (…, 0, 0) when there is nothing."""
        bodies: list[bytes] = []
        size = 0
        # Through the reader: only committed events may leave the node (a write whose
        # transaction later rolls back must never reach the hub).
        async with self.reader.execute(
            "SELECT body FROM events WHERE origin=? AND seq>? ORDER BY seq LIMIT ?",
            (self.origin, after, max_bytes // 256 + 1)) as cur:
            for (body,) in await cur.fetchall():
                if bodies and size + len(body) > max_bytes:
                    break
                bodies.append(body)
                size += len(body)
        return codec.own_batch_from_stored(bodies)

    async def pending_stats(self) -> tuple[int, int]:
        """(events not yet acknowledged, age in seconds of the oldest of them)."""
        ack = await self.ack()
        count = max(0, self.own_seq - ack)
        if count == 0:
            return 0, 0
        async with self.conn.execute(
            "SELECT hlc FROM events WHERE origin=? AND seq=?", (self.origin, ack + 1)) as cur:
            row = await cur.fetchone()
        age = max(0, (self.now_ms() - wall_ms(int(row[0]))) // 1000) if row else 0
        return count, age

    async def apply_response(self, resp: SyncResponse, rtt_s: float, at_mono: float,
                             sent_after: int | None = None) -> int:
        """Shielded `_apply_response`: a cancelled session still finishes committing (or rolling
        back) what it started, and the in-memory clock and reference data follow the database.
        `sent_after` is the ack the request was built on (None: the stored one): an answer
        acking less than that comes from a hub that lost events, one acking less than the
        stored ack but not less than that is merely older than another answer."""
        return await asyncio.shield(self._apply_response(resp, rtt_s, at_mono, sent_after))

    async def _unseen(self, events: list[Event], warnings: list[tuple[str, str]]) -> list[Event]:
        """The events not held here yet. One held with other content (a hub that reused an id
        after a restore) is kept as held, and is a warning: the two replicas now disagree."""
        by_origin: dict[str, list[Event]] = {}
        for event in events:
            by_origin.setdefault(event.origin, []).append(event)
        held: dict[tuple[str, int], bytes] = {}
        for origin, group in by_origin.items():
            seqs = [e.seq for e in group]
            async with self.conn.execute(
                    "SELECT seq, hash FROM events WHERE origin=? AND seq BETWEEN ? AND ?",
                    (origin, min(seqs), max(seqs))) as cur:
                held.update(((origin, int(r[0])), bytes(r[1])) for r in await cur.fetchall())
        if not held:
            return events
        fresh, clashes = [], []
        for event in events:
            digest = held.get((event.origin, event.seq))
            if digest is None:
                fresh.append(event)
            elif digest != codec.event_hash(event):
                clashes.append(f"{event.origin}:{event.seq}")
        if clashes:
            warnings.append((HUB_ID_REUSED,
                f"hub sent {len(clashes)} event(s) with an id this node holds with other content "
                f"(first {clashes[0]}); kept this node's (the hub reused ids after a restore "
                "from an older backup?): tell the hub's operators"))
        return fresh

    async def _track_reread(self, resp: SyncResponse, warnings: list[tuple[str, str]]) -> None:
        """While the log of a restored hub is read again from the start: note the last seq of
        each hub origin it sends; at its end, any hub event held here past those is one the hub
        lost (edited there after its backup). It stays here, and staff are told (inside the
        caller's transaction)."""
        seen_json = "{}" if resp.reset else await self.get_meta("reread_hub_seen")
        if seen_json is None:
            return  # not re-reading
        seen: dict[str, int] = json.loads(seen_json)
        for event in resp.events:
            if is_hub_origin(event.origin) and event.seq > seen.get(event.origin, 0):
                seen[event.origin] = event.seq
        if resp.more:
            await self.set_meta("reread_hub_seen", json.dumps(seen, sort_keys=True))
            return
        await self.conn.execute("DELETE FROM meta WHERE key='reread_hub_seen'")
        lost: list[str] = []
        async with self.conn.execute(
                "SELECT e.origin, e.seq, coalesce(d.code, e.dossier) FROM events e "
                "LEFT JOIN dossiers d ON d.id=e.dossier "
                "WHERE e.origin=? OR e.origin LIKE ? ORDER BY e.pos",
                (HUB_ORIGIN, HUB_ORIGIN + ".%")) as cur:
            for origin, seq, dossier in await cur.fetchall():
                if int(seq) > seen.get(str(origin), 0) and dossier not in lost:
                    lost.append(str(dossier))
        if lost:
            warnings.append((HUB_EDITS_LOST,
                f"the restored hub lacks edits it had made to {len(lost)} dossier(s) held here "
                f"({', '.join(lost[:5])}{'…' if len(lost) > 5 else ''}): kept here; tell the "
                "hub's operators to redo them"))

    async def _apply_response(self, resp: SyncResponse, rtt_s: float, at_mono: float,
                              sent_after: int | None) -> int:
        """Commit what the hub answered: ack, rejections, its events, the cursor, in one
        transaction. Return how many hub events were new here. `rtt_s` and `at_mono` (monotonic
        time of receipt) place the hub's clock reading."""
        async with self.lock:
            async with transaction(self.conn):
                ack = await self.ack()
                if resp.ack > self.own_seq:
                    raise RemoteProtocolError(
                        f"the hub acknowledges {resp.ack} events of this node, which has written "
                        f"{self.own_seq}: was this database restored from an old backup?")
                warnings: list[tuple[str, str]] = []
                if resp.ack < (ack if sent_after is None else sent_after):
                    # It had acknowledged more before this request left: it lost them (restored
                    # from an older backup). Its ack is the truth; what follows is sent again.
                    warnings.append((HUB_RESTORED,
                        f"hub holds less than it acknowledged (restored from backup?): it holds "
                        f"{resp.ack} of this node's events, had acknowledged {ack}; sending the "
                        "rest again"))
                    await self.set_meta("ack", resp.ack)
                elif resp.ack > ack:  # (a lower ack to a request sent before ours: stale)
                    await self.set_meta("ack", resp.ack)
                for rej in resp.rejections:
                    await self.conn.execute(
                        "INSERT OR REPLACE INTO rejected VALUES (?,?,?,?)",
                        (rej.seq, rej.code, rej.reason, resp.hub_time_ms))
                foreign = await self._unseen([e for e in resp.events if e.origin != self.origin],
                                             warnings)
                await self.ingest(foreign, resp.hub_time_ms)
                await self._track_reread(resp, warnings)
                if resp.reset:
                    warnings.append((HUB_LOG_RESET,
                        f"hub log restarted (epoch {resp.epoch or '?'}; restored from backup?): "
                        f"reading it again from the start, position {await self.cursor()} was "
                        "of the old log"))
                    await self.set_meta("cursor", resp.cursor)
                elif resp.cursor > await self.cursor():
                    await self.set_meta("cursor", resp.cursor)
                if resp.epoch:
                    await self.set_meta("hub_epoch", resp.epoch)
                if warnings:
                    await self._warn(warnings, resp.hub_time_ms)
                    # blobs the hub had confirmed may be gone too: ask it about them again
                    await self.conn.execute("UPDATE blobs SET done=0 WHERE direction='up'")
                else:
                    await self._settle_warning(resp.more, resp.hub_time_ms)
                fresh = {k: v for k, v in resp.refdata.items()
                         if v["version"] > self.ref_versions.get(k, 0)}
                for kind, ref in fresh.items():
                    check_refdata(kind, ref["data"])
                    await self.save_refdata(kind, ref["version"], ref["data"])
                await self.set_meta("clock_correction_ms",
                                    resp.hub_time_ms + int(rtt_s * 500) - self.wall())
                await self.set_meta("last_success_at", resp.hub_time_ms)
                crashpoints.hit("edge.apply.before_commit")
            self.commit_clock()
            for kind, ref in fresh.items():
                self.use_refdata(kind, ref["version"], ref["data"])
            self.set_hub_time(resp.hub_time_ms, rtt_s, at_mono)
        return len(foreign)

    async def rejections(self) -> list[dict[str, Any]]:
        """Events the hub refused, for staff and operators to see."""
        async with self.conn.execute("SELECT seq, code, reason, at FROM rejected ORDER BY seq") as c:
            return [{"seq": r[0], "code": r[1], "reason": r[2], "at": r[3]}
                    for r in await c.fetchall()]

    async def dossier_count(self) -> int:
        """How many dossiers this node holds."""
        async with self.conn.execute("SELECT count(*) FROM dossiers") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0


async def open_store(data_dir: Path, identity: dict[str, Any]) -> EdgeStore:
    """Open the edge database in `data_dir` for the enrolled identity."""
    return await EdgeStore.open(data_dir / "edge.db", identity["node"], identity["commune"],
                                identity["agency"])
