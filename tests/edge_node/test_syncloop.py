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

    async def acked() -> bool:  # the hub commits before it answers: the edge notes the ack after
        _, sync = await edge.api.get("/api/sync")
        return bool(sync["pending_events"] == 0 and sync["last_success_at"])

    await wait_for(acked, limit_s=5)


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
    attempts: list[tuple[float, float]] = []  # (start, end) of each try
    original = edge.client.session_once

    async def counting():  # type: ignore[no-untyped-def]
        start = time.monotonic()
        try:
            return await original()
        finally:
            attempts.append((start, time.monotonic()))

    edge.client.session_once = counting  # type: ignore[method-assign]
    edge.loop.kick()

    async def four_tries() -> bool:
        return len(attempts) >= 4

    # waits of about 1-2, 2-3 and 4 s: four tries within ~9 s; a loaded machine gets slack
    await wait_for(four_tries, limit_s=25)
    # the wait is measured from the end of one try to the start of the next, so a slow machine
    # (a try taking a second under load) does not blur it
    waits = [b[0] - a[1] for a, b in itertools.pairwise(attempts)]
    # exponential with jitter (up to 1 s), capped at 4 s; a second of slack for a loaded loop
    assert 0.9 <= waits[0] <= 2 + 1.0, waits
    assert waits[1] >= 1.9, waits
    assert waits[2] >= 3.9, waits
    assert max(waits) <= 4 + 1.0, waits  # tenacity keeps the jitter inside the cap
