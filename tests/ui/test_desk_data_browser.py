"""Issue 18's "loses or hides data" in a real browser (Debian's Chromium) against a real edge and hub
on loopback: one scan for two documents and a document without a scan, all on form 01 (printed to
PDF and read back); a refused form that keeps the chosen scans, and the same rules checked in the
browser first; conflicts marked wherever a field is shown, with the value before, without holding
up the moves that do not depend on them; a returned dossier amended only by a leader, with a reason.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright.async_api", reason="pip install playwright (the dev extra)")
pytest.importorskip("pypdf", reason="pip install pypdf (the dev extra)")

import pypdf
from playwright.async_api import Browser, Page, expect

from tests.harness import PASSWORD, EdgeHandle, Net
from tests.ui.browser import CHROMIUM, Tab
from tests.ui.seed import create, make_conflict, move

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no Chromium at {CHROMIUM}: apt-get install -y chromium fonts-noto-core")

STACK = b"%PDF-1.4\n% one scanned stack: the birth certificate and the declaration\n%%EOF\n"
PHOTO = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
ADDRESS = "Thôn Nà Khá, xã Côn Lôn"


async def tab(browser: Browser, base: str, shots: Path, user: str) -> Tab:
    t = await Tab.open(browser, base, shots)
    await t.login(user)
    return t


async def fill_birth(page: Page, citizen_id: str = "008090001234") -> None:
    """The applicant and the child, as a clerk types them."""
    for name, value in (("applicant-full_name", "Nguyễn Văn An"),
                        ("applicant-citizen_id", citizen_id), ("applicant-phone", "0912345678"),
                        ("applicant-address", ADDRESS), ("fields-relationship", "Cha"),
                        ("fields-child_full_name", "Nguyễn Văn Bình"),
                        ("fields-child_birth_date", "20/11/2025"),
                        ("fields-child_ethnicity", "Tày"), ("fields-child_nationality", "Việt Nam"),
                        ("fields-child_birth_place", "Trạm y tế xã Côn Lôn")):
        await page.locator(f"#f-{name}").fill(value)
    await page.locator("#f-fields-child_sex").select_option("Nam")


async def document(page: Page, i: int, name: str, kind: str, count: int = 1,
                   scan: tuple[str, bytes] | None = None) -> None:
    """Fill row `i` of the documents table (adding rows as a clerk would)."""
    while await page.locator(".doc-row").count() <= i:
        await page.locator("#add-doc").click()
    await page.locator(f"#doc_label_{i}").fill(name)
    await page.locator(f"#doc_kind_{i}").select_option(kind)
    await page.locator(f"#doc_count_{i}").fill(str(count))
    if scan:
        mime = "application/pdf" if scan[0].endswith(".pdf") else "image/png"
        await page.locator(f"#doc_file_{i}").set_input_files(
            {"name": scan[0], "mimeType": mime, "buffer": scan[1]})


def pdf_text(pdf: bytes) -> list[str]:
    """The text of each page of a PDF Chromium printed, spaces squeezed."""
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return [" ".join((p.extract_text() or "").split()) for p in reader.pages]


async def print_receipt(page: Page) -> list[str]:
    """Form 01 as the printer gets it: A4, two copies, one page each; their text."""
    pdf = await page.pdf(format="A4", print_background=False)
    pages = pdf_text(pdf)
    assert len(pages) == 2, pages
    assert pages[0] == pages[1].replace("Bản giao người nộp hồ sơ", "Bản lưu tại Bộ phận một cửa")
    return pages


async def dossier_id(page: Page) -> str:
    match = re.search(r"/dossiers/([0-9a-f-]{36})", page.url)
    assert match, page.url
    return match.group(1)


async def test_one_scan_for_two_documents_and_one_on_paper_all_reach_form_01(
        net: Net, edge: EdgeHandle, browser: Browser, shots: Path) -> None:
    assert net.hub is not None
    t = await tab(browser, edge.api.base, shots, "clerk1")
    page = t.page
    await t.goto("/dossiers/new?procedure=1.001193")
    await fill_birth(page)
    await document(page, 0, "Giấy chứng sinh", "bản chính", 1, ("ho-so.pdf", STACK))
    await document(page, 1, "Tờ khai đăng ký khai sinh", "bản chính", 1, ("ho-so.pdf", STACK))
    await document(page, 2, "Giấy chứng nhận kết hôn của cha mẹ", "bản sao", 2)  # no scanner
    await page.get_by_role("button", name=re.compile("Lưu hồ sơ")).click()
    await page.wait_for_url(re.compile(r"\?new=1$"))
    files = page.locator("ul.files li")
    await expect(files).to_have_count(3)
    await expect(files.nth(0)).to_contain_text("Giấy chứng sinh")
    await expect(files.nth(1)).to_contain_text("Tờ khai đăng ký khai sinh")
    await expect(files.nth(2)).to_contain_text("bản sao · 2 bản")
    await expect(files.nth(2)).to_contain_text("chưa có bản quét")

    did = await dossier_id(page)
    _, view = await edge.api.get(f"/api/dossiers/{did}")
    sha = hashlib.sha256(STACK).hexdigest()
    assert [(a["document"], a["sha256"]) for a in view["attachments"]] == [
        ("Giấy chứng sinh", sha), ("Tờ khai đăng ký khai sinh", sha),
        ("Giấy chứng nhận kết hôn của cha mẹ", None)]
    assert len({a["id"] for a in view["attachments"]}) == 3

    await page.locator("#print-receipt").click()
    await page.wait_for_url(re.compile(r"/receipt$"))
    rows = page.locator("article.sheet").first.locator("table.docs tbody tr")
    await expect(rows).to_have_count(3)
    await expect(rows.nth(2)).to_contain_text("Giấy chứng nhận kết hôn của cha mẹ")
    first, _ = await print_receipt(page)
    for text in ("GIẤY TIẾP NHẬN HỒ SƠ VÀ HẸN TRẢ KẾT QUẢ", view["code"], "Nguyễn Văn An", ADDRESS,
                 "1 Giấy chứng sinh bản chính 01", "2 Tờ khai đăng ký khai sinh bản chính 01",
                 "3 Giấy chứng nhận kết hôn của cha mẹ bản sao 02"):
        assert text in first, (text, first)

    # the province sees the same three documents (one blob moved once)
    await edge.sync()
    status, at_hub = await net.hub.api.get(f"/api/dossiers/{did}")
    assert status == 200 and [a["document"] for a in at_hub["attachments"]] == [
        a["document"] for a in view["attachments"]]
    op = await tab(browser, net.hub.url, shots, "op")
    await op.goto(f"/dossiers/{did}")
    await expect(op.page.locator("ul.files li")).to_have_count(3)
    await expect(op.page.locator("ul.files")).to_contain_text("chưa có bản quét")
    t.assert_clean()
    op.assert_clean()


async def test_a_refused_form_keeps_the_chosen_scans_and_the_browser_checks_first(
        edge: EdgeHandle, browser: Browser, shots: Path) -> None:
    t = await tab(browser, edge.api.base, shots, "clerk1")
    page = t.page
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    await t.goto("/dossiers/new?procedure=1.001193")
    await fill_birth(page)
    await document(page, 0, "Giấy chứng sinh", "bản chính", 1, ("gcs.pdf", STACK))
    await document(page, 1, "Căn cước của người đi đăng ký", "bản chụp", 1,
                   ("cccd.pdf", b"PK\x03\x04 a renamed office file"))  # not what it says
    await document(page, 2, "Tờ khai", "bản chính", 0)
    await page.get_by_role("button", name=re.compile("Lưu hồ sơ")).click()
    await expect(page.locator("#doc_file_1-e")).to_have_text(
        "Chỉ đính kèm được tệp PDF, JPEG hoặc PNG.")
    await expect(page.locator("#doc_count_2-e")).to_contain_text("từ 1 đến 99")
    await expect(page.locator("#error-summary")).to_be_visible()
    assert posts == [], posts  # the browser stopped it: nothing was sent
    await page.locator("#doc_file_1").set_input_files(
        {"name": "cccd.png", "mimeType": "image/png", "buffer": PHOTO})
    await page.locator("#doc_count_2").fill("1")
    await expect(page.locator("#doc_count_2-e")).to_have_text("")

    # a rule only the server knows (here: the page's check bypassed): refused, scans kept
    await page.locator("#f-applicant-citizen_id").fill("008290001234")
    async with page.expect_navigation():
        await page.evaluate("document.getElementById('intake').submit()")
    assert "/dossiers/new" in page.url
    assert t.errors == ["Failed to load resource: the server responded with a status of 422 "
                        "(Unprocessable Entity)"], t.errors  # the refusal itself
    t.errors.clear()
    await expect(page.locator("#f-applicant-citizen_id-e")).to_contain_text("năm sinh ở tương lai")
    await expect(page.locator("#doc_kept_0")).to_contain_text("Đã giữ tệp gcs.pdf")
    await expect(page.locator("#doc_kept_1")).to_contain_text("Đã giữ tệp cccd.png")
    await expect(page.locator("#doc_label_2")).to_have_value("Tờ khai")
    await t.shot("intake-kept", full_page=True)
    await page.locator("#f-applicant-citizen_id").fill("008090001234")
    await page.get_by_role("button", name=re.compile("Lưu hồ sơ")).click()
    await page.wait_for_url(re.compile(r"\?new=1$"))
    _, view = await edge.api.get(f"/api/dossiers/{await dossier_id(page)}")
    assert [(a["document"], a["sha256"]) for a in view["attachments"]] == [
        ("Giấy chứng sinh", hashlib.sha256(STACK).hexdigest()),
        ("Căn cước của người đi đăng ký", hashlib.sha256(PHOTO).hexdigest()),
        ("Tờ khai", None)]
    t.assert_clean()


async def test_conflicts_are_marked_where_shown_and_hold_up_only_what_depends_on_them(
        net: Net, edge: EdgeHandle, browser: Browser, shots: Path) -> None:
    assert net.hub is not None
    d = await create(edge, 0)
    view = await make_conflict(net, edge, d)
    [conflict] = view["conflicts"]
    assert conflict["before"]["value"] == ADDRESS
    clerk = await tab(browser, edge.api.base, shots, "clerk1")
    page = clerk.page
    await clerk.goto(f"/dossiers/{d['id']}")
    shown = page.locator('dd[data-conflict="applicant.address"]')
    await expect(shown).to_contain_text("Xung đột")
    await expect(shown).to_contain_text("Thôn Nà Mạ, xã Côn Lôn")
    await expect(shown).to_contain_text("Thôn Bản Khuổi, xã Côn Lôn")
    await expect(shown).to_contain_text(f"Trước khi xung đột: {ADDRESS}")
    await expect(page.locator("#conflicts .before")).to_contain_text(ADDRESS)
    # a same-day dossier need not wait for a leader to start processing
    await page.get_by_role("button", name="Đang xử lý").click()
    await expect(page.locator(".flash-ok")).to_contain_text("Đang xử lý")
    approve = page.get_by_role("button", name="Đã xử lý xong")
    await expect(approve).to_be_disabled()
    await expect(page.locator('p.waits[data-waits="resolved"]')).to_contain_text("Nơi cư trú")
    await expect(page.get_by_role("button", name="Dừng xử lý")).to_be_enabled()

    await page.locator("#print-receipt").click()
    await page.wait_for_url(re.compile(r"/receipt$"))
    await expect(page.locator("#print-conflicts")).to_contain_text("Nơi cư trú")
    await expect(page.locator("#print-conflicts")).to_contain_text(ADDRESS)
    marked = page.locator('article.sheet [data-conflict="applicant.address"]')
    await expect(marked).to_have_count(2)
    await clerk.shot("receipt-conflict", full_page=True)
    first, _ = await print_receipt(page)
    assert "Nơi cư trú" not in first and "xung đột" not in first  # the notice stays on screen
    assert f"Địa chỉ: {view['applicant']['address']}" in first
    clerk.assert_clean()

    leader = await tab(browser, edge.api.base, shots, "leader1")
    await leader.goto(f"/dossiers/{d['id']}")
    await expect(leader.page.get_by_role("button", name="Đã xử lý xong")).to_be_disabled()
    await leader.shot("dossier-conflict-moves", full_page=True)
    leader.assert_clean()

    await edge.sync()
    op = await tab(browser, net.hub.url, shots, "op")
    await op.goto(f"/dossiers/{d['id']}")
    at_hub = op.page.locator('dd[data-conflict="applicant.address"]')
    await expect(at_hub).to_contain_text("Xung đột")
    await expect(at_hub).to_contain_text(f"Trước khi xung đột: {ADDRESS}")
    await expect(op.page.locator("form.resolve .before")).to_contain_text(ADDRESS)
    await op.shot("hub-dossier-conflict", full_page=True)
    op.assert_clean()


async def test_a_returned_dossier_is_amended_only_by_a_leader_with_a_reason(
        net: Net, edge: EdgeHandle, browser: Browser, shots: Path) -> None:
    assert net.hub is not None
    d = await move(edge, await create(edge, 1), "processing", "resolved", "returned")
    url = f"/api/dossiers/{d['id']}"
    change: dict[str, Any] = {"set": {"applicant.phone": "0987654321"}, "base": d["version"]}
    status, login = await edge.api.post("/api/login", {"username": "clerk1",
                                                       "password": PASSWORD})
    assert status == 200, login
    status, body = await edge.api.patch(url, change, token=login["token"])
    assert status == 422 and body["field"] == "reason", body  # a plain edit is refused…
    status, body = await edge.api.patch(url, {**change, "reason": "Sai số"},
                                        token=login["token"])
    assert status == 403 and "amend" in body["message"], body  # …and an amendment is a leader's

    clerk = await tab(browser, edge.api.base, shots, "clerk1")
    await clerk.goto(f"/dossiers/{d['id']}")
    await expect(clerk.page.locator("#edit-dossier")).to_have_count(0)
    await expect(clerk.page.locator(".amend-hint")).to_contain_text("chỉ lãnh đạo được đính chính")
    clerk.assert_clean()
    refused = await clerk.page.goto(f"{edge.api.base}/dossiers/{d['id']}/edit")
    assert refused is not None and refused.status == 403
    assert (await edge.api.get(url))[1]["applicant"]["phone"] == "0912345678"

    leader = await tab(browser, edge.api.base, shots, "leader1")
    page = leader.page
    await leader.goto(f"/dossiers/{d['id']}")
    await page.locator("#edit-dossier").click()
    await page.wait_for_url(re.compile(r"/edit$"))
    await expect(page.locator(".amend")).to_contain_text("Đã trả kết quả")
    await page.locator("#f-applicant-phone").fill("0987654321")
    await page.get_by_role("button", name="Lưu thay đổi").click()
    await expect(page.locator("#f-reason-e")).to_have_text("Ô này bắt buộc.")
    assert page.url.endswith("/edit")
    await page.locator("#f-reason").fill("Công dân báo sai số điện thoại")
    await page.get_by_role("button", name="Lưu thay đổi").click()
    await expect(page.locator(".flash")).to_contain_text("Đã lưu thay đổi")
    timeline = page.locator("ol.timeline li").first
    await expect(timeline).to_contain_text("Đính chính: Số điện thoại")
    await expect(timeline).to_contain_text("Công dân báo sai số điện thoại")
    await expect(timeline).to_contain_text("leader1")
    _, now = await edge.api.get(url)
    assert now["applicant"]["phone"] == "0987654321" and now["status"] == "returned"
    assert now["history"][-1]["reason"] == "Công dân báo sai số điện thoại"
    leader.assert_clean()

    await edge.sync()
    op = await tab(browser, net.hub.url, shots, "op")
    await op.goto(f"/dossiers/{d['id']}")
    await expect(op.page.locator("ol.history")).to_contain_text("Công dân báo sai số điện thoại")
    op.assert_clean()
