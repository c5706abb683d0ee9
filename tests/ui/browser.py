"""Playwright plumbing for the browser tests: Debian's Chromium, headless, at 1366×768, with every
console error and page error collected (a CSP violation or a script error fails the test)."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)

from tests.harness import PASSWORD

CHROMIUM = Path(os.environ.get("UI_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
VIEWPORT: ViewportSize = {"width": 1366, "height": 768}
REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "docs" / "screenshots"


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """A headless Chromium for one test."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                           args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


class Tab:
    """One browser tab at the desk, remembering what went wrong in it."""

    def __init__(self, context: BrowserContext, page: Page, base: str, shots: Path) -> None:
        self.context, self.page, self.base, self.shots = context, page, base, shots
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    @classmethod
    async def open(cls, browser: Browser, base: str, shots: Path) -> Tab:
        context = await browser.new_context(viewport=VIEWPORT, locale="vi-VN",
                                            timezone_id="Asia/Ho_Chi_Minh")
        return cls(context, await context.new_page(), base, shots)

    async def goto(self, path: str) -> None:
        await self.page.goto(self.base + path)

    async def login(self, username: str, password: str = PASSWORD) -> None:
        """Log in with the keyboard only: the username field has the focus."""
        await self.goto("/")
        await self.page.wait_for_url(re.compile(r"/login"))
        await expect(self.page.locator("#username")).to_be_focused()  # autofocus, once loaded
        await self.page.keyboard.type(username)
        await self.page.keyboard.press("Tab")
        await self.page.keyboard.type(password)
        await self.page.keyboard.press("Enter")
        await self.page.wait_for_url(self.base + "/")

    async def logout(self) -> None:
        await self.page.get_by_role("button", name=re.compile("Đăng xuất|Log out")).click()
        await self.page.wait_for_url(re.compile(r"/login"))

    async def shot(self, name: str, full_page: bool = False) -> Path:
        """A screenshot; into docs/screenshots when UI_SCREENSHOTS=1, else the test's tmp dir."""
        self.shots.mkdir(parents=True, exist_ok=True)
        path = self.shots / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def assert_clean(self) -> None:
        """No console errors (CSP violations, failed scripts) and no page errors."""
        assert not self.errors, self.errors


def shots_dir(tmp: Path) -> Path:
    """Where screenshots go for this run."""
    return SHOTS if os.environ.get("UI_SCREENSHOTS") == "1" else tmp / "screenshots"
