"""Issue 18 items 6 and 9 without a browser: a refusal at the counter (form 03, never a receipt),
an apology with a new appointment (form 04, the due date kept), the hand-over of a result, form
02's deadline, the control slip (form 05), and likely duplicates flagged at intake."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tests.harness import EdgeHandle, Net
from tests.ui.conftest import Staff
from tests.ui.seed import create, move

BIRTH = {"procedure_code": "1.001193", "applicant.full_name": "Nguyễn Văn An",
         "applicant.citizen_id": "008090001234", "applicant.phone": "0912345678",
         "applicant.address": "Thôn Nà Khá, xã Côn Lôn", "fields.relationship": "Cha",
         "fields.child_full_name": "Nguyễn Văn Bình", "fields.child_birth_date": "20/11/2025",
         "fields.child_sex": "Nam", "fields.child_ethnicity": "Tày",
         "fields.child_nationality": "Việt Nam", "fields.child_birth_place": "Trạm y tế xã"}


async def clerk_of(staff: Callable[[], Staff], who: str = "clerk1") -> Staff:
    person = staff()
    await person.login(who)
    return person


def dossier_id(url: str) -> str:
    match = re.search(r"/dossiers/([0-9a-f-]{36})", url)
    assert match, url
    return match.group(1)


async def intake(clerk: Staff, data: dict[str, Any]) -> Any:
    await clerk.get("/dossiers/new?procedure=1.001193")
    return await clerk.post("/dossiers/new", data)


async def test_a_refusal_needs_only_a_name_and_reasons_and_never_gets_a_receipt(
        edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    clerk = await clerk_of(staff)
    page = await intake(clerk, {"procedure_code": "1.001193", "action": "refuse",
                                "applicant.full_name": "Ma Văn Dũng"})
    assert page.status == 422 and "refuse_reasons-e" in page.text  # the reasons are required
    assert 'id="refuse-box" open' in page.text
    page = await intake(clerk, {"procedure_code": "1.001193", "action": "refuse",
                                "applicant.full_name": "Ma Văn Dũng",
                                "applicant.citizen_id": "12345",
                                "refuse_reasons": "Thiếu giấy chứng sinh"})
    assert page.status == 422  # what was typed must still be valid
    page = await intake(clerk, {"procedure_code": "1.001193", "action": "refuse",
                                "applicant.full_name": "Ma Văn Dũng",
                                "fields.child_full_name": "Ma Văn Tú",
                                "refuse_reasons": "Thiếu giấy chứng sinh\n\n  Người đi đăng "
                                                  "ký không phải cha, mẹ  "})
    assert page.status == 200, page.text
    did = dossier_id(page.url)
    _, view = await edge.api.get(f"/api/dossiers/{did}")
    assert view["status"] == "refused" and view["due_at"] is None and view["code"]
    assert view["refusal"]["reasons"] == ("Thiếu giấy chứng sinh\n"
                                          "Người đi đăng ký không phải cha, mẹ")
    assert view["refusal"]["at_counter"] and view["refusal"]["actor"] == "clerk1"
    assert view["fields"] == {"child_full_name": "Ma Văn Tú"}
    assert 'id="print-refusal"' in page.text and 'id="print-receipt"' not in page.text
    assert "Thiếu giấy chứng sinh" in page.text
    assert (await clerk.get(f"/dossiers/{did}/receipt")).status == 404
    slip = await clerk.get(f"/dossiers/{did}/refusal")
    assert slip.status == 200 and "PHIẾU TỪ CHỐI TIẾP NHẬN GIẢI QUYẾT HỒ SƠ" in slip.text
    assert slip.text.count("<li>Thiếu giấy chứng sinh</li>") == 2  # two copies
    assert "Ma Văn Dũng" in slip.text and "clerk1" not in slip.text  # no login on paper
    assert slip.text.count('<span class="signer blank">') == 2  # a line to sign by hand
    d = await create(edge, 2)
    assert (await clerk.get(f"/dossiers/{d['id']}/refusal")).status == 404


async def test_an_apology_records_a_new_appointment_and_keeps_the_due_date(
        edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    d = await move(edge, await create(edge, 1), "processing")
    clerk = await clerk_of(staff)
    await clerk.get(f"/dossiers/{d['id']}")
    page = await clerk.post(f"/dossiers/{d['id']}/apology",
                            {"new_due_day": "01/01/2020", "reason": "Chờ xác minh"})
    assert "Ngày hẹn mới phải là một ngày làm việc" in page.text  # in the past
    page = await clerk.post(f"/dossiers/{d['id']}/apology",
                            {"new_due_day": "31/12/2099", "reason": ""})
    assert "Hãy ghi lý do chậm trễ" in page.text
    today = edge.store.today()
    day = edge.store.calendar.add_working_days(today, 3)
    page = await clerk.post(f"/dossiers/{d['id']}/apology", {
        "new_due_day": day.strftime("%d/%m/%Y"), "new_due_time": "10:30",
        "reason": "Chờ xác minh nơi cư trú"})
    assert "Đã ghi nhận phiếu xin lỗi" in page.text
    _, view = await edge.api.get(f"/api/dossiers/{d['id']}")
    assert view["due_at"] == d["due_at"]  # still late against the first date
    assert view["appointment_at"] == f"{day.isoformat()}T10:30:00+07:00"
    assert view["comments"] == []  # an apology is not listed as a comment
    assert [a["reason"] for a in view["apologies"]] == ["Chờ xác minh nơi cư trú"]
    assert 'id="appointment"' in page.text and 'id="print-apology"' in page.text
    slip = await clerk.get(f"/dossiers/{d['id']}/apology")
    assert "PHIẾU XIN LỖI VÀ HẸN LẠI NGÀY TRẢ KẾT QUẢ" in slip.text
    assert f"10 giờ 30 phút, ngày {day:%d} tháng {day:%m} năm {day:%Y}" in slip.text
    assert "Chờ xác minh nơi cư trú" in slip.text
    done = await move(edge, view, "resolved")
    page = await clerk.get(f"/dossiers/{d['id']}")
    assert 'action="/dossiers/' + d["id"] + '/apology"' not in page.text  # result ready
    status, body = await edge.api.post(f"/api/dossiers/{d['id']}/apology", {
        "new_due": day.isoformat(), "reason": "x"})
    assert status == 409, body
    assert done["status"] == "resolved"


async def test_the_hand_over_is_recorded_and_form_02_gets_its_deadline(
        edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    d = await move(edge, await create(edge, 1), "processing")
    clerk = await clerk_of(staff)
    await clerk.get(f"/dossiers/{d['id']}")
    page = await clerk.post(f"/dossiers/{d['id']}/transition", {
        "to": "supplement_requested", "base": d["version"], "note": "Giấy chứng sinh"})
    assert "Hãy ghi hạn nộp bổ sung" in page.text
    page = await clerk.post(f"/dossiers/{d['id']}/transition", {
        "to": "supplement_requested", "base": d["version"], "note": "Giấy chứng sinh",
        "supplement_by": "01/01/2020"})
    assert "Hạn nộp bổ sung phải từ hôm nay" in page.text
    by = edge.store.calendar.add_working_days(edge.store.today(), 5)
    page = await clerk.post(f"/dossiers/{d['id']}/transition", {
        "to": "supplement_requested", "base": d["version"], "note": "Giấy chứng sinh",
        "supplement_by": by.strftime("%d/%m/%Y")})
    slip = await clerk.get(f"/dossiers/{d['id']}/supplement")
    assert f"Thời hạn bổ sung, hoàn thiện hồ sơ: trước 17 giờ 00 phút ngày: <strong>" \
           f"{by:%d/%m/%Y}</strong>" in slip.text
    _, view = await edge.api.get(f"/api/dossiers/{d['id']}")
    view = await move(edge, view, "processing", "resolved")
    leader = await clerk_of(staff, "leader1")
    await leader.get(f"/dossiers/{d['id']}")
    page = await leader.post(f"/dossiers/{d['id']}/transition", {
        "to": "returned", "base": view["version"], "collected_by": "Nguyễn Văn An"})
    assert "Hãy ghi người nhận kết quả" in page.text
    page = await leader.post(f"/dossiers/{d['id']}/transition", {
        "to": "returned", "base": view["version"], "collected_by": " Nguyễn  Văn An",
        "id_document": "Căn cước 008090001234"})
    _, view = await edge.api.get(f"/api/dossiers/{d['id']}")
    assert view["status"] == "returned"
    assert view["handover"]["collected_by"] == "Nguyễn Văn An"
    assert view["handover"]["id_document"] == "Căn cước 008090001234"
    assert view["handover"]["actor"] == "leader1"
    assert 'id="handover"' in page.text and "Căn cước 008090001234" in page.text
    control = await clerk.get(f"/dossiers/{d['id']}/control")
    assert "PHIẾU KIỂM SOÁT QUÁ TRÌNH GIẢI QUYẾT HỒ SƠ" in control.text
    assert control.text.count('<tr class="step">') == 5
    assert control.text.count('<article class="sheet"') == 1
    assert "Đúng hạn" in control.text or "Trước hạn" in control.text


async def test_a_likely_duplicate_is_flagged_and_can_be_received_deliberately(
        edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    clerk = await clerk_of(staff)
    first = await intake(clerk, BIRTH)
    assert first.status == 200, first.text
    first_id = dossier_id(first.url)
    _, existing = await edge.api.get(f"/api/dossiers/{first_id}")
    other_child = await intake(clerk, {**BIRTH, "fields.child_full_name": "Nguyễn Thị Hà"})
    assert other_child.status == 200  # a second child of the same parent is no duplicate
    again = await intake(clerk, {**BIRTH, "fields.child_full_name": "nguyen van  binh"})
    assert again.status == 409 and 'id="duplicates"' in again.text
    assert f'href="/dossiers/{first_id}"' in again.text and existing["code"] in again.text
    assert 'value="nguyen van  binh"' in again.text  # everything typed is kept
    went_on = await clerk.post("/dossiers/new", {**BIRTH, "dup_ok": existing["code"]})
    assert went_on.status == 200
    _, view = await edge.api.get(f"/api/dossiers/{dossier_id(went_on.url)}")
    assert view["history"][0]["duplicates"] == [existing["code"]]
    assert "dù có thể trùng với " + existing["code"] in went_on.text


async def test_the_register_and_the_report_are_counted_at_the_edge_offline(
        net: Net, edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    assert net.hub is not None
    clerk = await clerk_of(staff)
    refused = await intake(clerk, {"procedure_code": "1.001193", "action": "refuse",
                                   "applicant.full_name": "Ma Văn Dũng",
                                   "refuse_reasons": "Thiếu giấy chứng sinh"})
    assert refused.status == 200
    late = await move(edge, await create(edge, 1), "processing")
    day = edge.store.calendar.add_working_days(edge.store.today(), 2)
    status, late = await edge.api.post(f"/api/dossiers/{late['id']}/apology", {
        "new_due": day.isoformat(), "reason": "Chờ xác minh"})
    assert status == 200, late
    done = await move(edge, await create(edge, 2), "processing", "resolved")
    status, done = await edge.api.post(f"/api/dossiers/{done['id']}/transition", {
        "to": "returned", "base": done["version"],
        "handover": {"collected_by": "Hoàng Thị Lan", "id_document": "Căn cước 008090000002"}})
    assert status == 200, done
    _, at_hub = await net.hub.api.get("/api/stats")
    assert at_hub["totals"][0]["received_total"] == 0  # nothing synced: the edge counts alone

    page = await clerk.get("/register")
    assert page.status == 200
    assert page.text.count("<tr data-code=") == 3
    assert "Thiếu giấy chứng sinh" in page.text and "Chờ xác minh" in page.text
    assert "Hoàng Thị Lan · Căn cước 008090000002" in page.text
    assert f"hẹn lại {day:%d/%m/%Y} 17:00" in page.text
    table = await clerk.http.get(clerk.base + "/register.csv")
    text = (await table.read()).decode("utf-8")
    assert text.startswith("\ufeffSTT,Mã hồ sơ,")
    lines = text.strip().splitlines()
    assert len(lines) == 4 and "Không được tiếp nhận" in lines[1]
    assert "Đúng hạn" in lines[3] and "Hoàng Thị Lan" in lines[3]
    sheet = await clerk.get("/register/print")
    assert "SỔ THEO DÕI HỒ SƠ" in sheet.text and 'class="sheet wide"' in sheet.text
    assert (await clerk.get("/stats")).status == 403  # statistics are the leader's

    leader = await clerk_of(staff, "leader1")
    page = await leader.get("/stats")
    total = page.text.split('id="report-total"')[1].split("</tr>")[0]
    counts = dict(re.findall(r'data-count="(\w+)">(\d+)<', total))
    assert counts["received_counter"] == "2" and counts["refused"] == "1"
    assert counts["apologies"] == "1" and counts["resolved_on_time"] == "1"
    assert counts["returned"] == "1" and counts["in_progress_not_due"] == "1"
    report = await leader.http.get(leader.base + "/stats.csv")
    rows = (await report.read()).decode("utf-8").strip().splitlines()
    assert "Từ chối tiếp nhận" in rows[0] and "Phiếu xin lỗi, hẹn lại" in rows[0]
    assert (await leader.get("/stats/print")).status == 200
    assert (await leader.get("/register?from=31/02/2026")).status == 422


async def test_forms_are_signed_with_the_staff_name_and_position(
        edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    admin = await clerk_of(staff, "admin1")
    await admin.get("/users")
    page = await admin.post("/users/clerk1/profile", {
        "full_name": " Hoàng Thị Hoa ", "position": "Công chức Tư pháp - Hộ tịch"})
    assert "Đã lưu họ tên và chức vụ của clerk1" in page.text
    assert 'value="Hoàng Thị Hoa"' in page.text
    page = await admin.post("/users/leader1/profile", {"full_name": "x" * 101, "position": ""})
    assert "Không thực hiện được" in page.text
    page = await admin.post("/users", {"username": "clerk2", "role": "clerk",
                                       "password": "correct-horse-2",
                                       "full_name": "Bàn Văn Tiến", "position": "Văn thư"})
    assert 'value="Bàn Văn Tiến"' in page.text and 'value="Văn thư"' in page.text
    page = await admin.post("/users", {"username": "clerk3", "role": "clerk",
                                       "password": "correct-horse-3", "full_name": "a\tb"})
    assert page.status == 422 and "Một dòng, tối đa 100 ký tự" in page.text

    clerk = await clerk_of(staff)
    made = await intake(clerk, BIRTH)
    did = dossier_id(made.url)
    receipt = await clerk.get(f"/dossiers/{did}/receipt")
    signed = receipt.text.split("NGƯỜI TIẾP NHẬN HỒ SƠ")[1].split("</td>")[0]
    assert '<span class="signer">Hoàng Thị Hoa</span>' in signed
    assert "Công chức Tư pháp - Hộ tịch" in signed and "clerk1" not in receipt.text
    _, view = await edge.api.get(f"/api/dossiers/{did}")
    await move(edge, view, "processing")
    control = await clerk.get(f"/dossiers/{did}/control")
    assert "Giao: Hoàng Thị Hoa (Công chức Tư pháp - Hộ tịch)" in control.text
    leader = await clerk_of(staff, "leader1")
    refused = await intake(leader, {"procedure_code": "1.001193", "action": "refuse",
                                    "applicant.full_name": "Ma Văn Dũng",
                                    "refuse_reasons": "Thiếu tờ khai"})
    slip = await leader.get(f"/dossiers/{dossier_id(refused.url)}/refusal")
    assert '<span class="signer blank">' in slip.text and "leader1" not in slip.text
    report = await leader.get("/stats/print")
    assert "NGƯỜI LẬP BÁO CÁO" in report.text
