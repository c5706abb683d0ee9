"""Fixtures for the desk UI: a hub and one commune on loopback with staff of every role, and a
cookie-keeping HTTP client that logs in through the login form like a browser would."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge_node.app import open_accounts
from tests.harness import PASSWORD, EdgeHandle, Net, Page

COMMUNE = "02245"
COMMUNE_NAME = "Xã Côn Lôn"
STAFF = {"clerk1": "clerk", "leader1": "leader", "admin1": "admin"}


async def add_staff(edge: EdgeHandle) -> None:
    """One user of each role, all with the harness password."""
    accounts = await open_accounts(edge.data)
    try:
        for username, role in STAFF.items():
            await accounts.add_user(username, PASSWORD, role)
    finally:
        await accounts.conn.close()



@dataclass
class Staff:
    """A person at the desk: an HTTP session with cookies (no JavaScript)."""

    base: str
    http: aiohttp.ClientSession
    last: Page | None = field(default=None)

    async def get(self, path: str, **kw: Any) -> Page:
        async with self.http.get(self.base + path, **kw) as resp:
            self.last = Page(resp.status, await resp.text(), str(resp.url), resp.headers)
        return self.last

    async def post(self, path: str, data: Any, *, csrf: str | bool | None = None,
                   **kw: Any) -> Page:
        """POST a form; `csrf`: a token, None for the last page's, False for none at all."""
        if isinstance(data, dict) and csrf is not False:
            token = csrf if isinstance(csrf, str) else \
                (self.last.csrf if self.last else (await self.get("/login")).csrf)
            data = {"csrf": token, **data}
        async with self.http.post(self.base + path, data=data, **kw) as resp:
            self.last = Page(resp.status, await resp.text(), str(resp.url), resp.headers)
        return self.last

    async def login(self, username: str, password: str = PASSWORD) -> Page:
        form = await self.get("/login")
        return await self.post("/login", {"username": username, "password": password,
                                          "next": "/"}, csrf=form.csrf)


@pytest.fixture
async def edge(net: Net) -> EdgeHandle:
    """The commune's edge node with a clerk, a leader and an admin."""
    handle = await net.add_edge(COMMUNE, COMMUNE_NAME)
    await add_staff(handle)
    return handle


@pytest.fixture
async def staff(edge: EdgeHandle) -> AsyncIterator[Callable[[], Staff]]:
    """Make fresh cookie sessions against the edge (closed at the end)."""
    sessions: list[aiohttp.ClientSession] = []

    def make() -> Staff:
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        sessions.append(http)
        return Staff(edge.api.base, http)

    yield make
    for http in sessions:
        await http.close()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless Chromium for one browser test (Playwright is imported only by those)."""
    from tests.ui.browser import chromium

    async with chromium() as b:
        yield b


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where a browser test's screenshots go (docs/screenshots with UI_SCREENSHOTS=1)."""
    from tests.ui.browser import shots_dir

    return shots_dir(tmp_path)
