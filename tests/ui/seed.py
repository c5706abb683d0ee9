"""Realistic dossiers for UI tests and screenshots: today's intake, overdue ones (received days ago
by skewing the edge's clock before its first sync), one awaiting a supplement, and a conflict."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.harness import EdgeHandle, Net, birth

DAY_MS = 86_400_000
NAMES = ["Nguyễn Văn An", "Hoàng Thị Lan", "Ma Văn Dũng", "Triệu Thị Mai", "Lý Văn Quân",
         "Đặng Thị Hoa", "Nông Văn Thắng", "Bàn Thị Nga"]


@contextmanager
def days_ago(edge: EdgeHandle, days: int) -> Iterator[None]:
    """Write as if the edge's clock read `days` days ago (only before the edge's first sync)."""
    store = edge.store
    real = store.time.wall
    store.time.wall = lambda: real() - days * DAY_MS
    try:
        yield
    finally:
        store.time.wall = real


def citizen(i: int) -> str:
    """A valid citizen ID: Tuyên Quang (008), born 1990, distinct per `i`."""
    return f"0080900{i:05d}"


async def create(edge: EdgeHandle, i: int, **kw: Any) -> dict[str, Any]:
    """A birth registration by the harness's desk user."""
    kw.setdefault("child_birth_date", "2025-11-20")
    status, body = await edge.api.post("/api/dossiers", birth(
        name=NAMES[i % len(NAMES)], citizen_id=citizen(i), **kw))
    assert status == 201, body
    return body  # type: ignore[no-any-return]


async def move(edge: EdgeHandle, dossier: dict[str, Any], *targets: str,
               note: str = "") -> dict[str, Any]:
    """Walk a dossier through statuses."""
    for target in targets:
        status, dossier = await edge.api.post(f"/api/dossiers/{dossier['id']}/transition",
                                              {"to": target, "base": dossier["version"],
                                               "note": note})
        assert status == 200, dossier
    return dossier


async def make_conflict(net: Net, edge: EdgeHandle, dossier: dict[str, Any],
                        hub_value: str = "Thôn Nà Mạ, xã Côn Lôn",
                        edge_value: str = "Thôn Bản Khuổi, xã Côn Lôn") -> dict[str, Any]:
    """The province and the commune change the applicant's address from the same version."""
    assert net.hub is not None
    await edge.sync()
    status, at_hub = await net.hub.api.get(f"/api/dossiers/{dossier['id']}")
    assert status == 200, at_hub
    status, body = await net.hub.api.patch(f"/api/dossiers/{dossier['id']}", {
        "set": {"applicant.address": hub_value}, "base": at_hub["version"]})
    assert status == 200, body
    status, body = await edge.api.patch(f"/api/dossiers/{dossier['id']}", {
        "set": {"applicant.address": edge_value}, "base": dossier["version"]})
    assert status == 200, body
    await edge.sync()
    status, view = await edge.api.get(f"/api/dossiers/{dossier['id']}")
    assert status == 200 and view["conflicts"], view
    return view  # type: ignore[no-any-return]


async def seed_desk(net: Net, edge: EdgeHandle) -> dict[str, Any]:
    """A morning at the desk: overdue and waiting dossiers from before, today's intake, a conflict."""
    with days_ago(edge, 6):
        old = [await create(edge, i) for i in range(2)]
        waiting = await create(edge, 2)
    await move(edge, old[0], "processing")
    await move(edge, waiting, "processing", "supplement_requested",
               note="Giấy chứng sinh (bản chính)\nGiấy chứng nhận kết hôn của cha mẹ")
    today = [await create(edge, i) for i in range(3, 7)]
    conflicted = await make_conflict(net, edge, today[0])
    return {"old": old, "waiting": waiting, "today": today, "conflicted": conflicted}
