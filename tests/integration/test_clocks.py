"""The hub's clock is the reference: skewed and jumping edge clocks lose nothing and keep order."""

from __future__ import annotations

from datetime import datetime

from edge_node.store import EdgeStore
from protocol.calendar import VN_TZ
from protocol.hlc import wall_ms
from service import clock_flags
from service.dossier_store import wall_clock_ms
from tests.harness import Net, birth

DAY_MS = 24 * 3600 * 1000


def skew(edge, ms: int) -> None:  # type: ignore[no-untyped-def]
    edge.store.wall = lambda: wall_clock_ms() + ms


def parse(ts: str) -> int:
    return int(datetime.fromisoformat(ts).timestamp() * 1000)


async def _history_in_causal_order(api, dossier_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    _, view = await api.get(f"/api/dossiers/{dossier_id}")
    return [h["kind"] for h in view["history"]]


async def check_skewed_edge(net: Net, skew_ms: int) -> None:
    edge = await net.add_edge("02245")
    skew(edge, skew_ms)
    # before any exchange in this process, the edge trusts its clock plus the last correction;
    # the first exchange teaches it the hub's time
    await edge.sync()
    offset = edge.store.clock_offset_ms
    assert abs(offset - skew_ms) < 5_000, offset
    status, d = await edge.api.post("/api/dossiers", birth())
    assert status == 201
    # legal timestamps use corrected time, not the machine's wrong clock
    assert abs(parse(d["received_at"]) - wall_clock_ms()) < 5_000
    due = datetime.fromisoformat(d["due_at"])
    assert due.tzinfo is not None and due.astimezone(VN_TZ).hour == 17
    await edge.sync()
    # the hub edits, then the edge edits again: history keeps the causal order on both sides
    _, hub_view = await net.hub.api.get(f"/api/dossiers/{d['id']}")
    status, _ = await net.hub.api.patch(f"/api/dossiers/{d['id']}", {
        "set": {"fields.child_home_town": "Na Hang"}, "base": hub_view["version"]})
    assert status == 200
    await edge.sync()
    _, edge_view = await edge.api.get(f"/api/dossiers/{d['id']}")
    status, _ = await edge.api.post(f"/api/dossiers/{d['id']}/transition",
                                    {"to": "processing", "base": edge_view["version"]})
    assert status == 200
    await edge.sync()
    for api in (edge.api, net.hub.api):
        assert await _history_in_causal_order(api, d["id"]) == ["create", "set", "transition"]
        _, view = await api.get(f"/api/dossiers/{d['id']}")
        assert view["status"] == "processing" and view["conflicts"] == []
        assert view["fields"]["child_home_town"] == "Na Hang"
    # the hub reports the skew and judges it
    _, nodes = await net.hub.api.get("/api/nodes")
    item = nodes["items"][0]
    assert abs(item["clock_offset_ms"] - skew_ms) < 5_000
    assert item["health"] == "critical"
    assert any("clock off" in r for r in item["reasons"])
    # the edge tells staff too
    _, sync = await edge.api.get("/api/sync")
    assert sync["clock_warning"] is True
    # the hub's own clock was not dragged forward by a peer running ahead
    assert wall_ms(net.hub.store.clock.last) < wall_clock_ms() + 60_000


async def test_edge_clock_a_day_ahead(net: Net) -> None:
    await check_skewed_edge(net, +DAY_MS)


async def test_edge_clock_a_day_behind(net: Net) -> None:
    await check_skewed_edge(net, -DAY_MS)


async def test_clock_jumping_backwards_mid_session(net: Net) -> None:
    edge = await net.add_edge("02245")
    await edge.sync()
    ids = []
    for i in range(3):
        _, d = await edge.api.post("/api/dossiers", birth(f"Người {i}"))
        ids.append(d["id"])
    await edge.sync()
    skew(edge, -3 * 3600 * 1000)  # the machine's clock jumps back three hours
    _, d = await edge.api.get(f"/api/dossiers/{ids[0]}")
    status, _ = await edge.api.patch(f"/api/dossiers/{ids[0]}", {
        "set": {"applicant.address": "Thôn Mới"}, "base": d["version"]})
    assert status == 200
    # corrected time did not jump with the machine's clock (anchored on the hub's)
    assert abs(edge.store.now_ms() - wall_clock_ms()) < 5_000
    _, created = await edge.api.post("/api/dossiers", birth("Sau khi lùi giờ"))
    assert abs(parse(created["received_at"]) - wall_clock_ms()) < 5_000
    await edge.sync()
    status, hub_view = await net.hub.api.get(f"/api/dossiers/{ids[0]}")
    assert hub_view["applicant"]["address"] == "Thôn Mới"
    assert [h["kind"] for h in hub_view["history"]] == ["create", "set"]
    # HLCs from this origin never went backwards
    async with edge.store.reader.execute(
            "SELECT hlc FROM events WHERE origin=? ORDER BY seq", (edge.config.node,)) as cur:
        hlcs = [r[0] for r in await cur.fetchall()]
    assert hlcs == sorted(hlcs)
    _, listing = await net.hub.api.get("/api/dossiers?commune=02245")
    assert len(listing["items"]) == 4


async def test_events_stamped_ahead_are_accepted_flagged_and_ordered(net: Net) -> None:
    edge = await net.add_edge("02245")
    skew(edge, +DAY_MS)  # wrong before this process ever talked to the hub
    _, d = await edge.api.post("/api/dossiers", birth())
    assert parse(d["received_at"]) > wall_clock_ms() + DAY_MS - 60_000  # nothing better known
    await edge.sync()
    _, nodes = await net.hub.api.get("/api/nodes")
    # the create, and the clock-check flag the edge raised on it once it learned the hub's
    # time (written after the create, so stamped after it, ahead too)
    assert nodes["items"][0]["clock_ahead_events"] == 2
    _, view = await net.hub.api.get(f"/api/dossiers/{d['id']}")
    assert abs(view["clock_check"]["error_ms"] - DAY_MS) < 5_000
    assert any("ahead of the hub" in r for r in nodes["items"][0]["reasons"])
    assert wall_ms(net.hub.store.clock.last) < wall_clock_ms() + 60_000
    # a later edit at the hub still sorts after the create it has seen
    _, view = await net.hub.api.get(f"/api/dossiers/{d['id']}")
    await net.hub.api.patch(f"/api/dossiers/{d['id']}",
                            {"set": {"applicant.phone": "0900000000"}, "base": view["version"]})
    assert await _history_in_causal_order(net.hub.api, d["id"]) == ["create", "set", "set"]
    await edge.sync()
    assert await _history_in_causal_order(edge.api, d["id"]) == ["create", "set", "set"]


async def test_a_clock_gone_back_is_flagged_before_any_contact(net: Net) -> None:
    edge = await net.add_edge("02245")
    await edge.sync()  # a true clock: the hub's time at this sync is a time known to have passed
    _, ok = await edge.api.post("/api/dossiers", birth())
    await edge.sync()
    # restarted with the BIOS clock reset a month back, the link down: a second store on the
    # same database knows nothing of the hub's time in this process
    restarted = await EdgeStore.open(edge.data / "edge.db", edge.config.node, edge.config.commune,
                                     edge.config.agency)
    try:
        restarted.wall = lambda: wall_clock_ms() - 30 * DAY_MS
        back = await clock_flags.went_back(restarted)
        assert back is not None and abs(back + 30 * DAY_MS) < 60_000
        d = await restarted.create(birth(child_birth_date="2026-10-20"), "clerk")
        assert await clock_flags.settle(restarted) == 1  # flagged offline, at once
        flagged = await clock_flags.flagged(restarted)
        assert [f["id"] for f in flagged] == [d["id"]]
        assert flagged[0]["error_ms"] < -30 * DAY_MS + 60_000  # at least a month behind
    finally:
        await restarted.close()
    assert ok["clock_check"] is None
