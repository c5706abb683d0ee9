"""Issue 18 items 6 and 9 in a real browser (Debian's Chromium) against a real edge and hub on
loopback: a refusal at the counter printed as form 03 and never a receipt; an apology with its new
appointment (form 04); form 02 with its deadline; the hand-over and the control slip (form 05);
the register and the period report, printed and downloaded at the edge; a likely duplicate
flagged at intake and received deliberately. Forms are printed with `page.pdf()` and read back
with pypdf."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import date
from pathlib import Path

import pytest

pytest.importorskip("playwright.async_api", reason="pip install playwright (the dev extra)")
pytest.importorskip("pypdf", reason="pip install pypdf (the dev extra)")

import pypdf
from playwright.async_api import Browser, Page, expect

from tests.harness import EdgeHandle, Net
from tests.ui.browser import CHROMIUM
from tests.ui.seed import create, move
from tests.ui.test_desk_data_browser import dossier_id, fill_birth, pdf_text, tab

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no Chromium at {CHROMIUM}: apt-get install -y chromium fonts-noto-core")

PORTRAIT, LANDSCAPE = (595, 842), (842, 595)  # A4 in points


async def printed(page: Page, pages: int, size: tuple[int, int] = PORTRAIT) -> list[str]:
    """The form as the printer gets it (the page's own @page size): its pages' text."""
    pdf = await page.pdf(prefer_css_page_size=True, print_background=False)
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    for p in reader.pages:
        w, h = float(p.mediabox.width), float(p.mediabox.height)
        assert abs(w - size[0]) < 2 and abs(h - size[1]) < 2, (w, h)
    text = pdf_text(pdf)
    assert len(text) == pages, text
    return text


def accept_dialogs(page: Page) -> None:
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))


async def test_a_refusal_at_the_counter_prints_form_03_and_never_a_receipt(
        edge: EdgeHandle, browser: Browser, shots: Path) -> None:
    t = await tab(browser, edge.api.base, shots, "clerk1")
    page = t.page
    accept_dialogs(page)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    await t.goto("/dossiers/new?procedure=1.001193")
    await page.locator("#f-applicant-full_name").fill("Ma Văn Dũng")
    await page.locator("#f-fields-child_full_name").fill("Ma Văn Tú")
    await page.locator("#refuse-box summary").click()
    await page.locator("#refuse").click()
    await expect(page.locator("#refuse_reasons-e")).not_to_be_empty()  # checked here first
    await expect(page.locator("#f-applicant-citizen_id-e")).to_be_empty()  # not needed
    assert posts == [], posts
    await page.locator("#refuse_reasons").fill(
        "Thiếu giấy chứng sinh\nNgười đi đăng ký không phải cha, mẹ của trẻ")
    await t.shot("intake-refuse", full_page=True)
    await page.locator("#refuse").click()
    await page.wait_for_url(re.compile(r"\?new=1$"))
    await expect(page.locator(".dossier-head")).to_contain_text("Không được tiếp nhận")
    await expect(page.locator("#print-refusal")).to_be_focused()
    await expect(page.locator("#print-receipt")).to_have_count(0)
    await expect(page.locator("#refusal")).to_contain_text("Thiếu giấy chứng sinh")
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(r"/refusal$"))
    did = await dossier_id(page)
    _, view = await edge.api.get(f"/api/dossiers/{did}")
    first, second = await printed(page, 2)
    for text in ("PHIẾU TỪ CHỐI TIẾP NHẬN GIẢI QUYẾT HỒ SƠ", view["code"], "Ma Văn Dũng",
                 "Thiếu giấy chứng sinh", "Người đi đăng ký không phải cha, mẹ của trẻ",
                 "NGƯỜI TIẾP NHẬN HỒ SƠ", "Bản lưu tại Bộ phận một cửa"):
        assert text in first, (text, first)
    assert "Bản giao người nộp hồ sơ" in second
    await t.goto(f"/dossiers/{did}/receipt")
    await expect(page.locator("main, body").first).to_contain_text("refused")
    t.errors.clear()  # the 404 above
    t.assert_clean()


async def test_an_apology_prints_form_04_and_the_dossier_still_counts_late(
        edge: EdgeHandle, browser: Browser, shots: Path) -> None:
    d = await move(edge, await create(edge, 1), "processing")
    t = await tab(browser, edge.api.base, shots, "clerk1")
    page = t.page
    await t.goto(f"/dossiers/{d['id']}")
    await page.locator("details.apology summary").click()
    due_day = date.fromisoformat(d["due_at"][:10])
    day = edge.store.calendar.next_working_day(max(edge.store.today(), due_day))
    await expect(page.locator("#new-due-day")).to_have_value(day.strftime("%d/%m/%Y"))
    await page.locator("#new-due-time").fill("09:30")
    await page.locator("#apology-reason").fill("Chờ xác minh nơi cư trú của người mẹ")
    await t.shot("dossier-apology", full_page=True)
    await page.locator("#apologize").click()
    await expect(page.locator(".flash")).to_contain_text("Đã ghi nhận phiếu xin lỗi")
    await expect(page.locator("#appointment")).to_contain_text(
        day.strftime("%d/%m/%Y") + " 09:30")
    await expect(page.locator("ol.timeline")).to_contain_text("Xin lỗi và hẹn lại ngày trả")
    await page.locator("#print-apology").click()
    await page.wait_for_url(re.compile(r"/apology$"))
    first, _ = await printed(page, 2)
    due = d["due_at"]
    for text in ("PHIẾU XIN LỖI VÀ HẸN LẠI NGÀY TRẢ KẾT QUẢ", d["code"],
                 d["applicant"]["full_name"], "Chờ xác minh nơi cư trú của người mẹ",
                 f"09 giờ 30 phút, ngày {day:%d} tháng {day:%m} năm {day:%Y}",
                 f"17 giờ 00 phút, ngày {due[8:10]} tháng {due[5:7]} năm {due[:4]}",
                 "NGƯỜI LẬP PHIẾU"):
        assert text in first, (text, first)
    _, view = await edge.api.get(f"/api/dossiers/{d['id']}")
    assert view["due_at"] == d["due_at"] and view["appointment_at"]
    t.assert_clean()


async def test_form_02_with_its_deadline_and_form_05_after_the_hand_over(
        edge: EdgeHandle, browser: Browser, shots: Path) -> None:
    d = await move(edge, await create(edge, 2), "processing")
    t = await tab(browser, edge.api.base, shots, "leader1")
    page = t.page
    await t.goto(f"/dossiers/{d['id']}")
    by = edge.store.calendar.add_working_days(edge.store.today(), 5)
    await expect(page.locator("#supplement-by")).to_have_value(by.strftime("%d/%m/%Y"))
    await page.locator("#supplement-note").fill("Giấy chứng sinh (bản chính)")
    await page.get_by_role("button", name="Yêu cầu bổ sung giấy tờ").click()
    await page.locator("#print-supplement").click()
    first, _ = await printed(page, 2)
    assert "PHIẾU YÊU CẦU BỔ SUNG, HOÀN THIỆN HỒ SƠ" in first
    assert f"Thời hạn bổ sung, hoàn thiện hồ sơ: trước 17 giờ 00 phút ngày: {by:%d/%m/%Y}" \
        in first, first

    await t.goto(f"/dossiers/{d['id']}")
    await page.get_by_role("button", name="Đang xử lý").click()
    await page.get_by_role("button", name="Đã xử lý xong").click()
    await expect(page.locator("#collected-by")).to_have_value(d["applicant"]["full_name"])
    await page.locator("#collected-by").fill("Nông Văn Thắng")
    await page.locator("#id-document").fill("Căn cước 008090000099")
    await page.get_by_role("button", name="Đã trả kết quả").click()
    await expect(page.locator("#handover")).to_contain_text(
        "Người nhận: Nông Văn Thắng · giấy tờ tùy thân: Căn cước 008090000099")
    await page.locator("#print-control").click()
    await page.wait_for_url(re.compile(r"/control$"))
    [slip] = await printed(page, 1)
    steps = re.findall(r"Giao: (\S+) Nhận: (\S+)", slip)
    assert steps == [("clerk", "clerk"), ("clerk", "leader1"), ("leader1", "leader1"),
                     ("leader1", "leader1"), ("leader1", "leader1")], slip
    for text in ("PHIẾU KIỂM SOÁT QUÁ TRÌNH GIẢI QUYẾT HỒ SƠ", d["code"],
                 "Đang xử lý → Yêu cầu bổ sung giấy tờ", "Đã xử lý xong → Đã trả kết quả"):
        assert text in slip, (text, slip)
    assert "Đúng hạn" in slip or "Trước hạn" in slip
    t.assert_clean()


async def test_the_register_and_the_report_print_and_download_at_the_edge(
        net: Net, edge: EdgeHandle, browser: Browser, shots: Path) -> None:
    late = await move(edge, await create(edge, 3), "processing")
    day = edge.store.calendar.add_working_days(edge.store.today(), 2)
    status, _ = await edge.api.post(f"/api/dossiers/{late['id']}/apology", {
        "new_due": day.isoformat(), "reason": "Chờ xác minh"})
    assert status == 200
    status, _ = await edge.api.post("/api/dossiers", {
        "procedure_code": "1.001193", "applicant": {"full_name": "Ma Văn Dũng",
                                                    "citizen_id": ""},
        "refuse": {"reasons": "Thiếu giấy chứng sinh"}})
    assert status == 201
    await move(edge, await create(edge, 4), "processing", "resolved")
    t = await tab(browser, edge.api.base, shots, "leader1")
    page = t.page
    await page.get_by_role("link", name="Sổ theo dõi").click()
    rows = page.locator("#register-table tbody tr")
    await expect(rows).to_have_count(3)
    await expect(rows.nth(1)).to_contain_text("Thiếu giấy chứng sinh")
    await expect(rows.nth(0)).to_contain_text(f"hẹn lại {day:%d/%m/%Y}")
    await t.shot("register", full_page=True)
    async with page.expect_download() as info:
        await page.locator("#register-csv").click()
    table = (await (await info.value).path()).read_bytes().decode("utf-8")
    assert table.startswith("\ufeffSTT,Mã hồ sơ,") and len(table.strip().splitlines()) == 4
    await page.locator("#register-print").click()
    [sheet] = await printed(page, 1, LANDSCAPE)
    for text in ("SỔ THEO DÕI HỒ SƠ", late["code"], "Ma Văn Dũng", "Thiếu giấy chứng sinh",
                 "Không được tiếp nhận", "Đúng hạn"):
        assert text in sheet, (text, sheet)

    await t.goto("/stats")
    total = page.locator("#report-total")
    await expect(total.locator('[data-count="refused"]')).to_have_text("1")
    await expect(total.locator('[data-count="apologies"]')).to_have_text("1")
    await expect(total.locator('[data-count="received_total"]')).to_have_text("2")
    await t.shot("stats-report", full_page=True)
    await page.locator("#report-print").click()
    [report] = await printed(page, 1, LANDSCAPE)
    assert "BÁO CÁO TÌNH HÌNH TIẾP NHẬN VÀ GIẢI QUYẾT HỒ SƠ" in report
    assert "Từ chối tiếp nhận" in report and "Phiếu xin lỗi, hẹn lại" in report
    t.assert_clean()


async def test_a_likely_duplicate_is_flagged_with_a_link_and_received_deliberately(
        edge: EdgeHandle, browser: Browser, shots: Path) -> None:
    t = await tab(browser, edge.api.base, shots, "clerk1")
    page = t.page
    for attempt in range(2):
        await t.goto("/dossiers/new?procedure=1.001193")
        await fill_birth(page)
        await page.get_by_role("button", name=re.compile("Lưu hồ sơ")).click()
        if attempt == 0:
            await page.wait_for_url(re.compile(r"\?new=1$"))
            first = await dossier_id(page)
    await expect(page.locator("#duplicates")).to_be_visible()
    assert t.errors == ["Failed to load resource: the server responded with a status of 409 "
                        "(Conflict)"], t.errors
    t.errors.clear()
    link = page.locator("#duplicates a")
    await expect(link).to_have_attribute("href", f"/dossiers/{first}")
    await expect(page.locator("#f-fields-child_full_name")).to_have_value("Nguyễn Văn Bình")
    await t.shot("intake-duplicate", full_page=True)
    await page.locator("#dup-go-on").click()
    await page.wait_for_url(re.compile(r"\?new=1$"))
    assert await dossier_id(page) != first
    await expect(page.locator("ol.timeline")).to_contain_text("dù có thể trùng với")
    t.assert_clean()



async def test_the_users_page_names_staff_and_form_01_is_signed_with_it(
        edge: EdgeHandle, browser: Browser, shots: Path) -> None:
    admin = await tab(browser, edge.api.base, shots, "admin1")
    page = admin.page
    await page.get_by_role("link", name="Người dùng").click()
    await page.locator("#name-clerk1").fill("Hoàng Thị Hoa")
    await page.locator("#position-clerk1").fill("Công chức Tư pháp - Hộ tịch")
    await page.locator("#position-clerk1").press("Enter")
    await expect(page.locator(".flash")).to_contain_text("Đã lưu họ tên và chức vụ của clerk1")
    await expect(page.locator("#name-clerk1")).to_have_value("Hoàng Thị Hoa")
    await admin.shot("users-identity", full_page=True)
    admin.assert_clean()

    t = await tab(browser, edge.api.base, shots, "clerk1")
    page = t.page
    await t.goto("/dossiers/new?procedure=1.001193")
    await fill_birth(page)
    await page.get_by_role("button", name=re.compile("Lưu hồ sơ")).click()
    await page.wait_for_url(re.compile(r"\?new=1$"))
    await page.keyboard.press("Enter")  # the receipt, focused
    await page.wait_for_url(re.compile(r"/receipt$"))
    first, _ = await printed(page, 2)
    signed = first.split("NGƯỜI TIẾP NHẬN HỒ SƠ")[1]
    assert "Hoàng Thị Hoa" in signed and "Công chức Tư pháp - Hộ tịch" in signed, signed
    assert "clerk1" not in first
    t.assert_clean()


async def test_the_list_pages_both_ways_and_finds_a_dossier_by_the_childs_name(
        edge: EdgeHandle, browser: Browser, shots: Path) -> None:
    for i in range(52):
        await create(edge, i)
    child = await create(edge, 60, child_full_name="Lò Văn Khánh", child_birth_date="2025-09-30")
    t = await tab(browser, edge.api.base, shots, "clerk1")
    page = t.page
    await page.keyboard.press("Alt+l")
    await page.wait_for_url(re.compile(r"/dossiers$"))
    await expect(page.locator("#list-total")).to_contain_text("Tìm thấy 53 hồ sơ")
    await expect(page.locator("#list-total")).to_contain_text("Trang 1/2")
    rows = page.locator("table.dossiers tbody tr")
    await expect(rows).to_have_count(50)
    newest = await rows.first.locator("td.code").inner_text()
    await expect(page.locator('a[rel="prev"]')).to_have_count(0)
    await page.locator('a[rel="next"]').click()
    await expect(rows).to_have_count(3)
    await expect(page.locator("#list-total")).to_contain_text("hồ sơ 51–53 · Trang 2/2")
    await t.shot("list-paging", full_page=True)
    await page.locator('a[rel="prev"]').click()
    await expect(rows).to_have_count(50)
    await expect(rows.first.locator("td.code")).to_have_text(newest)
    await page.get_by_role("link", name="Trang 2").click()
    await expect(page.locator('.pager [aria-current="page"]')).to_have_text("2")

    await expect(page.locator("#q")).to_be_focused()  # the list's own search box
    await page.keyboard.type("lo van khanh")
    await page.keyboard.press("Enter")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text(child["code"])
    await expect(rows.first).to_contain_text("Họ, chữ đệm, tên: Lò Văn Khánh")
    await page.locator("#q").fill("30/09/2025")
    await page.locator("#q").press("Enter")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Ngày, tháng, năm sinh: 30/09/2025")
    t.assert_clean()
