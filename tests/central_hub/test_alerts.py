"""Alerts: a node whose link is cut goes warning, then critical, and back to ok once it syncs; each
change is stored with since-when and POSTed as JSON to a webhook (a real receiver on loopback);
a webhook that is down is marked undelivered and never holds the hub up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from central_hub.app import MONITOR
from central_hub.dashboard import manage, overview
from central_hub.nodes import fleet
from central_hub.nodes.health import HealthRules
from central_hub.nodes.monitor import Monitor
from tests.central_hub.operator import operator, start_hub
from tests.harness import DEAD_URL, Net, birth

pytestmark = pytest.mark.both_stores  # the contract suite: on SQLite and on PostgreSQL

TINY = {"health": HealthRules(warn_no_contact_s=1, crit_no_contact_s=3), "health_check_s": 0.1}


class Receiver:
    """A webhook endpoint that keeps what it was sent."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        app = web.Application()
        app.router.add_post("/hook", self.hook)
        self.server = TestServer(app, host="127.0.0.1")

    async def hook(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        return web.Response(status=204)

    @property
    def url(self) -> str:
        return str(self.server.make_url("/hook"))

    def of(self, node: str) -> list[str]:
        return [b["health"] for b in self.bodies if b["node"] == node]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.server.start_server()
    yield r
    await r.server.close()


async def until(check: Callable[[], bool], what: str, within: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.05)


@pytest.fixture
async def bare(tmp_path: Any, hub_db: str) -> AsyncIterator[Net]:
    """A network whose hub each test starts with its own settings."""
    network = Net(tmp_path, db=hub_db)
    try:
        yield network
    finally:
        await network.close()


async def test_a_cut_link_goes_warning_then_critical_then_ok_and_each_change_is_posted(
        bare: Net, receiver: Receiver) -> None:
    hub = await start_hub(bare, alert_webhook_url=receiver.url,
                          public_url="https://hub.example.vn", **TINY)
    edge = await bare.add_edge("02245", "Xã Côn Lôn")
    node = edge.config.node
    await until(lambda: receiver.of(node) == ["critical"], "never-synced node not alerted")
    first = receiver.bodies[-1]
    assert first["previous"] is None and first["reasons"][0]["code"] == "never_synced"
    assert first["url"] == f"https://hub.example.vn/nodes/{node}"

    await edge.api.post("/api/dossiers", birth())
    await edge.sync()
    await until(lambda: receiver.of(node)[-1:] == ["ok"], "sync did not clear the alert")

    edge.cut()
    await edge.api.post("/api/dossiers", birth("Hoàng Thị Lan", citizen_id="008190004321"))
    with pytest.raises(Exception):  # noqa: B017 - the transport error of a dead link
        await edge.sync()
    await until(lambda: receiver.of(node)[-1:] == ["warning"], "no warning", within=10)
    warning = receiver.bodies[-1]
    assert warning["previous"] == "ok" and warning["reasons"][0]["code"] == "no_sync"
    assert "no successful sync for" in warning["reasons"][0]["text"]
    since = warning["not_ok_since"]
    status, alerts = await hub.api.get("/api/alerts")
    assert status == 200
    [active] = alerts["active"]
    assert active["node"] == node and active["health"] == "warning"
    assert active["since"] == since

    await until(lambda: receiver.of(node)[-1:] == ["critical"], "no critical", within=10)
    critical = receiver.bodies[-1]
    assert critical["previous"] == "warning" and critical["not_ok_since"] == since

    edge.heal()
    result = await edge.sync()
    assert result.sent == 1
    await until(lambda: receiver.of(node)[-1:] == ["ok"], "not ok after the sync")
    assert receiver.of(node) == ["critical", "ok", "warning", "critical", "ok"]
    status, alerts = await hub.api.get("/api/alerts")
    assert alerts["active"] == []
    changes = alerts["changes"]
    assert [c["health"] for c in reversed(changes)] == receiver.of(node)
    for _ in range(100):
        log = await fleet.alert_log(hub.store)
        if all(entry["delivered"] for entry in log):
            break
        await asyncio.sleep(0.05)
    assert all(entry["delivered"] for entry in log), log

    op = operator(hub.url)
    try:
        await op.login()
        page = await op.get("/alerts")
        assert "Không có cảnh báo nào" in page.text and page.text.count("health-critical") >= 2
    finally:
        await op.close()


async def test_a_webhook_that_is_down_is_marked_undelivered(bare: Net) -> None:
    hub = await start_hub(bare, alert_webhook_url=DEAD_URL + "/hook", alert_webhook_timeout_s=1,
                          **TINY)
    monitor: Monitor = hub.server.app[MONITOR]
    monitor.retry_base_s = 0.01
    await bare.add_edge("02245", "Xã Côn Lôn")

    async def delivered() -> list[Any]:
        return [e["delivered"] for e in await fleet.alert_log(hub.store)]

    for _ in range(200):
        if (await delivered())[:1] == [False]:
            break
        await asyncio.sleep(0.05)
    assert (await delivered())[:1] == [False]
    assert monitor.failed >= 1
    status, _ = await hub.api.get("/api/nodes")
    assert status == 200  # the hub answers while the webhook is down


async def test_alerts_and_nodes_are_listed_a_page_at_a_time(
        bare: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    for module in (overview, manage):  # a country has hundreds: 200 a page
        monkeypatch.setattr(module, "PAGE", 2)
    hub = await start_hub(bare, **TINY)
    nodes = [(await bare.add_edge(code, name)).config.node for code, name in
             (("02245", "Xã Côn Lôn"), ("02227", "Xã Thượng Lâm"), ("02233", "Xã Lăng Can"))]
    monitor: Monitor = hub.server.app[MONITOR]
    # a whole check that started after the last enrollment (one running then may miss it)
    seen = monitor.checks
    await until(lambda: monitor.checks > seen + 1, "no health check")
    status, alerts = await hub.api.get("/api/alerts")
    assert status == 200
    assert sorted(a["node"] for a in alerts["active"]) == sorted(nodes)  # never synced
    op = operator(hub.url)
    try:
        await op.login()
        first, second = (await op.get("/alerts")).text, (await op.get("/alerts?page=2")).text
        assert "3 cảnh báo đang mở" in first and "3 cảnh báo đang mở" in second
        listed = [[n for n in nodes if f'<tr data-node="{n}">' in page]
                  for page in (first, second)]
        assert [len(x) for x in listed] == [2, 1] and sorted(listed[0] + listed[1]) == sorted(nodes)
        assert 'href="/alerts?page=2" rel="next"' in first and "Trang 1/2" in first
        assert 'href="/alerts?page=1" rel="prev"' in second
        assert (await op.get("/alerts?page=x")).text.count("<tr data-node=") == 2
        managed = [(await op.get(f"/nodes?page={n}")).text for n in (1, 2)]
        assert [p.count("<tr data-node=") for p in managed] == [2, 1]
        assert "3 nút" in managed[1] and 'href="/nodes?page=1" rel="prev"' in managed[1]
        found = (await op.get("/nodes?q=thuong+lam")).text  # accents aside
        assert found.count("<tr data-node=") == 1 and "Xã Thượng Lâm" in found
    finally:
        await op.close()
