"""HubStore.ingest.accept and read_scope on a real SQLite file: acks, gaps, replays, chains, scope."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from central_hub.store import HubStore, Node
from protocol import HUB_ORIGIN, codec, hlc
from protocol.errors import RemoteProtocolError
from protocol.events import Event, uuid7
from service.db import PgConnection

A, B = "02245", "02227"


pytestmark = pytest.mark.both_stores  # the contract suite: on SQLite and on PostgreSQL


@pytest.fixture
async def hub(tmp_path: Path, hub_db: str) -> AsyncIterator[HubStore]:
    store = await HubStore.open(tmp_path / "hub.db", hub_db)
    try:
        yield store
    finally:
        await store.close()


async def enrolled(hub: HubStore, commune: str) -> Node:
    """A node enrolled the real way, so it has a row in `nodes`."""
    token = await hub.trust.create_enroll_token(commune, None)
    result = await hub.trust.enroll(token)
    return Node(result.node, result.commune)


class Chain:
    """One origin's events, numbered and hash-chained like an edge writes them."""

    def __init__(self, origin: str, now_ms: int) -> None:
        self.origin = origin
        self.now_ms = now_ms
        self.events: list[Event] = []

    def add(self, kind: str, dossier: str, payload: dict[str, Any],
            deps: dict[str, int] | None = None) -> Event:
        seq = len(self.events) + 1
        prev = codec.event_hash(self.events[-1]) if self.events else b""
        event = Event(self.origin, seq, hlc.pack(self.now_ms, seq), dossier, "clerk", kind,
                      payload, deps or {}, prev)
        self.events.append(event)
        return event

    def create(self, commune: str, name: str = "Nguyễn Văn An") -> Event:
        dossier = uuid7(self.now_ms, os.urandom(10))
        return self.add("create", dossier, {
            "procedure": "1.001193", "commune": commune,
            "code": f"{self.origin}-261128-{len(self.events) + 1:04d}",
            "received_at": self.now_ms, "channel": "counter", "status": "accepted",
            "due_at": self.now_ms + 3600_000, "set": {"applicant.full_name": name}})

    def edit(self, dossier: str, deps: dict[str, int], **values: Any) -> Event:
        return self.add("set", dossier, {"set": {f"applicant.{k}": v for k, v in values.items()}},
                        deps)


async def scalar(hub: HubStore, sql: str, *args: Any) -> Any:
    async with hub.conn.execute(sql, args) as cur:
        row = await cur.fetchone()
    return row[0] if row else None


async def event_ids(hub: HubStore) -> list[tuple[str, int]]:
    async with hub.conn.execute("SELECT origin, seq FROM events ORDER BY pos") as cur:
        return [(r[0], r[1]) for r in await cur.fetchall()]


async def test_contiguous_batch_is_applied_and_acked(hub: HubStore) -> None:
    node = await enrolled(hub, A)
    chain = Chain(node.node, hub.now_ms())
    d = chain.create(A)
    chain.edit(d.dossier, {node.node: 1}, address="Thôn A")
    chain.edit(d.dossier, {node.node: 2}, phone="0912345678")
    ack, rejections = await hub.ingest.accept(node, chain.events)
    assert (ack, rejections) == (3, [])
    assert await event_ids(hub) == [(node.node, 1), (node.node, 2), (node.node, 3)]
    view = await hub.dossiers.view(d.dossier)
    assert view["applicant"]["address"] == "Thôn A"
    assert view["applicant"]["phone"] == "0912345678"
    assert view["commune"] == A
    # the stored chain head is the last event's hash
    assert await scalar(hub, "SELECT last_seq FROM origins WHERE origin=?", node.node) == 3
    assert await scalar(hub, "SELECT last_hash FROM origins WHERE origin=?", node.node) == \
        codec.event_hash(chain.events[-1])


async def test_a_batch_that_starts_after_a_gap_applies_nothing_and_acks_the_prefix(
        hub: HubStore) -> None:
    node = await enrolled(hub, A)
    chain = Chain(node.node, hub.now_ms())
    d = chain.create(A)
    for i in range(5):
        chain.edit(d.dossier, {node.node: i + 1}, address=f"Thôn {i}")
    # nothing held yet and the batch starts at 2
    assert await hub.ingest.accept(node, chain.events[1:4]) == (0, [])
    assert await event_ids(hub) == []
    assert await hub.ingest.accept(node, chain.events[:2]) == (2, [])
    # held 1..2, batch 4..6: nothing, ack stays 2
    assert await hub.ingest.accept(node, chain.events[3:]) == (2, [])
    assert await event_ids(hub) == [(node.node, 1), (node.node, 2)]
    # the edge resends from the ack and everything lands once
    assert await hub.ingest.accept(node, chain.events[2:]) == (6, [])
    assert [s for _, s in await event_ids(hub)] == [1, 2, 3, 4, 5, 6]
    assert (await hub.dossiers.view(d.dossier))["applicant"]["address"] == "Thôn 4"


async def test_a_replayed_batch_applies_nothing_new_and_acks_the_same(hub: HubStore) -> None:
    node = await enrolled(hub, A)
    chain = Chain(node.node, hub.now_ms())
    d = chain.create(A)
    chain.edit(d.dossier, {node.node: 1}, address="Thôn A")
    assert await hub.ingest.accept(node, chain.events) == (2, [])
    rows_before = await hub.log.dossier_rows()
    log_before = await hub.log_size()
    for _ in range(2):
        assert await hub.ingest.accept(node, chain.events) == (2, [])
        assert await hub.ingest.accept(node, chain.events[1:]) == (2, [])
        assert await hub.ingest.accept(node, []) == (2, [])
    assert await hub.log_size() == log_before
    assert await hub.log.dossier_rows() == rows_before
    # a batch overlapping what is held applies only the new tail
    chain.edit(d.dossier, {node.node: 2}, address="Thôn B")
    assert await hub.ingest.accept(node, chain.events) == (3, [])
    assert [s for _, s in await event_ids(hub)] == [1, 2, 3]


async def test_an_event_that_does_not_follow_the_stored_chain_is_refused_whole(
        hub: HubStore) -> None:
    node = await enrolled(hub, A)
    chain = Chain(node.node, hub.now_ms())
    d = chain.create(A)
    chain.edit(d.dossier, {node.node: 1}, address="Thôn A")
    assert await hub.ingest.accept(node, chain.events) == (2, [])
    # a fork: another history of seq 2, then its continuation
    fork = Chain(node.node, hub.now_ms())
    fork.events.append(chain.events[0])
    fork.edit(d.dossier, {node.node: 1}, address="Thôn giả")
    fork.edit(d.dossier, {node.node: 2}, address="Thôn giả 2")
    with pytest.raises(RemoteProtocolError):
        await hub.ingest.accept(node, fork.events[2:])
    # a random prev
    bad = Event(node.node, 3, hlc.pack(hub.now_ms(), 9), d.dossier, "clerk", "set",
                {"set": {"applicant.address": "X"}}, {node.node: 2}, os.urandom(32))
    with pytest.raises(RemoteProtocolError):
        await hub.ingest.accept(node, [bad])
    assert [s for _, s in await event_ids(hub)] == [1, 2]
    assert await scalar(hub, "SELECT last_seq FROM origins WHERE origin=?", node.node) == 2
    assert (await hub.dossiers.view(d.dossier))["applicant"]["address"] == "Thôn A"
    # the true continuation still goes in
    chain.edit(d.dossier, {node.node: 2}, address="Thôn B")
    assert await hub.ingest.accept(node, chain.events[2:]) == (3, [])


async def test_a_gap_inside_a_batch_acks_only_the_contiguous_prefix(hub: HubStore) -> None:
    """Store level: the wire format numbers events contiguously, but the store's own promise
    is to apply and ack only what continues the chain without a hole."""
    node = await enrolled(hub, A)
    chain = Chain(node.node, hub.now_ms())
    d = chain.create(A)
    for i in range(3):
        chain.edit(d.dossier, {node.node: i + 1}, address=f"Thôn {i}")
    holed = [chain.events[0], chain.events[1], chain.events[3]]  # 1, 2, 4
    ack, _ = await hub.ingest.accept(node, holed)
    assert ack == 2
    assert [s for _, s in await event_ids(hub)] == [1, 2]
    # seq 3 and 4 must still be accepted when the edge resends from its ack
    assert (await hub.ingest.accept(node, chain.events[2:]))[0] == 4
    assert [s for _, s in await event_ids(hub)] == [1, 2, 3, 4]


async def test_a_create_for_another_commune_is_rejected_and_quarantined(hub: HubStore) -> None:
    node = await enrolled(hub, A)
    chain = Chain(node.node, hub.now_ms())
    ok = chain.create(A, "Lý Thị Mai")
    foreign = chain.create(B, "Đặng Văn Tú")
    follow = chain.edit(foreign.dossier, {node.node: 2}, address="Thôn C")
    ack, rejections = await hub.ingest.accept(node, chain.events)
    assert ack == 3  # acked past the rejected events: the edge does not resend them
    assert [(r.seq, r.code) for r in rejections] == [(2, "scope"), (3, "unknown_dossier")]
    assert all(r.reason for r in rejections)
    assert await event_ids(hub) == [(node.node, 1)]
    assert await scalar(hub, "SELECT count(*) FROM dossiers WHERE id=?", foreign.dossier) == 0
    async with hub.conn.execute(
            "SELECT seq, code, body FROM quarantine WHERE origin=? ORDER BY seq",
            (node.node,)) as cur:
        quarantined = [(r[0], r[1], bytes(r[2])) for r in await cur.fetchall()]
    assert [(s, c) for s, c, _ in quarantined] == [(2, "scope"), (3, "unknown_dossier")]
    assert quarantined[0][2] == codec.canonical(foreign)
    assert quarantined[1][2] == codec.canonical(follow)
    # the chain moved past them: the next event is accepted
    chain.edit(ok.dossier, {node.node: 1}, address="Thôn D")
    assert await hub.ingest.accept(node, chain.events[3:]) == (4, [])
    # operators see the rejections on the node
    row = next(n for n in await hub.sessions.nodes() if n["node"] == node.node)
    assert row["rejected_events"] == 2


async def test_an_edit_of_another_communes_dossier_is_rejected(hub: HubStore) -> None:
    a, b = await enrolled(hub, A), await enrolled(hub, B)
    b_chain = Chain(b.node, hub.now_ms())
    theirs = b_chain.create(B, "Đặng Văn Tú")
    assert await hub.ingest.accept(b, b_chain.events) == (1, [])
    before = await hub.log.dossier_rows()
    a_chain = Chain(a.node, hub.now_ms())
    a_chain.edit(theirs.dossier, {b.node: 1}, address="Thôn của xã khác")
    ack, rejections = await hub.ingest.accept(a, a_chain.events)
    assert ack == 1
    assert [(r.seq, r.code) for r in rejections] == [(1, "scope")]
    assert await hub.log.dossier_rows() == before
    assert await event_ids(hub) == [(b.node, 1)]
    assert await scalar(hub, "SELECT code FROM quarantine WHERE origin=?", a.node) == "scope"


async def test_events_must_carry_the_nodes_own_origin(hub: HubStore) -> None:
    """Identity comes from the credential: a node cannot write as another origin."""
    a, a2 = await enrolled(hub, A), await enrolled(hub, A)
    impostor = Chain(a2.node, hub.now_ms())
    impostor.create(A)
    try:
        ack, rejections = await hub.ingest.accept(a, impostor.events)
    except RemoteProtocolError:
        pass
    else:
        assert ack == 0 or rejections, (ack, rejections)
    assert await event_ids(hub) == []


async def test_read_scope_returns_only_the_communes_events_never_the_nodes_own(
        hub: HubStore) -> None:
    a1, a2, b = await enrolled(hub, A), await enrolled(hub, A), await enrolled(hub, B)
    now = hub.now_ms()
    c1, c2, cb = Chain(a1.node, now), Chain(a2.node, now), Chain(b.node, now)
    d1 = c1.create(A, "Lý Thị Mai")
    c1.edit(d1.dossier, {a1.node: 1}, address="Thôn A")
    assert (await hub.ingest.accept(a1, c1.events))[0] == 2
    d2 = c2.create(A, "Hoàng Văn Nam")
    c2.edit(d1.dossier, {a1.node: 2}, phone="0987654321")  # same commune: allowed
    assert await hub.ingest.accept(a2, c2.events) == (2, [])
    db = cb.create(B, "Đặng Văn Tú")
    assert await hub.ingest.accept(b, cb.events) == (1, [])
    await hub.dossiers.edit(d1.dossier, {"set": {"fields.child_home_town": "Na Hang"}}, "op")
    await hub.dossiers.edit(db.dossier, {"set": {"fields.child_home_town": "Lâm Bình"}}, "op")

    events, cursor, more = await hub.read_scope(a1, 0, 1024 * 1024)
    got = [(e.origin, e.seq) for e in events]
    assert got == [(a2.node, 1), (a2.node, 2), (HUB_ORIGIN, 1)]
    assert {e.dossier for e in events} == {d1.dossier, d2.dossier}
    assert more is False
    async with hub.conn.execute("SELECT max(pos) FROM events WHERE commune=?", (A,)) as cur:
        assert cursor == (await cur.fetchone())[0]
    assert cursor < await hub.log_size()  # B's latest event is after it, and not included
    # nothing new after the cursor
    assert await hub.read_scope(a1, cursor, 1024 * 1024) == ([], cursor, False)

    events, _, _ = await hub.read_scope(b, 0, 1024 * 1024)
    assert [(e.origin, e.seq) for e in events] == [(HUB_ORIGIN, 2)]
    assert all(e.dossier == db.dossier for e in events)

    # a node whose commune has only its own events moves its cursor past them
    events, cursor2, more = await hub.read_scope(a2, 0, 1024 * 1024)
    assert [(e.origin, e.seq) for e in events] == [(a1.node, 1), (a1.node, 2), (HUB_ORIGIN, 1)]
    assert cursor2 == cursor


async def test_read_scope_pages_by_bytes_without_skipping(hub: HubStore) -> None:
    a, other = await enrolled(hub, A), await enrolled(hub, A)
    chain = Chain(other.node, hub.now_ms())
    d = chain.create(A)
    for i in range(9):
        chain.edit(d.dossier, {other.node: i + 1}, address=f"Thôn {i}")
    assert (await hub.ingest.accept(other, chain.events))[0] == 10
    seen: list[int] = []
    cursor, rounds, more = 0, 0, True
    cursors = []
    while more:
        events, cursor, more = await hub.read_scope(a, cursor, 1)
        assert len(events) == 1  # a small want still makes progress: one event at least
        seen += [e.seq for e in events]
        cursors.append(cursor)
        rounds += 1
        assert rounds <= 10
    assert seen == list(range(1, 11))
    assert cursors == sorted(cursors) and len(set(cursors)) == 10
    # a middle-sized want returns several per page
    events, _, more = await hub.read_scope(a, 0, 3 * len(codec.canonical(chain.events[1])))
    assert 2 <= len(events) < 10 and more is True


async def test_concurrent_batches_share_a_commit_and_a_refused_one_rolls_back_alone(
        hub: HubStore) -> None:
    nodes = [await enrolled(hub, commune) for commune in (A, B, A, B, A, B, A, B)]
    chains = [Chain(n.node, hub.now_ms()) for n in nodes]
    for chain, node in zip(chains, nodes, strict=True):
        d = chain.create(node.commune)
        chain.edit(d.dossier, {node.node: 1}, address="Thôn A")
    bad = chains[3]
    forged = Event(bad.origin, 2, bad.events[1].hlc, bad.events[1].dossier, "clerk", "set",
                   {"set": {"applicant.address": "Thôn giả"}}, {bad.origin: 1}, b"\0" * 32)
    batches = [c.events for c in chains]
    batches[3] = [bad.events[0], forged]
    before = hub.ingest.groups_committed
    results = await asyncio.gather(*(hub.ingest.accept(n, b) for n, b in zip(nodes, batches,
                                                                              strict=True)),
                                   return_exceptions=True)
    assert isinstance(results[3], RemoteProtocolError)
    assert [r for i, r in enumerate(results) if i != 3] == [(2, [])] * 7
    if isinstance(hub.conn, PgConnection):  # one transaction each: PostgreSQL groups WAL flushes
        assert hub.ingest.groups_committed == before
    else:  # SQLite: they shared commits
        assert hub.ingest.groups_committed - before < len(nodes)
    held = await event_ids(hub)
    assert len(held) == 14 and not any(o == nodes[3].node for o, _ in held)
    assert [e["kind"] for e in await hub.trust.security_events()] == ["chain_broken"]
