"""A commune merger at a running hub: the merged commune's node, offline through it with events
queued under its old code, converges with no manual step and nothing rejected."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from central_hub.cli import main as hub_main
from edge_node import config as edge_config
from tests.harness import EdgeHandle, Net, birth

pytestmark = pytest.mark.both_stores  # the contract suite: on SQLite and on PostgreSQL


async def run_hub_cli(*args: str) -> int:
    return await asyncio.to_thread(hub_main, list(args))


async def codes(edge: EdgeHandle) -> set[str]:
    status, page = await edge.api.get("/api/dossiers?limit=100")
    assert status == 200
    return {d["code"] for d in page["items"]}


async def scalar(net: Net, sql: str, *args: Any) -> Any:
    assert net.hub is not None
    async with net.hub.store.reader.execute(sql, args) as cur:
        row = await cur.fetchone()
    return row[0] if row else None


async def test_merger_with_an_offline_node_holding_queued_events(net: Net) -> None:
    con_lon = await net.add_edge("02245", "Xã Côn Lôn")
    sinh_long = await net.add_edge("02227", "Xã Sinh Long")
    _, a1 = await con_lon.api.post("/api/dossiers", birth("Lò Văn Một"))
    _, b1 = await sinh_long.api.post("/api/dossiers", birth("Hoàng Thị Hai"))
    await con_lon.sync()
    await sinh_long.sync()
    assert await codes(con_lon) == {a1["code"]}  # apart: each sees its own

    sinh_long.cut()  # offline through the merger, still taking dossiers in under 02227
    _, b2 = await sinh_long.api.post("/api/dossiers", birth("Đinh Văn Ba"))
    assert b2["commune"] == "02227"
    status, _ = await sinh_long.api.patch(f"/api/dossiers/{b1['id']}", {
        "base": b1["version"], "set": {"applicant.address": "Thôn Bản Lạn, Sinh Long"}})
    assert status == 200

    assert net.hub is not None
    assert await run_hub_cli("commune", "merge", "--data", str(net.hub.data), "--into", "02245",
                             "--name", "Xã Côn Lôn", "--from", "02227",
                             "--effective", "2025-07-01") == 0
    # run twice: nothing more happens
    assert await run_hub_cli("commune", "merge", "--data", str(net.hub.data), "--into", "02245",
                             "--name", "Xã Côn Lôn", "--from", "02227") == 0

    await con_lon.sync()  # the new commune's node reads the merged one's past
    assert await codes(con_lon) == {a1["code"], b1["code"]}

    sinh_long.heal()
    sessions = 0
    while True:  # re-scoped within 2 sessions, its queue accepted
        await sinh_long.sync()
        sessions += 1
        if sinh_long.store.commune == "02245" or sessions == 2:
            break
    assert sinh_long.store.commune == "02245" and sessions <= 2
    assert await sinh_long.store.sync.rejections() == []
    assert await sinh_long.store.sync.warning() is None  # a calm re-scope, not a restore
    assert (await sinh_long.store.sync.unit_notice() or {})["units"] == ["02245", "02227"]
    assert edge_config.load(sinh_long.data).commune == "02245"  # node.toml follows
    assert await scalar(net, "SELECT count(*) FROM quarantine") == 0
    assert await scalar(net, "SELECT count(*) FROM security_events "
                             "WHERE kind='scope_violation'") == 0
    assert await codes(sinh_long) == {a1["code"], b1["code"], b2["code"]}

    _, b3 = await sinh_long.api.post("/api/dossiers", birth("Vàng Thị Bốn"))
    assert b3["commune"] == "02245"  # new intake is the new unit's
    _, a1_there = await sinh_long.api.get(f"/api/dossiers/{a1['id']}")
    status, _ = await sinh_long.api.patch(f"/api/dossiers/{a1['id']}", {
        "base": a1_there["version"], "set": {"applicant.phone": "0912345678"}})
    assert status == 200  # a desk of Côn Lôn works on Côn Lôn's dossiers
    await sinh_long.sync()
    await con_lon.sync()
    assert await codes(con_lon) == {a1["code"], b1["code"], b2["code"], b3["code"]}
    _, b1_at_con_lon = await con_lon.api.get(f"/api/dossiers/{b1['id']}")
    assert b1_at_con_lon["applicant"]["address"] == "Thôn Bản Lạn, Sinh Long"
    assert b1_at_con_lon["code"] == b1["code"]  # codes unchanged

    # the hub: one unit, history kept, every event accepted
    hub = net.hub.api
    _, listed = await hub.get("/api/dossiers?commune=02245&limit=100")
    assert {d["code"] for d in listed["items"]} == {a1["code"], b1["code"], b2["code"],
                                                   b3["code"]}
    _, found = await hub.get(f"/api/dossiers?commune=02245&q={b2['code']}")
    assert [d["id"] for d in found["items"]] == [b2["id"]]
    assert await scalar(net, "SELECT commune FROM events WHERE dossier=? AND kind='create'",
                        b2["id"]) == "02227"  # no event rewritten
    assert await scalar(net, "SELECT count(*) FROM quarantine") == 0
    _, nodes = await hub.get("/api/nodes")
    assert {n["commune"] for n in nodes["items"]} == {"02245"}


async def test_a_node_of_another_commune_sees_nothing_of_a_merger_not_its_own(net: Net) -> None:
    con_lon = await net.add_edge("02245")
    na_hang = await net.add_edge("02221")
    sinh_long = await net.add_edge("02227")
    _, b1 = await sinh_long.api.post("/api/dossiers", birth("Hoàng Thị Hai"))
    await sinh_long.sync()
    assert net.hub is not None
    assert await run_hub_cli("commune", "merge", "--data", str(net.hub.data), "--into", "02245",
                             "--name", "Xã Côn Lôn", "--from", "02227") == 0
    await na_hang.sync()
    await con_lon.sync()
    assert await codes(na_hang) == set()  # nothing leaks to a unit the merger did not touch
    assert await codes(con_lon) == {b1["code"]}
    assert na_hang.store.commune == "02221"
    status, _ = await na_hang.api.get(f"/api/dossiers/{b1['id']}")
    assert status == 404
