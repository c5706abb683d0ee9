"""An operator at the hub's dashboard: a cookie session that logs in through the form (no
JavaScript), and a hub started with chosen hub.toml settings."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from central_hub import config as hub_config
from central_hub.config import HubConfig
from tests.harness import PASSWORD, HubHandle, Net
from tests.harness import Page as Answer


@dataclass
class Operator:
    """A browser without JavaScript."""

    base: str
    http: aiohttp.ClientSession
    last: Answer | None = field(default=None)

    async def get(self, path: str, **kw: Any) -> Answer:
        async with self.http.get(self.base + path, **kw) as resp:
            self.last = Answer(resp.status, await resp.text(), str(resp.url), resp.headers)
        return self.last

    async def post(self, path: str, data: dict[str, Any], **kw: Any) -> Answer:
        assert self.last is not None, "open a page first (its form carries the CSRF token)"
        async with self.http.post(self.base + path, data={"csrf": self.last.csrf, **data},
                                  **kw) as resp:
            self.last = Answer(resp.status, await resp.text(), str(resp.url), resp.headers)
        return self.last

    async def login(self, username: str = "op", password: str = PASSWORD) -> Answer:
        await self.get("/login")
        answer = await self.post("/login", {"username": username, "password": password,
                                            "next": "/"})
        assert answer.status == 200 and "/login" not in answer.url, answer.text[:500]
        return answer

    async def close(self) -> None:
        await self.http.close()


def operator(base: str) -> Operator:
    """A fresh cookie session against `base`."""
    return Operator(base, aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)))


async def start_hub(net: Net, **settings: Any) -> HubHandle:
    """Start `net`'s hub like `Net.start_hub`, with these hub.toml settings (health rules,
    webhook, history…); the operator `op` logs in to its API."""
    data = net.root / "hub"
    data.mkdir(parents=True)
    config = dataclasses.replace(HubConfig(db=net.db), **settings)
    config.validate()
    hub_config.save(data, config)
    return await net.serve_hub(data)
