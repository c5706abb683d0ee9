"""The fleet's SQL beyond the sync core: the tables of history and alerts, node items with health,
health states and the alert log (`central_hub.nodes.history` has the history's downsampling and
chart series; the facts statistics count are `service.reports`, shared with the edge)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from central_hub.nodes.health import DEFAULT_RULES, HealthRules, Reason, backlog_age_s, evaluate
from protocol.calendar import iso
from service.sqlite import transaction

if TYPE_CHECKING:  # the hub's schema (central_hub/schema.py) imports this module's
    from central_hub.store import HubStore

log = logging.getLogger(__name__)

# Version 1 of the fleet's tables, in the hub's database (central_hub/schema.py): never edit it,
# add a migration there.
FLEET_SCHEMA = """
CREATE INDEX IF NOT EXISTS node_sessions_at ON node_sessions(at);
CREATE TABLE IF NOT EXISTS node_history (
    node TEXT NOT NULL,
    span INTEGER NOT NULL,
    at INTEGER NOT NULL,
    sessions_ok INTEGER NOT NULL,
    sessions_failed INTEGER NOT NULL,
    bytes_in INTEGER NOT NULL,
    bytes_out INTEGER NOT NULL,
    events_in INTEGER NOT NULL,
    events_out INTEGER NOT NULL,
    pending_max INTEGER,
    oldest_pending_max INTEGER,
    clock_offset_max INTEGER,
    duration_ms_sum INTEGER NOT NULL,
    duration_ms_max INTEGER NOT NULL,
    PRIMARY KEY (node, span, at)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS node_history_span_at ON node_history(span, at);
CREATE TABLE IF NOT EXISTS node_health (
    node TEXT PRIMARY KEY,
    health TEXT NOT NULL,
    since INTEGER NOT NULL,
    not_ok_since INTEGER,
    reasons TEXT NOT NULL DEFAULT '[]'
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alert_log (
    id INTEGER PRIMARY KEY,
    node TEXT NOT NULL,
    at INTEGER NOT NULL,
    previous TEXT,
    health TEXT NOT NULL,
    reasons TEXT NOT NULL,
    delivered INTEGER
);
CREATE INDEX IF NOT EXISTS alert_log_at ON alert_log(at);
"""
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
LOCAL_OFFSET_MS = 7 * HOUR_MS  # Vietnam, no daylight saving: local days start at 17:00 UTC
ERROR_KINDS = (("credential", "auth"), ("protocol", "version"), ("version", "version"),
               ("hash chain", "chain"), ("origin", "identity"), ("node id", "identity"),
               ("limit", "too_large"), ("too large", "too_large"), ("zstd", "corrupt"),
               ("decod", "corrupt"), ("not valid", "corrupt"))


def local_day_start(ms: int) -> int:
    """The start of the Vietnamese day holding `ms`."""
    return (ms + LOCAL_OFFSET_MS) // DAY_MS * DAY_MS - LOCAL_OFFSET_MS


def fast_iso(ms: int | None) -> str | None:
    """`protocol.calendar.iso` for many timestamps (a page of 3,321 nodes): same text, a third
    of the cost."""
    if ms is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S+07:00", time.gmtime(ms // 1000 + 7 * 3600))


def error_kind(message: str | None) -> str:
    """A failed exchange's kind, from the hub's message (`protocol` when nothing more fits)."""
    text = (message or "").lower()
    return next((kind for word, kind in ERROR_KINDS if word in text), "protocol")


# -- nodes and health ----------------------------------------------------------------------------

async def node_rows(store: HubStore, node: str | None = None) -> list[dict[str, Any]]:
    """Every node (or one) with what it last reported (`HubStore.nodes`)."""
    return await store.nodes(node)


async def roll_call(store: HubStore) -> tuple[int, ...]:
    """What changes when a node is enrolled or revoked (a cheap check for cached node lists)."""
    async with store.reader.execute(
            "SELECT count(*), coalesce(max(enrolled_at), 0), count(revoked_at), "
            "coalesce(max(revoked_at), 0) FROM nodes") as cur:
        row = await cur.fetchone()
    return tuple(int(v) for v in row) if row else ()


async def node_items(store: HubStore, rules: HealthRules = DEFAULT_RULES,
                     links: dict[str, float] | None = None,
                     node: str | None = None) -> list[dict[str, Any]]:
    """`GET /api/nodes` items: what each node reported, with health and why."""
    now = store.now_ms()
    items = []
    for row in await node_rows(store, node):
        stats = row["stats"]
        # An edge reports its backlog before the exchange that sends it: count what the hub
        # took in that exchange as gone.
        sent = row["delivered"] or 0
        if sent and stats.get("pending_events"):
            stats["pending_events"] = max(0, int(stats["pending_events"]) - sent)
            if not stats["pending_events"]:
                stats["oldest_pending_age_s"] = 0
        health, reasons = evaluate(row, now, rules)
        why = [r.plain() for r in reasons]
        items.append({
            "node": row["node"],
            "commune": row["commune"],
            "commune_name": row["commune_name"],
            "enrolled_at": fast_iso(row["enrolled_at"]),
            "last_seen_at": fast_iso(row["last_seen_at"]),
            "last_success_at": fast_iso(row["last_success_at"]),
            "last_seen_ms": row["last_seen_at"],
            "last_success_ms": row["last_success_at"],
            "pending_events": stats.get("pending_events", 0),
            "pending_blobs": stats.get("pending_blobs", 0),
            "oldest_pending_age_s": stats.get("oldest_pending_age_s", 0),
            "backlog_s": backlog_age_s(row, now),
            "clock_offset_ms": stats.get("clock_offset_ms", 0),
            "disk_free": stats.get("disk_free"),
            "dossiers": stats.get("dossiers"),
            "conflicts_open": row["conflicts_open"],
            "rejected_events": row["rejected_events"],
            "clock_ahead_events": row["clock_ahead_events"],
            "app_version": row["app_version"],
            "protocol": row["protocol"],
            "last_error": row["last_error"] or stats.get("last_error") or None,
            "sessions_ok": row["sessions_ok"],
            "sessions_failed": row["sessions_failed"],
            "bytes_in": row["bytes_in"],
            "bytes_out": row["bytes_out"],
            "link_up_bps": (links or {}).get(row["node"]),
            "revoked": row["revoked_at"] is not None,
            "health": health,
            "reasons": [w["text"] for w in why],
            "why": why,
        })
    return items


@dataclass(frozen=True, slots=True)
class HealthState:
    """A node's health as last recorded: since when, and since when it has not been ok."""

    node: str
    health: str
    since: int
    not_ok_since: int | None
    reasons: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Change:
    """A node's health changed (previous None: first seen)."""

    node: str
    previous: str | None
    health: str
    at: int
    not_ok_since: int | None
    reasons: list[dict[str, Any]]


async def health_states(store: HubStore) -> dict[str, HealthState]:
    """Every node's recorded health."""
    async with store.reader.execute(
            "SELECT node, health, since, not_ok_since, reasons FROM node_health") as cur:
        return {r[0]: HealthState(r[0], r[1], r[2], r[3], json.loads(r[4]))
                for r in await cur.fetchall()}


async def not_ok_states(store: HubStore) -> dict[str, tuple[str, int, int | None]]:
    """(health, since, not_ok_since) of every node recorded as not ok (what `/alerts` lists:
    the reasons it shows are the current ones, so the recorded ones are not read)."""
    async with store.reader.execute(
            "SELECT node, health, since, not_ok_since FROM node_health "
            "WHERE health<>'ok'") as cur:
        return {r[0]: (r[1], r[2], r[3]) for r in await cur.fetchall()}


async def record_changes(store: HubStore, changes: list[Change]) -> list[int]:
    """Store new health states and log them; return the log ids (in order)."""
    ids: list[int] = []
    if not changes:
        return ids
    async with store.lock, transaction(store.conn):
        for c in changes:
            reasons = json.dumps(c.reasons, ensure_ascii=False)
            await store.conn.execute(
                "INSERT INTO node_health VALUES (?,?,?,?,?) ON CONFLICT(node) DO UPDATE SET "
                "health=excluded.health, since=excluded.since, "
                "not_ok_since=excluded.not_ok_since, reasons=excluded.reasons",
                (c.node, c.health, c.at, c.not_ok_since, reasons))
            async with store.conn.execute(
                    "INSERT INTO alert_log(node, at, previous, health, reasons) "
                    "VALUES (?,?,?,?,?) RETURNING id",
                    (c.node, c.at, c.previous, c.health, reasons)) as cur:
                row = await cur.fetchone()
            ids.append(int(row[0]) if row else 0)
    return ids


async def refresh_reasons(store: HubStore, reasons: dict[str, list[dict[str, Any]]]) -> None:
    """Keep the recorded reasons current while the health level stays the same."""
    if reasons:
        async with store.lock, transaction(store.conn):
            await store.conn.executemany(
                "UPDATE node_health SET reasons=? WHERE node=?",
                [(json.dumps(r, ensure_ascii=False), n) for n, r in reasons.items()])


async def mark_delivered(store: HubStore, log_id: int, ok: bool) -> None:
    """Remember whether the webhook took an alert."""
    async with store.lock:
        await store.conn.execute("UPDATE alert_log SET delivered=? WHERE id=?",
                                 (int(ok), log_id))


async def alert_log(store: HubStore, limit: int = 100,
                    node: str | None = None) -> list[dict[str, Any]]:
    """The latest health changes, newest first."""
    sql = "SELECT id, node, at, previous, health, reasons, delivered FROM alert_log"
    args: list[Any] = []
    if node:
        sql += " WHERE node=?"
        args.append(node)
    async with store.reader.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)) as cur:
        rows = await cur.fetchall()
    return [{"id": r[0], "node": r[1], "at": iso(r[2]), "at_ms": r[2], "previous": r[3],
             "health": r[4], "why": json.loads(r[5]),
             "delivered": None if r[6] is None else bool(r[6])} for r in rows]


async def commune_names(store: HubStore) -> dict[str, str]:
    """Every known commune's name by code."""
    async with store.reader.execute("SELECT code, name FROM communes") as cur:
        return {r[0]: r[1] for r in await cur.fetchall()}


def reasons_plain(reasons: list[Reason]) -> list[dict[str, Any]]:
    """Reasons in their JSON shape."""
    return [r.plain() for r in reasons]
