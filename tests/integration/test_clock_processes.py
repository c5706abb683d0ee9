"""Wrong clocks on real processes: `central-hub serve` over HTTPS with mutual TLS, `edge-node
serve` processes whose whole clock — Python's and OpenSSL's — libfaketime sets a day, a month or
27 years behind, or a day ahead. Each edge was enrolled and synced with a true clock, then its
clock broke and it took dossiers in offline; when the link returns everything reaches the hub, the
offset is shown at both ends within a second, the hub does not call the node ok, and the dossiers
stamped with the broken clock are flagged for staff to check their legal times. A certificate
that is truly expired by the hub's clock is still refused, either way."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from central_hub import config as hub_config
from central_hub import tls
from central_hub.app import open_accounts as hub_accounts
from central_hub.nodes.health import HealthRules
from central_hub.store import HubStore
from edge_node import config as edge_config
from edge_node.app import open_accounts as edge_accounts
from edge_node.enroll import enroll
from edge_node.identity import Identity
from edge_node.store import EdgeStore
from edge_node.sync import SyncClient
from protocol.calendar import VN_TZ
from protocol.errors import AuthError
from service import certclock, pki
from service.dossier_store import wall_clock_ms
from tests.faults.linkproxy import LinkProxy
from tests.faults.procs import Proc, Procs, free_port, ready
from tests.harness import PASSWORD, birth

FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
pytestmark = pytest.mark.skipif(
    not FAKETIME.exists(), reason="libfaketime is not installed (apt-get install libfaketime): "
    "it sets a process's clock, OpenSSL's included, as a broken PC's would be")

DAY_S = 86_400
YEAR_2000 = int(datetime(2000, 1, 1, 8, tzinfo=UTC).timestamp())
WITHIN_S = 60.0


def faked(skew_s: int) -> dict[str, str]:
    """The environment of a process whose wall clock is `skew_s` off (monotonic untouched)."""
    return {"LD_PRELOAD": str(FAKETIME), "FAKETIME": f"{skew_s:+d}",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1", "DONT_FAKE_MONOTONIC": "1"}


async def until(what: str, check: Callable[[], Awaitable[Any]], within_s: float = WITHIN_S,
                proc: Proc | None = None) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` (and a log tail)."""
    deadline = time.monotonic() + within_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} within {within_s:.0f} s; last: {last!r}\n"
                         f"{proc.tail(3000) if proc else ''}")


@dataclasses.dataclass
class Hub:
    data: Path
    port: int
    proc: Proc
    http: aiohttp.ClientSession
    token: str = ""

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.request(method, self.url + path, json=body, headers={
                "Authorization": f"Bearer {self.token}"}) as resp:
            return resp.status, await resp.json(content_type=None)


def ca_context(data: Path, check_dates: bool = True) -> ssl.SSLContext:
    """An operator's view: the province's CA, no client certificate."""
    ctx = ssl.create_default_context(cafile=str(tls.tls_dir(data) / tls.CA_CERT))
    if not check_dates:  # an operator who clicked through the browser's warning
        ctx.verify_flags |= certclock.NO_CHECK_TIME
    return ctx


async def make_hub(root: Path, communes: list[str], **config: Any) -> tuple[Path, list[str]]:
    """`central-hub init` done in this process, an operator, one enrollment token per commune."""
    data = root / "hub"
    data.mkdir(parents=True)
    hub_config.save(data, hub_config.HubConfig(**config))
    fingerprint = tls.init_tls(data, [], wall_clock_ms())
    accounts = await hub_accounts(data)
    await accounts.add_user("op", PASSWORD, "operator")
    await accounts.conn.close()
    store = await HubStore.open(data / "hub.db")
    try:
        tokens = [await store.create_enroll_token(c, f"Xã {c}", fingerprint) for c in communes]
    finally:
        await store.close()
    return data, tokens


async def serve_hub(procs: Procs, data: Path, port: int, env: dict[str, str] | None = None,
                    check_dates: bool = True) -> Hub:
    proc = procs.start("hub", ["central_hub", "serve", "--data", str(data), "--host",
                               "127.0.0.1", "--port", str(port)], data / "serve.log", env=env)
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(
        ssl=ca_context(data, check_dates)))
    hub = Hub(data, port, proc, http)

    async def login() -> bool:
        assert proc.alive(), proc.tail()
        try:
            status, body = await hub.call("POST", "/api/login",
                                          {"username": "op", "password": PASSWORD})
        except (aiohttp.ClientError, OSError):
            return False
        hub.token = body.get("token", "") if status == 200 else ""
        return bool(hub.token)

    await until("the hub serves HTTPS", login, proc=proc)
    return hub


@pytest.fixture
async def procs() -> AsyncIterator[Procs]:
    running = Procs()
    try:
        yield running
    finally:
        await running.stop_all()


@dataclasses.dataclass
class Edge:
    data: Path
    config: edge_config.EdgeConfig
    proc: Proc
    http: aiohttp.ClientSession
    token: str = ""

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.request(
                method, f"http://127.0.0.1:{self.config.port}{path}", json=body,
                headers={"Authorization": f"Bearer {self.token}"} if self.token else {}) as r:
            return r.status, await r.json(content_type=None)


async def enrolled(data: Path, hub_url: str, token: str, **overrides: Any
                   ) -> edge_config.EdgeConfig:
    """Enroll with a true clock (what `edge-node init` does), add the clerk, tune the config."""
    config = await enroll(data, hub_url, token)
    config = dataclasses.replace(config, port=free_port(), sync_interval_s=1.0,
                                 backoff_cap_s=2.0, request_timeout_s=10.0, **overrides)
    edge_config.save(data, config)
    accounts = await edge_accounts(data)
    await accounts.add_user("clerk", PASSWORD, "leader")
    await accounts.conn.close()
    return config


async def sync_in_process(data: Path, config: edge_config.EdgeConfig,
                          body: dict[str, Any] | None = None) -> str | None:
    """One session with a true clock (optionally after taking in `body`); its dossier's id."""
    store = await EdgeStore.open(data / edge_config.DB_FILE, config.node, config.commune,
                                 config.agency)
    client = SyncClient(store, config)
    client.data_dir = str(data)
    try:
        view = await store.create(body, "clerk") if body else None
        await client.session_once()
        return view["id"] if view else None
    finally:
        await client.close()
        await store.close()


async def serve_edge(procs: Procs, data: Path, config: edge_config.EdgeConfig, skew_s: int
                     ) -> Edge:
    proc = procs.start(f"edge {config.commune}", ["edge_node", "serve", "--data", str(data)],
                       data / "serve.log", env=faked(skew_s))
    assert await ready(f"http://127.0.0.1:{config.port}/healthz", proc), proc.tail()
    edge = Edge(data, config, proc, aiohttp.ClientSession())
    status, body = await edge.call("POST", "/api/login",
                                   {"username": "clerk", "password": PASSWORD})
    assert status == 200, body
    edge.token = body["token"]
    return edge


def born_before(skew_s: int, name: str = "Lò Văn Một") -> dict[str, Any]:
    """A birth registration valid on the day the broken clock shows (born three days before)."""
    day = (datetime.now(VN_TZ) + timedelta(seconds=skew_s) - timedelta(days=3)).date()
    return birth(name, child_birth_date=day.isoformat())


def stamped(ts: str) -> float:
    return datetime.fromisoformat(ts).timestamp()


async def check_broken_clock(hub: Hub, procs: Procs, root: Path, commune: str, token: str,
                             skew_s: int) -> None:
    """One edge through the whole story; every figure of the promise asserted."""
    data = root / f"edge-{commune}"
    link = LinkProxy("127.0.0.1", hub.port)
    await link.start()
    try:
        config = await enrolled(data, hub.url, token)
        before = await sync_in_process(data, config, birth("Trước khi hỏng đồng hồ"))
        await link.set_down(True)  # the link is down, and the clock breaks
        config = dataclasses.replace(config, hub_url=f"https://127.0.0.1:{link.port}")
        edge_config.save(data, config)
        edge = await serve_edge(procs, data, config, skew_s)
        try:
            await _story(hub, edge, link, skew_s, before)
        finally:
            await edge.http.close()
    finally:
        await link.close()


async def _story(hub: Hub, edge: Edge, link: LinkProxy, skew_s: int, before: str | None
                 ) -> None:
    skew_ms, node = skew_s * 1000, edge.config.node
    offline = []
    for name in ("Lò Văn Một", "Lò Thị Hai"):
        status, d = await edge.call("POST", "/api/dossiers", born_before(skew_s, name))
        assert status == 201, d
        assert abs(stamped(d["received_at"]) - time.time() - skew_s) < 60  # nothing better known
        offline.append(d["id"])
    if skew_s < 0:  # behind the last sync's time: detectable offline already
        _, sync = await edge.call("GET", "/api/sync")
        assert sync["clock_warning"] is True and sync["state"] != "online", sync
        assert abs(sync["clock_offset_ms"] - skew_ms) < 60_000, sync
        async def both_flagged() -> bool:
            return await _ids(edge) == set(offline)

        await until("the offline dossiers flagged at the edge", both_flagged, proc=edge.proc)
    # the hub has not heard from a node that syncs every second: not ok
    why = await until("the hub to find the node silent", lambda: _silent(hub, node))
    assert why["health"] != "ok"
    await link.set_down(False)  # the link returns
    sync = await until("everything sent", lambda: _synced(edge), proc=edge.proc)
    assert abs(sync["clock_offset_ms"] - skew_ms) < 1000, sync
    assert sync["clock_warning"] is True and sync["last_error"] is None, sync
    asked = time.time()
    status, fresh = await edge.call("POST", "/api/dossiers", birth("Sau khi có giờ tỉnh"))
    assert status == 201, fresh
    # the hub's time, corrected (the view is to the second)
    assert asked - 1.5 < stamped(fresh["received_at"]) <= time.time() + 0.5, fresh
    await until("the last dossier sent", lambda: _synced(edge), proc=edge.proc)
    _, listing = await hub.call("GET", f"/api/dossiers?commune={edge.config.commune}")
    assert {d["id"] for d in listing["items"]} == {before, *offline, fresh["id"]}
    item = await until("the hub's view of the node", lambda: _node(hub, node, skew_ms))
    assert abs(item["clock_offset_ms"] - skew_ms) < 1000 and item["health"] != "ok", item
    assert any("clock off" in r for r in item["reasons"]), item
    _, flagged = await hub.call("GET", f"/api/clock-checks?commune={edge.config.commune}")
    assert {f["id"] for f in flagged["items"]} == set(offline), flagged
    for f in flagged["items"]:  # the estimated error of the stamps: the skew
        assert abs(f["error_ms"] - skew_ms) < 60_000, f
    assert await _ids(edge) == set(offline)


async def _ids(edge: Edge) -> set[str]:
    _, body = await edge.call("GET", "/api/clock-checks")
    return {f["id"] for f in body["items"]}


async def _synced(edge: Edge) -> dict[str, Any] | None:
    _, sync = await edge.call("GET", "/api/sync")
    done = sync["state"] == "online" and sync["pending_events"] == 0
    return sync if done else None


async def _silent(hub: Hub, node: str) -> dict[str, Any] | None:
    _, nodes = await hub.call("GET", "/api/nodes")
    item = next(i for i in nodes["items"] if i["node"] == node)
    return item if any(w["code"] == "silent" for w in item["why"]) else None


async def _node(hub: Hub, node: str, skew_ms: int) -> dict[str, Any] | None:
    _, nodes = await hub.call("GET", "/api/nodes")
    item = next(i for i in nodes["items"] if i["node"] == node)
    return item if abs((item["clock_offset_ms"] or 0) - skew_ms) < 1000 else None


async def test_edges_with_broken_clocks_converge_flag_and_warn(tmp_path: Path,
                                                               procs: Procs) -> None:
    skews = {"02245": -DAY_S, "02246": -30 * DAY_S, "02247": YEAR_2000 - int(time.time()),
             "02248": +DAY_S}
    data, tokens = await make_hub(tmp_path, list(skews), health_check_s=0.5,
                                  health=HealthRules(warn_silent_min_s=2))
    hub = await serve_hub(procs, data, free_port())
    try:
        await asyncio.gather(*(check_broken_clock(hub, procs, tmp_path, commune, token, skew)
                               for (commune, skew), token in zip(skews.items(), tokens,
                                                                 strict=True)))
        # staff at the province checked one dossier's dates: the flag clears everywhere, and
        # the history keeps who raised and who cleared it
        _, flagged = await hub.call("GET", "/api/clock-checks?commune=02245")
        first = flagged["items"][0]["id"]
        status, view = await hub.call("POST", f"/api/dossiers/{first}/clock-check")
        assert status == 200 and view["clock_check"] is None, view
        assert [h["actor"] for h in view["history"]][-2:] == ["clock-check", "op"]
        _, left = await hub.call("GET", "/api/clock-checks?commune=02245")
        assert [f["id"] for f in left["items"]] == [flagged["items"][1]["id"]]
    finally:
        await hub.http.close()


async def enrolled_while_served(procs: Procs, data: Path, port: int, edge_dir: Path, token: str
                                ) -> edge_config.EdgeConfig:
    """Serve the hub with a true clock just long enough to enroll an edge into it."""
    hub = await serve_hub(procs, data, port)
    try:
        return await enrolled(edge_dir, hub.url, token)
    finally:
        await hub.proc.stop()
        await hub.http.close()


def _expired_server_certificate(data: Path, days_ago: int) -> None:
    """Replace the hub's server certificate with one of the same CA that expired `days_ago`."""
    d = tls.tls_dir(data)
    ca, ca_key = pki.load_cert((d / tls.CA_CERT).read_bytes()), \
        pki.load_key((d / tls.CA_KEY).read_bytes())
    key = pki.new_key()
    lifetime = timedelta(days=tls.SERVER_DAYS)
    issued = wall_clock_ms() - int((lifetime + timedelta(days=days_ago)).total_seconds() * 1000)
    cert = tls._leaf(ca_key, ca, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                               "127.0.0.1")]),
                     key.public_key(), [tls._san("127.0.0.1"), tls._san("localhost")],
                     ExtendedKeyUsageOID.SERVER_AUTH, issued, lifetime)
    (d / tls.SERVER_KEY).write_bytes(pki.key_pem(key))
    (d / tls.SERVER_CERT).write_bytes(pki.cert_pem(cert) + pki.cert_pem(ca))


async def test_a_hub_certificate_expired_by_the_hubs_clock_is_refused(tmp_path: Path,
                                                                      procs: Procs) -> None:
    data, [token] = await make_hub(tmp_path, ["02245"])
    port, edge_dir = free_port(), tmp_path / "edge"
    config = await enrolled_while_served(procs, data, port, edge_dir, token)
    # the province forgot to renew: its server certificate expired 75 days ago. The edge's
    # clock is 100 days behind, where that certificate still looks valid.
    _expired_server_certificate(data, 75)
    hub = await serve_hub(procs, data, port, check_dates=False)
    edge = await serve_edge(procs, edge_dir, config, -100 * DAY_S)
    try:
        status, _ = await edge.call("POST", "/api/dossiers", born_before(-100 * DAY_S))
        assert status == 201

        async def refused() -> dict[str, Any] | None:
            _, sync = await edge.call("GET", "/api/sync")
            return sync if sync["last_error"] else None

        sync = await until("the edge to refuse the hub", refused, proc=edge.proc)
        assert "hub's certificate expired" in sync["last_error"], sync
        assert "by the hub's clock" in sync["last_error"], sync
        assert "pinned CA" not in sync["last_error"], sync  # not blamed on the CA
        assert sync["pending_events"] == 1 and sync["state"] != "online", sync
        assert abs(sync["clock_offset_ms"] + 100 * DAY_S * 1000) < 1000, sync  # learned anyway
        _, listing = await hub.call("GET", "/api/dossiers?commune=02245")
        assert listing["items"] == []  # nothing was sent to it
        # a new node cannot enroll with it either
        store = await HubStore.open(data / "hub.db")
        fingerprint = pki.fingerprint(pki.load_cert((tls.tls_dir(data) / tls.CA_CERT)
                                                    .read_bytes()))
        fresh = await store.create_enroll_token("02245", "Xã", fingerprint)
        await store.close()
        with pytest.raises(AuthError, match="expired"):
            await enroll(tmp_path / "new", hub.url, fresh)
    finally:
        await edge.http.close()
        await hub.http.close()


async def test_a_node_certificate_expired_by_the_hubs_clock_is_refused_then_recovered(
        tmp_path: Path, procs: Procs) -> None:
    data, [token] = await make_hub(tmp_path, ["02245"], node_cert_days=30)
    port, edge_dir = free_port(), tmp_path / "edge"
    config = await enrolled_while_served(procs, data, port, edge_dir, token)
    old = Identity(edge_dir).certificate()
    # the hub's clock is 40 days past the edge's: by the hub's clock, the reference, the node's
    # 30-day certificate has expired, though by the edge's own clock it is valid
    hub = await serve_hub(procs, data, port, env=faked(40 * DAY_S), check_dates=False)
    try:
        ctx = Identity(edge_dir).context()  # OpenSSL's own date checks, this machine's clock
        ctx.verify_flags |= certclock.NO_CHECK_TIME  # (the hub's certificate is not tested here)
        with pytest.raises((aiohttp.ClientError, ssl.SSLError, OSError)):  # refused by the hub
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as http, \
                    http.get(f"{hub.url}/v1/blobs/{'0' * 64}") as resp:
                await resp.read()
        # the edge learns the hub's time first, so it knows its certificate has expired and
        # recovers it (signed by the old key) instead of failing every handshake
        dossier = await sync_in_process(edge_dir, config, birth())
        new = Identity(edge_dir).certificate()
        assert pki.serial_of(new) != pki.serial_of(old)
        _, view = await hub.call("GET", f"/api/dossiers/{dossier}")
        assert view["id"] == dossier
    finally:
        await hub.http.close()


async def test_an_edge_enrolls_with_its_clock_27_years_behind(tmp_path: Path,
                                                              procs: Procs) -> None:
    data, [token] = await make_hub(tmp_path, ["02245"])
    hub = await serve_hub(procs, data, free_port())
    edge_dir = tmp_path / "edge"
    skew_s = YEAR_2000 - int(time.time())
    try:
        init = procs.start("edge init", ["edge_node", "init", "--data", str(edge_dir), "--hub",
                                         hub.url, "--token", token], tmp_path / "init.log",
                           env=faked(skew_s))
        assert await init.wait(60) == 0, init.tail()  # judged by the hub's time, not year 2000
        config = edge_config.load(edge_dir)
        store = await EdgeStore.open(edge_dir / edge_config.DB_FILE, config.node,
                                     config.commune, config.agency)
        try:  # it starts with the hub's time: the correction is the 27 years
            correction = int(await store.get_meta("clock_correction_ms"))
        finally:
            await store.close()
        assert abs(correction + skew_s * 1000) < 1000
    finally:
        await hub.http.close()
