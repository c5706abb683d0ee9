"""The background sync loop: syncs right after writes, backs off while the hub is down, can be kicked."""

from __future__ import annotations

import asyncio
import itertools
import time

from tests.harness import Net, birth


async def wait_for(predicate, limit_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def test_write_is_pushed_without_being_asked(net: Net) -> None:
    edge = await net.add_edge("02245", auto_sync=True, sync_interval_s=3600, backoff_cap_s=2)
    await wait_for(lambda: _state_is(edge, "online"))
    _, d = await edge.api.post("/api/dossiers", birth())

    async def at_hub() -> bool:
        status, _ = await net.hub.api.get(f"/api/dossiers/{d['id']}")
        return status == 200

    await wait_for(at_hub, limit_s=5)
    _, sync = await edge.api.get("/api/sync")
    assert sync["pending_events"] == 0 and sync["last_success_at"]


async def _state_is(edge, state: str) -> bool:  # type: ignore[no-untyped-def]
    _, body = await edge.api.get("/api/sync")
    return bool(body["state"] == state)


async def test_hub_down_then_back_with_kick(net: Net) -> None:
    edge = await net.add_edge("02245", auto_sync=True, sync_interval_s=3600, backoff_cap_s=30)
    await wait_for(lambda: _state_is(edge, "online"))
    edge.cut()
    _, d = await edge.api.post("/api/dossiers", birth())
    await wait_for(lambda: _state_is(edge, "offline"))
    _, sync = await edge.api.get("/api/sync")
    assert sync["pending_events"] == 1
    assert sync["last_error"] and "cannot reach" in sync["last_error"]
    edge.heal()
    # without a kick the loop would sleep in backoff; POST /api/sync cuts the wait short
    status, _ = await edge.api.post("/api/sync")
    assert status == 202
    await wait_for(lambda: _state_is(edge, "online"), limit_s=5)
    status, _ = await net.hub.api.get(f"/api/dossiers/{d['id']}")
    assert status == 200


async def test_backoff_grows_while_down(net: Net) -> None:
    edge = await net.add_edge("02245", auto_sync=True, sync_interval_s=3600, backoff_cap_s=4)
    edge.cut()
    attempts: list[float] = []
    original = edge.client.session_once

    async def counting():  # type: ignore[no-untyped-def]
        attempts.append(time.monotonic())
        return await original()

    edge.client.session_once = counting  # type: ignore[method-assign]
    edge.loop.kick()
    await asyncio.sleep(6)
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert len(attempts) >= 3, attempts
    # exponential with jitter, capped: later gaps are not shorter than the first ones by much,
    # and never above the cap plus jitter
    assert max(gaps) <= 4 + 1.5
    assert gaps[-1] >= gaps[0] * 0.9
