"""The demo's story: what goes wrong in a small fleet, set up before the load starts (`make demo`).

- an offline commune: its link is cut before its first sync and stays cut (the hub says it never
  synced; its clerk keeps taking dossiers in, which wait);
- a conflict: the province and the commune change the same applicant's address while apart;
- a clock 2 h ahead: that commune's edge runs under libfaketime (its whole process clock), takes
  dossiers in before it hears from the hub, then warns and flags them for a check of their dates;
- an overdue dossier: taken in at Côn Lôn while the hub's and its clocks were set back hours
  (libfaketime; `past_hours` picks a working morning whose same-day dossier is overdue now);
- an online filing: the province's portal (a key from `central-hub portal add`) files a birth
  registration for Sinh Long (02227), which since 1 July 2025 is part of Côn Lôn (02245): it waits
  in Côn Lôn's online inbox.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp

from bench.dossier_faker import DossierFaker
from bench.processes import acli
from protocol.calendar import Calendar, due_at, local

if TYPE_CHECKING:
    from bench.demo import Demo

log = logging.getLogger(__name__)

FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
CLOCK_SKEW_S = 2 * 3600
ADDRESSES = ("Thôn Nà Mỏ, xã Côn Lôn, tỉnh Tuyên Quang",  # the commune's
             "Thôn Khuổi Phầy, xã Côn Lôn, tỉnh Tuyên Quang")  # the province's


def faked_clock(skew_s: int) -> dict[str, str] | None:
    """The environment of a process whose wall clock is `skew_s` off, or None without libfaketime."""
    if not FAKETIME.exists():
        return None
    return {"LD_PRELOAD": str(FAKETIME), "FAKETIME": f"{skew_s:+d}",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1", "DONT_FAKE_MONOTONIC": "1"}


class Api:
    """JSON calls with a bearer token; transport errors come back as status 0."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base, self.token = http, base, ""

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            async with self.http.request(method, self.base + path, json=body, headers=headers,
                                         timeout=aiohttp.ClientTimeout(total=20)) as resp:
                return resp.status, await resp.json(content_type=None)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            return 0, str(exc)

    async def login(self, username: str, password: str) -> None:
        status, body = await self.call("POST", "/api/login",
                                       {"username": username, "password": password})
        if status != 200:
            raise RuntimeError(f"login {username} at {self.base} failed: {status} {body}")
        self.token = body["token"]

    async def versions(self, query: str = "") -> list[tuple[str, str]]:
        """(id, version) of every dossier of a listing, following `next`; raise if unreadable."""
        out: list[tuple[str, str]] = []
        after = ""
        while True:
            status, body = await self.call("GET", f"/api/dossiers?limit=10000{query}{after}")
            if status != 200:
                raise RuntimeError(f"{self.base} listing failed: {status} {body}")
            out.extend((item["id"], item["version"]) for item in body["items"])
            if not body.get("next"):
                return out
            after = f"&after={body['next']}"


class Link(Protocol):
    """`tests.faults.linkproxy.LinkProxy`, as used here."""

    async def cut(self) -> None: ...

    async def heal(self) -> None: ...


async def until(what: str, check: Callable[[], Awaitable[Any]], within: float = 60.0) -> Any:
    """Poll `check` until truthy, or fail naming `what`."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.3)
    raise RuntimeError(f"the demo's scenario: {what} did not happen within {within:.0f} s")


async def at_hub(hub: Api, dossier_id: str) -> dict[str, Any] | None:
    status, view = await hub.call("GET", f"/api/dossiers/{dossier_id}")
    return view if status == 200 else None


def past_hours(now_ms: int) -> int:
    """How many hours back (20 or more) a birth registration taken in on a working morning is
    overdue now (due at 17:00 that day, at least an hour ago)."""
    calendar = Calendar()
    for hours in range(20, 24 * 21):
        then = now_ms - hours * 3_600_000
        moment = local(then)
        if (calendar.is_working_day(moment.date()) and 8 <= moment.hour < 14
                and due_at(then, 0, "15:00", calendar) < now_ms - 3_600_000):
            return hours
    return 24 * 21


async def taken_in_the_past(edge_url: str, clerk: str, password: str, hub_url: str,
                            operator: str, op_password: str, hours: int) -> str:
    """A birth registration taken in while every clock is `hours` back, synced: its id."""
    async with aiohttp.ClientSession() as http:
        edge, hub = Api(http, edge_url), Api(http, hub_url)
        await edge.login(clerk, password)
        await hub.login(operator, op_password)
        day = local(int(time.time() * 1000) - hours * 3_600_000).date()
        status, view = await edge.call("POST", "/api/dossiers",
                                       DossierFaker(hours).birth(today=day))
        if status != 201:
            raise RuntimeError(f"the dossier taken in hours ago: {status} {view}")

        async def synced() -> Any:
            await edge.call("POST", "/api/sync")
            return await at_hub(hub, view["id"])

        await until("the dossier taken in hours ago reaching the hub", synced)
        return str(view["id"])


async def conflict(hub: Api, edge: Api, link: Link, body: dict[str, Any]) -> str:
    """A dossier both sides edit while apart: its id, once the hub lists the conflict."""
    status, view = await edge.call("POST", "/api/dossiers", body)
    if status != 201:
        raise RuntimeError(f"the conflict's dossier: {status} {view}")
    await edge.call("POST", "/api/sync")
    seen = await until("the conflict's dossier reaching the hub", lambda: at_hub(hub, view["id"]))
    await link.cut()
    for api, base, address in ((edge, view, ADDRESSES[0]), (hub, seen, ADDRESSES[1])):
        status, answer = await api.call("PATCH", f"/api/dossiers/{view['id']}", {
            "set": {"applicant.address": address}, "base": base["version"]})
        if status != 200:
            raise RuntimeError(f"the conflict's edit: {status} {answer}")
    await link.heal()

    async def listed() -> bool:
        await edge.call("POST", "/api/sync")
        found = await at_hub(hub, view["id"])
        return bool(found and found.get("conflicts"))

    await until("the conflict listed at the hub", listed)
    return str(view["id"])


async def clock_flags(hub: Api, edge: Api, link: Link, commune: str,
                      bodies: list[dict[str, Any]]) -> list[str]:
    """Dossiers taken in by an edge whose clock is off, before it heard from the hub, then the
    link back: their ids once the edge warns and the hub lists them flagged."""
    ids = []
    for body in bodies:
        status, view = await edge.call("POST", "/api/dossiers", body)
        if status != 201:
            raise RuntimeError(f"a dossier at the clock-off desk: {status} {view}")
        ids.append(view["id"])
    await link.heal()

    async def flagged() -> bool:
        await edge.call("POST", "/api/sync")
        _, sync = await edge.call("GET", "/api/sync")
        _, checks = await edge.call("GET", "/api/clock-checks")
        got = {f["id"] for f in checks.get("items", [])} if isinstance(checks, dict) else set()
        return bool(isinstance(sync, dict) and sync.get("clock_warning") and set(ids) <= got)

    async def at_the_hub() -> bool:
        await edge.call("POST", "/api/sync")
        _, checks = await hub.call("GET", f"/api/clock-checks?commune={commune}")
        got = {f["id"] for f in checks.get("items", [])} if isinstance(checks, dict) else set()
        return set(ids) <= got

    await until("the clock warning and the flags", flagged)
    await until("the flags at the hub", at_the_hub)
    return ids


async def online_filing(hub_url: str, key: str, edge: Api, http: aiohttp.ClientSession,
                        body: dict[str, Any]) -> str:
    """A filing through the portal's API for Sinh Long (02227): its id once in Côn Lôn's inbox."""
    async with http.post(hub_url + "/api/submissions", json={**body, "commune": "02227"},
                         headers={"Authorization": f"Bearer {key}"}) as resp:
        answer = await resp.json(content_type=None)
        if resp.status != 201:
            raise RuntimeError(f"the online filing: {resp.status} {answer}")

    async def arrived() -> bool:
        await edge.call("POST", "/api/sync")
        status, view = await edge.call("GET", f"/api/dossiers/{answer['id']}")
        return status == 200 and view.get("status") == "submitted"

    await until("the online filing in the inbox", arrived)
    return str(answer["id"])


async def set_up(demo: Demo, hub: Api, http: aiohttp.ClientSession) -> None:
    """Set up what goes wrong (bench/demo_scenario.py), then say where to look."""
    con_lon = demo.communes[0]
    faker = DossierFaker(demo.args.seed, commune="Côn Lôn")
    print("setting up the story…", flush=True)
    conflicted = await conflict(hub, con_lon.api, con_lon.proxy, faker.birth())
    con_lon.created.append(conflicted)
    hub_url = f"http://127.0.0.1:{demo.hub_port}"
    key = (await acli("central_hub", "portal", "add", "--data", str(demo.root / "hub"),
                      "--name", "dvc-demo")).split()[-1]
    filed = await online_filing(hub_url, key, con_lon.api, http, faker.birth())
    na_hang = demo.flaky
    clock = "libfaketime is not installed (apt-get install libfaketime): no clock story"
    if faked_clock(0) is not None:
        nh = DossierFaker(demo.args.seed + 1, commune=na_hang.name)
        na_hang.created += await clock_flags(hub, na_hang.api, na_hang.proxy,
                                                   na_hang.code, [nh.birth(), nh.birth()])
        clock = (f"{na_hang.code} {na_hang.name}: its PC's clock is 2 h ahead; the desk "
                 "warns, and the 2 dossiers it took in before it heard from the hub are "
                 "flagged for a check of their dates (hub: /clock-checks)")
    else:
        await na_hang.proxy.heal()
    print()
    print("What goes wrong (open the hub's dashboard and each desk):")
    print(f"  {demo.offline.code} {demo.offline.name}: offline — its link was cut before its "
          "first sync and stays cut; the hub says it never synced, its clerk keeps working "
          "and the changes wait (the outage lasts the run)")
    print(f"  {con_lon.code} {con_lon.name}: the province and the commune changed one "
          f"applicant's address while apart — a conflict (hub: /conflicts; desk: dossier "
          f"/dossiers/{conflicted})")
    print(f"  {con_lon.code} {con_lon.name}: a birth registration filed online for Sinh "
          "Long (02227, part of Côn Lôn since 1 July 2025) waits in the desk's online inbox "
          f"(/inbox, dossier {filed})")
    print(f"  {clock}")
    if demo.overdue:
        print(f"  {con_lon.code} {con_lon.name}: a birth registration taken in {demo.past_h} h "
              f"ago (simulated), due that day at 17:00, still open — overdue (desk: /dossiers/"
              f"{demo.overdue}; the home page counts it)")
    print(f"  {na_hang.code} {na_hang.name}: its link is cut and restored every "
          f"{demo.args.cut_every:.0f} s")
    print("scenario ready", flush=True)
