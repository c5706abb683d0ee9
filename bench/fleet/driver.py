"""The fleet's sessions: each commune's `SyncClient` session, retried like the edge's, measured.

Every round trip and every session is recorded with the phase it belongs to. A session is the
client's own (`SyncClient.session_once`, ended by `protocol.session.session_done`); a busy hub
(429/5xx) or a transport failure is retried with capped, jittered exponential backoff, never
sooner than the hub's `Retry-After` (as `SyncClient.session` does with tenacity, forever: the
phase's time limit ends it); any other refusal ends the session, counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from bench.fleet.commune import Commune
from edge_node.clientstore import Exchange, Outgoing
from edge_node.config import EdgeConfig
from edge_node.sync import SyncClient
from protocol.errors import ReadTimeout, ServerBusy, SyncError, TransportError

log = logging.getLogger(__name__)



@dataclass(slots=True)
class RoundTrip:
    """One HTTP exchange: request sent → answer read."""

    phase: str
    s: float
    sent: int
    acked: int
    received: int
    up: int
    down: int


@dataclass(slots=True)
class Session:
    """One commune's session, its waits after busy answers included."""

    phase: str
    s: float
    round_trips: int
    acked: int
    retries: int
    ok: bool


def busy_kind(exc: TransportError) -> str:
    """How a retried failure is counted: a timeout, the hub's status, or the link."""
    if isinstance(exc, ReadTimeout):
        return "timeout"
    if isinstance(exc, ServerBusy):
        return exc.message.partition(":")[0]  # "hub answered 503"
    return "transport"


@dataclass
class Fleet:
    """The communes' clients against one hub, over one aiohttp session at a time."""

    url: str
    timeout_s: float
    backoff_cap_s: float
    trips: list[RoundTrip] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    retries: int = 0  # busy answers and transport failures retried, finished sessions or not
    http: aiohttp.ClientSession | None = None
    clients: dict[str, SyncClient[Commune]] = field(default_factory=dict)
    prepared: dict[str, Outgoing] = field(default_factory=dict)  # first requests, pre-encoded

    async def open(self) -> None:
        """A fresh client session: new TCP connections (a morning's first sync opens one)."""
        await self.close()
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
            skip_auto_headers=("User-Agent", "Accept-Encoding"))
        for node, client in self.clients.items():  # the communes keep their batch sizes
            self.clients[node] = self._client(client.store, client.batch_bytes)

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()
            self.http = None

    def _client(self, c: Commune, batch_bytes: int | None) -> SyncClient[Commune]:
        """A client as an edge makes it (first batch: the edge's, unless `batch_bytes`)."""
        config = EdgeConfig(node=c.node, commune=c.code, commune_name=c.name, agency=c.agency,
                            hub_url=self.url, credential=c.credential,
                            request_timeout_s=self.timeout_s, backoff_cap_s=self.backoff_cap_s)
        client = SyncClient(c, config, session=self.http)
        client.batch_bytes = batch_bytes or client.batch_bytes
        return client

    def client(self, c: Commune) -> SyncClient[Commune]:
        """The commune's sync client (made at its first use)."""
        if c.node not in self.clients:
            self.clients[c.node] = self._client(c, None)
        return self.clients[c.node]

    def start_batch(self, c: Commune, batch_bytes: int) -> None:
        """Start the commune's batches at `batch_bytes`."""
        self.client(c).batch_bytes = batch_bytes

    async def prepare(self, c: Commune) -> None:
        """Encode the commune's first request now, before a measured phase."""
        self.prepared[c.node] = await self.client(c).prepare()

    async def session(self, c: Commune, phase: str) -> Session:
        """One session of the commune's, retried after busy answers and transport failures."""
        async with c.lock:
            started = time.perf_counter()
            trips: list[Exchange] = []
            retries = 0
            ok = True
            client = self.client(c)
            while True:
                try:
                    await client.session_once(self.prepared.pop(c.node, None), trips.append)
                    break
                except TransportError as exc:
                    self.errors[busy_kind(exc)] += 1
                    self.retries += 1
                    retries += 1
                    wait = min(self.backoff_cap_s, 2 ** (retries - 1) + c.rng.random())
                    await asyncio.sleep(max(wait, getattr(exc, "retry_after_s", None) or 0))
                except SyncError as exc:
                    self.errors[f"refused: {exc.message[:80]}"] += 1
                    ok = False
                    break
            self.trips += [RoundTrip(phase, t.rtt_s, t.sent, t.acked, t.received, t.bytes_up,
                                     t.bytes_down) for t in trips]
            record = Session(phase, time.perf_counter() - started, len(trips),
                             sum(t.acked for t in trips), retries, ok)
            self.sessions.append(record)
            return record
