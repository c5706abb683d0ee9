"""LinkProxy against a real echo server on loopback: bytes, counters and every toxic."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from tests.faults.linkproxy import LinkProxy, Toxics

PAYLOAD = bytes(range(256)) * 256  # 64 KiB


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def proxy(echo_port: int) -> AsyncIterator[LinkProxy]:
    async with LinkProxy("127.0.0.1", echo_port, seed=7) as p:
        yield p


@contextlib.asynccontextmanager
async def connect(proxy: LinkProxy) -> AsyncIterator[tuple[asyncio.StreamReader,
                                                          asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def roundtrip(proxy: LinkProxy, data: bytes) -> tuple[bytes, float]:
    """Send `data`, half-close, read the echo to EOF; return it and the seconds it took."""
    started = time.monotonic()
    async with connect(proxy) as (reader, writer):
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        echoed = await asyncio.wait_for(reader.read(), 5)
    return echoed, time.monotonic() - started


async def test_pass_through_counts_bytes_each_way(proxy: LinkProxy) -> None:
    echoed, _ = await roundtrip(proxy, PAYLOAD)
    assert echoed == PAYLOAD
    assert proxy.bytes_up == proxy.bytes_down == len(PAYLOAD)
    assert proxy.connections == 1
    await roundtrip(proxy, b"hello")
    assert proxy.bytes_up == len(PAYLOAD) + 5
    proxy.reset_counters()
    assert (proxy.bytes_up, proxy.bytes_down, proxy.connections) == (0, 0, 0)


async def test_latency_adds_delay_each_way(proxy: LinkProxy) -> None:
    _, base = await roundtrip(proxy, b"ping")
    proxy.set_toxics("both", Toxics(latency_ms=150, jitter_ms=20))
    echoed, slow = await roundtrip(proxy, b"ping")
    assert echoed == b"ping"
    assert slow >= 0.26 > base  # two one-way delays of 150 ± 20 ms


async def test_latency_is_pipelined_not_per_chunk_serial(proxy: LinkProxy) -> None:
    proxy.update("upstream", latency_ms=100)
    async with connect(proxy) as (reader, writer):
        started = time.monotonic()
        for _ in range(10):
            writer.write(b"x" * 1000)
            await writer.drain()
            await asyncio.sleep(0.01)
        got = await asyncio.wait_for(reader.readexactly(10_000), 5)
        elapsed = time.monotonic() - started
    assert got == b"x" * 10_000
    assert 0.1 <= elapsed < 0.8  # ten chunks under 100 ms each, not 10 × 100 ms


async def test_bandwidth_limit_slows_64k(proxy: LinkProxy) -> None:
    _, fast = await roundtrip(proxy, PAYLOAD)
    proxy.update("upstream", bandwidth=256 * 1024)
    echoed, slow = await roundtrip(proxy, PAYLOAD)
    assert echoed == PAYLOAD
    assert 0.22 <= slow < 2.0  # 64 KiB at 256 KiB/s is 0.25 s
    assert slow > fast + 0.1


async def test_slicer_and_jitter_keep_bytes_intact_and_in_order(proxy: LinkProxy) -> None:
    proxy.set_toxics("downstream", Toxics(slice_bytes=512, slice_delay_ms=0.2, jitter_ms=5))
    data = PAYLOAD[:16 * 1024]
    async with connect(proxy) as (reader, writer):
        writer.write(data)
        writer.write_eof()
        pieces = []
        while chunk := await asyncio.wait_for(reader.read(65536), 5):
            pieces.append(chunk)
    assert b"".join(pieces) == data
    assert len(pieces) > 4


async def test_limit_data_closes_after_n_bytes(proxy: LinkProxy) -> None:
    proxy.update("downstream", limit_data=1000)
    async with connect(proxy) as (reader, writer):
        writer.write(PAYLOAD[:5000])
        await writer.drain()
        got = await asyncio.wait_for(reader.read(), 5)  # to EOF: the proxy closed
    assert got == PAYLOAD[:1000]
    assert proxy.bytes_down == 1000


async def test_reset_drops_connection_abruptly(proxy: LinkProxy) -> None:
    proxy.update("upstream", reset=True)
    async with connect(proxy) as (reader, writer):
        writer.write(b"doomed")
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(), 5)
    assert proxy.bytes_up == 0


async def test_black_hole_reads_but_never_answers(proxy: LinkProxy) -> None:
    proxy.update("upstream", black_hole=True)
    async with connect(proxy) as (reader, writer):
        writer.write(b"anyone there?")
        await writer.drain()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), 0.3)
        assert proxy.bytes_up == 0
        # the hole closes at runtime: the same connection carries data again
        proxy.clear()
        writer.write(b"now?")
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"now?"


async def test_down_refuses_new_connections(proxy: LinkProxy) -> None:
    await proxy.set_down(True)
    assert not proxy.is_up
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", proxy.port)
    await proxy.set_down(False)
    assert (await roundtrip(proxy, b"up again"))[0] == b"up again"


async def test_cut_drops_open_connections_and_heal_restores(proxy: LinkProxy) -> None:
    port = proxy.port
    async with connect(proxy) as (reader, writer):
        writer.write(b"a")
        assert await asyncio.wait_for(reader.readexactly(1), 5) == b"a"
        await proxy.cut()
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), 5)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    await proxy.heal()
    assert proxy.port == port and proxy.is_up
    assert (await roundtrip(proxy, b"healed"))[0] == b"healed"


async def test_upstream_gone_closes_client(echo_port: int) -> None:
    async with LinkProxy("127.0.0.1", 9, seed=1) as dead:  # discard port: refused
        async with connect(dead) as (reader, _):
            with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
                await asyncio.wait_for(reader.readexactly(1), 5)


def test_toxics_refuse_negative_values() -> None:
    with pytest.raises(ValueError, match="latency_ms"):
        Toxics(latency_ms=-1)
