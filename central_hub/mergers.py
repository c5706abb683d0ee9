"""Commune mergers at the hub: `central-hub commune merge`, and the table scope reads them from.

A merger is a record, not a rewrite. One transaction writes a row per merged commune into
`unit_mergers` (old code → the unit it joined, the day it counts there in statistics), publishes
the commune list that says so (`protocol.communes.merge_into`), and moves the old communes' nodes
(and their unused enrollment tokens) to the new unit. No event and no dossier row changes: every
rule that compares units resolves codes through the mergers first (`Mergers.unit_of`: scope
checks, what a node reads, the hub's lists by commune, statistics), so the merger costs the same
for 30 dossiers as for 30,000, and history keeps the unit each event was written under. A node
learns of it at its next exchange (`central_hub/exchange.py`: the answer names its unit and reads
its new scope from 0).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any

from aiohttp import web

from protocol import codec
from protocol.communes import DEFAULT_COMMUNES, Mergers, communes_to_plain, merge_into, parse_communes
from protocol.errors import ValidationError
from service.sqlite import transaction

log = logging.getLogger(__name__)

MERGERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS unit_mergers (
    code TEXT PRIMARY KEY,
    into_code TEXT NOT NULL,
    effective TEXT NOT NULL,
    merged_at INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Merged:
    """What a merger did: the commune list version it published (0: the list already said so),
    the communes newly merged, the nodes moved, and the dossiers now the new unit's."""

    version: int
    merged: tuple[str, ...]
    nodes: int
    dossiers: int


async def load_mergers(conn: Any) -> Mergers:
    """The mergers the hub has carried out (through `conn`: the writer, or the reader)."""
    async with conn.execute("SELECT code, into_code, effective FROM unit_mergers") as cur:
        return Mergers.of(await cur.fetchall())


def mergers_middleware(store: Any) -> Any:
    """Every request sees the mergers committed so far, even by `central-hub commune merge` run
    beside the server or by another hub process (one read of a small table)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path != "/v1/sync":  # the exchange resolves its node's unit itself
            store.log.mergers = await load_mergers(store.reader)
        response: web.StreamResponse = await handler(request)
        return response

    return middleware


async def merge(store: Any, into: str, name: str, merged: list[str],
                effective: date | None = None) -> Merged:
    """Merge the communes `merged` into `into` (named `name`) from `effective` (default: the
    hub's today; never later) in one transaction; idempotent. ValidationError for bad input,
    and then nothing is changed. `store` is the `HubStore`."""
    today = store.dossiers.today()
    day = effective or today
    if day > today:
        raise ValidationError(f"--effective {day.isoformat()} is after today ({today}): run the "
                              "merger on or after the day it takes effect", field="effective")
    merged = list(dict.fromkeys(merged))
    async with store.lock, transaction(store.conn):
        raw = await _refdata(store.conn)
        communes = parse_communes(raw) if raw is not None else DEFAULT_COMMUNES
        after = merge_into(communes, into, name, merged, day)
        held = await load_mergers(store.conn)
        for code in merged:
            other = dict(held.into).get(code)
            if other is not None and other != into:
                raise ValidationError(f"{code} was already merged into {other}", field="from")
        fresh = [c for c in merged if c not in dict(held.into)]
        version = 0
        plain = communes_to_plain(after)
        if after != communes or raw is None:
            version = store.dossiers.ref_versions.get("communes", 0) + 1
            await store.dossiers.save_refdata("communes", version, plain)
        now = store.now_ms()
        await store.conn.executemany(
            "INSERT INTO unit_mergers VALUES (?,?,?,?) ON CONFLICT(code) DO NOTHING",
            [(code, into, _effective(after, code, day), now) for code in fresh])
        await store.conn.execute(
            "INSERT INTO communes(code, name) VALUES (?,?) ON CONFLICT(code) DO UPDATE SET "
            "name=excluded.name", (into, after.name_of(into)))
        marks = ",".join("?" * len(merged))
        async with store.conn.execute(
                f"UPDATE nodes SET commune=? WHERE commune IN ({marks})", (into, *merged)) as cur:
            nodes = max(cur.rowcount, 0)
        await store.conn.execute(
            f"UPDATE enroll_tokens SET commune=? WHERE used_at IS NULL AND commune IN ({marks})",
            (into, *merged))
        async with store.conn.execute(
                f"SELECT count(*) FROM dossiers WHERE commune IN ({marks})", tuple(merged)) as cur:
            row = await cur.fetchone()
        mergers = await load_mergers(store.conn)
    if version:
        store.dossiers.use_refdata("communes", version, plain)
    store.log.mergers = mergers
    log.info("merged %s into %s (%s) from %s: %d node(s) moved", ", ".join(merged), into, name,
             day, nodes)
    return Merged(version, tuple(fresh), nodes, int(row[0]) if row else 0)


def _effective(communes: Any, code: str, day: date) -> str:
    """The day a merger counts from: the list's (a unit it listed as merged already), or `day`."""
    unit = communes.get(code)
    return (unit.effective if unit is not None and unit.effective else day).isoformat()


async def _refdata(conn: Any) -> dict[str, Any] | None:
    async with conn.execute("SELECT data FROM refdata WHERE kind='communes'") as cur:
        row = await cur.fetchone()
    return None if row is None else dict(codec.unpack(row[0]))
