"""The whole exchange without I/O: a hub session and edge sessions talking through memory.

Seeded worlds (tests/protocol/memory.py): edges take dossiers in and edit them, operators edit at
the hub, links lose requests and answers, deliver twice or late; in one family the hub is restored
from a backup mid-way. After every step the promises hold (the hub holds each node's events
contiguously, with the node's hashes; acks never claim more; nothing crosses communes; nothing is
quarantined); healed and synced, every replica agrees.
"""

from __future__ import annotations

import random

import pytest

from protocol import codec, is_hub_origin
from protocol.notices import HUB_EDITS_LOST, LASTING_KEEP_MS
from tests.protocol.memory import Link, MemoryEdge, MemoryHub
from tests.sim.faults import Odds

LOSSY = Odds(drop_request=0.1, drop_reply=0.1, duplicate=0.05, hold=0.05)
LAYOUT = (("02245", "02245.01"), ("02245", "02245.02"), ("02227", "02227.01"))


def world(seed: int, layout: tuple[tuple[str, str], ...], *, edit_others: bool = True
          ) -> tuple[MemoryHub, list[Link], random.Random]:
    rng = random.Random(seed)
    hub = MemoryHub({node: commune for commune, node in layout})
    links = [Link(hub, MemoryEdge(node, commune, random.Random(f"{seed}:{node}"),
                                  edit_others=edit_others), random.Random(f"link:{seed}:{node}"),
                  LOSSY) for commune, node in layout]
    return hub, links, rng


def check_step(hub: MemoryHub, links: list[Link], *, restored: bool = False) -> None:
    assert not hub.quarantined, hub.quarantined
    for link in links:
        edge = link.edge
        held = [e for e, _ in hub.log if e.origin == edge.node]
        assert [e.seq for e in held] == list(range(1, len(held) + 1)), "a hole at the hub"
        assert all(codec.event_hash(e) == codec.event_hash(edge.chain.events[e.seq - 1])
                   for e in held), "the hub holds other content than the node wrote"
        assert hub.heads.get(edge.node, None) is None or hub.heads[edge.node].seq == len(held)
        if not restored:
            assert edge.session.ack <= len(held), "acked more than the hub holds"
        assert all(hub.communes.get(e.dossier, edge.commune) == edge.commune
                   for e in edge.received), "an event of another commune reached a node"


def quiesce(hub: MemoryHub, links: list[Link]) -> None:
    for link in links:
        link.odds = Odds()
        while link.held_back:
            link.deliver_late()
    for _ in range(3):  # every node, until nothing moves: a node's events reach the others
        for link in links:
            assert link.session()


def check_converged(hub: MemoryHub, links: list[Link]) -> None:
    for link in links:
        edge = link.edge
        assert edge.session.ack == edge.own_seq == hub.heads[edge.node].seq
        scope = {(e.origin, e.seq, codec.event_hash(e)) for e, c in hub.log
                 if c == edge.commune and e.origin != edge.node}
        got = {(e.origin, e.seq, codec.event_hash(e)) for e in edge.received
               if not is_hub_origin(e.origin) or (e.origin, e.seq) in
               {(h.origin, h.seq) for h, _ in hub.log}}
        assert got == scope, f"{edge.node} holds other events than the hub's for its commune"


@pytest.mark.parametrize("seed", range(12))
def test_edges_and_hub_converge_over_lossy_links(seed: int) -> None:
    hub, links, rng = world(seed, LAYOUT)
    for _ in range(150):
        hub.now_ms += rng.randrange(1, 60_000)
        link = rng.choice(links)
        roll = rng.random()
        if roll < 0.45:
            link.edge.write(hub.now_ms)
        elif roll < 0.55:
            hub.edit(rng)
        elif roll < 0.6:
            link.deliver_late()  # a stale request: its answer is never read
        else:
            link.session()
        check_step(hub, links)
    quiesce(hub, links)
    check_step(hub, links)
    check_converged(hub, links)
    assert all(link.edge.session.standing is None for link in links)


@pytest.mark.parametrize("seed", range(8))
def test_a_hub_restored_from_an_older_backup_is_caught_up_and_warned_of(seed: int) -> None:
    hub, links, rng = world(seed, (("02245", "02245.01"), ("02227", "02227.01")),
                            edit_others=False)
    for step in range(160):
        hub.now_ms += rng.randrange(1, 60_000)
        link = rng.choice(links)
        roll = rng.random()
        if step == 80:
            keep = rng.randrange(len(hub.log) + 1)
            lost_hub_edits = {(e.origin, e.seq) for e, _ in hub.log[keep:]
                              if is_hub_origin(e.origin)}
            hub.restore(keep)
            held_before = {link.edge.node: {(e.origin, e.seq) for e in link.edge.received}
                           for link in links}
        elif roll < 0.45:
            link.edge.write(hub.now_ms)
        elif roll < 0.55:
            hub.edit(rng)
        else:
            link.session()
        check_step(hub, links, restored=step >= 80)
    quiesce(hub, links)
    check_step(hub, links, restored=True)
    check_converged(hub, links)
    for link in links:
        standing = link.edge.session.standing
        lost_here = lost_hub_edits & held_before[link.edge.node]
        if lost_here:
            assert standing is not None and standing.code == HUB_EDITS_LOST
            link.edge.apply(*_later(hub, link, LASTING_KEEP_MS))  # a week on, it ends by itself
            assert link.edge.session.standing is None
        else:  # a restore's warnings end once all is sent and read again
            assert standing is None, standing


def _later(hub: MemoryHub, link: Link, ms: int) -> tuple[bytes, int, int]:
    hub.now_ms += ms
    body, sent_after, _ = link.edge.request()
    return hub.serve(link.edge.node, body), sent_after, hub.now_ms
