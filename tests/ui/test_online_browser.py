"""Online intake in a real browser (Debian's Chromium) against a real hub and desk on loopback: a
citizen files a birth registration with a photo on a phone 360 px wide and keeps the code, the
tracking check and the QR code; they look it up on /track (a wrong check finds nothing); the clerk
answers it from the desk's online inbox by keyboard, and the citizen's tracking page shows the
acceptance with its appointment, or the documents asked for. Screenshots: docs/screenshots/online-*.png
(UI_SCREENSHOTS=1)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

pytest.importorskip("playwright.async_api", reason="pip install playwright (the dev extra)")

from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.harness import EdgeHandle, Net
from tests.ui.browser import CHROMIUM, Tab
from tests.ui.conftest import add_staff

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no Chromium at {CHROMIUM}: apt-get install -y chromium fonts-noto-core")

PHONE = {"width": 360, "height": 740}
PHOTO = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


class Phone:
    """A citizen's phone: a narrow, touch viewport in Vietnamese, errors collected."""

    def __init__(self, context: BrowserContext, page: Page, base: str) -> None:
        self.context, self.page, self.base = context, page, base
        self.errors: list[str] = []
        # a page answered 404 (a lookup that finds nothing) logs "Failed to load resource":
        # failed loads are told by the responses instead, documents left out
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error"
                and not m.text.startswith("Failed to load resource") else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("response", lambda r: self.errors.append(f"{r.status} {r.url}")
                if r.status >= 400 and r.request.resource_type != "document" else None)

    async def goto(self, path: str) -> None:
        await self.page.goto(self.base + path)

    async def fits(self) -> None:
        """Nothing wider than the screen: no sideways scrolling."""
        width = await self.page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{self.page.url} is {width} px wide"

    async def shot(self, shots: Path, name: str) -> None:
        shots.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


@pytest.fixture
async def phone(browser: Browser, net: Net) -> AsyncIterator[Phone]:
    assert net.hub is not None
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True,
                                        device_scale_factor=2, locale="vi-VN",
                                        timezone_id="Asia/Ho_Chi_Minh")
    try:
        yield Phone(context, await context.new_page(), net.hub.url)
    finally:
        await context.close()


@pytest.fixture
async def desk(net: Net) -> EdgeHandle:
    edge = await net.add_edge("02245", "Xã Côn Lôn")
    await add_staff(edge)
    return edge


async def file_birth(phone: Phone, shots: Path | None = None) -> dict[str, str]:
    """File a birth registration from /submit; the code and check the page gives back."""
    page = phone.page
    await phone.goto("/submit")
    await phone.fits()
    await page.get_by_label("Xã, phường giải quyết hồ sơ").select_option("02245")
    await page.get_by_label(re.compile("Đăng ký khai sinh")).check()
    if shots:
        await phone.shot(shots, "online-submit-pick")
    await page.get_by_role("button", name="Tiếp tục").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("khai sinh")
    await phone.fits()
    values = {"Họ và tên": "Nguyễn Văn An", "Số định danh cá nhân (CCCD)": "008090001234",
              "Số điện thoại": "0912345678", "Địa chỉ": "Thôn Nà Khá, xã Côn Lôn"}
    for label, value in values.items():
        await page.get_by_label(re.compile(f"^{re.escape(label)}")).fill(value)
    form = page.locator("#filing")
    for name, value in (("relationship", "Cha"), ("child_full_name", "Nguyễn Văn Bình"),
                        ("child_birth_date", "2025-11-20"), ("child_ethnicity", "Tày"),
                        ("child_nationality", "Việt Nam"),
                        ("child_birth_place", "Trạm y tế xã Côn Lôn")):
        await form.locator(f'[name="fields.{name}"]').fill(value)
    await form.locator('[name="fields.child_sex"]').select_option("Nam")
    await page.get_by_label("Tên giấy tờ 1").fill("Giấy chứng sinh")
    await page.get_by_label("Tệp giấy tờ 1").set_input_files(
        {"name": "giay-chung-sinh.png", "mimeType": "image/png", "buffer": PHOTO})
    if shots:
        await phone.shot(shots, "online-submit-form")
    await page.get_by_role("button", name="Nộp hồ sơ").click()
    await page.wait_for_url(re.compile(r"/track\?code=.*&new=1"))
    code = (await page.locator("#new-code").inner_text()).strip()
    check = (await page.locator("#new-check").inner_text()).strip()
    assert re.fullmatch(r"08\.DVC-\d{6}-\d{4}", code), code
    await expect(page.locator("#confirmation svg.qr")).to_be_visible()
    await expect(page.locator("#status-label")).to_have_text("Mới đăng ký")
    await phone.fits()
    return {"code": code, "check": check}


async def look_up(phone: Phone, code: str, check: str) -> None:
    await phone.goto("/track")
    await phone.page.get_by_label("Mã hồ sơ").fill(code)
    await phone.page.get_by_label("Mã tra cứu").fill(check)
    await phone.page.get_by_role("button", name="Tra cứu").click()


async def test_a_citizen_files_on_a_phone_and_tracks_it(phone: Phone, desk: EdgeHandle,
                                                         shots: Path) -> None:
    filed = await file_birth(phone, shots)
    await phone.shot(shots, "online-filed")
    # later, typed by hand: the check in lower case without its dash still finds it
    await look_up(phone, filed["code"], filed["check"].lower().replace("-", ""))
    await expect(phone.page.locator("#status-label")).to_have_text("Mới đăng ký")
    await expect(phone.page.locator("#due")).to_contain_text("Chưa có")
    await phone.fits()
    await look_up(phone, filed["code"], "ZZZZZ-ZZZZZ")
    await expect(phone.page.locator("#not-found")).to_be_visible()
    await expect(phone.page.locator("#status")).to_have_count(0)
    # the switch to English, kept for the next page
    await phone.page.get_by_role("button", name="English").click()
    await expect(phone.page.get_by_role("heading", level=1)).to_have_text("Track a dossier")
    await look_up_en(phone, filed)
    await expect(phone.page.locator("#status-label")).to_have_text("Submitted")
    await phone.fits()
    assert not phone.errors, phone.errors
    # it reached the desk's inbox with its scan
    await desk.sync()
    status, page = await desk.api.get("/api/dossiers?status=submitted")
    assert status == 200 and [d["code"] for d in page["items"]] == [filed["code"]], page
    assert page["items"][0]["attachments"][0]["document"] == "Giấy chứng sinh"


async def look_up_en(phone: Phone, filed: dict[str, str]) -> None:
    await phone.page.get_by_label("Dossier code").fill(filed["code"])
    await phone.page.get_by_label("Tracking check").fill(filed["check"])
    await phone.page.get_by_role("button", name="Look up").click()


async def test_a_refused_form_says_why_and_keeps_what_was_typed(phone: Phone,
                                                                 desk: EdgeHandle) -> None:
    page = phone.page
    await phone.goto("/submit?commune=02245&procedure=1.001193")
    # the browser's own checks are skipped, so the hub's are seen
    await page.evaluate("document.getElementById('filing').noValidate = true")
    await page.get_by_label(re.compile("^Họ và tên")).fill("Nguyễn Văn An")
    await page.get_by_label(re.compile(r"^Số định danh cá nhân \(CCCD\)")).fill("123")
    await page.get_by_role("button", name="Nộp hồ sơ").click()
    await expect(page.locator("#form-errors")).to_be_visible()
    field = page.get_by_label(re.compile(r"^Số định danh cá nhân \(CCCD\)"))
    await expect(field).to_have_attribute("aria-invalid", "true")
    await expect(page.locator(".error-text")).to_contain_text("12 chữ số")
    await expect(page.get_by_label(re.compile("^Họ và tên"))).to_have_value("Nguyễn Văn An")
    await phone.fits()
    assert not phone.errors, phone.errors


async def answer(browser: Browser, desk: EdgeHandle, shots: Path, kind: str,
                 note: str = "") -> Tab:
    """A clerk opens the online inbox by keyboard and answers its only filing."""
    t = await Tab.open(browser, desk.api.base, shots)
    await t.login("clerk1")
    await t.page.keyboard.press("Alt+I")
    await t.page.wait_for_url(re.compile(r"/inbox$"))
    await expect(t.page.locator("#inbox tbody tr")).to_have_count(1)
    await t.shot("online-inbox")
    await t.page.locator("#inbox tbody a").first.click()
    await t.page.wait_for_url(re.compile(r"/inbox/[0-9a-f-]+$"))
    if kind == "accept":
        await t.shot("online-inbox-dossier", full_page=True)
        await t.page.keyboard.press("Alt+A")
        await t.page.wait_for_url(re.compile(r"/dossiers/[0-9a-f-]+\?new=1$"))
        await expect(t.page.locator(".flash")).to_contain_text("Đã tiếp nhận hồ sơ")
    else:
        await t.page.locator("#supplement-note").fill(note)
        await t.page.locator("#ask-supplement").click()
        await t.page.wait_for_url(re.compile(r"/supplement$"))  # form 02, ready to print
    t.assert_clean()
    return t


async def test_the_clerk_accepts_from_the_inbox_and_tracking_shows_it(
        browser: Browser, phone: Phone, desk: EdgeHandle, shots: Path) -> None:
    filed = await file_birth(phone)
    await desk.sync()
    t = await answer(browser, desk, shots, "accept")
    due = await t.page.locator(".dossier-head .meta").nth(1).inner_text()
    await t.page.keyboard.press("Alt+P")  # the receipt, sent electronically
    await t.page.wait_for_url(re.compile(r"/receipt$"))
    await expect(t.page.locator(".filed-online").first).to_contain_text("nộp trực tuyến")
    await expect(t.page.locator(".track-line").first).to_contain_text(filed["check"])
    await t.shot("online-receipt", full_page=True)
    await t.context.close()
    await desk.sync()
    await look_up(phone, filed["code"], filed["check"])
    await expect(phone.page.locator("#status-label")).to_have_text("Được tiếp nhận")
    shown = await phone.page.locator("#due").inner_text()
    assert shown.strip() and shown.strip() in due, (shown, due)
    await phone.shot(shots, "online-tracked")


async def test_a_supplement_asked_from_the_inbox_is_listed_on_tracking(
        browser: Browser, phone: Phone, desk: EdgeHandle, shots: Path) -> None:
    filed = await file_birth(phone)
    await desk.sync()
    t = await answer(browser, desk, shots, "supplement",
                     "Giấy chứng sinh (bản chính)\nGiấy chứng nhận kết hôn của cha mẹ")
    await t.context.close()
    await desk.sync()
    await look_up(phone, filed["code"], filed["check"])
    await expect(phone.page.locator("#status-label")).to_have_text("Yêu cầu bổ sung giấy tờ")
    await expect(phone.page.locator("#missing li")).to_have_text(
        ["Giấy chứng sinh (bản chính)", "Giấy chứng nhận kết hôn của cha mẹ"])
    await phone.fits()


