"""`central_hub.mergers.merge` on a real database: one transaction, idempotent, bad input changes
nothing; the exchange's unit-resolution step; a merged unit's scope read in windows."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from central_hub.exchange import rescoped
from central_hub.mergers import load_mergers, merge
from central_hub.store import HubStore, Node
from protocol.errors import ValidationError
from protocol.messages import SyncRequest
from tests.central_hub.test_store import Chain, enrolled
from tests.central_hub.test_store import hub as hub  # the fixture: a hub on either store

pytestmark = pytest.mark.both_stores  # the contract suite: on SQLite and on PostgreSQL

JULY = date(2025, 7, 1)
TABLES = ("unit_mergers", "nodes", "refdata", "communes", "enroll_tokens", "events", "dossiers")


async def dump(hub: HubStore) -> dict[str, Any]:
    out = {}
    for table in TABLES:
        async with hub.conn.execute(f"SELECT * FROM {table} ORDER BY 1") as cur:
            out[table] = [tuple(r) for r in await cur.fetchall()]
    return out


async def test_a_merger_moves_nodes_and_dossiers_in_one_go_and_again_changes_nothing(
        hub: HubStore) -> None:
    sinh_long, con_lon = await enrolled(hub, "02227"), await enrolled(hub, "02245")
    na_hang = await enrolled(hub, "02221")
    pending = await hub.trust.create_enroll_token("02227", None)
    chain = Chain(sinh_long.node, hub.now_ms())
    await hub.ingest.accept(sinh_long, [chain.create("02227"), chain.create("02227")])

    done = await merge(hub, "02245", "Xã Côn Lôn", ["02227"], JULY)
    assert (done.merged, done.nodes, done.dossiers) == (("02227",), 1, 2)
    assert (await load_mergers(hub.conn)).unit_of("02227") == "02245"
    async with hub.conn.execute("SELECT node, commune FROM nodes ORDER BY node") as cur:
        communes = dict(tuple(r) for r in await cur.fetchall())
    assert communes == {sinh_long.node: "02245", con_lon.node: "02245", na_hang.node: "02221"}
    assert (await hub.trust.enroll(pending)).commune == "02245"  # a token not used yet follows
    listed = await hub.dossiers.search(commune="02245")
    assert len(listed.items) == 2
    assert hub.dossiers.communes.resolve("02227", JULY) == "02245"

    before = await dump(hub)
    again = await merge(hub, "02245", "Xã Côn Lôn", ["02227"])
    assert (again.version, again.merged, again.nodes) == (0, (), 0)
    assert await dump(hub) == before


@pytest.mark.parametrize(("into", "merged", "effective"), [
    ("02245", ["09999"], None),  # not listed
    ("02245", ["02245"], None),  # itself
    ("02245", ["02221"], date(2099, 1, 1)),  # in the future
    ("0224", ["02221"], None),
    ("02245", ["02221", "09999"], None),  # one bad code: the good one is not merged either
])
async def test_bad_input_changes_nothing(hub: HubStore, into: str, merged: list[str],
                                         effective: date | None) -> None:
    await enrolled(hub, "02221")
    before = await dump(hub)
    with pytest.raises(ValidationError):
        await merge(hub, into, "Xã Côn Lôn", merged, effective)
    assert await dump(hub) == before
    assert hub.log.mergers.units_of("02245") == ("02245",)


async def test_merged_elsewhere_is_refused(hub: HubStore) -> None:
    await merge(hub, "02248", "Xã Yên Hoa", ["02221"], JULY)
    before = await dump(hub)
    with pytest.raises(ValidationError, match="already merged into 02248"):
        await merge(hub, "02245", "Xã Côn Lôn", ["02221"], JULY)
    assert await dump(hub) == before


async def test_the_exchange_resolves_the_unit_and_tells_only_nodes_that_read_another(
        hub: HubStore) -> None:
    node = Node("e08-02227-x", "02227")
    await merge(hub, "02245", "Xã Côn Lôn", ["02227"], JULY)
    ask = SyncRequest(node.node, [], 0, 1024, 0, units=("02227",))
    resolved, units, tell = await rescoped(hub, node, ask)
    assert (resolved.commune, units, tell) == ("02245", ("02245", "02227"), True)
    knows = SyncRequest(node.node, [], 0, 1024, 0, units=("02245", "02227"))
    assert (await rescoped(hub, node, knows))[2] is False
    silent = SyncRequest(node.node, [], 0, 1024, 0)  # an edge that predates units: not told
    assert (await rescoped(hub, node, silent))[2] is False


async def test_a_merged_units_scope_is_read_in_log_order_without_skipping(hub: HubStore) -> None:
    writers = {c: await enrolled(hub, c) for c in ("02227", "02245", "02221")}
    chains = {c: Chain(n.node, hub.now_ms()) for c, n in writers.items()}
    for _ in range(4):
        for commune, node in writers.items():
            await hub.ingest.accept(node, [chains[commune].create(commune)])
    await merge(hub, "02245", "Xã Côn Lôn", ["02227"], JULY)
    reader = Node("e08-02245-reader", "02245")
    units = hub.log.mergers.units_of("02245")
    seen, cursor, more = [], 0, True
    while more:
        events, cursor, more = await hub.read_scope(reader, cursor, 1, units)
        seen.extend(events)
    async with hub.conn.execute("SELECT origin, seq FROM events WHERE commune IN "
                                "('02245', '02227') ORDER BY pos") as cur:
        expected = [tuple(r) for r in await cur.fetchall()]
    assert len(expected) == 8 and [(e.origin, e.seq) for e in seen] == expected  # in log order
    async with hub.conn.execute("SELECT max(pos) FROM feed WHERE unit IN ('02245', '02227')"
                                ) as cur:
        last = (await cur.fetchone())[0]
    assert cursor == last  # the last of the unit's feed, nothing of it left behind
