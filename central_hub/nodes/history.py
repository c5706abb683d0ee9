"""The downsampled history of exchanges and its chart series.

Three tiers: `node_sessions` keeps every exchange (written by `HubStore.record_session`) for
`raw_hours`; `downsample` then sums them up into hours in `node_history`, hourly sums older than
`hourly_days` into days (Vietnam's days), and drops what is older than `days`. Each step works on a
bounded slice per transaction, so a sync waits on the store's lock for milliseconds at most. The
tables are `central_hub.nodes.fleet`'s (created at open with the hub's: central_hub/schema.py).
"""

from __future__ import annotations

import logging
from typing import Any

from central_hub.nodes.fleet import DAY_MS, HOUR_MS, LOCAL_OFFSET_MS, error_kind, local_day_start
from central_hub.store import HubStore
from protocol.calendar import iso
from service.db import greatest
from service.sqlite import transaction

log = logging.getLogger(__name__)

SLICE_MS = 6 * HOUR_MS

_ROLL_UP = """
INSERT INTO node_history AS h(node, span, at, sessions_ok, sessions_failed, bytes_in, bytes_out,
    events_in, events_out, pending_max, oldest_pending_max, clock_offset_max, duration_ms_sum,
    duration_ms_max)
SELECT node, CAST(? AS BIGINT), ((at + {off}) / {b}) * {b} - {off}, {cols}
FROM {table} WHERE {where} AND at >= ? AND at < ? GROUP BY node, 3
ON CONFLICT(node, span, at) DO UPDATE SET
    sessions_ok = h.sessions_ok + excluded.sessions_ok,
    sessions_failed = h.sessions_failed + excluded.sessions_failed,
    bytes_in = h.bytes_in + excluded.bytes_in, bytes_out = h.bytes_out + excluded.bytes_out,
    events_in = h.events_in + excluded.events_in, events_out = h.events_out + excluded.events_out,
    pending_max = {max}(coalesce(h.pending_max, excluded.pending_max),
                        coalesce(excluded.pending_max, h.pending_max)),
    oldest_pending_max = {max}(coalesce(h.oldest_pending_max, excluded.oldest_pending_max),
                               coalesce(excluded.oldest_pending_max, h.oldest_pending_max)),
    clock_offset_max = {max}(coalesce(h.clock_offset_max, excluded.clock_offset_max),
                             coalesce(excluded.clock_offset_max, h.clock_offset_max)),
    duration_ms_sum = h.duration_ms_sum + excluded.duration_ms_sum,
    duration_ms_max = {max}(h.duration_ms_max, excluded.duration_ms_max)
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
    """Sum exchanges older than `raw_hours` up into hours, hours older than `hourly_days` into
    days, and drop what is older than `days`; return how many rows each step removed."""
    await store.flush_sessions()
    done = {"sessions": 0, "hours": 0, "days": 0}
    raw_cut = (now_ms - raw_hours * HOUR_MS) // HOUR_MS * HOUR_MS
    hour_cut = local_day_start(now_ms - hourly_days * DAY_MS)
    day_cut = local_day_start(now_ms - days * DAY_MS)
    steps = (
        ("sessions", "SELECT min(at) FROM node_sessions", "node_sessions", "1=1", (), raw_cut,
         HOUR_MS, 0, _RAW_COLS, 3600),
        ("hours", "SELECT min(at) FROM node_history WHERE span=3600", "node_history",
         "span=3600", (), hour_cut, DAY_MS, LOCAL_OFFSET_MS, _HIST_COLS, 86400),
    )
    for key, first_sql, table, where, args, cut, bucket, off, cols, span in steps:
        start = await _oldest(store, first_sql, args)
        keep_sums = key == "sessions" or days > hourly_days
        while start is not None and start < cut:
            end = min(cut, (start // SLICE_MS + 1) * SLICE_MS)
            async with store.lock, transaction(store.conn):
                if keep_sums:
                    await store.conn.execute(
                        _ROLL_UP.format(off=off, b=bucket, cols=cols, table=table, where=where,
                                     max=greatest(store.conn)),
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
    await store.flush_sessions()
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
    await store.flush_sessions()
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
    await store.flush_sessions()
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
