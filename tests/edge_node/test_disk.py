"""Below the free-space floor the edge refuses new intake (API 507, a desk page that says why),
keeps syncing both ways, and the hub shows the node critical with the reason; below the hard
floor it still sends but stops pulling. The floors are compared with the real free space of the
test's disk: raising them above it is what a nearly full disk looks like to the edge."""

from __future__ import annotations

import dataclasses

import aiohttp

from edge_node.disk import MB, free_bytes
from tests.harness import EdgeHandle, Net, birth
from tests.ui.conftest import Staff, add_staff

PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)


def floors(edge: EdgeHandle, floor_mb: int, hard_mb: int = 0) -> None:
    """Set the node's floors as if node.toml said so (the guard reads them on every request)."""
    edge.client.config = dataclasses.replace(edge.client.config, disk_floor_mb=floor_mb,
                                             disk_hard_floor_mb=hard_mb)


async def hub_edit(net: Net, dossier_id: str, town: str) -> None:
    assert net.hub is not None
    _, view = await net.hub.api.get(f"/api/dossiers/{dossier_id}")
    status, body = await net.hub.api.patch(f"/api/dossiers/{dossier_id}", {
        "set": {"fields.child_home_town": town}, "base": view["version"]})
    assert status == 200, body


async def test_below_the_floor_intake_is_refused_and_sync_goes_on(net: Net) -> None:
    assert net.hub is not None
    edge = await net.add_edge("02245")
    _, kept = await edge.api.post("/api/dossiers", birth("Lý Thị Mai"))
    await edge.sync()
    above_free = free_bytes(edge.data) // MB + 1000  # more than this disk has free

    floors(edge, above_free)
    status, body = await edge.api.post("/api/dossiers", birth("Đặng Văn Tú"))
    assert status == 507 and body["error"] == "disk_full", body
    assert f"at least {above_free} MB are needed" in body["message"]
    form = aiohttp.FormData()
    form.add_field("file", PNG, filename="scan.png", content_type="image/png")
    async with edge.api.http.post(
            f"{edge.api.base}/api/dossiers/{kept['id']}/attachments",
            data=form, headers={"Authorization": f"Bearer {edge.api.token}"}) as resp:
        assert resp.status == 507
    _, listing = await edge.api.get("/api/dossiers")
    assert [d["id"] for d in listing["items"]] == [kept["id"]]  # nothing half-stored

    # an edit of a held dossier is small: allowed, sent; the province's edit comes down
    status, _ = await edge.api.patch(f"/api/dossiers/{kept['id']}", {
        "set": {"applicant.address": "Thôn Khuổi Phầy"}, "base": kept["version"]})
    assert status == 200
    await hub_edit(net, kept["id"], "Na Hang")
    result = await edge.sync()
    assert result.sent == 1 and result.received == 1 and result.pending_after == 0
    _, seen = await edge.api.get(f"/api/dossiers/{kept['id']}")
    assert seen["fields"]["child_home_town"] == "Na Hang"
    _, at_hub = await net.hub.api.get(f"/api/dossiers/{kept['id']}")
    assert at_hub["applicant"]["address"] == "Thôn Khuổi Phầy"

    # the hub shows the node critical, saying why
    _, nodes = await net.hub.api.get("/api/nodes")
    [node] = [n for n in nodes["items"] if n["node"] == edge.config.node]
    assert node["health"] == "critical"
    assert any(r.startswith("refuses new dossiers: only") for r in node["reasons"]), node

    # space freed: intake works again, and the hub sees it at the next sync
    floors(edge, 0)
    assert (await edge.api.post("/api/dossiers", birth("Đặng Văn Tú")))[0] == 201
    await edge.sync()
    _, nodes = await net.hub.api.get("/api/nodes")
    [node] = [n for n in nodes["items"] if n["node"] == edge.config.node]
    assert not any(r.startswith("refuses new dossiers") for r in node["reasons"]), node


async def test_below_the_hard_floor_the_edge_sends_but_stops_pulling(net: Net) -> None:
    edge = await net.add_edge("02245")
    views = [(await edge.api.post("/api/dossiers", birth(f"Người {i}")))[1] for i in range(12)]
    await edge.sync()
    for view in views:
        await hub_edit(net, view["id"], "Na Hang")
    very_low = free_bytes(edge.data) // MB + 1000
    floors(edge, very_low, very_low)
    _, mine = await edge.api.get(f"/api/dossiers/{views[0]['id']}")
    status, _ = await edge.api.patch(f"/api/dossiers/{views[0]['id']}", {
        "set": {"applicant.phone": "0987654321"}, "base": mine["version"]})
    assert status == 200
    result = await edge.sync()
    assert result.sent == 1 and result.pending_after == 0  # its own change went out…
    assert result.received < len(views)  # …and it asked for the least, once
    assert result.round_trips == 1
    floors(edge, 0)
    first = result.received
    result = await edge.sync()
    assert result.received == len(views) - first
    for view in views:  # everything arrives once there is room
        _, seen = await edge.api.get(f"/api/dossiers/{view['id']}")
        assert seen["fields"]["child_home_town"] == "Na Hang"


async def test_the_desk_says_why_it_refuses_in_both_languages(net: Net) -> None:
    edge = await net.add_edge("02245")
    await add_staff(edge)
    floors(edge, free_bytes(edge.data) // MB + 1000)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        desk = Staff(edge.api.base, http)
        await desk.login("clerk1")
        form = await desk.get("/dossiers/new?procedure=1.001193")
        assert form.status == 200  # reading and the form stay available
        page = await desk.post("/dossiers/new?procedure=1.001193", {"procedure_code": "1.001193"})
        assert page.status == 507
        assert "Ổ đĩa của máy gần đầy" in page.text and "Đồng bộ vẫn tiếp tục" in page.text
        await desk.post("/lang", {"lang": "en", "next": "/"})
        page = await desk.post("/dossiers/new?procedure=1.001193", {"procedure_code": "1.001193"})
        assert page.status == 507 and "disk is nearly full" in page.text
