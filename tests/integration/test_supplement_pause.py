"""The legal clock pauses while a supplement is awaited: resuming pushes the due date back."""

from __future__ import annotations

from datetime import datetime

from protocol.calendar import VN_TZ, working_days_between
from service.hubtime import wall_clock_ms
from tests.harness import Net, birth

DAY_MS = 24 * 3600 * 1000


def marital() -> dict:  # type: ignore[type-arg]
    body = birth()
    body["procedure_code"] = "1.004873"
    body["fields"] = {"purpose": "Kết hôn", "marital_status": "Chưa kết hôn"}
    return body


async def test_due_date_moves_by_the_working_days_waited(net: Net) -> None:
    edge = await net.add_edge("02245")
    ten_days_ago = wall_clock_ms() - 10 * DAY_MS
    edge.store.time.wall = lambda: ten_days_ago  # the dossier was received ten days ago …
    _, d = await edge.api.post("/api/dossiers", marital())
    _, d = await edge.api.post(f"/api/dossiers/{d['id']}/transition",
                               {"to": "supplement_requested", "base": d["version"],
                                "note": "Thiếu giấy xác nhận cư trú"})
    assert d["due_at"]
    edge.store.time.wall = wall_clock_ms  # … and the citizen brings the paper today
    status, resumed = await edge.api.post(f"/api/dossiers/{d['id']}/transition",
                                          {"to": "processing", "base": d["version"]})
    assert status == 200, resumed
    before = datetime.fromisoformat(d["due_at"]).astimezone(VN_TZ)
    after = datetime.fromisoformat(resumed["due_at"]).astimezone(VN_TZ)
    waited = working_days_between(ten_days_ago, wall_clock_ms(), edge.store.dossiers.calendar)
    assert waited >= 5
    assert after > before and after.time() == before.time()
    assert edge.store.dossiers.calendar.add_working_days(before.date(), waited) == after.date()
    # the new due date travels with the transition to the hub
    await edge.sync()
    _, at_hub = await net.hub.api.get(f"/api/dossiers/{d['id']}")
    assert at_hub["due_at"] == resumed["due_at"]


async def test_no_pause_when_resumed_the_same_day(net: Net) -> None:
    edge = await net.add_edge("02245")
    _, d = await edge.api.post("/api/dossiers", marital())
    _, d = await edge.api.post(f"/api/dossiers/{d['id']}/transition",
                               {"to": "supplement_requested", "base": d["version"]})
    _, resumed = await edge.api.post(f"/api/dossiers/{d['id']}/transition",
                                     {"to": "processing", "base": d["version"]})
    assert resumed["due_at"] == d["due_at"]
