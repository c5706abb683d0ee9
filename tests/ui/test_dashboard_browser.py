"""The province's dashboard in a real browser (Debian's Chromium driven by Playwright), against a real
hub and communes on loopback: a commune whose link is cut turns warning then critical with its
reason and comes back to ok after it syncs; a conflict is resolved from the queue by keyboard; the
statistics CSV is downloaded. Screenshots: docs/screenshots/hub-*.png (UI_SCREENSHOTS=1)."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright.async_api", reason="pip install playwright (the dev extra)")

from playwright.async_api import Browser, expect

from central_hub.nodes.fleet import HOUR_MS
from central_hub.nodes.health import HealthRules
from central_hub.store import HubStore
from tests.central_hub.operator import start_hub
from tests.harness import EdgeHandle, HubHandle, Net, birth
from tests.ui.browser import CHROMIUM, Tab
from tests.ui.seed import citizen, make_conflict, move

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no Chromium at {CHROMIUM}: apt-get install -y chromium fonts-noto-core")

TINY = {"health": HealthRules(warn_no_contact_s=2, crit_no_contact_s=5), "health_check_s": 0.2}


@pytest.fixture
async def bare(tmp_path: Path) -> AsyncIterator[Net]:
    network = Net(tmp_path / "net")
    try:
        yield network
    finally:
        await network.close()


async def operator_tab(browser: Browser, hub: HubHandle, shots: Path) -> Tab:
    t = await Tab.open(browser, hub.url, shots)
    await t.login("op")
    return t


async def history(store: HubStore, node: str, hours: int = 30) -> None:
    """A day and more of exchanges every half hour for the charts: an afternoon without contact,
    then a backlog that drains, and two exchanges the hub refused."""
    now = store.now_ms()
    rows = []
    for k in range(hours * 2, 0, -1):
        phase = k % 48
        if 14 <= phase <= 19:
            continue  # the link was down: the hub heard nothing
        refused = phase in (12, 13)
        pending = max(0, (14 - phase) * 9) if phase < 14 and phase > 8 else k % 3
        rows.append((node, now - k * HOUR_MS // 2, int(not refused),
                     "body over the limit of 4194304 bytes" if refused else None,
                     300 if refused else 9000 + 500 * (k % 7), 0 if refused else 4000,
                     0 if refused else 3, 1, pending, 60 * pending, 5, 40 + k % 5 * 10))
    async with store.lock:
        await store.conn.executemany(
            "INSERT INTO node_sessions VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)


def row(t: Tab, edge: EdgeHandle) -> Any:
    return t.page.locator(f'#fleet tr[data-node="{edge.config.node}"]')


async def reload_until(t: Tab, edge: EdgeHandle, health: str, within: float = 10) -> None:
    """Refresh the overview (Alt+R, as an operator would) until the node shows `health`."""
    deadline = asyncio.get_running_loop().time() + within
    while await row(t, edge).get_attribute("data-health") != health:
        assert asyncio.get_running_loop().time() < deadline, f"never turned {health}"
        await asyncio.sleep(0.3)
        await t.page.keyboard.press("Alt+KeyR")
        await t.page.wait_for_load_state()


async def test_a_cut_link_turns_warning_then_critical_and_ok_again_after_it_syncs(
        bare: Net, browser: Browser, shots: Path) -> None:
    hub = await start_hub(bare, **TINY)
    edge = await bare.add_edge("02245", "Xã Côn Lôn")
    others = [await bare.add_edge(code, name) for code, name in
              (("02227", "Xã Thượng Lâm"), ("02233", "Xã Lăng Can"), ("02239", "Xã Khâu Tinh"))]
    await history(hub.store, edge.config.node)
    for other in others[1:]:
        await other.api.post("/api/dossiers", birth())
        await other.sync()
    t = await operator_tab(browser, hub, shots)
    page = t.page
    await edge.api.post("/api/dossiers", birth())
    await edge.sync()
    await page.reload()
    await expect(row(t, edge)).to_have_attribute("data-health", "ok")
    panel = page.locator("#not-today")
    await expect(panel).to_contain_text("Xã Thượng Lâm")  # enrolled, never synced: and why
    await expect(panel).to_contain_text("chưa đồng bộ lần nào kể từ khi đăng ký")
    await expect(panel).not_to_contain_text("Xã Côn Lôn")

    edge.cut()
    with pytest.raises(Exception):  # noqa: B017 - the dead link's transport error
        await edge.sync()
    await reload_until(t, edge, "warning")
    await expect(row(t, edge).locator("li.why-warning")).to_contain_text(
        re.compile(r"không đồng bộ được \d+ giây"))
    await reload_until(t, edge, "critical")
    for other in others[1:]:  # the other communes keep syncing
        await other.sync()
    await page.reload()
    await expect(row(t, edge).locator("li.why-critical")).to_contain_text("không đồng bộ được")
    await expect(page.locator("#count-critical .tile-count")).to_have_text("2")
    await t.shot("hub-overview")

    await row(t, edge).get_by_role("link", name="Xã Côn Lôn").click()
    await page.wait_for_url(re.compile(rf"/nodes/{re.escape(edge.config.node)}$"))
    await expect(page.locator("#why")).to_contain_text("không đồng bộ được")
    await expect(page.locator("svg.chart")).to_have_count(3)
    await t.shot("hub-node", full_page=True)
    await page.get_by_role("link", name="Cảnh báo").click()
    await expect(page.locator(f'#active-alerts tr[data-node="{edge.config.node}"]')).to_contain_text(
        "Nghiêm trọng")
    await t.shot("hub-alerts")

    edge.heal()
    await edge.sync()
    await t.goto("/")
    await expect(row(t, edge)).to_have_attribute("data-health", "ok")
    await expect(row(t, edge).locator("ul.why")).to_have_count(0)
    t.assert_clean()


async def test_resolve_a_conflict_from_the_queue_by_keyboard(
        net: Net, browser: Browser, shots: Path) -> None:
    assert net.hub is not None
    edge = await net.add_edge("02245", "Xã Côn Lôn")
    _, dossier = await edge.api.post("/api/dossiers", birth("Hoàng Thị Lan", citizen(7)))
    await make_conflict(net, edge, dossier)
    t = await operator_tab(browser, net.hub, shots)
    page = t.page
    await page.keyboard.press("Alt+KeyX")  # the conflicts queue
    await page.wait_for_url(re.compile(r"/conflicts$"))
    card = page.locator(f'article[data-dossier="{dossier["id"]}"]')
    await expect(card).to_contain_text("Thôn Nà Mạ")
    await expect(card).to_contain_text("Thôn Bản Khuổi")
    await t.shot("hub-conflicts")
    choice = card.get_by_role("radio", name=re.compile("Thôn Bản Khuổi"))
    await choice.focus()
    await page.keyboard.press("Space")
    await expect(choice).to_be_checked()
    await page.keyboard.press("Enter")
    await expect(page.locator(".flash")).to_contain_text("Đã giải quyết xung đột")
    await expect(page.locator("main")).to_contain_text("Không có hồ sơ nào đang xung đột")
    status, at_hub = await net.hub.api.get(f"/api/dossiers/{dossier['id']}")
    assert status == 200 and at_hub["conflicts"] == []
    assert at_hub["applicant"]["address"].startswith("Thôn Bản Khuổi")
    t.assert_clean()


async def test_download_the_statistics_csv(net: Net, browser: Browser, shots: Path) -> None:
    assert net.hub is not None
    edge = await net.add_edge("02245", "Xã Côn Lôn")
    other = await net.add_edge("02227", "Xã Thượng Lâm")
    for i in range(3):
        _, d = await edge.api.post("/api/dossiers", birth(citizen_id=citizen(i)))
        if i:
            await move(edge, d, "processing", "resolved")
    _, d = await other.api.post("/api/dossiers", {**birth(citizen_id=citizen(9)),
                                                  "channel": "online"})
    await edge.sync()
    await other.sync()
    t = await operator_tab(browser, net.hub, shots)
    page = t.page
    await page.keyboard.press("Alt+KeyS")
    await page.wait_for_url(re.compile(r"/stats$"))
    table = page.locator("#stats-table")
    await expect(table.locator("tr.total")).to_contain_text("Tổng cộng")
    await expect(table).to_contain_text("Đăng ký khai sinh")
    await t.shot("hub-stats")
    async with page.expect_download() as info:
        await page.locator("#csv").click()
    download = await info.value
    assert re.fullmatch(r"thong-ke-\d{4}-\d{2}-\d{2}-\d{4}-\d{2}-\d{2}\.csv",
                        download.suggested_filename)
    text = Path(await download.path()).read_bytes().decode("utf-8")
    assert text.startswith("\ufeff")
    lines = list(csv.reader(io.StringIO(text[1:])))
    head, total = lines[0], dict(zip(lines[0], lines[-1], strict=True))
    assert head[2] == "Xã" and total["Tiếp nhận trong kỳ"] == "4"
    assert total["Tiếp nhận trực tuyến"] == "1" and total["Đã giải quyết"] == "2"

    await page.get_by_role("link", name="Quản lý nút").click()
    await page.locator("#e-commune").fill("02251")
    await page.locator("#e-name").fill("Xã Yên Hoa")
    await page.get_by_role("button", name="Tạo mã đăng ký").click()
    await expect(page.locator("#enroll-token")).to_have_text(re.compile(r"^enr_"))
    await t.shot("hub-nodes")
    t.assert_clean()


FITS = """els => els.map(el => {
  const box = el.getBoundingClientRect(), svg = el.closest('svg').getBoundingClientRect();
  return [el.textContent, box.left >= svg.left - 0.5 && box.right <= svg.right + 0.5];
})"""
PLACEHOLDER_FITS = """el => {
  const s = getComputedStyle(el), ctx = document.createElement('canvas').getContext('2d');
  ctx.font = s.font;
  const room = el.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
  return [ctx.measureText(el.placeholder).width, room];
}"""


async def test_dates_read_dd_mm_yyyy_the_header_names_the_province_and_nothing_is_cut_off(
        bare: Net, browser: Browser, shots: Path) -> None:
    hub = await start_hub(bare)  # province 08 with no name in hub.toml: its known name
    edge = await bare.add_edge("02245", "Xã Côn Lôn")
    await history(hub.store, edge.config.node)
    t = await operator_tab(browser, hub, shots)
    page = t.page
    await expect(page.locator(".brand small")).to_have_text("Tỉnh Tuyên Quang · điều hành")
    await expect(page.locator(".brand .province")).to_have_attribute("lang", "vi")
    for width in (1366, 1024):  # an old monitor, and a window beside another
        await page.set_viewport_size({"width": width, "height": 768})
        needed, room = await page.locator("#top-q").evaluate(PLACEHOLDER_FITS)
        assert needed <= room, (width, needed, room)  # "Tìm hồ sơ ở mọi xã…" whole
        wide = await page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert wide[0] <= wide[1], (width, wide)  # the header does not push the page sideways
    await page.set_viewport_size({"width": 1366, "height": 768})

    await t.goto(f"/nodes/{edge.config.node}")
    ticks = await page.locator("svg.chart text.tick").evaluate_all(FITS)
    assert len(ticks) > 10 and all(inside for _, inside in ticks), ticks

    await t.goto("/stats")
    box = page.locator("#s-from")
    assert await box.get_attribute("type") is None  # a text box: Chromium's date box is mm/dd
    await expect(box).to_have_value(re.compile(r"^01/\d{2}/\d{4}$"))
    await box.fill("05/01/2026")
    await page.locator("#s-to").fill("2026-01-31")  # an ISO date is still understood
    await page.get_by_role("button", name="Xem", exact=True).click()
    await expect(page.locator("#s-from")).to_have_value("05/01/2026")
    await expect(page.locator("#s-to")).to_have_value("31/01/2026")
    assert "from=2026-01-05" in (await page.locator("#csv").get_attribute("href") or "")
    await page.locator("#s-from").fill("31/02/2026")
    await page.get_by_role("button", name="Xem", exact=True).click()
    await expect(page.locator(".flash-error")).to_contain_text(
        "Từ ngày: “31/02/2026” không phải là một ngày")
    await expect(page.locator("#s-from")).to_have_attribute("aria-invalid", "true")
    assert t.errors == ["Failed to load resource: the server responded with a status of 422 "
                        "(Unprocessable Entity)"]  # that answer's status, as it should be
    t.errors.clear()
    await page.locator("#s-from").fill("2026/1/5")  # the browser says no before sending
    await page.get_by_role("button", name="Xem", exact=True).click()
    assert await page.locator("#s-from").evaluate("el => el.validity.patternMismatch")
    t.assert_clean()


async def test_a_province_named_in_hub_toml(bare: Net, browser: Browser, shots: Path) -> None:
    hub = await start_hub(bare, province="01", province_name="Thành phố Hà Nội")
    t = await operator_tab(browser, hub, shots)
    await expect(t.page.locator(".brand small")).to_have_text("Thành phố Hà Nội · điều hành")
    await t.page.get_by_role("button", name="English").click()
    await expect(t.page.locator(".brand small")).to_have_text("Thành phố Hà Nội · operations")
    t.assert_clean()
