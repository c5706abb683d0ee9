"""Desk sessions end: at once when the admin disables the account, after idle time on their own
(background polling does not count as activity)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp

from tests.harness import EdgeHandle, Net
from tests.ui.conftest import Staff, add_staff


async def test_a_disabled_users_desk_session_ends_at_once(
        net: Net, edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    clerk, admin = staff(), staff()
    await clerk.login("clerk1")
    await admin.login("admin1")
    assert (await clerk.get("/", allow_redirects=False)).status == 200
    await admin.get("/users")
    assert "Đã khóa tài khoản clerk1" in (await admin.post("/users/clerk1/disable", {})).text
    page = await clerk.get("/dossiers", allow_redirects=False)
    assert page.status == 303 and page.headers["Location"].startswith("/login")


async def test_an_idle_desk_session_ends_and_the_login_page_says_why(net: Net) -> None:
    edge = await net.add_edge("02246", idle_logout_min=0.04)  # 2.4 s
    await add_staff(edge)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        desk = Staff(edge.api.base, http)
        await desk.login("clerk1")
        # the status line polling in the background keeps nothing alive…
        statuses = []
        for _ in range(6):
            await asyncio.sleep(0.5)
            statuses.append((await desk.get("/sync/status", headers={"X-Background": "1"})).status)
        assert statuses[0] == 200 and statuses[-1] == 401  # the page then goes to /login
        # …so the next page someone asks for is the login form, with the reason
        page = await desk.get("/")
        assert page.url.endswith("/login") and "không thao tác" in page.text
        # while someone working at the desk stays logged in
        await desk.login("clerk1")
        for _ in range(6):
            await asyncio.sleep(0.5)
            assert (await desk.get("/", allow_redirects=False)).status == 200
