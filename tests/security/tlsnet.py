"""A hub serving HTTPS with mutual TLS on loopback, in-process, and edge nodes enrolled into it
with real keys, certificates and pinned CAs; plus a digest of everything the hub has applied."""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from central_hub import config as hub_config
from central_hub import tls
from central_hub.app import build_app, open_accounts
from central_hub.config import HubConfig
from central_hub.store import HubStore
from edge_node import config as edge_config
from edge_node.config import EdgeConfig
from edge_node.enroll import enroll
from edge_node.identity import Identity
from edge_node.store import EdgeStore
from edge_node.sync import SyncClient
from service.hubtime import wall_clock_ms
from tests.harness import PASSWORD

# What a node's request may change at the hub without having applied anything: telemetry
# (sessions, stats), certificate first use, and security alerts.
APPLIED = {
    "events": "SELECT pos, origin, seq, hash, body FROM events ORDER BY pos",
    "dossiers": "SELECT id, commune, state FROM dossiers ORDER BY id",
    "origins": "SELECT origin, last_seq, last_hash FROM origins ORDER BY origin",
    "quarantine": "SELECT origin, seq, hash, body, code FROM quarantine ORDER BY origin, seq",
    "blob_refs": "SELECT sha256, commune FROM blob_refs ORDER BY 1, 2",
    "nodes": "SELECT node, commune, credential_hash, revoked_at FROM nodes ORDER BY node",
    "enroll_tokens": "SELECT token_hash, used_at, node FROM enroll_tokens ORDER BY 1",
    "refdata": "SELECT kind, version FROM refdata ORDER BY kind",
}


def applied_digest(db: Path, tables: tuple[str, ...] = tuple(APPLIED)) -> dict[str, str]:
    """A digest per table of what the hub has applied (read through its own connection)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        out = {}
        for name in tables:
            h = hashlib.sha256()
            for row in conn.execute(APPLIED[name]):
                h.update(repr(row).encode())
            out[name] = h.hexdigest()
        return out
    finally:
        conn.close()


def count(db: Path, sql: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


@dataclass
class TlsEdge:
    data: Path
    config: EdgeConfig
    store: EdgeStore
    client: SyncClient

    @property
    def identity(self) -> Identity:
        return Identity(self.data)

    def session(self, with_certificate: bool = True) -> aiohttp.ClientSession:
        """A raw HTTPS session as this node (its certificate, the pinned CA)."""
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(
            ssl=self.identity.context(with_certificate)))


class TlsNet:
    """One HTTPS hub (mTLS for nodes) and edge nodes enrolled with certificates."""

    def __init__(self, root: Path, **config: Any) -> None:
        self.root = root
        self.data = root / "hub"
        self.config = HubConfig(**config)
        self.server: TestServer | None = None
        self.store: HubStore | None = None
        self.authority: tls.Authority | None = None
        self.edges: list[TlsEdge] = []
        self.sessions: list[aiohttp.ClientSession] = []
        self.op_token = ""

    @property
    def db(self) -> Path:
        return self.data / "hub.db"

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"https://127.0.0.1:{self.server.port}"

    def ca_context(self) -> ssl.SSLContext:
        """What an operator's browser would use: the CA, no client certificate."""
        return ssl.create_default_context(cafile=str(tls.tls_dir(self.data) / tls.CA_CERT))

    async def start(self) -> TlsNet:
        self.data.mkdir(parents=True)  # the root too
        hub_config.save(self.data, self.config)
        tls.init_tls(self.data, [], wall_clock_ms())
        self.store = await HubStore.open(self.db)
        accounts = await open_accounts(self.data)
        await accounts.add_user("op", PASSWORD, "operator")
        self.op_token = await accounts.login("op", PASSWORD)
        self.authority = tls.Authority.load(self.data, self.config.node_cert_days,
                                            self.config.recover_max_days)
        self.server = TestServer(build_app(self.store, accounts, self.config, self.authority),
                                 host="127.0.0.1")
        await self.server.start_server(ssl=tls.server_context(self.data))
        return self

    async def token(self, commune: str) -> str:
        assert self.store is not None and self.authority is not None
        return await self.store.trust.create_enroll_token(commune, f"Xã {commune}",
                                                    self.authority.fingerprint)

    async def add_edge(self, commune: str) -> TlsEdge:
        data = self.root / f"edge-{commune}-{len(self.edges)}"
        config = await enroll(data, self.url, await self.token(commune))
        config = dataclasses.replace(config, auto_sync=False)
        store = await EdgeStore.open(data / edge_config.DB_FILE, config.node, config.commune,
                                     config.agency)
        client = SyncClient(store, config)
        client.data_dir = str(data)
        edge = TlsEdge(data, config, store, client)
        self.edges.append(edge)
        return edge

    def http(self, ctx: ssl.SSLContext | None = None) -> aiohttp.ClientSession:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(
            ssl=ctx or self.ca_context()))
        self.sessions.append(session)
        return session

    async def close(self) -> None:
        for session in self.sessions:
            await session.close()
        for edge in self.edges:
            await edge.client.close()
            await edge.store.close()
        if self.server is not None:
            await self.server.close()
