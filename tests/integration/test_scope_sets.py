"""Dossiers across commune lines: any-desk intake, the receiving desk's role, transfers, and no
event outside a node's scope set ever reaching it (a real hub and edges over loopback HTTP)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.harness import EdgeHandle, Net, birth
from tests.ui.conftest import Staff

pytestmark = pytest.mark.both_stores

A, B, C, D = "02221", "02245", "02230", "02248"  # desk A takes in for B; C, D elsewhere


async def move(edge: EdgeHandle, dossier: str, to: str) -> dict[str, Any]:
    _, view = await edge.api.get(f"/api/dossiers/{dossier}")
    status, answer = await edge.api.post(f"/api/dossiers/{dossier}/transition",
                                         {"to": to, "base": view["version"]})
    assert status == 200, answer
    return answer  # type: ignore[no-any-return]


async def held(edge: EdgeHandle) -> set[str]:
    """The dossiers a node's database holds, whatever their commune."""
    async with edge.store.log.reader.execute("SELECT DISTINCT dossier FROM events") as cur:
        return {r[0] for r in await cur.fetchall()}


async def test_desk_a_takes_in_for_b_b_processes_a_hands_back(net: Net) -> None:
    a, b, d = await net.add_edge(A), await net.add_edge(B), await net.add_edge(D)
    status, bad = await a.api.post("/api/dossiers", {**birth(), "commune": "99999"})
    assert status == 422 and bad["field"] == "commune"
    status, made = await a.api.post("/api/dossiers", {**birth(), "commune": B})
    assert status == 201 and made["commune"] == B and made["received_by"] == A
    for edge in (a, b, d):
        await edge.sync()
    _, listed = await b.api.get("/api/dossiers")
    item = next(i for i in listed["items"] if i["id"] == made["id"])
    assert item["received_by"] == A  # B's worklist: received elsewhere
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        desk = Staff(b.api.base, http)
        await desk.login("clerk")
        page = await desk.get("/dossiers")
    assert f"Liên xã: nhận tại {A}, giải quyết tại {B}" in page.text
    # the receiving desk may not process it, at its own desk already
    status, _ = await a.api.post(f"/api/dossiers/{made['id']}/transition",
                                 {"to": "processing", "base": made["version"]})
    assert status == 403
    await move(b, made["id"], "processing")
    await move(b, made["id"], "resolved")
    await b.sync()
    await a.sync()
    _, seen = await a.api.get(f"/api/dossiers/{made['id']}")
    assert seen["status"] == "resolved"  # the receiving desk follows its progress
    await move(a, made["id"], "returned")  # and hands the result back
    await a.sync()
    await b.sync()
    _, final = await b.api.get(f"/api/dossiers/{made['id']}")
    assert final["status"] == "returned"
    assert made["id"] not in await held(d)  # neither unit: nothing of it reached D


async def test_transfer_back_and_forth_re_scopes_and_leaks_nothing(net: Net) -> None:
    b, c, d = await net.add_edge(B), await net.add_edge(C), await net.add_edge(D)
    _, made = await b.api.post("/api/dossiers", birth())
    await move(b, made["id"], "processing")
    status, bad = await b.api.post(f"/api/dossiers/{made['id']}/transfer",
                                   {"to": C, "reason": ""})
    assert status in (400, 422) and "reason" in str(bad)
    _, now = await b.api.get(f"/api/dossiers/{made['id']}")
    status, moved = await b.api.post(f"/api/dossiers/{made['id']}/transfer",
                                     {"to": C, "reason": "thuộc thẩm quyền xã khác",
                                      "base": now["version"]})
    assert status == 200 and moved["commune"] == C
    status, _ = await b.api.post(f"/api/dossiers/{made['id']}/transition",
                                 {"to": "resolved", "base": moved["version"]})
    assert status == 403  # B took it in: it stays its receiving desk, processes no more
    for edge in (b, c, d):
        await edge.sync()
    _, at_c = await c.api.get(f"/api/dossiers/{made['id']}")
    # C gained it after the fact: its whole history came with the transfer
    assert at_c["commune"] == C and at_c["status"] == "processing"
    assert len(at_c["history"]) == len(moved["history"])
    _, _back = await c.api.post(f"/api/dossiers/{made['id']}/transfer",
                               {"to": B, "reason": "trả lại", "base": at_c["version"]})
    await c.sync()
    await b.sync()
    _, at_b = await b.api.get(f"/api/dossiers/{made['id']}")
    assert at_b["commune"] == B
    await move(b, made["id"], "resolved")
    await b.sync()
    await c.sync()
    await d.sync()
    # C keeps what it received (the transfer back included), then nothing more of it
    _, kept = await c.api.get(f"/api/dossiers/{made['id']}")
    assert kept["commune"] == B and kept["status"] == "processing"
    assert made["id"] not in await held(d)
    # every event any node holds is of a dossier one of its units was, or is, in
    for edge, unit in ((b, B), (c, C), (d, D)):
        for dossier in await held(edge):
            units = await net.hub.store.feed.units([dossier], committed=True)
            assert dossier in units
            async with net.hub.store.reader.execute(
                    "SELECT count(*) FROM feed f JOIN events e ON e.pos=f.event_pos "
                    "WHERE e.dossier=? AND f.unit=?", (dossier, unit)) as cur:
                row = await cur.fetchone()
            assert row is not None and row[0] > 0
