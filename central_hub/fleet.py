"""The fleet's SQL beyond the sync core: node items with health, the downsampled history of
exchanges and its chart series, health states and the alert log, and the facts statistics count.

History has three tiers: `node_sessions` keeps every exchange (written by `HubStore.record_session`)
for `raw_hours`; `downsample` then folds them into hourly sums in `node_history`, hourly sums older
than `hourly_days` into days (Vietnam's days), and drops what is older than `days`. Each step works
on a bounded slice per transaction, so a sync waits on the store's lock for milliseconds at most.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from central_hub.health import DEFAULT_RULES, HealthRules, Reason, backlog_age_s, evaluate
from central_hub.store import HubStore
from protocol import codec
from protocol.calendar import iso
from service.sqlite import transaction

log = logging.getLogger(__name__)

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
SLICE_MS = 6 * HOUR_MS
CLOSED = ("resolved", "refused", "withdrawn", "stopped", "returned")
ERROR_KINDS = (("credential", "auth"), ("protocol", "version"), ("version", "version"),
               ("hash chain", "chain"), ("origin", "identity"), ("node id", "identity"),
               ("limit", "too_large"), ("too large", "too_large"), ("zstd", "corrupt"),
               ("decod", "corrupt"), ("not valid", "corrupt"))


async def setup(store: HubStore) -> None:
    """Create the fleet's tables next to the hub's (idempotent)."""
    async with store.lock:
        await store.conn.executescript(FLEET_SCHEMA)


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

NODE_KEYS = ("node", "commune", "commune_name", "enrolled_at", "revoked_at", "last_seen_at",
             "last_success_at", "app_version", "protocol", "stats", "last_error", "sessions_ok",
             "sessions_failed", "bytes_in", "bytes_out", "clock_ahead_events", "rejected_events",
             "conflicts_open", "delivered")


async def node_rows(store: HubStore, node: str | None = None) -> list[dict[str, Any]]:
    """Every node (or one) with what it last reported: `HubStore.nodes` plus what its latest
    exchange delivered. Conflicts are counted per commune in one pass over the partial index of
    conflicted dossiers, not per node over all of a commune's dossiers."""
    where, args = ("WHERE n.node=?", (node,)) if node else ("", ())
    async with store.reader.execute(
        "SELECT n.node, n.commune, c.name, n.enrolled_at, n.revoked_at, n.last_seen_at, "
        "n.last_success_at, n.app_version, n.protocol, n.stats, n.last_error, n.sessions_ok, "
        "n.sessions_failed, n.bytes_in, n.bytes_out, n.clock_ahead_events, "
        "coalesce(q.n, 0), coalesce(k.n, 0), "
        "(SELECT CASE WHEN s.ok THEN s.events_in ELSE 0 END FROM node_sessions s "
        " WHERE s.node=n.node ORDER BY s.at DESC LIMIT 1) "
        "FROM nodes n LEFT JOIN communes c ON c.code=n.commune "
        "LEFT JOIN (SELECT origin, count(*) n FROM quarantine GROUP BY origin) q "
        "  ON q.origin=n.node "
        "LEFT JOIN (SELECT commune, count(*) n FROM dossiers INDEXED BY dossiers_conflicts "
        "  WHERE conflicts>0 GROUP BY commune) k ON k.commune=n.commune "
        f"{where} ORDER BY n.node", args) as cur:
        rows = await cur.fetchall()
    out = []
    for row in rows:
        item = dict(zip(NODE_KEYS, row, strict=True))
        item["stats"] = json.loads(item["stats"] or "{}")
        out.append(item)
    return out


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
            "reasons": [r.text() for r in reasons] if reasons else [],
            "why": [r.plain() for r in reasons] if reasons else [],
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
            cur = await store.conn.execute(
                "INSERT INTO alert_log(node, at, previous, health, reasons) VALUES (?,?,?,?,?)",
                (c.node, c.at, c.previous, c.health, reasons))
            ids.append(int(cur.lastrowid or 0))
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


# -- history -------------------------------------------------------------------------------------

_FOLD = """
INSERT INTO node_history(node, span, at, sessions_ok, sessions_failed, bytes_in, bytes_out,
    events_in, events_out, pending_max, oldest_pending_max, clock_offset_max, duration_ms_sum,
    duration_ms_max)
SELECT node, ?, ((at + {off}) / {b}) * {b} - {off}, {cols}
FROM {table} WHERE {where} AND at >= ? AND at < ? GROUP BY node, 3
ON CONFLICT(node, span, at) DO UPDATE SET
    sessions_ok = sessions_ok + excluded.sessions_ok,
    sessions_failed = sessions_failed + excluded.sessions_failed,
    bytes_in = bytes_in + excluded.bytes_in, bytes_out = bytes_out + excluded.bytes_out,
    events_in = events_in + excluded.events_in, events_out = events_out + excluded.events_out,
    pending_max = max(coalesce(pending_max, excluded.pending_max),
                      coalesce(excluded.pending_max, pending_max)),
    oldest_pending_max = max(coalesce(oldest_pending_max, excluded.oldest_pending_max),
                             coalesce(excluded.oldest_pending_max, oldest_pending_max)),
    clock_offset_max = max(coalesce(clock_offset_max, excluded.clock_offset_max),
                           coalesce(excluded.clock_offset_max, clock_offset_max)),
    duration_ms_sum = duration_ms_sum + excluded.duration_ms_sum,
    duration_ms_max = max(duration_ms_max, excluded.duration_ms_max)
"""
_RAW_COLS = ("sum(ok), sum(1 - ok), sum(bytes_in), sum(bytes_out), sum(events_in), "
             "sum(events_out), max(pending_events), max(oldest_pending_age_s), "
             "max(abs(clock_offset_ms)), sum(duration_ms), max(duration_ms)")
_HIST_COLS = ("sum(sessions_ok), sum(sessions_failed), sum(bytes_in), sum(bytes_out), "
              "sum(events_in), sum(events_out), max(pending_max), max(oldest_pending_max), "
              "max(clock_offset_max), sum(duration_ms_sum), max(duration_ms_max)")


async def _oldest(store: HubStore, sql: str, args: tuple[Any, ...]) -> int | None:
    async with store.reader.execute(sql, args) as cur:
        row = await cur.fetchone()
    return None if row is None or row[0] is None else int(row[0])


async def downsample(store: HubStore, now_ms: int, *, raw_hours: int = 48,
                     hourly_days: int = 30, days: int = 30) -> dict[str, int]:
    """Fold exchanges older than `raw_hours` into hours, hours older than `hourly_days` into
    days, and drop what is older than `days`; return how many rows each step removed."""
    done = {"sessions": 0, "hours": 0, "days": 0}
    raw_cut = (now_ms - raw_hours * HOUR_MS) // HOUR_MS * HOUR_MS
    hour_cut = local_day_start(now_ms - hourly_days * DAY_MS)
    day_cut = local_day_start(now_ms - days * DAY_MS)
    steps = (
        ("sessions", "SELECT min(at) FROM node_sessions", "node_sessions", "1", (), raw_cut,
         HOUR_MS, 0, _RAW_COLS, 3600),
        ("hours", "SELECT min(at) FROM node_history WHERE span=3600", "node_history",
         "span=3600", (), hour_cut, DAY_MS, LOCAL_OFFSET_MS, _HIST_COLS, 86400),
    )
    for key, first_sql, table, where, args, cut, bucket, off, cols, span in steps:
        start = await _oldest(store, first_sql, args)
        keep_folded = key == "sessions" or days > hourly_days
        while start is not None and start < cut:
            end = min(cut, (start // SLICE_MS + 1) * SLICE_MS)
            async with store.lock, transaction(store.conn):
                if keep_folded:
                    await store.conn.execute(
                        _FOLD.format(off=off, b=bucket, cols=cols, table=table, where=where),
                        (span, start, end))
                cur = await store.conn.execute(
                    f"DELETE FROM {table} WHERE {where} AND at >= ? AND at < ?", (start, end))
                done[key] += max(cur.rowcount, 0)
            start = await _oldest(store, first_sql, args) if end < cut else None
    async with store.lock, transaction(store.conn):
        cur = await store.conn.execute(
            "DELETE FROM node_history WHERE span=86400 AND at < ?", (day_cut,))
        done["days"] += max(cur.rowcount, 0)
    return done


async def series(store: HubStore, node: str, start: int, end: int,
                 bucket_ms: int) -> list[dict[str, Any]]:
    """Per-bucket sums for a node's charts over [start, end): exchanges ok and failed, bytes in
    and out, the highest backlog; buckets without any exchange are absent."""
    off = LOCAL_OFFSET_MS
    b = bucket_ms
    out: dict[int, dict[str, Any]] = {}
    queries = (
        (f"SELECT ((at + {off}) / {b}) * {b} - {off} t, sum(ok), sum(1 - ok), sum(bytes_in), "
         "sum(bytes_out), max(pending_events), sum(duration_ms) FROM node_sessions "
         "WHERE node=? AND at>=? AND at<? GROUP BY t", (node, start, end)),
        (f"SELECT ((at + {off}) / {b}) * {b} - {off} t, sum(sessions_ok), sum(sessions_failed), "
         "sum(bytes_in), sum(bytes_out), max(pending_max), sum(duration_ms_sum) "
         "FROM node_history WHERE node=? AND at>=? AND at<? AND span*1000<=? GROUP BY t",
         (node, start, end, b)),
    )
    for sql, args in queries:
        async with store.reader.execute(sql, args) as cur:
            for t, ok, failed, b_in, b_out, pending, dur in await cur.fetchall():
                cell = out.setdefault(int(t), {"t": int(t), "ok": 0, "failed": 0, "bytes_in": 0,
                                                "bytes_out": 0, "pending": None,
                                                "duration_ms": 0})
                cell["ok"] += int(ok or 0)
                cell["failed"] += int(failed or 0)
                cell["bytes_in"] += int(b_in or 0)
                cell["bytes_out"] += int(b_out or 0)
                cell["duration_ms"] += int(dur or 0)
                if pending is not None:
                    cell["pending"] = max(int(pending), cell["pending"] or 0)
    return [out[t] for t in sorted(out)]


async def recent_sessions(store: HubStore, node: str, limit: int = 20) -> list[dict[str, Any]]:
    """A node's latest exchanges as the hub saw them, newest first."""
    async with store.reader.execute(
            "SELECT at, ok, error, bytes_in, bytes_out, events_in, events_out, pending_events, "
            "duration_ms FROM node_sessions WHERE node=? ORDER BY at DESC LIMIT ?",
            (node, limit)) as cur:
        rows = await cur.fetchall()
    keys = ("at_ms", "ok", "error", "bytes_in", "bytes_out", "events_in", "events_out",
            "pending_events", "duration_ms")
    return [{**dict(zip(keys, r, strict=True)), "at": iso(r[0]), "ok": bool(r[1]),
             "kind": None if r[1] else error_kind(r[2])} for r in rows]


async def node_window(store: HubStore, node: str, since_ms: int) -> dict[str, Any]:
    """What a node's exchanges since `since_ms` add up to: errors by kind (failed exchanges and
    events the hub quarantined), volume and time spent."""
    async with store.reader.execute(
            "SELECT ok, error, bytes_in, bytes_out, duration_ms FROM node_sessions "
            "WHERE node=? AND at>=?", (node, since_ms)) as cur:
        rows = list(await cur.fetchall())
    errors: dict[str, int] = {}
    for ok, error, *_ in rows:
        if not ok:
            kind = error_kind(error)
            errors[kind] = errors.get(kind, 0) + 1
    async with store.reader.execute(
            "SELECT code, count(*) FROM quarantine WHERE origin=? GROUP BY code", (node,)) as cur:
        rejected = {f"rejected_{r[0]}": int(r[1]) for r in await cur.fetchall()}
    durations = sorted(int(r[4]) for r in rows)
    return {
        "sessions": len(rows), "failed": sum(1 for r in rows if not r[0]),
        "errors": {**errors, **rejected},
        "bytes_in": sum(int(r[2]) for r in rows), "bytes_out": sum(int(r[3]) for r in rows),
        "duration_ms_median": durations[len(durations) // 2] if durations else None,
        "duration_ms_max": durations[-1] if durations else None,
    }


# -- statistics ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Facts:
    """What statistics need of one dossier: where, what, how it came in, and when it reached
    each status (the first time)."""

    commune: str
    procedure: str
    channel: str
    received_at: int
    due_at: int | None
    reached: dict[str, int]


async def stats_facts(store: HubStore, start_ms: int, end_ms: int,
                      commune: str | None = None) -> list[Facts]:
    """The dossiers that count in [start, end): received before its end and not closed before
    its start (a dossier untouched since before the start in a closed status is skipped)."""
    marks = ",".join("?" * len(CLOSED))
    sql = ("SELECT id, commune, procedure, received_at, due_at, state FROM dossiers "
           "WHERE received_at IS NOT NULL AND received_at < ? AND NOT (received_at < ? AND "
           f"status IN ({marks}) AND updated_hlc < ?)")
    args: list[Any] = [end_ms, start_ms, *CLOSED, start_ms << 16]
    if commune:
        sql += " AND commune=?"
        args.append(commune)
    async with store.reader.execute(sql, args) as cur:
        rows = list(await cur.fetchall())
    reached: dict[str, dict[str, int]] = {r[0]: {} for r in rows}
    ids = list(reached)
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        async with store.reader.execute(
                f"SELECT dossier, body FROM events WHERE dossier IN ({','.join('?' * len(chunk))})"
                " AND kind='transition'", chunk) as cur:
            for dossier, body in await cur.fetchall():
                event = codec.decode_stored(body)
                to, at = str(event.payload.get("to")), event.hlc >> 16
                seen = reached[dossier]
                if to not in seen or at < seen[to]:
                    seen[to] = at
    out = []
    for dossier, commune_code, procedure, received, due, state in rows:
        header = codec.unpack(state).get("header") or {}
        out.append(Facts(commune_code, procedure or "", header.get("channel") or "counter",
                         int(received), due if isinstance(due, int) else None, reached[dossier]))
    return out


async def commune_names(store: HubStore) -> dict[str, str]:
    """Every known commune's name by code."""
    async with store.reader.execute("SELECT code, name FROM communes") as cur:
        return {r[0]: r[1] for r in await cur.fetchall()}


def reasons_plain(reasons: list[Reason]) -> list[dict[str, Any]]:
    """Reasons in their JSON shape."""
    return [r.plain() for r in reasons]
