"""The delivery feed's migration: every event logged before it is fed at its own position, so an
edge's cursor keeps its meaning, and every dossier's units are noted (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from central_hub.feed import backfill_feed
from central_hub.store import HubStore
from protocol.scope import Units
from service.sqlite import transaction
from tests.central_hub.test_store import Chain, enrolled
from tests.central_hub.test_store import hub as hub  # the store fixture, on both stores

pytestmark = pytest.mark.both_stores

A, B = "02221", "02245"


async def rows(hub: HubStore, sql: str) -> list[tuple[object, ...]]:
    async with hub.conn.execute(sql) as cur:
        return [tuple(r) for r in await cur.fetchall()]


async def test_the_backfill_feeds_each_event_at_its_log_position(hub: HubStore) -> None:
    node_a, node_b = await enrolled(hub, A), await enrolled(hub, B)
    chain_a, chain_b = Chain(node_a.node, hub.now_ms()), Chain(node_b.node, hub.now_ms())
    first = chain_a.create(A)
    chain_b.create(B)
    chain_a.edit(first.dossier, {node_a.node: 1}, address="Thôn A")
    chain_a.create(A, "Lý Thị Mai")
    await hub.ingest.accept(node_a, chain_a.events[:1])
    await hub.ingest.accept(node_b, chain_b.events)
    await hub.ingest.accept(node_a, chain_a.events[1:])
    events = await rows(hub, "SELECT pos, commune FROM events ORDER BY pos")
    assert [c for _, c in events] == [A, B, A, A]
    async with hub.lock, transaction(hub.conn):  # as migration 9 found the log: no feed yet
        await hub.conn.execute("DELETE FROM feed")
        await hub.conn.execute("DELETE FROM dossier_units")
        await backfill_feed(hub.conn)
    assert await rows(hub, "SELECT pos, unit FROM feed ORDER BY pos") == events
    assert await hub.feed.end() == events[-1][0]
    ids = [str(d) for (d,) in await rows(hub, "SELECT id FROM dossiers")]
    units = await hub.feed.units(ids)
    assert sorted(u.commune for u in units.values()) == [A, A, B]
    assert all(u == Units(u.commune, u.commune) for u in units.values())
    # another desk of A reads A's events only, and from a cursor held before, only what is after
    other = await enrolled(hub, A)
    fed, cursor, _ = await hub.read_scope(other, 0, 1 << 20)
    assert [e.id for e in fed] == [e.id for e in chain_a.events] and cursor == events[-1][0]
    after, _, _ = await hub.read_scope(other, events[0][0], 1 << 20)
    assert [e.id for e in after] == [e.id for e in chain_a.events[1:]]
    # and new events are fed after the backfilled positions
    more = Chain(other.node, hub.now_ms())
    await hub.ingest.accept(other, [more.create(A)])
    assert await hub.feed.end() > events[-1][0]
    assert [e.id for e in (await hub.read_scope(node_a, cursor, 1 << 20))[0]] == [more.events[0].id]
