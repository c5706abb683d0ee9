"""Due dates as the desk shows them: a dossier received at a given moment on the edge (whose clock
is set there before its first sync) gets its appointment from the working-day calendar it holds
(weekends, Tết 2027 from the default reference data), the 15:00 rule, and it becomes overdue by
time alone, with nothing written."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from protocol.calendar import VN_TZ, to_ms
from tests.harness import EdgeHandle, birth
from tests.ui.conftest import Staff

MARITAL = "1.004873"  # 3 working days


def vn(y: int, mo: int, d: int, h: int, mi: int = 0, s: int = 0) -> int:
    return to_ms(datetime(y, mo, d, h, mi, s, tzinfo=VN_TZ))


def set_clock(edge: EdgeHandle, ms: int) -> None:
    """The edge's corrected time reads `ms` (it has not synced yet: no hub anchor)."""
    store = edge.store
    assert not store.time.anchored
    store.time.wall = lambda: ms - store.time.correction_ms


async def receive_at(edge: EdgeHandle, ms: int, procedure: str = "1.001193",
                     i: int = 0) -> dict[str, Any]:
    set_clock(edge, ms)
    body = birth(citizen_id=f"0080900{i:05d}", child_birth_date="2025-06-01")
    if procedure == MARITAL:
        body = {"procedure_code": MARITAL, "applicant": body["applicant"],
                "fields": {"purpose": "Kết hôn", "marital_status": "Chưa kết hôn"}}
    status, view = await edge.api.post("/api/dossiers", body)
    assert status == 201, view
    return view  # type: ignore[no-any-return]


@pytest.mark.parametrize(("received", "due"), [
    # same-day birth registration: before 15:00 today, from 15:00 sharp the next working day
    (vn(2026, 1, 5, 14, 59, 59), "2026-01-05T17:00:00+07:00"),
    (vn(2026, 1, 5, 15, 0, 0), "2026-01-06T17:00:00+07:00"),
    # Friday afternoon rolls over the weekend; a Saturday counts as Monday's morning
    (vn(2026, 1, 9, 15, 0), "2026-01-12T17:00:00+07:00"),
    (vn(2026, 1, 10, 9, 30), "2026-01-12T17:00:00+07:00"),
    # the eve of Tết 2027 (5–11 Feb are holidays in the default calendar)
    (vn(2027, 2, 4, 14, 0), "2027-02-04T17:00:00+07:00"),
    (vn(2027, 2, 4, 15, 0), "2027-02-12T17:00:00+07:00"),
    (vn(2027, 2, 8, 10, 0), "2027-02-12T17:00:00+07:00"),
])
async def test_same_day_procedures(edge: EdgeHandle, received: int, due: str) -> None:
    view = await receive_at(edge, received)
    assert view["due_at"] == due


@pytest.mark.parametrize(("received", "due"), [
    (vn(2026, 1, 5, 9), "2026-01-08T17:00:00+07:00"),    # Monday: Tue, Wed, Thu
    (vn(2026, 1, 8, 16, 30), "2026-01-13T17:00:00+07:00"),  # Thursday: Fri, Mon, Tue
    (vn(2027, 2, 4, 10), "2027-02-16T17:00:00+07:00"),   # across Tết: 12, 15, 16 Feb
    (vn(2027, 2, 3, 10), "2027-02-15T17:00:00+07:00"),   # 4 Feb, then 12 and 15 Feb
])
async def test_working_day_limits_skip_weekends_and_tet(edge: EdgeHandle, received: int,
                                                       due: str) -> None:
    view = await receive_at(edge, received, MARITAL)
    assert view["due_at"] == due


async def test_the_receipt_prints_the_appointment_and_the_intake_form_predicts_it(
        edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    view = await receive_at(edge, vn(2027, 2, 4, 15, 0))
    clerk = staff()
    await clerk.login("clerk1")
    page = await clerk.get(f"/dossiers/{view['id']}/receipt")
    assert page.status == 200
    assert "17 giờ 00 phút, ngày 12 tháng 02 năm 2027" in page.text
    assert "15 giờ 00 phút, ngày 04 tháng 02 năm 2027" in page.text
    set_clock(edge, vn(2027, 2, 4, 14, 59))
    form = await clerk.get("/dossiers/new?procedure=1.001193")
    assert "04/02/2027 17:00" in form.text
    set_clock(edge, vn(2027, 2, 4, 15, 0))
    form = await clerk.get("/dossiers/new?procedure=1.001193")
    assert "12/02/2027 17:00" in form.text


async def test_overdue_is_computed_from_the_time_never_written(
        edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    view = await receive_at(edge, vn(2026, 1, 5, 9))  # due Monday 17:00
    clerk = staff()
    await clerk.login("clerk1")
    events = edge.store.log.own_seq
    set_clock(edge, vn(2026, 1, 5, 17, 0))
    home = await clerk.get("/")
    assert 'id="tile-overdue"' in home.text and "has" not in _tile(home.text, "overdue")
    set_clock(edge, vn(2026, 1, 5, 17, 0, 1))
    home = await clerk.get("/")
    assert "has" in _tile(home.text, "overdue")
    listing = await clerk.get("/dossiers?overdue=1")
    assert view["code"] in listing.text
    assert edge.store.log.own_seq == events  # nothing was written to make it overdue
    _, after = await edge.api.get(f"/api/dossiers/{view['id']}")
    assert after["overdue"] is True and after["version"] == view["version"]


def _tile(html: str, key: str) -> str:
    start = html.index(f'id="tile-{key}"')
    return html[html.rindex("<a", 0, start):start]
