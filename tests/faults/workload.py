"""Staff at work during faults: a clerk at an edge and an operator at the hub, over the JSON API.

Every answer that tells a person "saved" is recorded in an `Acked` for the checker: a dossier
answered 201, an edit answered 200, an attachment answered 201. Transport errors (the edge process
died under the clerk) are counted, never raised: the point of the fault tests is what happens then.
Bodies come from `bench/dossier_faker.py: DossierFaker`; each gets a citizen ID never used before
in this process, so a duplicated dossier shows up as a citizen ID held twice.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import os
import random
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.dossier_faker import DossierFaker
from tests.faults.checker import Acked

log = logging.getLogger(__name__)

_serial = itertools.count(os.getpid() % 1000 * 10_000)
HOME_TOWNS = ("Na Hang", "Lâm Bình", "Chiêm Hóa", "Yên Sơn", "Hàm Yên", "Sơn Dương")


def unique_citizen_id() -> str:
    """A valid 12-digit citizen ID (province 008, born 1950–1999) not handed out before here."""
    n = next(_serial)
    return f"0080{50 + n // 10**6 % 50:02d}{n % 10**6:06d}"


def scan(size: int, rng: random.Random) -> bytes:
    """An incompressible 'PNG' of `size` bytes (the magic is what the edge checks)."""
    head = b"\x89PNG\r\n\x1a\n"
    return head + rng.randbytes(max(0, size - len(head)))


@dataclass
class Tally:
    """What a worker tried and what it was told."""

    ok: int = 0
    refused: int = 0  # an HTTP answer other than success
    failed: int = 0  # no answer: the connection broke or timed out


class Worker:
    """JSON calls with a bearer token against one node; no answer is status 0."""

    def __init__(self, http: aiohttp.ClientSession, base: str, username: str, password: str,
                 acked: Acked, seed: int, timeout_s: float = 15.0) -> None:
        self.http, self.base = http, base.rstrip("/")
        self.username, self.password = username, password
        self.acked = acked
        self.rng = random.Random(seed)
        self.faker = DossierFaker(seed)
        self.token = ""
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.tally = Tally()

    async def call(self, method: str, path: str, json: Any = None,
                   data: Any = None) -> tuple[int, Any]:
        """One request; (status, body), or (0, why) if no answer came."""
        for _ in range(2):
            if not self.token and path != "/api/login":
                if not await self.login():
                    return 0, "cannot log in"
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            try:
                async with self.http.request(method, self.base + path, json=json, data=data,
                                             headers=headers, timeout=self.timeout) as resp:
                    status = resp.status
                    body = await resp.json(content_type=None)
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                return 0, f"{exc.__class__.__name__}: {exc}"
            if status == 401 and path != "/api/login":
                self.token = ""
                continue
            return status, body
        return 401, "unauthorized"

    async def login(self) -> bool:
        """Log in (again); False if the node does not answer."""
        status, body = await self.call("POST", "/api/login",
                                       {"username": self.username, "password": self.password})
        if status == 200:
            self.token = body["token"]
            return True
        return False

    async def write(self, dossier_id: str, path: str, value: Any, base: str) -> bool:
        """PATCH one field; acknowledged on 200, unsure if no answer came (or we gave up)."""
        self.acked.maybe(dossier_id, path, value)
        status, _ = await self.call("PATCH", f"/api/dossiers/{dossier_id}",
                                    {"base": base, "set": {path: value}})
        if self._count(status, 200):
            self.acked.write(dossier_id, path, value)
            return True
        if status != 0:  # refused: certainly not applied
            self.acked.unsure[(dossier_id, path)].remove(value)
        return False

    def _count(self, status: int, good: int) -> bool:
        if status == good:
            self.tally.ok += 1
            return True
        if status == 0:
            self.tally.failed += 1
        else:
            self.tally.refused += 1
            log.info("%s answered %s", self.base, status)
        return False


class Clerk(Worker):
    """Takes in birth registrations at an edge, corrects phone numbers, attaches scans."""

    async def create(self) -> dict[str, Any] | None:
        """One new dossier; its view if answered 201."""
        body = self.faker.birth()
        body["applicant"]["citizen_id"] = unique_citizen_id()
        status, view = await self.call("POST", "/api/dossiers", body)
        if self._count(status, 201):
            self.acked.dossier(view)
            return dict(view)
        return None

    def _mine(self) -> str | None:
        mine = list(self.acked.dossiers)
        return self.rng.choice(mine) if mine else None

    async def edit(self) -> bool:
        """A new phone number on one of the dossiers taken in."""
        dossier_id = self._mine()
        if dossier_id is None:
            return False
        status, view = await self.call("GET", f"/api/dossiers/{dossier_id}")
        if status != 200:
            self._count(status, 200)
            return False
        phone = self.faker.phone()
        return await self.write(dossier_id, "applicant.phone", phone, view["version"])

    async def attach(self, size: int) -> bool:
        """A scan of `size` bytes on one of the dossiers taken in."""
        dossier_id = self._mine()
        if dossier_id is None:
            return False
        return await self.upload(dossier_id, scan(size, self.rng))

    async def upload(self, dossier_id: str, data: bytes) -> bool:
        """Attach these bytes to a dossier, as the desk's upload form does."""
        form = aiohttp.FormData()
        form.add_field("label", "Giấy chứng sinh")
        form.add_field("file", io.BytesIO(data), filename="giay-chung-sinh.png",
                       content_type="image/png")
        status, _ = await self.call("POST", f"/api/dossiers/{dossier_id}/attachments", data=form)
        return self._count(status, 201)

    async def work(self, *, pause_s: tuple[float, float] = (0.1, 0.3), edits: float = 0.2,
                   attach: float = 0.0, scan_size: tuple[int, int] = (20_000, 60_000)) -> None:
        """Work until cancelled: mostly new dossiers, some edits, some scans."""
        while True:
            roll = self.rng.random()
            if roll < attach:
                await self.attach(self.rng.randint(*scan_size))
            elif roll < attach + edits:
                await self.edit()
            else:
                await self.create()
            await asyncio.sleep(self.rng.uniform(*pause_s))


class Operator(Worker):
    """Edits the home town of a commune's dossiers at the hub (a field no clerk writes)."""

    async def edit(self, commune: str) -> bool:
        status, listing = await self.call("GET", f"/api/dossiers?commune={commune}&limit=50")
        if status != 200:
            self._count(status, 200)
            return False
        if not listing["items"]:
            return False
        view = self.rng.choice(listing["items"])
        town = self.rng.choice(HOME_TOWNS) + f" {self.rng.randrange(1000)}"
        return await self.write(view["id"], "fields.child_home_town", town, view["version"])

    async def work(self, commune: str, pause_s: tuple[float, float] = (0.2, 0.5)) -> None:
        """Edit until cancelled."""
        while True:
            await self.edit(commune)
            await asyncio.sleep(self.rng.uniform(*pause_s))


async def stop(*tasks: asyncio.Task[Any]) -> None:
    """Cancel workers and wait for them."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
