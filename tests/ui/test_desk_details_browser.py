"""Details a clerk meets in the first week, in a real browser (Debian's Chromium) against a real edge
and hub on loopback: "Đồng bộ ngay" with the hub down says so within a couple of seconds and shows
what the attempt does; a refused page is in the page's language; the file picker speaks Vietnamese;
catalogue values shown in English mode are marked as Vietnamese; the letterhead wraps as a whole."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

pytest.importorskip("playwright.async_api", reason="pip install playwright (the dev extra)")

from playwright.async_api import Browser, expect

from tests.harness import EdgeHandle, Net
from tests.ui.browser import CHROMIUM, Tab
from tests.ui.conftest import add_staff
from tests.ui.seed import create

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no Chromium at {CHROMIUM}: apt-get install -y chromium fonts-noto-core")

TRIED = re.compile(r"thử lúc (\d\d:\d\d:\d\d): máy chủ tỉnh không nhận kết nối")


async def tab(browser: Browser, edge: EdgeHandle, shots: Path, user: str) -> Tab:
    t = await Tab.open(browser, edge.api.base, shots)
    await t.login(user)
    return t


@pytest.fixture
async def silent() -> AsyncIterator[str]:
    """A server that takes connections and never answers (a hub hung, a link that eats replies)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    for writer in held:
        writer.close()
    server.close()


async def test_sync_now_with_the_hub_down_says_so_at_once_and_shows_the_attempt(
        net: Net, browser: Browser, shots: Path, silent: str) -> None:
    # the background loop as in service: a session every 30 s, backoff up to 5 minutes
    edge = await net.add_edge("02245", "Xã Côn Lôn", auto_sync=True)
    await add_staff(edge)
    t = await tab(browser, edge, shots, "clerk1")
    page = t.page
    state = page.locator("#sync [data-poll-part=state]")
    await expect(state).to_contain_text(re.compile(r"Đồng bộ lúc \d\d:\d\d$"), timeout=10_000)
    edge.cut()  # nothing listens there: the connection is refused
    await create(edge, 1)  # the write's own attempt fails and backs off
    await expect(state).to_contain_text(TRIED, timeout=10_000)
    first = TRIED.search(await state.inner_text())
    assert first is not None
    await asyncio.sleep(1.1)  # the next attempt ends in another second
    pressed = time.monotonic()
    await page.get_by_role("button", name="Đồng bộ ngay").click()
    await expect(state).not_to_contain_text(first.group(0), timeout=5_000)
    await expect(state).to_contain_text(TRIED)
    took = time.monotonic() - pressed
    assert took < 2.5, f"a refused connection took {took:.1f} s to show"
    await expect(state).to_contain_text("Mất kết nối — 1 thay đổi chờ gửi")
    await expect(page.locator("#sync")).to_have_class(re.compile("level-danger"))
    await t.shot("sync-refused")

    # a hub that takes the connection and never answers: the attempt shows what it does, and
    # ends at the link's timeout
    edge.client.config = dataclasses.replace(edge.client.config, hub_url=silent,
                                             request_timeout_s=3)
    await page.get_by_role("button", name="Đồng bộ ngay").click()
    await expect(state).to_contain_text("Đang gửi 1 thay đổi lên tỉnh…", timeout=3_000)
    await expect(page.locator("#sync")).to_have_class(re.compile("level-busy"))
    await t.shot("sync-sending")
    await expect(state).to_contain_text("tỉnh không trả lời kịp", timeout=8_000)
    t.assert_clean()


async def test_a_refused_page_the_file_box_and_catalogue_values_speak_the_page_language(
        net: Net, browser: Browser, shots: Path) -> None:
    edge = await net.add_edge("02245", "Xã Côn Lôn")
    await add_staff(edge)
    admin = await tab(browser, edge, shots, "admin1")
    response = await admin.page.goto(edge.api.base + "/dossiers/new?procedure=1.001193")
    assert response is not None and response.status == 403
    body = admin.page.locator("main")
    await expect(body.locator("h1")).to_have_text("Bạn không có quyền thực hiện việc này")
    await expect(body.locator(".detail")).to_have_text(
        "Vai trò của bạn (Quản trị) không được tiếp nhận hồ sơ. Việc này cần vai trò Cán bộ "
        "một cửa hoặc Lãnh đạo; hãy nhờ người có vai trò đó, hoặc báo quản trị.")
    await admin.shot("forbidden")
    await admin.page.get_by_role("button", name="English").click()
    await expect(body.locator(".detail")).to_contain_text(
        "Your role (Administrator) may not receive dossiers. That needs the role One-stop "
        "clerk or Leader")
    admin.errors.clear()  # the 403 answers themselves, as they should be

    clerk = await tab(browser, edge, shots, "clerk1")
    page = clerk.page
    await clerk.goto("/dossiers/new?procedure=1.001193")
    pick = page.locator("#doc_file_0")
    button = page.locator("label.file-button[for=doc_file_0]")
    await expect(button).to_have_text("Chọn tệp…")
    await expect(page.locator(".file-pick .file-name").first).to_have_text("Chưa chọn tệp")
    await expect(pick).to_have_accessible_name(re.compile(r"^Tệp quét.* 1 Chọn tệp…$"))
    await pick.focus()  # still reached by Tab, and opens the chooser with Space
    assert await pick.evaluate("el => document.activeElement === el")
    await pick.set_input_files(files=[{"name": "giay-chung-sinh.pdf", "mimeType":
                                       "application/pdf", "buffer": b"%PDF-1.4\n%%EOF\n"}])
    await expect(page.locator(".file-pick .file-name").first).to_have_text("giay-chung-sinh.pdf")
    await clerk.shot("file-pick")
    assert not await page.locator(".vi-mark").count()  # Vietnamese page: nothing to mark

    await page.get_by_role("button", name="English").click()
    await expect(button).to_have_text("Choose a file…")
    sex = page.locator("select[name='fields.child_sex']")
    await expect(sex).to_have_attribute("lang", "vi")
    await expect(page.locator("label[for='f-fields-child_sex'] .vi-mark")).to_have_text(
        "(tiếng Việt)")
    await expect(page.locator("#doc_kind_0")).to_have_attribute("lang", "vi")
    await expect(page.locator(".vi-note")).to_contain_text("in Vietnamese")
    clerk.assert_clean()


LINES = """el => Array.from(el.querySelectorAll('.keep')).map(k => {
  const rects = Array.from(k.getClientRects());
  return [k.textContent, rects.length, Math.round(rects[0].top)];
})"""


async def test_the_letterhead_wraps_the_office_name_between_its_halves(
        net: Net, browser: Browser, shots: Path) -> None:
    edge = await net.add_edge("02245", "Xã Côn Lôn")
    await add_staff(edge)
    dossier = await create(edge, 1)
    t = await tab(browser, edge, shots, "clerk1")
    for what in ("receipt",):  # form 02 prints the same letterhead (print_base.html)
        await t.goto(f"/dossiers/{dossier['id']}/{what}")
        # on screen the sheet is drawn 210 mm wide; printed, A4 less its margins (174 mm)
        for media, width in (("screen", 1366), ("print", 658)):
            await t.page.set_viewport_size({"width": width, "height": 768})
            await t.page.emulate_media(media=media)  # type: ignore[arg-type]
            office = t.page.locator(".sheet .letterhead .office").first
            (head, n1, top1), (tail, n2, top2) = await office.evaluate(LINES)
            assert (head, tail) == ("BỘ PHẬN TIẾP NHẬN", "VÀ TRẢ KẾT QUẢ")
            assert n1 == n2 == 1 and top2 > top1, (what, media, n1, n2, top1, top2)
    await t.page.emulate_media(media="screen")
    await t.page.set_viewport_size({"width": 1366, "height": 768})
    await t.shot("letterhead")
    t.assert_clean()
