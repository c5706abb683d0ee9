"""Any-desk intake (Decree 118/2025) at the desk, in Debian's Chromium against a real edge and hub
on loopback: the clerk chooses the competent commune on the intake form by keyboard, the dossier
is that commune's and received here, and the printed receipt (form 01) names both units; a
commune that is not the province's is refused on the form with nothing stored."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("playwright.async_api", reason="pip install playwright (the dev extra)")
pytest.importorskip("pypdf", reason="pip install pypdf (the dev extra)")

from playwright.async_api import Browser, expect

from tests.harness import EdgeHandle
from tests.ui.browser import CHROMIUM
from tests.ui.seed import create
from tests.ui.test_desk_data_browser import dossier_id, fill_birth, print_receipt, tab

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no Chromium at {CHROMIUM}: apt-get install -y chromium fonts-noto-core")


async def test_taken_in_here_for_another_commune_and_the_receipt_names_both(
        edge: EdgeHandle, browser: Browser, shots: Path) -> None:
    t = await tab(browser, edge.api.base, shots, "clerk1")
    page = t.page
    await t.goto("/dossiers/new?procedure=1.001193")
    choice = page.locator("#commune")
    await expect(choice).to_have_value("02245")  # this desk's commune unless the clerk says
    await expect(choice.locator("option")).not_to_contain_text(["Xã Sinh Long"])  # merged
    await choice.focus()
    await choice.select_option("02221")  # Na Hang decides it
    await fill_birth(page)
    await t.shot("intake-any-desk", full_page=True)
    await page.get_by_role("button", name=re.compile("Lưu hồ sơ")).click()
    await page.wait_for_url(re.compile(r"\?new=1$"))
    did = await dossier_id(page)
    _, view = await edge.api.get(f"/api/dossiers/{did}")
    assert (view["commune"], view["received_by"]) == ("02221", "02245"), view
    await page.locator("#print-receipt").click()
    await page.wait_for_url(re.compile(r"/receipt$"))
    first, _ = await print_receipt(page)
    assert "Nơi tiếp nhận: Xã Côn Lôn; cơ quan giải quyết: Xã Na Hang" in first, first
    assert view["code"] in first
    t.assert_clean()


async def test_a_commune_not_of_the_province_is_refused_on_the_form(
        edge: EdgeHandle, browser: Browser, shots: Path) -> None:
    t = await tab(browser, edge.api.base, shots, "clerk1")
    page = t.page
    await t.goto("/dossiers/new?procedure=1.001193")
    await fill_birth(page)
    # a hand-made form (an old page, a script): the server's rule, not the list's, decides
    await page.locator("#commune").evaluate(
        "s => { const o = document.createElement('option'); o.value = '99999';"
        " o.text = 'x'; s.add(o); s.value = '99999'; }")
    await page.get_by_role("button", name=re.compile("Lưu hồ sơ")).click()
    await expect(page.locator("#commune-e")).to_contain_text("99999")
    await expect(page.locator("#f-applicant-full_name")).to_have_value("Nguyễn Văn An")  # kept
    assert (await edge.api.get("/api/dossiers"))[1]["items"] == []
    t.errors.clear()  # the 422 answer
    t.assert_clean()


async def test_the_leader_transfers_a_dossier_and_the_desk_writes_no_more(
        edge: EdgeHandle, browser: Browser, shots: Path) -> None:
    d = await create(edge, 1)
    clerk = await tab(browser, edge.api.base, shots, "clerk1")
    await clerk.goto(f"/dossiers/{d['id']}")
    await expect(clerk.page.locator("details.transfer")).to_have_count(0)  # the leader's call
    t = await tab(browser, edge.api.base, shots, "leader1")
    page = t.page
    await t.goto(f"/dossiers/{d['id']}")
    await page.locator("details.transfer summary").click()
    await page.locator("#transfer-to").select_option("02230")
    await page.locator("#transfer").click()  # no reason: told, nothing written
    await expect(page.locator(".flash")).to_contain_text("ghi lý do")
    assert (await edge.api.get(f"/api/dossiers/{d['id']}"))[1]["commune"] == "02245"
    await page.locator("details.transfer summary").click()
    await page.locator("#transfer-to").select_option("02230")
    await page.locator("#transfer-reason").fill("Nơi cư trú của người mẹ thuộc xã Thượng Lâm")
    await page.locator("#transfer-reason").press("Tab")
    await page.keyboard.press("Enter")  # the button, by keyboard
    await expect(page.locator(".flash")).to_contain_text("Đã chuyển hồ sơ cho Xã Thượng Lâm")
    await expect(page.locator("ol.timeline")).to_contain_text("Chuyển cho Xã Thượng Lâm giải quyết")
    await expect(page.locator("ol.timeline")).to_contain_text("Nơi cư trú của người mẹ")
    await expect(page.locator("details.transfer")).to_have_count(0)  # no longer this desk's
    _, view = await edge.api.get(f"/api/dossiers/{d['id']}")
    assert (view["commune"], view["received_by"]) == ("02230", "02245"), view
    t.assert_clean()
    clerk.assert_clean()
