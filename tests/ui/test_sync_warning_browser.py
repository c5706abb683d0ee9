"""The hub's warning in the desk's sync bar, in a real browser (Debian's Chromium driven by
Playwright), against a real edge and hub on loopback: after the hub acks less than it had (as a hub
restored from a backup does), the bar tells staff so in Vietnamese, then in English after the
switch, and the sentence goes away by itself once the next sync has sent everything again."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

pytest.importorskip("playwright.async_api", reason="pip install playwright (the dev extra)")

from playwright.async_api import Browser, expect

from protocol.messages import SyncResponse
from tests.harness import EdgeHandle
from tests.ui.browser import CHROMIUM, Tab, shots_dir
from tests.ui.seed import create

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no Chromium at {CHROMIUM}: apt-get install -y chromium fonts-noto-core")

VI = ("Máy chủ tỉnh đã được khôi phục từ bản sao lưu; máy này đang tự gửi lại dữ liệu. "
      "Dữ liệu không bị mất, không cần làm gì.")
EN = ("The provincial hub was restored from a backup; this computer is sending its data again. "
      "Nothing is lost and nothing needs doing.")


async def hub_forgets_all_but_the_first(edge: EdgeHandle) -> None:
    """The answer of a hub restored to before this node's later events: it acks only one."""
    store = edge.store
    acked = await store.sync.ack()
    assert acked == store.log.own_seq > 1
    await store.sync.apply_response(
        SyncResponse(ack=1, events=[], cursor=await store.sync.cursor(), more=False,
                     hub_time_ms=store.now_ms(), epoch=await store.sync.hub_epoch()),
        0.0, time.monotonic(), sent_after=acked)


async def test_the_restore_warning_shows_in_both_languages_and_ends_by_itself(
        edge: EdgeHandle, browser: Browser, tmp_path: Path) -> None:
    for i in range(3):
        await create(edge, i)
    assert (await edge.sync()).pending_after == 0
    await hub_forgets_all_but_the_first(edge)
    _, status = await edge.api.get("/api/sync")
    assert status["warning"]["code"] == "hub_restored", status
    assert status["pending_events"] == edge.store.log.own_seq - 1

    t = await Tab.open(browser, edge.api.base, shots_dir(tmp_path))
    await t.login("clerk1")
    page = t.page
    warning = page.locator("#sync [data-poll-part=warning]")
    await expect(warning).to_be_visible()
    await expect(warning).to_have_text(VI)
    await expect(page.locator("#sync [data-poll-part=state]")).to_contain_text("chờ gửi")
    await expect(page.locator("#sync")).not_to_have_class(re.compile(r"\blevel-(danger|warn)\b"))
    # at 1366×768 the notice has a row of its own under the state and the "sync now" button,
    # which stay together on the first row
    state_box = await page.locator("#sync [data-poll-part=state]").bounding_box()
    button_box = await page.locator("#sync .sync-now button").bounding_box()
    notice_box = await warning.bounding_box()
    assert state_box and button_box and notice_box
    assert abs(button_box["y"] - state_box["y"]) < 4, (state_box, button_box)
    assert notice_box["y"] >= state_box["y"] + state_box["height"] - 1, (state_box, notice_box)
    await t.shot("sync-hub-restored")
    await page.get_by_role("button", name="English").click()
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await expect(warning).to_have_text(EN)
    await t.shot("sync-hub-restored-en")

    # the next session sends the rest again: the page's polling takes the sentence away
    assert (await edge.sync()).pending_after == 0
    _, status = await edge.api.get("/api/sync")
    assert status["warning"] is None, status
    await expect(warning).to_be_hidden(timeout=15_000)
    await expect(warning).to_have_text("")
    await page.get_by_role("button", name="Tiếng Việt").click()
    await expect(page.locator("html")).to_have_attribute("lang", "vi")
    await expect(warning).to_be_hidden()
    t.assert_clean()
