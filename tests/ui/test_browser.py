"""The desk in a real browser (Debian's Chromium driven by Playwright), against a real edge and hub
on loopback: log in, register a birth by keyboard, print the receipt, walk a dossier to returned,
resolve a conflict, switch to English, and watch the sync indicator when the hub goes away."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

pytest.importorskip("playwright.async_api", reason="pip install playwright (the dev extra)")

from playwright.async_api import Browser, expect

from tests.harness import EdgeHandle, Net
from tests.ui.browser import CHROMIUM, Tab
from tests.ui.conftest import add_staff
from tests.ui.seed import create, seed_desk

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no Chromium at {CHROMIUM}: apt-get install -y chromium fonts-noto-core")

SCAN = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


async def tab(browser: Browser, edge: EdgeHandle, shots: Path, user: str | None = None) -> Tab:
    t = await Tab.open(browser, edge.api.base, shots)
    if user:
        await t.login(user)
    return t


async def type_into(t: Tab, text: str) -> None:
    """Type into the focused field, then Tab to the next one."""
    await t.page.keyboard.type(text)
    await t.page.keyboard.press("Tab")


def pdf_pages(pdf: bytes) -> list[tuple[float, float]]:
    """The page sizes (points) of a PDF written by Chromium."""
    count = len(re.findall(rb"/Type\s*/Page\b", pdf))
    boxes = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf)
    sizes = [(float(w), float(h)) for w, h in boxes]
    return sizes if len(sizes) == count else [(0.0, 0.0)] * count


async def test_register_a_birth_by_keyboard_and_print_the_receipt(
        edge: EdgeHandle, browser: Browser, shots: Path) -> None:
    t = await tab(browser, edge, shots, "clerk1")
    page = t.page
    await expect(page.locator("#sync")).to_be_visible()
    await page.keyboard.press("Alt+KeyN")  # access key of "Hồ sơ mới"
    await page.wait_for_url(re.compile(r"/dossiers/new$"))
    await expect(page.locator("a.procedure").first).to_be_focused()
    await page.keyboard.press("Enter")  # the first procedure: birth registration
    await page.wait_for_url(re.compile(r"procedure=1\.001193"))
    await expect(page.locator("#f-applicant-full_name")).to_be_focused()

    # applicant, with a citizen ID whose century digit gives a birth year in the future
    for text in ("Nguyễn Văn An", "008290001234", "0912 345 678", "Thôn Nà Khá, xã Côn Lôn",
                 "Cha", "Nguyễn Văn Bình", "20/11/2025", "Hai mươi tháng mười một năm hai nghìn"
                 " không trăm hai mươi lăm"):
        await type_into(t, text)
    await page.keyboard.type("N")  # the sex list: "Nam"
    await page.keyboard.press("Tab")
    for text in ("Tày", "Việt Nam", "Trạm y tế xã Côn Lôn", "Côn Lôn, Tuyên Quang",
                 "Hoàng Thị Cúc", "1995"):
        await type_into(t, text)
    await page.locator("#doc_label_0").fill("Giấy chứng sinh")
    await page.locator("#doc_file_0").set_input_files(
        {"name": "giay-chung-sinh.pdf", "mimeType": "application/pdf", "buffer": SCAN})
    await page.locator("#f-applicant-full_name").focus()
    await page.keyboard.press("Enter")  # Enter submits; the browser-side check stops it
    await expect(page.locator("#f-applicant-citizen_id-e")).to_contain_text("năm sinh ở tương lai")
    await expect(page.locator("#f-applicant-citizen_id")).to_be_focused()
    assert "/dossiers/new" in page.url
    await page.keyboard.press("Control+A")
    await page.keyboard.type("008090001234")
    await page.locator("#f-applicant-full_name").focus()
    await t.shot("new-dossier")
    await page.keyboard.press("Enter")

    await page.wait_for_url(re.compile(r"/dossiers/[0-9a-f-]{36}\?new=1$"))
    code = (await page.locator("#dossier-code").inner_text()).strip()
    assert re.fullmatch(r"02245\.01-\d{6}-0001", code), code
    await expect(page.locator(".flash")).to_contain_text(code)
    await expect(page.locator("#print-receipt")).to_be_focused()
    entry = page.locator("ul.files li").first
    await expect(entry.get_by_role("link", name="Giấy chứng sinh")).to_be_visible()
    await expect(entry).to_contain_text("bản chính · 1 bản")
    await page.keyboard.press("Enter")

    await page.wait_for_url(re.compile(r"/receipt$"))
    sheets = page.locator("article.sheet")
    await expect(sheets).to_have_count(2)
    first = sheets.first
    await expect(first.locator(".dossier-code")).to_have_text(code)
    assert await first.locator("svg.qr path").count() == 1
    await expect(first.locator(".applicant")).to_have_text("Nguyễn Văn An")
    await expect(first).to_contain_text("UBND XÃ CÔN LÔN")
    await expect(first).to_contain_text("GIẤY TIẾP NHẬN HỒ SƠ VÀ HẸN TRẢ KẾT QUẢ")
    await expect(first).to_contain_text("Giấy chứng sinh")
    await expect(first).to_contain_text("bản chính")
    due = edge.store.now_ms()
    status, view = await edge.api.get(f"/api/dossiers/{page.url.split('/')[-2]}")
    assert status == 200, view
    hh, mm = view["due_at"][11:13], view["due_at"][14:16]
    y, m, d = view["due_at"][:4], view["due_at"][5:7], view["due_at"][8:10]
    await expect(first.locator(".appointment")).to_contain_text(
        f"{hh} giờ {mm} phút, ngày {d} tháng {m} năm {y}")
    assert due > 0
    await t.shot("receipt", full_page=True)
    pdf = await page.pdf(format="A4", print_background=False)
    sizes = pdf_pages(pdf)
    assert len(sizes) == 2, sizes  # two copies, one page each
    for w, h in sizes:
        assert abs(w - 595) < 2 and abs(h - 842) < 2, sizes  # A4 portrait in points
    t.assert_clean()


async def test_a_clerk_processes_and_a_leader_approves_until_returned(
        edge: EdgeHandle, browser: Browser, shots: Path) -> None:
    d = await create(edge, 1)
    clerk = await tab(browser, edge, shots, "clerk1")
    page = clerk.page
    await clerk.goto(f"/dossiers/{d['id']}")
    await page.get_by_role("button", name="Đang xử lý").click()
    await expect(page.locator(".flash")).to_contain_text("Đang xử lý")
    approve = page.get_by_role("button", name="Đã xử lý xong")
    await expect(approve).to_be_disabled()  # only a leader approves
    await expect(page.get_by_text("Chỉ lãnh đạo được duyệt kết quả").first).to_be_visible()
    clerk.assert_clean()

    leader = await tab(browser, edge, shots, "leader1")
    page = leader.page
    await leader.goto(f"/dossiers/{d['id']}")
    await page.locator("#note").fill("Đã ký giấy khai sinh")
    await page.get_by_role("button", name="Đã xử lý xong").click()
    await expect(page.locator(".flash")).to_contain_text("Đã xử lý xong")
    await expect(page.locator("#collected-by")).to_have_value(d["applicant"]["full_name"])
    await page.locator("#id-document").fill("Căn cước 008090000001")  # the hand-over
    await page.get_by_role("button", name="Đã trả kết quả").click()
    await expect(page.locator(".dossier-head")).to_contain_text("Đã trả kết quả")
    await expect(page.locator(".moves")).to_have_count(0)  # final: nothing more to do
    timeline = page.locator("ol.timeline")
    await expect(timeline).to_contain_text("Đang xử lý → Đã xử lý xong")
    await expect(timeline).to_contain_text("leader1")
    await expect(timeline).to_contain_text("clerk1")
    await expect(timeline).to_contain_text("Đã ký giấy khai sinh")
    _status, view = await edge.api.get(f"/api/dossiers/{d['id']}")
    assert view["status"] == "returned"
    assert [h.get("to") for h in view["history"] if h["kind"] == "transition"] == [
        "processing", "resolved", "returned"]
    leader.assert_clean()


async def test_a_leader_resolves_a_conflict_between_commune_and_province(
        net: Net, edge: EdgeHandle, browser: Browser, shots: Path) -> None:
    seeded = await seed_desk(net, edge)
    d = seeded["conflicted"]
    clerk = await tab(browser, edge, shots, "clerk1")
    await clerk.goto(f"/dossiers/{d['id']}")
    await expect(clerk.page.get_by_role("button", name="Giữ giá trị này").first).to_be_disabled()
    clerk.assert_clean()

    leader = await tab(browser, edge, shots, "leader1")
    page = leader.page
    await leader.goto(f"/dossiers/{d['id']}")
    panel = page.locator("#conflicts")
    await expect(panel).to_contain_text("Nơi cư trú")
    rows = panel.locator("tbody tr")
    await expect(rows).to_have_count(2)
    await expect(panel).to_contain_text("Thôn Nà Mạ, xã Côn Lôn")
    await expect(panel).to_contain_text("Thôn Bản Khuổi, xã Côn Lôn")
    await expect(panel).to_contain_text("Tỉnh")
    await expect(panel).to_contain_text("Xã")
    await expect(panel).to_contain_text("op")  # the province's operator wrote one value
    await leader.shot("dossier-conflict")
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    hub_row = rows.filter(has_text="Thôn Nà Mạ")
    await hub_row.get_by_role("button", name="Giữ giá trị này").click()
    await expect(page.locator(".flash")).to_contain_text("Đã giải quyết xung đột")
    await expect(page.locator("#conflicts")).to_have_count(0)
    await expect(page.locator("dl.facts").first).to_contain_text("Thôn Nà Mạ, xã Côn Lôn")
    await edge.sync()
    assert net.hub is not None
    status, at_hub = await net.hub.api.get(f"/api/dossiers/{d['id']}")
    assert status == 200 and at_hub["conflicts"] == [], at_hub
    assert at_hub["applicant"]["address"] == "Thôn Nà Mạ, xã Côn Lôn"
    leader.assert_clean()


async def test_home_shows_the_days_work_and_switches_to_english(
        net: Net, edge: EdgeHandle, browser: Browser, shots: Path) -> None:
    await seed_desk(net, edge)
    _, listing = await edge.api.get("/api/dossiers?limit=100")
    overdue = sum(1 for item in listing["items"] if item["overdue"])  # as protocol.calendar says
    assert overdue >= 2
    t = await tab(browser, edge, shots, "clerk1")
    page = t.page
    await expect(page.locator("#tile-today .tile-count")).to_have_text("4")
    await expect(page.locator("#tile-overdue .tile-count")).to_have_text(str(overdue))
    await expect(page.locator("#tile-supplement .tile-count")).to_have_text("1")
    await expect(page.locator("#tile-conflicts .tile-count")).to_have_text("1")
    await expect(page.locator("#list-overdue")).to_contain_text("Quá hạn")
    await expect(page.locator("#sync")).to_contain_text("Đồng bộ lúc")
    await t.shot("home")
    await page.get_by_role("button", name="English").click()
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await expect(page.locator("#tile-today")).to_contain_text("Received today")
    await expect(page.locator("nav.mainnav")).to_contain_text("New dossier")
    await expect(page.locator("#sync")).to_contain_text("Synced at")
    await t.shot("home-en")
    await t.goto("/dossiers?q=hoang thi")  # without diacritics
    await expect(page.locator("table.dossiers tbody tr")).to_have_count(1)
    await expect(page.locator("table.dossiers")).to_contain_text("Hoàng Thị Lan")
    await page.get_by_role("button", name="Tiếng Việt").click()
    await expect(page.locator("html")).to_have_attribute("lang", "vi")
    t.assert_clean()


async def test_the_sync_indicator_tells_the_truth_when_the_hub_goes_away(
        net: Net, browser: Browser, shots: Path) -> None:
    edge = await net.add_edge("02227", "Xã Sinh Long", auto_sync=True, sync_interval_s=1,
                              backoff_cap_s=2)
    await add_staff(edge)
    t = await tab(browser, edge, shots, "clerk1")
    sync = t.page.locator("#sync [data-poll-part=state]")
    await expect(sync).to_contain_text(re.compile(r"Đồng bộ lúc \d\d:\d\d$"), timeout=10_000)
    edge.cut()
    for i in range(3):
        await create(edge, i)
    await t.page.request.post(edge.api.base + "/api/sync")
    await expect(sync).to_contain_text(re.compile(r"Mất kết nối — \d+ thay đổi chờ gửi"),
                                       timeout=15_000)
    await expect(t.page.locator("#sync")).to_have_class(re.compile("level-danger"))
    await t.shot("offline")
    edge.heal()
    await expect(sync).to_contain_text(re.compile(r"Đồng bộ lúc \d\d:\d\d$"), timeout=15_000)
    await expect(sync).not_to_contain_text("chờ gửi")
    _status, body = await edge.api.get("/api/sync")
    assert body["pending_events"] == 0, body
    t.assert_clean()
