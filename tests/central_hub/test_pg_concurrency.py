"""Several hub processes on one PostgreSQL database (issue #8): log positions stay right under
concurrent commits, duplicate deliveries racing on two processes apply once, and operator edits
made at two processes keep the hub's own chain whole.

Each `HubStore` here has its own connection pool, as each hub process has: the concurrency is the
database server's, not asyncio's. The slow-writer test holds a transaction open after it took its
positions, which is the hazard itself, so the log lock is shown to be what prevents it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from central_hub.store import HubStore, Node
from central_hub.verify import audit
from tests.central_hub.test_store import Chain, enrolled

COMMUNES = ["02245", "02227", "02230", "02233"]


@pytest.fixture
async def stores(tmp_path: Path, pg_url: str) -> AsyncIterator[list[HubStore]]:
    """Four 'processes' (stores with their own pools) on one database."""
    opened = []
    try:
        for i in range(4):
            (tmp_path / str(i)).mkdir()
            opened.append(await HubStore.open(tmp_path / str(i) / "hub.db", pg_url))
        yield opened
    finally:
        for store in opened:
            await store.close()


async def test_a_reader_sees_every_event_exactly_once_while_writers_commit_concurrently(
        stores: list[HubStore]) -> None:
    nodes: list[Node] = [await enrolled(stores[0], c) for c in COMMUNES]
    chains = [Chain(n.node, stores[0].now_ms()) for n in nodes]
    rng = random.Random(8)
    for chain, commune in zip(chains, COMMUNES, strict=True):
        dossiers = [chain.create(commune).dossier for _ in range(20)]
        for i in range(380):
            chain.edit(rng.choice(dossiers), {chain.origin: len(chain.events)},
                       address=f"Thôn {i}")
    done = asyncio.Event()

    async def writer(store: HubStore, node: Node, chain: Chain) -> None:
        events, at = chain.events, 0
        while at < len(events):
            size = rng.randint(1, 40)
            ack, _ = await store.ingest.accept(node, events[at:at + size])
            at = ack
            await asyncio.sleep(0)

    seen: list[tuple[str, int]] = []
    reads = 0

    async def reader(store: HubStore) -> None:
        nonlocal reads
        cursor = 0
        while True:
            finished = done.is_set()
            async with store.reader.execute(
                    "SELECT pos, origin, seq FROM events WHERE pos>? ORDER BY pos LIMIT 500",
                    (cursor,)) as cur:
                rows = await cur.fetchall()
            reads += 1
            for pos, origin, seq in rows:
                seen.append((origin, seq))
                cursor = pos
            if finished and not rows:
                return

    read_task = asyncio.create_task(reader(stores[3]))
    await asyncio.gather(*(writer(stores[i % 3], n, c)
                           for i, (n, c) in enumerate(zip(nodes, chains, strict=True))))
    done.set()
    await read_task
    expected = {(c.origin, e.seq) for c in chains for e in c.events}
    assert len(seen) == len(set(seen)), "a position was read twice"
    assert set(seen) == expected, f"the reader skipped {len(expected - set(seen))} events"
    assert reads > 20  # it really read while the writers committed
    for node, chain in zip(nodes, chains, strict=True):
        assert [s for o, s in seen if o == node.node] == list(range(1, len(chain.events) + 1))


async def test_positions_are_committed_in_order_even_when_a_writer_is_slow(
        stores: list[HubStore], pg_url: str) -> None:
    """The hazard itself: a writer holding its transaction open after taking positions. The
    second writer must wait for it (the log lock), so no committed position ever has an
    uncommitted smaller one below it."""
    a, b = await enrolled(stores[0], COMMUNES[0]), await enrolled(stores[0], COMMUNES[1])
    ca, cb = Chain(a.node, stores[0].now_ms()), Chain(b.node, stores[0].now_ms())
    ca.create(COMMUNES[0])
    cb.create(COMMUNES[1])
    slow = stores[0]
    release, holding = asyncio.Event(), asyncio.Event()
    original = slow.refs.note  # the last step of an append, inside its transaction

    async def hold(events: list, states: dict) -> None:  # type: ignore[type-arg]
        await original(events, states)
        holding.set()
        await release.wait()  # positions taken, transaction open

    slow.refs.note = hold  # type: ignore[method-assign]
    first = asyncio.create_task(slow.ingest.accept(a, ca.events))
    await asyncio.wait_for(holding.wait(), 30)
    second = asyncio.create_task(stores[1].ingest.accept(b, cb.events))
    await asyncio.sleep(0.5)
    assert not second.done(), "a second writer committed while positions below were open"
    async with stores[2].reader.execute("SELECT count(*) FROM events") as cur:
        assert (await cur.fetchone()) == (0,)
    release.set()
    await asyncio.gather(first, second)
    async with stores[2].reader.execute("SELECT origin FROM events ORDER BY pos") as cur:
        assert [r[0] for r in await cur.fetchall()] == [a.node, b.node]


async def test_a_batch_delivered_to_two_processes_at_once_applies_once(
        stores: list[HubStore]) -> None:
    node = await enrolled(stores[0], COMMUNES[0])
    chain = Chain(node.node, stores[0].now_ms())
    d = chain.create(COMMUNES[0]).dossier
    for i in range(200):
        chain.edit(d, {node.node: len(chain.events)}, address=f"Thôn {i}")
    results = await asyncio.gather(*(s.ingest.accept(node, chain.events) for s in stores))
    assert [ack for ack, _ in results] == [201] * 4
    async with stores[0].reader.execute(
            "SELECT count(*), count(DISTINCT seq) FROM events WHERE origin=?",
            (node.node,)) as cur:
        assert (await cur.fetchone()) == (201, 201)
    report = await audit(stores[0])
    assert report.ok, report.first
    view = await stores[1].dossiers.view(d)
    assert view["applicant"]["address"] == "Thôn 199"
    assert len(view["history"]) == 201


async def test_operator_edits_at_two_processes_keep_the_hub_chain_whole(
        stores: list[HubStore]) -> None:
    node = await enrolled(stores[0], COMMUNES[0])
    chain = Chain(node.node, stores[0].now_ms())
    dossiers = [chain.create(COMMUNES[0]).dossier for _ in range(6)]
    assert (await stores[0].ingest.accept(node, chain.events))[0] == 6

    async def edits(store: HubStore, k: int) -> None:
        for i in range(15):
            d = dossiers[(k + i) % len(dossiers)]
            version = (await store.dossiers.view(d))["version"]
            await store.dossiers.comment(d, {"text": f"ghi chú {k}-{i}", "version": version}, "op")

    await asyncio.gather(*(edits(s, k) for k, s in enumerate(stores)))
    async with stores[0].reader.execute(
            "SELECT seq FROM events WHERE origin=(SELECT origin FROM events WHERE origin<>? "
            "LIMIT 1) ORDER BY seq", (node.node,)) as cur:
        seqs = [r[0] for r in await cur.fetchall()]
    assert seqs == list(range(1, 61)), "two processes wrote the same seq of the hub's chain"
    report = await audit(stores[0])
    assert report.ok, report.first


async def test_two_nodes_of_a_commune_editing_one_dossier_at_two_processes_lose_nothing(
        stores: list[HubStore]) -> None:
    """The materialized row is read, folded and written back: without one writer per commune,
    two processes folding into the same dossier at once would lose one's events from it."""
    one = await enrolled(stores[0], COMMUNES[0])
    two = await enrolled(stores[0], COMMUNES[0])
    first, second = Chain(one.node, stores[0].now_ms()), Chain(two.node, stores[0].now_ms())
    d = first.create(COMMUNES[0]).dossier
    assert (await stores[0].ingest.accept(one, first.events))[0] == 1
    for i in range(150):
        first.edit(d, {one.node: len(first.events)}, address=f"Thôn {i}")
        second.edit(d, {one.node: 1}, phone=f"09{i:08d}")

    async def push(store: HubStore, node: Node, chain: Chain, start: int) -> None:
        at = start
        while at < len(chain.events):
            at, _ = await store.ingest.accept(node, chain.events[at:at + 5])

    await asyncio.gather(push(stores[1], one, first, 1), push(stores[2], two, second, 0))
    incremental = await stores[0].log.dossier_rows()
    await stores[3].log.rebuild()
    assert await stores[0].log.dossier_rows() == incremental
    view = await stores[0].dossiers.view(d)
    assert len(view["history"]) == 301
