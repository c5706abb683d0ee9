"""Dossiers filed online, end to end. With real `central-hub serve` and `edge-node serve` processes:
the province's portal files three dossiers for Côn Lôn; they reach the desk's online inbox with
the sync; the clerk accepts one (the tracking page then shows it accepted with its due date, and
the receipt's QR code holds the tracking link), refuses one (tracking shows the reasons) and asks
a supplement for the third (tracking shows what to bring). In process, the figures: a filing
reaches an edge that comes back online in one round trip, and its acceptance reaches tracking in
the next hub answer."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from central_hub import config as hub_config
from tests.central_hub.test_portal import portals
from tests.faults.procs import (
    CLERK,
    PASSWORD,
    Procs,
    acli,
    edge_setup,
    free_port,
    hub_setup,
    ready,
    serve_edge,
    serve_hub,
)
from tests.harness import CSRF_RE, Net, birth

PUBLIC_URL = "https://dvc.tuyenquang.example.vn"


async def until(what: str, check: Callable[[], Awaitable[Any]], within_s: float = 60) -> Any:
    deadline = time.monotonic() + within_s
    while not (result := await check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.3)
    return result


class Desk:
    """A clerk at the desk in a browser-like session (cookies, CSRF), on the real process."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http, self.base = http, base

    async def page(self, path: str) -> tuple[int, str]:
        async with self.http.get(self.base + path) as resp:
            return resp.status, await resp.text()

    async def login(self) -> None:
        _, text = await self.page("/login")
        csrf = CSRF_RE.search(text)
        assert csrf
        async with self.http.post(self.base + "/login", data={
                "csrf": csrf.group(1), "username": CLERK, "password": PASSWORD,
                "next": "/"}) as resp:
            assert resp.status == 200 and "/login" not in str(resp.url), await resp.text()

    async def answer(self, dossier: str, kind: str, note: str = "") -> str:
        """Open the filing in the inbox and press one of its answers; the page it lands on."""
        status, text = await self.page(f"/inbox/{dossier}")
        assert status == 200, text
        csrf, base = CSRF_RE.search(text), re.search(r'name="base" value="([^"]*)"', text)
        assert csrf and base
        async with self.http.post(f"{self.base}/inbox/{dossier}/{kind}", data={
                "csrf": csrf.group(1), "base": base.group(1), "note": note}) as resp:
            assert resp.status == 200, await resp.text()
            return str(resp.url)


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_filed_online_answered_at_the_desk_and_tracked(tmp_path: Path,
                                                              procs: Procs) -> None:
    hub_dir, edge_dir = tmp_path / "hub", tmp_path / "edge"
    [token] = await hub_setup(hub_dir, ["02245"])
    hub_config.save(hub_dir, dataclasses.replace(hub_config.load(hub_dir), citizen_url=PUBLIC_URL))
    key = (await acli("central_hub", "portal", "add", "--data", str(hub_dir),
                      "--name", "dvc")).strip()
    port = free_port()
    hub_url = f"http://127.0.0.1:{port}"
    hub = serve_hub(procs, hub_dir, port, tmp_path / "hub.log")
    assert await ready(hub_url + "/healthz", hub)
    edge_port = free_port()
    await edge_setup(edge_dir, hub_url, token, port=edge_port, sync_interval_s=1.0)
    edge = serve_edge(procs, edge_dir, tmp_path / "edge.log")
    edge_url = f"http://127.0.0.1:{edge_port}"
    assert await ready(edge_url + "/healthz", edge)

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        filed = []
        for name in ("Nguyễn Văn An", "Hoàng Thị Lan", "Ma Văn Dũng"):
            async with http.post(hub_url + "/api/submissions", json={
                    **birth(name=name), "commune": "02245"},
                    headers={"Authorization": f"Bearer {key}"}) as resp:
                assert resp.status == 201, await resp.text()
                filed.append(await resp.json())

        async def tracked(i: int) -> dict[str, Any]:
            async with http.get(hub_url + "/api/track", params={
                    "code": filed[i]["code"], "check": filed[i]["tracking"]}) as resp:
                assert resp.status == 200, await resp.text()
                return dict(await resp.json())

        assert (await tracked(0))["status"] == "submitted"
        desk = Desk(http, edge_url)
        await desk.login()

        async def in_inbox() -> bool:
            _, text = await desk.page("/inbox")
            return all(f["code"] in text for f in filed)

        await until("the filings in the desk's online inbox", in_inbox)
        accepted, refused, asked = (f["id"] for f in filed)
        landed = await desk.answer(accepted, "accept")
        assert landed.endswith(f"/dossiers/{accepted}?new=1"), landed
        landed = await desk.answer(refused, "refuse",
                                   "Hồ sơ không thuộc thẩm quyền của xã\nThiếu tờ khai")
        assert landed.endswith(f"/dossiers/{refused}/refusal"), landed  # form 03, to print
        _, form03 = await desk.page(f"/dossiers/{refused}/refusal")
        assert "PHIẾU TỪ CHỐI" in form03 and "Thiếu tờ khai" in form03
        landed = await desk.answer(asked, "supplement", "Giấy chứng sinh (bản chính)")
        assert landed.endswith(f"/dossiers/{asked}/supplement"), landed  # form 02, to print
        _, inbox = await desk.page("/inbox")
        assert 'id="inbox-empty"' in inbox

        async def answered() -> bool:
            return [(await tracked(i))["status"] for i in range(3)] == \
                ["accepted", "refused", "supplement_requested"]

        await until("the answers on the tracking page", answered)
        shown = await tracked(0)
        assert shown["due_at"] and shown["missing"] == [] and \
            shown["status_label"] == "Được tiếp nhận", shown
        assert (await tracked(1))["missing"] == ["Hồ sơ không thuộc thẩm quyền của xã",
                                                 "Thiếu tờ khai"]
        assert (await tracked(2))["missing"] == ["Giấy chứng sinh (bản chính)"]
        assert (await tracked(2))["due_at"] is None  # its time limit has not started
        # the receipt of the accepted one (sent electronically) carries the tracking link
        status, receipt = await desk.page(f"/dossiers/{accepted}/receipt")
        assert status == 200, receipt
        assert f"{PUBLIC_URL}/track" in receipt and filed[0]["tracking"] in receipt
        assert "Hồ sơ nộp trực tuyến lúc" in receipt
    await procs.stop_all()
    assert "unhandled error" not in hub.tail(100_000) + edge.tail(100_000)


async def test_one_round_trip_each_way(net: Net) -> None:
    """The figures: an edge offline while a dossier is filed for it receives it in the first
    round trip after it comes back; its acceptance is on the tracking page as soon as the next
    round trip is answered."""
    assert net.hub is not None
    edge = await net.add_edge("02245", "Xã Côn Lôn")
    key = await portals(net.hub).add("dvc")
    edge.cut()
    status, made = await net.hub.api.post("/api/submissions", {**birth(), "commune": "02245"},
                                          token=key)
    assert status == 201, made
    edge.heal()
    result = await edge.sync()
    assert result.round_trips == 1 and result.received == 1, result
    status, view = await edge.api.get(f"/api/dossiers/{made['id']}")
    assert status == 200 and view["status"] == "submitted", view
    status, view = await edge.api.post(f"/api/dossiers/{made['id']}/transition",
                                       {"to": "accepted", "base": view["version"]})
    assert status == 200 and view["due_at"], view
    result = await edge.sync()
    assert result.round_trips == 1 and result.sent == 1, result
    status, shown = await net.hub.api.get(
        f"/api/track?code={made['code']}&check={made['tracking']}", token="")
    assert status == 200 and shown["status"] == "accepted", shown
    assert shown["due_at"] == view["due_at"]  # the desk's due date, counted at acceptance
