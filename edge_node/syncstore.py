"""The edge's sync state with the hub, committed in the same transaction as what it covers.

The state is `protocol.session.EdgeSession`, kept in the meta table: the hub's ack of this node's
events, the cursor in the hub's log and its epoch, the warning standing for staff, the re-read
tracking after a restore. `apply_response` reads it, asks `EdgeSession.answer` what the hub's
answer does, and commits that — the ack, the rejections, the hub's events, the cursor, the
warning, the reference data, the clock correction — in one transaction, so a crash at any point
leaves a state from which the next session simply resends or re-asks: harmless.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from edge_node.blobqueue import BlobQueue
from protocol import HUB_ORIGIN, codec
from protocol.events import Event
from protocol.hlc import wall_ms
from protocol.messages import SyncResponse
from protocol.notices import HUB_WARNING, Standing
from protocol.refdata import check_refdata
from protocol.session import EdgeSession, received
from service import crashpoints
from service.dossier_store import DossierStore
from service.eventlog import EventLog
from service.sqlite import transaction

log = logging.getLogger(__name__)

WARNING_KEYS = ("sync_warning", "sync_warning_code", "sync_warning_at", "sync_warning_until")
REREAD_KEY = "reread_hub_seen"
SESSION_KEYS = ("ack", "cursor", "hub_epoch", *WARNING_KEYS, REREAD_KEY)


class EdgeSync:
    """One edge's position with the hub, and what it has still to send."""

    def __init__(self, log: EventLog, dossiers: DossierStore, queue: BlobQueue) -> None:
        self.log = log
        self.dossiers = dossiers
        self.queue = queue

    # -- the state ------------------------------------------------------------------------------

    async def session(self) -> EdgeSession:
        """The committed state (through the writer: inside its transaction, if any)."""
        meta = await self.log.get_metas(SESSION_KEYS)
        standing = None
        if meta.get("sync_warning"):
            standing = Standing(str(meta.get("sync_warning_code") or HUB_WARNING),
                                str(meta["sync_warning"]), int(meta.get("sync_warning_at") or 0),
                                int(meta.get("sync_warning_until") or 0))
        reread = meta.get(REREAD_KEY)
        return EdgeSession(int(meta.get("ack") or 0), int(meta.get("cursor") or 0),
                           str(meta.get("hub_epoch") or ""), standing,
                           None if reread is None else json.loads(reread))

    async def _save(self, before: EdgeSession, after: EdgeSession) -> None:
        """Write what changed (inside the caller's transaction)."""
        for key, old, new in (("ack", before.ack, after.ack),
                              ("cursor", before.cursor, after.cursor),
                              ("hub_epoch", before.epoch, after.epoch)):
            if new != old:
                await self.log.set_meta(key, new)
        if after.standing != before.standing:
            if after.standing is None:
                log.info("sync warning over: %s", before.standing and before.standing.message)
                await self.log.delete_meta(WARNING_KEYS)
            else:
                kept = after.standing
                for key, value in zip(WARNING_KEYS, (kept.message, kept.code, kept.at,
                                                     kept.until), strict=True):
                    await self.log.set_meta(key, value)
        if after.reread != before.reread:
            if after.reread is None:
                await self.log.delete_meta((REREAD_KEY,))
            else:
                await self.log.set_meta(REREAD_KEY, json.dumps(after.reread, sort_keys=True))

    async def ack(self) -> int:
        """Highest own seq the hub has durably acknowledged."""
        return int(await self.log.get_meta("ack", 0))

    async def cursor(self) -> int:
        """Last hub log position applied here."""
        return int(await self.log.get_meta("cursor", 0))

    async def hub_epoch(self) -> str:
        """The hub log epoch the cursor belongs to ("" before the first answer naming one)."""
        return str(await self.log.get_meta("hub_epoch", ""))

    async def last_success(self) -> int:
        """The hub's time at the last successful exchange (0: none yet)."""
        return int(await self.log.get_meta("last_success_at", 0) or 0)

    def refdata_held(self) -> dict[str, int]:
        """The versions of the hub's reference data this node holds, by kind."""
        return dict(self.dossiers.ref_versions)

    async def warning(self) -> dict[str, Any] | None:
        """What the hub's answers said is wrong with it and still stands, or None:
        {"code": a `protocol.notices.WARNINGS` code, "message": the English log line,
        "at": hub time ms}."""
        kept = (await self.session()).standing
        return None if kept is None else {"code": kept.code, "message": kept.message,
                                          "at": kept.at}

    async def rejections(self) -> list[dict[str, Any]]:
        """Events the hub refused, for staff and operators to see."""
        async with self.log.conn.execute(
                "SELECT seq, code, reason, at FROM rejected ORDER BY seq") as cur:
            return [{"seq": r[0], "code": r[1], "reason": r[2], "at": r[3]}
                    for r in await cur.fetchall()]

    # -- what to send ---------------------------------------------------------------------------

    async def pending(self, max_bytes: int) -> list[Event]:
        """Own events after the ack, oldest first, at most `max_bytes` of them (at least one)."""
        out: list[Event] = []
        size = 0
        async with self.log.reader.execute(
            "SELECT body FROM events WHERE origin=? AND seq>? ORDER BY seq",
            (self.log.origin, await self.ack())) as cur:
            async for (body,) in cur:
                if out and size + len(body) > max_bytes:
                    break
                out.append(codec.decode_stored(body))
                size += len(body)
        return out

    async def pending_batch(self, after: int, max_bytes: int) -> tuple[dict[str, Any], int, int]:
        """Own events after seq `after` in compact wire form, about `max_bytes` of them;
        return (batch, first seq, last seq) — (…, 0, 0) when there is nothing."""
        # Through the reader: only committed events may leave the node (a write whose
        # transaction later rolls back must never reach the hub).
        async with self.log.reader.execute(
            "SELECT body FROM events WHERE origin=? AND seq>? ORDER BY seq LIMIT ?",
            (self.log.origin, after, max_bytes // 256 + 1)) as cur:
            rows = await cur.fetchall()
        return codec.own_batch_from_stored((body for (body,) in rows), max_bytes)

    async def pending_stats(self) -> tuple[int, int]:
        """(events not yet acknowledged, age in seconds of the oldest of them)."""
        ack = await self.ack()
        count = max(0, self.log.own_seq - ack)
        if count == 0:
            return 0, 0
        async with self.log.conn.execute(
            "SELECT hlc FROM events WHERE origin=? AND seq=?", (self.log.origin, ack + 1)) as cur:
            row = await cur.fetchone()
        age = max(0, (self.log.time.now_ms() - wall_ms(int(row[0]))) // 1000) if row else 0
        return count, age

    # -- what the hub answered ------------------------------------------------------------------

    async def apply_response(self, resp: SyncResponse, rtt_s: float, at_mono: float,
                             sent_after: int | None = None, live: bool = True) -> int:
        """Commit what the hub answered, in one transaction; return how many hub events were
        new here. `rtt_s` and `at_mono` (monotonic time of receipt) place the hub's clock
        reading; `sent_after` is the ack the request was built on (None: the stored one).
        Not `live` (a bundle carried for days, `edge_node/bundles.py`): the hub's time in it
        says nothing of the clocks now, nor is it a successful exchange. Shielded: a cancelled
        session still finishes committing (or rolling back) what it started, and the in-memory
        clock and reference data follow the database."""
        return await asyncio.shield(self._apply(resp, rtt_s, at_mono, sent_after, live))

    async def _apply(self, resp: SyncResponse, rtt_s: float, at_mono: float,
                     sent_after: int | None, live: bool) -> int:
        elog, dossiers = self.log, self.dossiers
        async with elog.lock:
            try:
                async with transaction(elog.conn):
                    before = await self.session()
                    incoming = received(resp, elog.origin)
                    plan = before.answer(
                        resp, node=elog.origin, own_seq=elog.own_seq, sent_after=sent_after,
                        held=await self._held(incoming),
                        held_hub=await self._held_hub() if before.ends_reread(resp) else ())
                    for rej in plan.rejections:
                        await elog.conn.execute(
                            "INSERT OR REPLACE INTO rejected VALUES (?,?,?,?)",
                            (rej.seq, rej.code, rej.reason, resp.hub_time_ms))
                    await elog.receive(plan.fresh, resp.hub_time_ms)
                    after = plan.after
                    if plan.notices:
                        log.warning("%s", "; ".join(n.message for n in plan.notices))
                        after = after.warned(plan.notices, resp.hub_time_ms, elog.own_seq)
                        # scans the hub had confirmed may be gone too: ask it about them again
                        await self.queue.check_uploads_again()
                    elif after.standing is not None:
                        after = after.settled(now_ms=resp.hub_time_ms, more=resp.more,
                                              uploads_waiting=await self.queue.uploads_waiting())
                    await self._save(before, after)
                    fresh = {k: v for k, v in resp.refdata.items()
                             if v["version"] > dossiers.ref_versions.get(k, 0)}
                    for kind, ref in fresh.items():
                        check_refdata(kind, ref["data"])
                        await dossiers.save_refdata(kind, ref["version"], ref["data"])
                    if live:
                        await elog.set_meta("clock_correction_ms",
                                            elog.time.correction_for(resp.hub_time_ms, rtt_s))
                        await elog.set_meta("last_success_at", resp.hub_time_ms)
                    crashpoints.hit("edge.apply.before_commit")
            except BaseException:
                elog.forget_clock()
                raise
            elog.commit_clock()
            for kind, ref in fresh.items():
                dossiers.use_refdata(kind, ref["version"], ref["data"])
            if live:
                elog.time.set_hub_time(resp.hub_time_ms, rtt_s, at_mono)
        return len(plan.fresh)

    async def _held(self, events: list[Event]) -> dict[tuple[str, int], bytes]:
        """The hashes of those of `events` held here already, by (origin, seq)."""
        by_origin: dict[str, list[int]] = {}
        for event in events:
            by_origin.setdefault(event.origin, []).append(event.seq)
        held: dict[tuple[str, int], bytes] = {}
        for origin, seqs in by_origin.items():
            async with self.log.conn.execute(
                    "SELECT seq, hash FROM events WHERE origin=? AND seq BETWEEN ? AND ?",
                    (origin, min(seqs), max(seqs))) as cur:
                held.update(((origin, int(r[0])), bytes(r[1])) for r in await cur.fetchall())
        return held

    async def _held_hub(self) -> list[tuple[str, int, str]]:
        """The hub's events held here, in log order: (origin, seq, dossier code or id)."""
        async with self.log.conn.execute(
                "SELECT e.origin, e.seq, coalesce(d.code, e.dossier) FROM events e "
                "LEFT JOIN dossiers d ON d.id=e.dossier "
                "WHERE e.origin=? OR e.origin LIKE ? ORDER BY e.pos",
                (HUB_ORIGIN, HUB_ORIGIN + ".%")) as cur:
            return [(str(o), int(s), str(d)) for o, s, d in await cur.fetchall()]
