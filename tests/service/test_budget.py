"""The process's budget for request bodies: exact counting, a brief wait for room, 503 after it,
413 for what can never fit, everything given back however a request ends; and `read_body` on a
real server (sized, chunked, over the limit, cut short) holding what it reads
(service/web/body.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from protocol.errors import TooLarge
from service.budget import BodyBudget, Budget, Hold
from service.web import Unavailable, error_middleware, read_body


def test_budget_counts_exactly() -> None:
    budget = Budget(100)
    assert budget.take(60) and budget.take(40)
    assert not budget.take(1) and budget.available == 0
    budget.give(40)
    assert budget.take(40) is True
    with pytest.raises(ValueError):
        budget.give(101)
    with pytest.raises(ValueError):
        budget.take(-1)
    with pytest.raises(ValueError):
        Budget(0)


async def test_a_hold_gives_everything_back_however_the_request_ends() -> None:
    bodies = BodyBudget(100, wait_s=0.05)
    async with bodies.hold() as hold:
        await hold.grow(30)
        await hold.grow(20)
        hold.shrink(10)
        assert hold.size == 40 and bodies.budget.used == 40
    assert bodies.budget.used == 0
    with pytest.raises(RuntimeError):
        async with bodies.hold() as hold:
            await hold.grow(70)
            raise RuntimeError("the handler failed")
    assert bodies.budget.used == 0


async def test_a_request_waits_briefly_for_room_then_gets_it() -> None:
    bodies = BodyBudget(100, wait_s=2.0)
    async with bodies.hold() as first:
        await first.grow(80)

        async def second() -> float:
            started = time.monotonic()
            async with bodies.hold() as hold:
                await hold.grow(50)
                return time.monotonic() - started

        waiting = asyncio.ensure_future(second())
        await asyncio.sleep(0.2)
        assert not waiting.done()
        first.shrink(80)  # the first request is answered: the second fits now
        assert 0.15 < await waiting < 1.0
    assert bodies.budget.used == 0


async def test_a_request_that_does_not_fit_in_time_is_refused_with_503() -> None:
    bodies = BodyBudget(100, wait_s=0.2)
    async with bodies.hold() as first:
        await first.grow(80)
        started = time.monotonic()
        with pytest.raises(Unavailable) as info:
            async with bodies.hold() as hold:
                await hold.grow(50)
        assert 0.15 < time.monotonic() - started < 1.0
        assert info.value.retry_after_s > 0 and bodies.refused == 1
        assert bodies.budget.used == 80  # the refused one holds nothing


async def test_what_can_never_fit_is_413_at_once() -> None:
    bodies = BodyBudget(100, wait_s=5.0)
    async with bodies.hold() as hold:
        await hold.grow(60)
        with pytest.raises(TooLarge):
            await hold.grow(41)  # this request's own holdings would pass the total
    with pytest.raises(TooLarge):
        await bodies.take(101)
    assert bodies.budget.used == 0


BUDGET = BodyBudget(1024 * 1024, wait_s=0.2)
LIMIT = 256 * 1024


@contextlib.asynccontextmanager
async def server() -> AsyncIterator[tuple[str, list[int]]]:
    """A server whose one route reads a body under BUDGET and says what its hold held."""
    held: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        hold: Hold
        async with BUDGET.hold() as hold:
            body = await read_body(request, LIMIT, hold)
            held.append(hold.size)
            return web.json_response({"size": len(body), "head": body[:8].hex()})

    app = web.Application(middlewares=[error_middleware])
    app.router.add_post("/api/body", handler)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    try:
        yield str(test_server.make_url("/api/body")), held
    finally:
        await test_server.close()


async def test_read_body_holds_its_length_and_refuses_past_the_limit() -> None:
    async with server() as (url, held), aiohttp.ClientSession() as http:
        body = bytes(range(256)) * (LIMIT // 256)
        async with http.post(url, data=body) as resp:
            assert resp.status == 200 and (await resp.json())["size"] == LIMIT
        assert held == [LIMIT]

        async def chunks(total: int) -> AsyncIterator[bytes]:
            for _ in range(total // 4096):
                yield b"z" * 4096

        async with http.post(url, data=chunks(LIMIT // 2)) as resp:  # no length: chunked
            assert resp.status == 200 and (await resp.json())["size"] == LIMIT // 2
        assert held[-1] == LIMIT // 2  # held twice the limit while reading, then its size
        async with http.post(url, data=body + b"!") as resp:
            assert resp.status == 413
        async with http.post(url, data=chunks(2 * LIMIT)) as resp:
            assert resp.status == 413
    assert BUDGET.budget.used == 0


async def test_read_body_answers_503_when_the_budget_is_spent() -> None:
    async with server() as (url, _), aiohttp.ClientSession() as http:
        async with BUDGET.hold() as hog:
            await hog.grow(BUDGET.budget.total - LIMIT // 2)
            async with http.post(url, data=b"x" * LIMIT) as resp:
                assert resp.status == 503 and resp.headers["Retry-After"] == "1"
            async with http.post(url, data=b"x" * (LIMIT // 4)) as resp:
                assert resp.status == 200  # what fits is still served
    assert BUDGET.budget.used == 0


async def test_a_body_cut_short_gives_its_hold_back() -> None:
    async with server() as (url, held):
        host, port = url.split("//")[1].split("/")[0].split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"POST /api/body HTTP/1.1\r\nHost: {host}\r\nContent-Length: {LIMIT}\r\n"
                     f"\r\n".encode() + b"x" * 1000)
        await writer.drain()
        for _ in range(50):
            if BUDGET.budget.used == LIMIT:
                break
            await asyncio.sleep(0.01)
        assert BUDGET.budget.used == LIMIT  # held while the body is awaited
        writer.close()  # the client goes away mid-body
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
        for _ in range(100):
            if BUDGET.budget.used == 0:
                break
            await asyncio.sleep(0.01)
        assert BUDGET.budget.used == 0 and held == []
        del reader
