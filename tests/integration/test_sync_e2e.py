"""Two communes and a hub on loopback: offline intake, exactly-once delivery, scope, conflicts."""

from __future__ import annotations

import pytest

from tests.harness import Net, birth

pytestmark = pytest.mark.both_stores  # the contract suite: on SQLite and on PostgreSQL


async def test_offline_intake_reaches_hub_exactly_once(net: Net) -> None:
    edge = await net.add_edge("02245", "Xã Côn Lôn")
    edge.cut()
    codes = []
    for i in range(5):
        status, body = await edge.api.post("/api/dossiers", birth(f"Nguyễn Văn {i}"))
        assert status == 201, body
        assert body["status"] == "accepted" and body["due_at"]
        codes.append(body["code"])
    assert len(set(codes)) == 5
    assert all(c.startswith(edge.config.agency + "-") for c in codes)
    status, sync = await edge.api.get("/api/sync")
    assert sync["pending_events"] == 5

    try:
        await edge.sync()
        raise AssertionError("sync should fail while the link is cut")
    except Exception as exc:
        assert "cannot reach" in str(exc) or "link" in str(exc)
    assert (await edge.store.sync.pending_stats())[0] == 5

    edge.heal()
    result = await edge.sync()
    assert result.sent == 5 and result.pending_after == 0
    # a second session changes nothing: nothing duplicated
    again = await edge.sync()
    assert again.sent == 0
    status, listing = await net.hub.api.get("/api/dossiers?commune=02245&limit=100")
    assert status == 200
    assert sorted(d["code"] for d in listing["items"]) == sorted(codes)
    async with net.hub.store.reader.execute("SELECT count(*) FROM events") as cur:
        assert (await cur.fetchone())[0] == 5


async def test_scope_only_own_commune(net: Net) -> None:
    a = await net.add_edge("02245")
    b = await net.add_edge("02227")
    _, dossier_a = await a.api.post("/api/dossiers", birth("Lý Thị Mai"))
    _, dossier_b = await b.api.post("/api/dossiers", birth("Đặng Văn Tú"))
    await a.sync()
    await b.sync()
    # the hub edits both; each change reaches only its own commune
    for d in (dossier_a, dossier_b):
        status, body = await net.hub.api.patch(
            f"/api/dossiers/{d['id']}", {"set": {"fields.child_home_town": "Na Hang"},
                                         "base": d["version"]})
        assert status == 200, body
    await a.sync()
    await b.sync()
    status, _ = await a.api.get(f"/api/dossiers/{dossier_b['id']}")
    assert status == 404
    status, _ = await b.api.get(f"/api/dossiers/{dossier_a['id']}")
    assert status == 404
    _, listing = await a.api.get("/api/dossiers")
    assert [d["id"] for d in listing["items"]] == [dossier_a["id"]]
    _, seen = await a.api.get(f"/api/dossiers/{dossier_a['id']}")
    assert seen["fields"]["child_home_town"] == "Na Hang"
    assert any(h["where"] == "hub" for h in seen["history"])
    async with b.store.reader.execute("SELECT count(*) FROM events WHERE commune='02245'") as cur:
        assert (await cur.fetchone())[0] == 0


async def test_field_conflict_shown_on_both_sides_and_resolved(net: Net) -> None:
    edge = await net.add_edge("02245")
    _, d = await edge.api.post("/api/dossiers", birth())
    await edge.sync()
    base = d["version"]
    # apart: the commune and the province change the same field
    edge.cut()
    status, _ = await edge.api.patch(f"/api/dossiers/{d['id']}",
                                     {"set": {"applicant.address": "Thôn Khuổi Phầy"}, "base": base})
    assert status == 200
    status, _ = await net.hub.api.patch(f"/api/dossiers/{d['id']}",
                                        {"set": {"applicant.address": "Bản Tát"}, "base": base})
    assert status == 200
    edge.heal()
    await edge.sync()
    for api in (edge.api, net.hub.api):
        _, view = await api.get(f"/api/dossiers/{d['id']}")
        assert [c["field"] for c in view["conflicts"]] == ["applicant.address"]
        values = {v["value"]: v["where"] for v in view["conflicts"][0]["values"]}
        assert values == {"Thôn Khuổi Phầy": "commune", "Bản Tát": "hub"}
    _, hub_view = await net.hub.api.get(f"/api/dossiers/{d['id']}")
    _, edge_view = await edge.api.get(f"/api/dossiers/{d['id']}")
    # every replica shows the same value while the conflict lasts
    assert hub_view["applicant"]["address"] == edge_view["applicant"]["address"]
    status, resolved = await edge.api.post(
        f"/api/dossiers/{d['id']}/resolve",
        {"field": "applicant.address", "value": "Bản Tát", "base": edge_view["version"]})
    assert status == 200, resolved
    assert resolved["conflicts"] == []
    await edge.sync()
    _, hub_after = await net.hub.api.get(f"/api/dossiers/{d['id']}")
    assert hub_after["conflicts"] == [] and hub_after["applicant"]["address"] == "Bản Tát"


async def test_concurrent_edits_of_different_fields_merge(net: Net) -> None:
    edge = await net.add_edge("02245")
    _, d = await edge.api.post("/api/dossiers", birth())
    await edge.sync()
    base = d["version"]
    await edge.api.patch(f"/api/dossiers/{d['id']}",
                         {"set": {"applicant.phone": "0987654321"}, "base": base})
    await net.hub.api.patch(f"/api/dossiers/{d['id']}",
                            {"set": {"fields.child_home_town": "Côn Lôn"}, "base": base})
    await edge.sync()
    for api in (edge.api, net.hub.api):
        _, view = await api.get(f"/api/dossiers/{d['id']}")
        assert view["conflicts"] == []
        assert view["applicant"]["phone"] == "0987654321"
        assert view["fields"]["child_home_town"] == "Côn Lôn"


async def test_concurrent_transitions_are_a_status_conflict(net: Net) -> None:
    edge = await net.add_edge("02245")
    _, d = await edge.api.post("/api/dossiers", birth())
    _, d = await edge.api.post(f"/api/dossiers/{d['id']}/transition",
                               {"to": "processing", "base": d["version"]})
    await edge.sync()
    await edge.api.post(f"/api/dossiers/{d['id']}/transition",
                        {"to": "resolved", "base": d["version"]})
    status, _ = await net.hub.api.post(f"/api/dossiers/{d['id']}/transition",
                                       {"to": "supplement_requested", "base": d["version"]})
    assert status == 200
    await edge.sync()
    _, view = await edge.api.get(f"/api/dossiers/{d['id']}")
    assert view["conflicts"][0]["field"] == "status"
    assert {v["value"] for v in view["conflicts"][0]["values"]} == {"resolved",
                                                                    "supplement_requested"}
    # no transition while the status is in conflict
    status, body = await edge.api.post(f"/api/dossiers/{d['id']}/transition",
                                       {"to": "returned", "base": view["version"]})
    assert status == 409, body


async def test_stale_edit_by_two_clerks_becomes_conflict_not_loss(net: Net) -> None:
    edge = await net.add_edge("02245")
    _, d = await edge.api.post("/api/dossiers", birth())
    await edge.api.patch(f"/api/dossiers/{d['id']}",
                         {"set": {"applicant.phone": "0911111111"}, "base": d["version"]})
    status, view = await edge.api.patch(f"/api/dossiers/{d['id']}",
                                        {"set": {"applicant.phone": "0922222222"},
                                         "base": d["version"]})
    assert status == 200
    values = {v["value"] for v in view["conflicts"][0]["values"]}
    assert values == {"0911111111", "0922222222"}


async def test_rebuild_equals_incremental_on_both_sides(net: Net) -> None:
    edge = await net.add_edge("02245")
    for i in range(3):
        _, d = await edge.api.post("/api/dossiers", birth(f"Người {i}"))
        await edge.api.patch(f"/api/dossiers/{d['id']}",
                             {"set": {"applicant.address": f"Thôn {i}"}, "base": d["version"]})
    await edge.sync()
    for store in (edge.store, net.hub.store):
        before = await store.log.dossier_rows()
        assert await store.log.rebuild() == 3
        assert await store.log.dossier_rows() == before


async def test_replicas_converge_to_same_state(net: Net) -> None:
    a1 = await net.add_edge("02245")
    a2 = await net.add_edge("02245")  # a second PC in the same commune
    _, d = await a1.api.post("/api/dossiers", birth())
    await a1.sync()
    await a2.sync()
    _, on_a2 = await a2.api.get(f"/api/dossiers/{d['id']}")
    await a2.api.patch(f"/api/dossiers/{d['id']}",
                       {"set": {"applicant.address": "X"}, "base": on_a2["version"]})
    await a1.api.patch(f"/api/dossiers/{d['id']}",
                       {"set": {"applicant.address": "Y"}, "base": d["version"]})
    for _ in range(2):
        await a1.sync()
        await a2.sync()
    rows = [await s.log.dossier_rows() for s in (a1.store, a2.store, net.hub.store)]
    states = [r[d["id"]][-1] for r in rows]
    assert states[0] == states[1] == states[2]
