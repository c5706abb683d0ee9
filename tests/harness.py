"""A hub and edge nodes on loopback, in-process, with real SQLite files and real HTTP servers."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from central_hub import config as hub_config
from central_hub.app import build_app as build_hub_app
from central_hub.app import open_accounts as open_hub_accounts
from central_hub.config import HubConfig
from central_hub.store import HubStore
from edge_node.app import CLIENT, LOOP, STORE
from edge_node.app import make_app as make_edge_app
from edge_node.app import open_accounts as open_edge_accounts
from edge_node.config import EdgeConfig
from edge_node.enroll import enroll
from edge_node.loop import SyncLoop
from edge_node.store import EdgeStore
from edge_node.sync import SessionResult, SyncClient

PASSWORD = "correct-horse-1"
# The harness's desk user ("clerk") may do every desk action, approval and conflict resolution
# included, so API tests need not care about roles; the role checks are tested in tests/ui.
DESK_ROLE = "leader"
DEAD_URL = "http://127.0.0.1:9"  # discard port: nothing listens, connections are refused


CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Page:
    """What an HTML request answered (for tests that drive the web UIs without a browser)."""

    status: int
    text: str
    url: str
    headers: Any

    @property
    def csrf(self) -> str:
        match = CSRF_RE.search(self.text)
        assert match, "no CSRF field on the page"
        return match.group(1)


@dataclass
class Api:
    """JSON calls with a bearer token."""

    http: aiohttp.ClientSession
    base: str
    token: str | None = None

    async def call(self, method: str, path: str, json: Any = None,
                   token: str | None = None) -> tuple[int, Any]:
        headers = {}
        tok = token if token is not None else self.token
        if tok:
            headers["Authorization"] = f"Bearer {tok}"
        async with self.http.request(method, self.base + path, json=json,
                                     headers=headers) as resp:
            text = await resp.text()
            try:
                body: Any = await resp.json(content_type=None) if text else None
            except ValueError:
                body = text
            return resp.status, body

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, json: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("POST", path, json=json, **kw)

    async def patch(self, path: str, json: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("PATCH", path, json=json, **kw)

    async def login(self, username: str, password: str = PASSWORD) -> str:
        status, body = await self.post("/api/login", {"username": username, "password": password})
        assert status == 200, body
        self.token = body["token"]
        return self.token


@dataclass
class HubHandle:
    data: Path
    store: HubStore
    server: TestServer
    api: Api

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


@dataclass
class EdgeHandle:
    data: Path
    config: EdgeConfig
    server: TestServer
    api: Api
    hub_url: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def store(self) -> EdgeStore:
        return self.server.app[STORE]

    @property
    def client(self) -> SyncClient:
        return self.server.app[CLIENT]

    @property
    def loop(self) -> SyncLoop:
        return self.server.app[LOOP]

    async def sync(self) -> SessionResult:
        return await self.client.session_once()

    def cut(self) -> None:
        """Point the sync client at a dead address: the link is down."""
        self.client.config = dataclasses.replace(self.client.config, hub_url=DEAD_URL)

    def heal(self) -> None:
        """Restore the link."""
        self.client.config = dataclasses.replace(self.client.config, hub_url=self.hub_url)


class Net:
    """Starts a hub and edges, and tears everything down."""

    def __init__(self, root: Path, db: str = "sqlite") -> None:
        self.root = root
        self.db = db  # the hub's store: sqlite, or a postgresql:// URL
        self.http: aiohttp.ClientSession | None = None
        self.servers: list[TestServer] = []
        self.hub: HubHandle | None = None
        self.edges: list[EdgeHandle] = []

    async def _http(self) -> aiohttp.ClientSession:
        if self.http is None:
            self.http = aiohttp.ClientSession()
        return self.http

    async def start_hub(self) -> HubHandle:
        data = self.root / "hub"
        data.mkdir(parents=True)
        hub_config.save(data, HubConfig(db=self.db))
        return await self.serve_hub(data)

    async def serve_hub(self, data: Path, port: int | None = None) -> HubHandle:
        """Open the hub whose data dir is `data` (config saved) and serve it on loopback — on
        `port` when restarting it where the edges know it; the operator `op` logs in."""
        config = hub_config.load(data)
        store = await HubStore.open(data / "hub.db", config.db)
        accounts = await open_hub_accounts(data, config.db)
        await accounts.add_user("op", PASSWORD, "operator")
        server = TestServer(build_hub_app(store, accounts, config), host="127.0.0.1", port=port)
        await server.start_server()
        self.servers.append(server)
        api = Api(await self._http(), str(server.make_url("")).rstrip("/"))
        await api.login("op")
        self.hub = HubHandle(data, store, server, api)
        return self.hub

    async def add_edge(self, commune: str, name: str | None = None,
                       **overrides: Any) -> EdgeHandle:
        assert self.hub is not None
        token = await self.hub.store.create_enroll_token(commune, name)
        data = self.root / f"edge-{commune}-{len(self.edges)}"
        config = await enroll(data, self.hub.url, token)
        return await self.serve_edge(data, config, **overrides)

    async def serve_edge(self, data: Path, config: EdgeConfig, **overrides: Any) -> EdgeHandle:
        """Serve the enrolled edge whose data dir is `data` on loopback, syncing with this hub
        (no background sync unless `auto_sync=True`); the desk user `clerk` logs in."""
        assert self.hub is not None
        config = dataclasses.replace(config, **{"auto_sync": False, "hub_url": self.hub.url,
                                                **overrides})
        app = await make_edge_app(data, config)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        self.servers.append(server)
        api = Api(await self._http(), str(server.make_url("")).rstrip("/"))
        edge = EdgeHandle(data, config, server, api, self.hub.url)
        accounts = await open_edge_accounts(data)
        await accounts.add_user("clerk", PASSWORD, DESK_ROLE)
        await accounts.conn.close()
        await api.login("clerk")
        self.edges.append(edge)
        return edge

    async def close(self) -> None:
        for server in reversed(self.servers):
            await server.close()
        if self.http is not None:
            await self.http.close()


def birth(name: str = "Nguyễn Văn An", citizen_id: str = "008090001234", **fields: Any
          ) -> dict[str, Any]:
    """A valid birth-registration request body."""
    body_fields = {
        "relationship": "Cha",
        "child_full_name": "Nguyễn Văn Bình",
        "child_birth_date": "2026-11-20",
        "child_sex": "Nam",
        "child_ethnicity": "Tày",
        "child_nationality": "Việt Nam",
        "child_birth_place": "Trạm y tế xã Côn Lôn",
        "mother_full_name": "Hoàng Thị Cúc",
        "mother_birth_year": "1995",
    }
    body_fields.update(fields)
    return {
        "procedure_code": "1.001193",
        "applicant": {"full_name": name, "citizen_id": citizen_id, "phone": "0912345678",
                      "address": "Thôn Nà Khá, xã Côn Lôn"},
        "fields": body_fields,
    }
