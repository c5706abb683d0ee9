"""The hub's record of each node's exchanges: what it reported, how each exchange went.

Every exchange is recorded (`Sessions.record`), also a refused one: the node's last report (its
pending events, clock offset, disk, last error) and its counters move on, and a row goes to its
history (`node_sessions`). Records are written in batches, so an exchange commits once (its
ingest), not twice. `nodes` reads them back for the fleet views (`GET /api/nodes`, the dashboard).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from central_hub.trust_store import Node
from service.db import index_hint
from service.eventlog import EventLog
from service.sqlite import transaction

log = logging.getLogger(__name__)

SESSION_FLUSH_S = 0.5  # exchange statistics are written in batches this often
NODE_KEYS = ("node", "commune", "commune_name", "enrolled_at", "revoked_at", "last_seen_at",
             "last_success_at", "app_version", "protocol", "stats", "last_error", "sessions_ok",
             "sessions_failed", "bytes_in", "bytes_out", "clock_ahead_events", "rejected_events",
             "conflicts_open", "delivered")


class Sessions:
    """Node exchange records: a part of `HubStore`, over the log's connection."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self._sessions: list[tuple[Any, ...]] = []  # exchanges not yet written (record)
        self._flusher: asyncio.Task[None] | None = None

    async def record(self, node: Node, *, app: str, protocol: int, stats: dict[str, Any],
                     ok: bool, error: str | None, bytes_in: int, bytes_out: int,
                     events_in: int = 0, events_out: int = 0, duration_ms: int = 0) -> None:
        """Remember what a node reported and how its exchange went (also in its history).

        Recorded in batches: the record waits up to `SESSION_FLUSH_S` and goes to the database
        with the others in one transaction, so an exchange commits once (its ingest), not twice.
        Readers of these tables call `flush` first; a crash loses at most that window of
        exchange statistics, never an event."""
        self._sessions.append((node.node, self.log.time.now_ms(), ok, app, protocol, stats, error,
                               bytes_in, bytes_out, events_in, events_out, duration_ms))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(SESSION_FLUSH_S)
        try:
            await self.flush()
        except Exception:  # the next record or reader tries again; the rows are kept
            log.exception("cannot record exchange statistics")

    async def flush(self) -> None:
        """Write the exchanges recorded so far (one transaction)."""
        if not self._sessions:
            return
        batch, self._sessions = self._sessions, []
        try:
            await asyncio.shield(self._write_sessions(batch))
        except BaseException:
            self._sessions[:0] = batch
            raise

    async def _write_sessions(self, batch: list[tuple[Any, ...]]) -> None:
        async with self.log.lock, transaction(self.log.conn):
            await self.log.conn.executemany(
                "INSERT INTO node_sessions VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [(node, at, int(ok), error, b_in, b_out, e_in, e_out,
                  stats.get("pending_events"), stats.get("oldest_pending_age_s"),
                  stats.get("clock_offset_ms"), duration)
                 for (node, at, ok, _app, _protocol, stats, error, b_in, b_out, e_in, e_out,
                      duration) in batch])
            # a refused exchange carries no trustworthy report: keep the node's last one
            await self.log.conn.executemany(
                "UPDATE nodes SET last_seen_at=?, last_success_at=CASE WHEN ? THEN ? ELSE "
                "last_success_at END, app_version=CASE WHEN ? THEN ? ELSE app_version END, "
                "protocol=CASE WHEN ? THEN ? ELSE protocol END, "
                "stats=CASE WHEN ? THEN ? ELSE stats END, last_error=?, "
                "sessions_ok=sessions_ok+?, sessions_failed=sessions_failed+?, "
                "bytes_in=bytes_in+?, bytes_out=bytes_out+? WHERE node=?",
                [(at, ok, at, ok, app, ok, protocol, ok, json.dumps(stats), error, int(ok),
                  int(not ok), b_in, b_out, node)
                 for (node, at, ok, app, protocol, stats, error, b_in, b_out, _e_in, _e_out,
                      _duration) in batch])

    async def close(self) -> None:
        """Write the exchanges still waiting (before the connection closes)."""
        if self._flusher is not None:
            self._flusher.cancel()
        await self.flush()

    async def nodes(self, node: str | None = None) -> list[dict[str, Any]]:
        """Every node (or one) with what it last reported and what its latest successful
        exchange delivered (`delivered`: the report was made before it). Conflicts are counted
        per commune in one pass over the partial index of conflicted dossiers."""
        await self.flush()
        where, args = ("WHERE n.node=?", (node,)) if node else ("", ())
        async with self.log.reader.execute(
            "SELECT n.node, n.commune, c.name, n.enrolled_at, n.revoked_at, n.last_seen_at, "
            "n.last_success_at, n.app_version, n.protocol, n.stats, n.last_error, "
            "n.sessions_ok, n.sessions_failed, n.bytes_in, n.bytes_out, n.clock_ahead_events, "
            "coalesce(q.n, 0), coalesce(k.n, 0), "
            # the stats are those of the last exchange that succeeded (a refused one keeps them)
            "(SELECT s.events_in FROM node_sessions s "
            " WHERE s.node=n.node AND s.ok<>0 ORDER BY s.at DESC LIMIT 1) "
            "FROM nodes n LEFT JOIN communes c ON c.code=n.commune "
            "LEFT JOIN (SELECT origin, count(*) n FROM quarantine GROUP BY origin) q "
            "  ON q.origin=n.node "
            f"LEFT JOIN (SELECT commune, count(*) n FROM dossiers "
            f"{index_hint(self.log.reader, 'dossiers_conflicts')} "
            "  WHERE conflicts>0 GROUP BY commune) k ON k.commune=n.commune "
            f"{where} ORDER BY n.node", args) as cur:
            rows = await cur.fetchall()
        out = []
        for row in rows:
            item = dict(zip(NODE_KEYS, row, strict=True))
            item["stats"] = json.loads(item["stats"] or "{}")
            out.append(item)
        return out
