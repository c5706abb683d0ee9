"""Hostile input against a real `central-hub serve` process: a 64 MiB body, zstd and gzip bombs,
100,000-deep nesting and element-count bombs are each refused in under a second with under
64 MiB of extra memory (the hub process's peak RSS, VmHWM, reset before each attack through
/proc/PID/clear_refs and read after it), and the memory is given back (RSS after); the hub stays
up and applies nothing. Then the per-node request rate. Many bombs at once: test_bombs.py."""

from __future__ import annotations

import asyncio
import contextlib
import io
import subprocess
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import zstandard

from central_hub.cli import main as hub_main
from protocol.errors import ServerBusy
from protocol.messages import SyncRequest, encode_request
from service.hubtime import wall_clock_ms
from tests.harness import birth
from tests.security.bombs import GiB, honest_bomb, pattern_bomb, zeros_bomb
from tests.security.memory import ProcessMemory
from tests.security.tlsnet import TlsNet, applied_digest
from tests.served import serve

MiB = 1024 * 1024
SYNC_TYPE = "application/vnd.commune-sync+zstd"


@dataclass
class Served:
    data: Path
    port: int
    proc: subprocess.Popen[bytes]
    node: str
    credential: str

    @property
    def memory(self) -> ProcessMemory:
        return ProcessMemory(self.proc.pid)


def hub_cli(*args: str) -> str:
    """Run a `central-hub` subcommand in-process; its output."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert hub_main(list(args)) == 0
    return out.getvalue().strip()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("limits") / "hub"
    hub_cli("init", "--data", str(data))
    token = hub_cli("enroll", "--data", str(data), "--commune", "02245")
    with serve(data) as hub:
        async def enroll() -> tuple[str, str]:
            async with aiohttp.ClientSession() as http, http.post(
                    f"{hub.url}/v1/enroll", json={"token": token}) as resp:
                body = await resp.json()
                return body["node"], body["credential"]
        node, credential = asyncio.run(enroll())
        yield Served(data, hub.port, hub.proc, node, credential)


async def _raw(port: int, head: bytes, body_chunks: Iterator[bytes]) -> tuple[int, float]:
    """Send a request whose body streams from `body_chunks` while reading the answer; return
    (status, seconds until the status line arrived). The upload stops when the answer comes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()

    async def upload() -> None:
        with contextlib.suppress(ConnectionError):
            writer.write(head)
            for chunk in body_chunks:
                writer.write(chunk)
                await writer.drain()

    sending = asyncio.ensure_future(upload())
    try:
        line = await asyncio.wait_for(reader.readline(), 10)
        elapsed = time.monotonic() - started
    finally:
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sending
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    assert line.startswith(b"HTTP/1.1 "), line
    return int(line.split()[1]), elapsed


def _head(path: str, served: Served, length: int | None, **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{served.port}",
             f"Authorization: Bearer {served.credential}", f"Content-Type: {SYNC_TYPE}"]
    lines.append(f"Content-Length: {length}" if length is not None
                 else "Transfer-Encoding: chunked")
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _chunked(chunks: Iterator[bytes]) -> Iterator[bytes]:
    for chunk in chunks:
        yield f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    yield b"0\r\n\r\n"


def _zeros(total: int, size: int = MiB) -> Iterator[bytes]:
    block = bytes(size)
    for _ in range(total // size):
        yield block


def gzip_bomb(expanded: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [compressor.compress(block) for block in _zeros(expanded, 4 * MiB)]
    return b"".join(out) + compressor.flush()


def deep_nesting(depth: int) -> bytes:
    return zstandard.ZstdCompressor().compress(b"\x91" * depth + b"\xc0")


def element_bomb() -> tuple[bytes, bytes]:
    # an array claiming 4 billion elements, then a map of 300,000 small entries
    claim = b"\xdd\xff\xff\xff\xff" + b"\xc0" * 16
    many = b"\xdf" + (300_000).to_bytes(4, "big") + b"".join(
        b"\xce" + i.to_bytes(4, "big") + b"\xc0" for i in range(300_000))
    return zstandard.ZstdCompressor().compress(claim), zstandard.ZstdCompressor().compress(many)


def _valid(served: Served) -> bytes:
    return encode_request(SyncRequest(node=served.node, events=[], cursor=0, want_bytes=1024,
                                      clock_ms=wall_clock_ms()))


def test_hostile_bodies_are_refused_fast_and_small(served: Served) -> None:
    async def scenario() -> None:
        status, _ = await _raw(served.port, _head("/v1/sync", served, len(_valid(served))),
                               iter([_valid(served)]))
        assert status == 200  # warm: the code paths a valid request takes are loaded
        claim, many = element_bomb()
        rle, honest = zeros_bomb(GiB), honest_bomb(GiB)
        zbomb, gbomb = pattern_bomb(GiB), gzip_bomb(GiB)
        attacks: list[tuple[str, str, bytes, Iterator[bytes], set[int]]] = [
            ("64 MiB body", "/v1/sync", _head("/v1/sync", served, 64 * MiB),
             _zeros(64 * MiB, 256 * 1024), {413}),
            ("64 MiB chunked body", "/v1/sync", _head("/v1/sync", served, None),
             _chunked(_zeros(64 * MiB, 256 * 1024)), {413}),
            ("zstd bomb (1 GiB)", "/v1/sync", _head("/v1/sync", served, len(zbomb)),
             iter([zbomb]), {413}),
            ("zstd RLE bomb (1 GiB)", "/v1/sync", _head("/v1/sync", served, len(rle)),
             iter([rle]), {413}),
            ("zstd honest header (1 GiB)", "/v1/sync", _head("/v1/sync", served, len(honest)),
             iter([honest]), {413}),
            ("gzip bomb on /v1/sync", "/v1/sync",
             _head("/v1/sync", served, len(gbomb), Content_Encoding="gzip"), iter([gbomb]),
             {415}),
            ("gzip bomb on /api/login", "/api/login",
             _head("/api/login", served, len(gbomb), Content_Encoding="gzip"), iter([gbomb]),
             {415}),
            ("deflate on /api/login", "/api/login",
             _head("/api/login", served, len(gbomb), Content_Encoding="deflate"), iter([gbomb]),
             {415}),
            ("100,000-deep nesting", "/v1/sync",
             _head("/v1/sync", served, len(deep_nesting(100_000))),
             iter([deep_nesting(100_000)]), {413}),
            ("4-billion-element claim", "/v1/sync", _head("/v1/sync", served, len(claim)),
             iter([claim]), {400, 413}),
            ("300,000-entry map", "/v1/sync", _head("/v1/sync", served, len(many)),
             iter([many]), {413}),
        ]
        for name, _path, head, chunks, expected in attacks:
            await asyncio.sleep(0.1)
            base = served.memory.rss()
            served.memory.reset_peak()
            status, elapsed = await _raw(served.port, head, chunks)
            await asyncio.sleep(0.1)
            grown, kept = served.memory.peak() - base, served.memory.rss() - base
            print(f"{name:28} {status} {elapsed * 1000:7.1f} ms  +{grown / MiB:5.1f} MiB peak RSS"
                  f"  +{kept / MiB:5.1f} MiB after")  # shown with -s; handy when tuning limits
            assert status in expected, (name, status)
            assert elapsed < 1.0, (name, elapsed)
            assert grown < 64 * MiB, (name, grown / MiB)
            assert kept < 8 * MiB, (name, kept / MiB)  # given back after the refusal
        status, _ = await _raw(served.port, _head("/v1/sync", served, len(_valid(served))),
                               iter([_valid(served)]))
        assert status == 200  # still up and serving

    before = applied_digest(served.data / "hub.db", ("events", "dossiers", "origins",
                                                     "quarantine"))
    asyncio.run(scenario())
    assert served.proc.poll() is None
    assert applied_digest(served.data / "hub.db", ("events", "dossiers", "origins",
                                                   "quarantine")) == before


async def test_a_node_over_its_request_rate_gets_429_with_retry_after(tmp_path: Path) -> None:
    net = await TlsNet(tmp_path, node_rate_per_s=0.5, node_burst=3).start()
    try:
        a = await net.add_edge("02245")
        body = encode_request(SyncRequest(node=a.config.node, events=[], cursor=0,
                                          want_bytes=1024, clock_ms=wall_clock_ms()))
        statuses, retry = [], None
        async with a.session() as http:
            for _ in range(5):
                async with http.post(net.url + "/v1/sync", data=body,
                                     headers={"Content-Type": SYNC_TYPE}) as resp:
                    statuses.append(resp.status)
                    retry = resp.headers.get("Retry-After", retry)
        assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
        assert retry is not None and 1 <= int(retry) <= 2
        # the edge treats it as transient (retried with backoff), and its data waits intact
        await a.store.dossiers.create(birth(), "clerk")
        with pytest.raises(ServerBusy):
            await a.client.session_once()
        assert (await a.store.sync.pending_stats())[0] == 1
        # another node is not held back by the first one's bucket
        b = await net.add_edge("02246")
        assert (await b.client.session_once()).round_trips >= 1
    finally:
        await net.close()


def test_bombs_are_what_they_claim() -> None:
    """The test's own payloads: the bombs really are small and really do expand."""
    assert len(zeros_bomb(64 * MiB)) < 64 * 1024
    assert len(pattern_bomb(64 * MiB)) < 16 * 1024
    assert zstandard.frame_content_size(honest_bomb(64 * MiB)) == 64 * MiB
    assert len(zstandard.ZstdDecompressor().decompressobj().decompress(
        pattern_bomb(64 * MiB))) == 64 * MiB
    assert len(gzip_bomb(64 * MiB)) < 128 * 1024
    assert len(zlib.decompressobj(31).decompress(gzip_bomb(8 * MiB))) == 8 * MiB
