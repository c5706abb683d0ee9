"""A TCP proxy that makes a loopback link behave like a bad one (in the spirit of Toxiproxy).

Each direction — upstream (client → server) and downstream (server → client) — has its own
`Toxics`, read afresh for every chunk so they can change at runtime. A chunk is stamped with its
delivery time when it is read (latency ± jitter, never reordered), then a writer paces it out
(bandwidth, slicer), so latency is pipelined the way it is on a real link. `cut()` stops
listening (new connections are refused) and resets the open ones; `heal()` listens again on the
same port. Randomness comes from one seeded `random.Random`, so a run can be replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger(__name__)

Direction = Literal["upstream", "downstream"]
DIRECTIONS: tuple[Direction, Direction] = ("upstream", "downstream")
READ_SIZE = 64 * 1024
QUEUE_CHUNKS = 64
PACE_BYTES = 4096  # bandwidth is paced in pieces this size, so a big chunk does not burst


@dataclass(frozen=True, slots=True)
class Toxics:
    """What one direction of the link does to the bytes crossing it (0 / False: off)."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    bandwidth: int = 0  # bytes per second
    slice_bytes: int = 0  # average segment size of the slicer
    slice_delay_ms: float = 0.0  # pause between segments
    limit_data: int = 0  # close the connection once this many bytes went this way
    reset: bool = False  # reset the connection (TCP RST) as soon as data comes this way
    black_hole: bool = False  # read and drop everything: the peer hears nothing

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, bool) and value < 0:
                raise ValueError(f"toxic {f.name} must be ≥ 0, not {value}")


class _Conn:
    """One proxied connection: two pumps, each a reader that stamps and a writer that paces."""

    def __init__(self, proxy: LinkProxy, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.client = (reader, writer)
        self.server: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.sent: dict[Direction, int] = dict.fromkeys(DIRECTIONS, 0)
        self.closed = asyncio.Event()

    async def run(self) -> None:
        """Connect upstream and pump both ways until both ends are done or the link breaks."""
        try:
            self.server = await asyncio.open_connection(self.proxy.target_host,
                                                        self.proxy.target_port)
        except OSError as exc:
            log.debug("upstream connect failed: %s", exc)
            self.abort()
            return
        pumps = [asyncio.create_task(self._pump(self.client[0], self.server[1], "upstream")),
                 asyncio.create_task(self._pump(self.server[0], self.client[1], "downstream"))]
        both: asyncio.Future[Any] = asyncio.gather(*pumps)
        closer: asyncio.Future[Any] = asyncio.create_task(self.closed.wait())
        try:
            await asyncio.wait([both, closer], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (*pumps, closer):
                task.cancel()
            await asyncio.gather(both, closer, return_exceptions=True)
            await self._close_gracefully()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    direction: Direction) -> None:
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(QUEUE_CHUNKS)
        writer = asyncio.create_task(self._write(queue, dst, direction))
        last_at = 0.0
        try:
            while True:
                try:
                    data = await src.read(READ_SIZE)
                except OSError:
                    self.abort()
                    return
                if not data:
                    await queue.put(None)
                    break
                toxics = self.proxy.toxics[direction]
                if toxics.reset:
                    self.abort()
                    return
                if toxics.black_hole:
                    continue
                delay = toxics.latency_ms
                if toxics.jitter_ms:
                    delay += self.proxy.rng.uniform(-toxics.jitter_ms, toxics.jitter_ms)
                last_at = max(last_at, time.monotonic() + max(0.0, delay) / 1000)
                await queue.put((last_at, data))
            await writer
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _write(self, queue: asyncio.Queue[tuple[float, bytes] | None],
                     dst: asyncio.StreamWriter, direction: Direction) -> None:
        while (item := await queue.get()) is not None:
            at, data = item
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            toxics = self.proxy.toxics[direction]
            if toxics.limit_data:
                data = data[:max(0, toxics.limit_data - self.sent[direction])]
            try:
                for piece in self._pieces(data, toxics):
                    dst.write(piece)
                    await dst.drain()
                    self.sent[direction] += len(piece)
                    self.proxy.count(direction, len(piece))
                    pause = len(piece) / toxics.bandwidth if toxics.bandwidth else 0.0
                    pause += toxics.slice_delay_ms / 1000 if toxics.slice_bytes else 0.0
                    if pause:
                        await asyncio.sleep(pause)
            except OSError:
                self.abort()
                return
            if toxics.limit_data and self.sent[direction] >= toxics.limit_data:
                self.closed.set()
                return
        if dst.can_write_eof():
            with contextlib.suppress(OSError):
                dst.write_eof()

    def _pieces(self, data: bytes, toxics: Toxics) -> list[bytes]:
        if toxics.slice_bytes:
            out, i = [], 0
            while i < len(data):
                size = max(1, toxics.slice_bytes + self.proxy.rng.randint(
                    -(toxics.slice_bytes // 2), toxics.slice_bytes // 2))
                out.append(data[i:i + size])
                i += size
            return out
        if toxics.bandwidth:
            return [data[i:i + PACE_BYTES] for i in range(0, len(data), PACE_BYTES)]
        return [data]

    def abort(self) -> None:
        """Reset both ends now (RST, not FIN): what a dropped link looks like to the peers."""
        for writer in self._writers():
            sock: Any = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        self.closed.set()

    def _writers(self) -> list[asyncio.StreamWriter]:
        return [self.client[1]] + ([self.server[1]] if self.server else [])

    async def _close_gracefully(self) -> None:
        for writer in self._writers():
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()


class LinkProxy:
    """Listens on `host:port` (0: any free port) and forwards to `target_host:target_port`."""

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1",
                 port: int = 0, seed: int = 0, upstream: Toxics | None = None,
                 downstream: Toxics | None = None) -> None:
        self.target_host, self.target_port = target_host, target_port
        self.host, self.port = host, port
        self.rng = random.Random(seed)
        self.toxics: dict[Direction, Toxics] = {"upstream": upstream or Toxics(),
                                                "downstream": downstream or Toxics()}
        self.bytes: dict[Direction, int] = dict.fromkeys(DIRECTIONS, 0)
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._conns: dict[_Conn, asyncio.Task[None]] = {}

    @property
    def url(self) -> str:
        """`http://host:port` of the proxy's listening side."""
        return f"http://{self.host}:{self.port}"

    @property
    def is_up(self) -> bool:
        """True while new connections are accepted."""
        return self._server is not None

    @property
    def bytes_up(self) -> int:
        """Bytes forwarded client → server since start (or the last `reset_counters`)."""
        return self.bytes["upstream"]

    @property
    def bytes_down(self) -> int:
        """Bytes forwarded server → client since start (or the last `reset_counters`)."""
        return self.bytes["downstream"]

    def count(self, direction: Direction, n: int) -> None:
        """Add `n` forwarded bytes to a direction's counter."""
        self.bytes[direction] += n

    def reset_counters(self) -> None:
        """Zero the byte and connection counters."""
        self.bytes = dict.fromkeys(DIRECTIONS, 0)
        self.connections = 0

    def set_toxics(self, direction: Direction | Literal["both"], toxics: Toxics) -> None:
        """Replace the toxics of one direction (or both); open connections feel it at once."""
        for d in DIRECTIONS if direction == "both" else (direction,):
            self.toxics[d] = toxics

    def update(self, direction: Direction | Literal["both"], **changes: Any) -> None:
        """Change some toxics of one direction (or both), keeping the rest."""
        for d in DIRECTIONS if direction == "both" else (direction,):
            self.toxics[d] = dataclasses.replace(self.toxics[d], **changes)

    def clear(self) -> None:
        """Remove every toxic: a clean link."""
        self.set_toxics("both", Toxics())

    async def start(self) -> None:
        """Start listening (again, on the same port, after `set_down(True)`)."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def set_down(self, down: bool) -> None:
        """Down: stop listening, so new connections are refused; up: listen again."""
        if not down:
            await self.start()
        elif self._server is not None:
            self._server.close()
            self._server = None

    def drop_connections(self) -> None:
        """Reset every open connection."""
        for conn in list(self._conns):
            conn.abort()

    async def cut(self) -> None:
        """The link goes down: refuse new connections and reset the open ones."""
        await self.set_down(True)
        self.drop_connections()

    async def heal(self) -> None:
        """The link comes back."""
        await self.set_down(False)

    async def close(self) -> None:
        """Stop listening, drop every connection and wait for their tasks."""
        await self.set_down(True)
        self.drop_connections()
        tasks = list(self._conns.values())
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> LinkProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(self, reader, writer)
        if self._server is None:  # went down between accept and this callback
            conn.abort()
            return
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._conns[conn] = task
        try:
            await conn.run()
        except asyncio.CancelledError:  # the loop is shutting down; a cancelled callback task
            conn.abort()                # would make asyncio.streams log an error
        finally:
            del self._conns[conn]
