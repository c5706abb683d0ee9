"""The fault matrix: each LinkProxy toxic in each direction, a reply lost after the hub committed,
answers and requests cut at 50 byte offsets each, and a flapping link — then one checker for all.

The hub and the edge are real aiohttp servers on loopback in this process (`tests/harness.Net`);
the edge's `hub_url` points at a `LinkProxy` in front of the hub, so every sync and blob request is
real HTTP over real sockets through the faulty link, while the clerk and the operator reach their
own node directly (as at the counter). The edge's background sync loop runs throughout.

"Converges within two sync cycles plus the backoff cap": a sync cycle is the loop's interval plus
the longest one attempt can hang (the request timeout, e.g. in a black hole), so the bound after
the link heals is 2 × (sync_interval_s + request_timeout_s) + backoff_cap_s, plus one second for the
work itself on a loaded 2-core machine.

Flapping: `FLAP_MIN_S`/`FLAP_MAX_S` (default 0.5–3 s in `make test`; `make soak` runs 5–30 s) for
`FLAP_TOTAL_S` seconds (default 12; soak 600).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge_node.blobsync import BlobMover
from protocol.errors import ServerBusy, TransportError
from tests.faults.checker import Acked, Replica, check, converge
from tests.faults.linkproxy import DIRECTIONS, LinkProxy, Toxics
from tests.faults.workload import Clerk, Operator, scan, stop
from tests.harness import PASSWORD, EdgeHandle, Net

SYNC_INTERVAL_S = 1.0
BACKOFF_CAP_S = 2.0
REQUEST_TIMEOUT_S = 3.0
BOUND_S = 2 * (SYNC_INTERVAL_S + REQUEST_TIMEOUT_S) + BACKOFF_CAP_S + 1.0
FAULT_S = 1.5
PARALLEL = 4  # sites at once: they share this process's event loop and the machine's 2 cores
LOOP = {"auto_sync": True, "sync_interval_s": SYNC_INTERVAL_S, "backoff_cap_s": BACKOFF_CAP_S,
        "request_timeout_s": REQUEST_TIMEOUT_S,
        # small batches and answers: a session takes several round trips, so faults land inside
        "batch_bytes": 2048, "batch_bytes_max": 8192, "want_bytes": 2048}
FLAP_MIN_S = float(os.environ.get("FLAP_MIN_S", "0.5"))
FLAP_MAX_S = float(os.environ.get("FLAP_MAX_S", "3"))
FLAP_TOTAL_S = float(os.environ.get("FLAP_TOTAL_S", "12"))

TOXICS: dict[str, Toxics] = {
    "latency": Toxics(latency_ms=300, jitter_ms=150),
    "bandwidth": Toxics(bandwidth=8 * 1024),
    "slicer": Toxics(slice_bytes=48, slice_delay_ms=1),
    "limit_data": Toxics(limit_data=1500),
    "reset": Toxics(reset=True),
    "black_hole": Toxics(black_hole=True),
}
CASES = [(name, d) for name in TOXICS for d in DIRECTIONS] + [("down", "both")]


async def never() -> bool:
    return False


async def busy_retry(step: Callable[[], Awaitable[object]]) -> None:
    """Run a sync step, again while the hub's per-node rate limit answers 429 (as the loop does)."""
    for _ in range(100):
        try:
            await step()
            return
        except ServerBusy:
            await asyncio.sleep(0.2)
    raise AssertionError("the hub stayed busy")


async def broken(step: Callable[[], Awaitable[object]]) -> bool:
    """Run a sync step over a faulty link: True if the link broke it (a 429 is waited out)."""
    for _ in range(100):
        try:
            await step()
            return False
        except ServerBusy:
            await asyncio.sleep(0.2)
        except TransportError:
            return True
    raise AssertionError("the hub stayed busy")


@dataclass
class Site:
    """One commune's edge behind a faulty link to the hub, with staff at both ends."""

    net: Net
    edge: EdgeHandle
    proxy: LinkProxy
    http: aiohttp.ClientSession
    acked: Acked
    clerk: Clerk
    operator: Operator

    @property
    def hub(self) -> Replica:
        assert self.net.hub is not None
        return Replica.hub(self.net.hub.data)

    @property
    def edges(self) -> list[Replica]:
        return [Replica.edge(self.edge.data)]

    async def converge(self, within_s: float = BOUND_S, blobs: bool = True) -> float:
        return await converge(self.hub, self.edges, self.acked, within_s=within_s, blobs=blobs)

    async def work(self, seconds: float, attach: float = 0.1) -> None:
        """Staff work at both ends for `seconds`."""
        assert self.net.hub is not None
        tasks = [asyncio.create_task(self.clerk.work(attach=attach)),
                 asyncio.create_task(self.operator.work(self.edge.config.commune))]
        try:
            await asyncio.sleep(seconds)
        finally:
            await stop(*tasks)


@contextlib.asynccontextmanager
async def site(root: Path, seed: int, commune: str = "02245",
               **overrides: Any) -> AsyncIterator[Site]:
    """A hub, a proxy in front of it and an edge syncing through the proxy."""
    net = Net(root)
    proxy: LinkProxy | None = None
    http = aiohttp.ClientSession()
    try:
        hub = await net.start_hub()
        proxy = LinkProxy("127.0.0.1", hub.server.port or 0, seed=seed)
        await proxy.start()
        edge = await net.add_edge(commune, hub_url=proxy.url, **{**LOOP, **overrides})
        acked = Acked()
        clerk = Clerk(http, edge.api.base, "clerk", PASSWORD, acked, seed)
        operator = Operator(http, hub.url, "op", PASSWORD, acked, seed + 1)
        clerk.token, operator.token = edge.api.token or "", hub.api.token or ""
        yield Site(net, edge, proxy, http, acked, clerk, operator)
    finally:
        if proxy is not None:
            await proxy.close()
        await http.close()
        await net.close()


async def fault_case(root: Path, seed: int, name: str,
                     fault: Callable[[LinkProxy], Awaitable[None]],
                     heal: Callable[[LinkProxy], Awaitable[None]]) -> str | None:
    """Work, fault while working, heal, converge within the bound; None or what went wrong."""
    async with site(root, seed) as s:
        stage = "before the fault"
        try:
            for _ in range(3):
                assert await s.clerk.create(), "intake refused"
            await s.work(0.5)
            await s.converge()
            await fault(s.proxy)
            stage = "under the fault"
            done = s.clerk.tally.ok
            await s.work(FAULT_S)
            assert s.clerk.tally.ok > done, f"no intake under the fault: {s.clerk.tally}"
            await heal(s.proxy)
            stage = "after the heal"
            took = await s.converge()
            assert s.operator.tally.ok > 0, "the operator got no work done"
        except AssertionError as exc:
            client = s.edge.client
            return (f"{name}, {stage}: {exc}\n  edge sync state {client.state}, last error "
                    f"{client.last_error!r}, {s.edge.loop.sessions} sessions, batch "
                    f"{client.batch_bytes} B; clerk {s.clerk.tally}, operator {s.operator.tally}")
        return None if took <= BOUND_S else f"{name}: converged in {took:.1f} s"


async def test_each_toxic_each_direction(tmp_path: Path) -> None:
    """13 sites at once (each its own hub, proxy and edge): a toxic on one direction of the link
    while staff work, then heal; every site converges within the bound."""
    async def case(i: int, name: str, direction: str) -> str | None:
        async def fault(proxy: LinkProxy) -> None:
            if name == "down":
                await proxy.cut()
            else:
                proxy.set_toxics(direction, TOXICS[name])  # type: ignore[arg-type]

        async def heal(proxy: LinkProxy) -> None:
            proxy.clear()
            await proxy.heal()

        return await fault_case(tmp_path / f"{name}-{direction}", 100 + i, f"{name} {direction}",
                                fault, heal)

    gate = asyncio.Semaphore(PARALLEL)

    async def gated(i: int, name: str, direction: str) -> str | None:
        async with gate:
            return await case(i, name, direction)

    results = await asyncio.gather(*(gated(i, n, d) for i, (n, d) in enumerate(CASES)))
    failures = [r for r in results if r]
    assert not failures, "\n".join(failures)


async def test_reply_lost_after_the_hub_committed(tmp_path: Path) -> None:
    """The hub commits a batch and its answer never arrives (reset, or a black hole until the
    timeout): the edge keeps the events pending, resends them, the hub holds each once."""
    async with site(tmp_path, 7, auto_sync=False, batch_bytes=64 * 1024) as s:
        assert s.net.hub is not None
        for toxic in (Toxics(reset=True), Toxics(black_hole=True)):
            views = [await s.clerk.create() for _ in range(5)]
            assert all(views)
            ack_before = await s.edge.store.sync.ack()
            s.proxy.set_toxics("downstream", toxic)
            await s.edge.client.close()  # a fresh connection: the toxic acts on this request
            assert await broken(s.edge.sync)
            for view in views:  # committed at the hub …
                assert view is not None
                status, _ = await s.net.hub.api.get(f"/api/dossiers/{view['id']}")
                assert status == 200
            assert await s.edge.store.sync.ack() == ack_before  # … but not known to be, here
            s.proxy.clear()
            await busy_retry(s.edge.sync)
            assert await s.edge.store.sync.ack() == s.edge.store.log.own_seq
            assert check(s.hub, s.edges, s.acked) == []


async def test_responses_cut_at_50_offsets(tmp_path: Path) -> None:
    """The connection closes after N bytes of the hub's answer, for 50 values of N spread over
    the answer's length (headers included): nothing half-applied, one clean sync repairs it."""
    async with site(tmp_path, 11, auto_sync=False, batch_bytes=64 * 1024,
                    want_bytes=1024 * 1024) as s:
        commune = s.edge.config.commune

        async def shape() -> None:
            """Two new dossiers at the edge, three edits at the hub: an answer with events."""
            for _ in range(2):
                assert await s.clerk.create()
            for _ in range(3):
                assert await s.operator.edit(commune)

        for _ in range(3):
            assert await s.clerk.create()
        await busy_retry(s.edge.sync)
        await shape()
        await s.edge.client.close()
        s.proxy.reset_counters()
        step = await s.edge.client.exchange()
        length = s.proxy.bytes_down
        assert step[0].received == 3 and length > 200
        offsets = sorted({max(1, int(length * (i + 0.5) / 50)) for i in range(50)})
        assert len(offsets) == 50
        cut = 0
        for offset in offsets:
            await shape()
            await s.edge.client.close()
            s.proxy.set_toxics("downstream", Toxics(limit_data=offset))
            ack, cursor = await s.edge.store.sync.ack(), await s.edge.store.sync.cursor()
            if await broken(s.edge.sync):
                cut += 1
                assert (await s.edge.store.sync.ack(), await s.edge.store.sync.cursor()) == (ack, cursor)
            s.proxy.clear()
            await s.edge.client.close()
            await busy_retry(s.edge.sync)
            where = f"after a cut at byte {offset} of {length}"
            assert await s.edge.store.sync.ack() == s.edge.store.log.own_seq, where
            if offset in offsets[::10]:  # the whole check costs more than a round
                assert check(s.hub, s.edges, s.acked) == [], where
        assert check(s.hub, s.edges, s.acked) == []
        assert cut >= 45, f"only {cut} of 50 answers were actually cut"


async def test_requests_cut_at_50_offsets(tmp_path: Path) -> None:
    """The connection closes after N bytes of what the edge sends — a sync request or a scan's
    chunk — for 50 values of N spread over one round of both: nothing half-applied at the hub,
    and a clean round afterwards delivers everything, the scan verified."""
    async with site(tmp_path, 13, auto_sync=False, batch_bytes=64 * 1024) as s:
        rng = random.Random(13)

        async def shape() -> None:
            """Two new dossiers, the second with a scan: one sync request, then chunks."""
            assert await s.clerk.create()
            view = await s.clerk.create()
            assert view and await s.clerk.upload(view["id"], scan(rng.randint(60_000, 90_000),
                                                                   rng))
            await busy_retry(s.edge.sync)  # events first: the scan's round is what gets cut

        async def round_trip() -> None:
            await s.edge.sync()
            await BlobMover(s.edge.client).run(never)

        await shape()
        await s.edge.client.close()
        s.proxy.reset_counters()
        await busy_retry(round_trip)
        length = s.proxy.bytes_up
        offsets = sorted({max(1, int(length * (i + 0.5) / 50)) for i in range(50)})
        cut = 0
        for offset in offsets:
            await shape()
            await s.edge.client.close()
            s.proxy.set_toxics("upstream", Toxics(limit_data=offset))
            cut += await broken(round_trip)
            s.proxy.clear()
            await s.edge.client.close()
            await busy_retry(round_trip)
            where = f"after a cut at byte {offset} of {length}"
            assert await s.edge.store.sync.ack() == s.edge.store.log.own_seq, where
            assert not await s.edge.store.queue.to_move("up"), where
            if offset in offsets[::10]:  # the whole check costs more than a round
                assert check(s.hub, s.edges, s.acked, blobs=True) == [], where
        assert check(s.hub, s.edges, s.acked, blobs=True) == []
        assert cut >= 45, f"only {cut} of 50 rounds were actually cut"


@pytest.mark.timeout(int(FLAP_TOTAL_S) + 120)
async def test_flapping_link(tmp_path: Path) -> None:
    """The link goes down and up every FLAP_MIN_S–FLAP_MAX_S seconds while staff work and scans
    go up; after the last heal everything converges within the bound."""
    rng = random.Random(2026)
    async with site(tmp_path, 23) as s:
        flaps = 0
        work = asyncio.create_task(s.work(FLAP_TOTAL_S + 1, attach=0.15))
        deadline = time.monotonic() + FLAP_TOTAL_S
        while time.monotonic() < deadline:
            await asyncio.sleep(rng.uniform(FLAP_MIN_S, FLAP_MAX_S))
            await s.proxy.cut()
            flaps += 1
            await asyncio.sleep(rng.uniform(FLAP_MIN_S, FLAP_MAX_S))
            await s.proxy.heal()
        await s.proxy.cut()
        await work
        await s.proxy.heal()
        took = await s.converge()
        assert flaps >= 2 and s.clerk.tally.ok > 5
        assert took <= BOUND_S
