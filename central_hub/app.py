"""The hub's web server: the sync endpoint, enrollment, the operator API, health and metrics."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from central_hub import exchange
from central_hub.config import HubConfig
from central_hub.health import assess
from central_hub.metrics import render_metrics
from central_hub.store import HubStore, Node
from protocol import APP_VERSION
from protocol.calendar import iso
from protocol.codec import DEFAULT_LIMITS
from protocol.errors import AuthError, NotFound, SyncError, ValidationError
from protocol.messages import encode_error
from service.accounts import Accounts
from service.blobs import MAX_BLOB, check_sha
from service.sqlite import connect
from service.web import (
    account_routes,
    auth_middleware,
    dossier_routes,
    error_middleware,
    json_body,
    json_response,
    read_body,
    status_of,
    token_of,
)

log = logging.getLogger(__name__)

ROLES = ("operator", "admin")
MAX_CHUNK = 2 * 1024 * 1024
CONTENT_TYPE = "application/vnd.commune-sync+zstd"
STORE = web.AppKey("store", HubStore)
COUNTERS = web.AppKey("counters", dict)


async def open_accounts(data_dir: Path) -> Accounts:
    """Operator accounts live in the hub database, on their own connection."""
    accounts = Accounts(await connect(data_dir / "hub.db"), ROLES)
    await accounts.setup()
    return accounts


async def node_items(store: HubStore) -> list[dict[str, Any]]:
    """`GET /api/nodes` items: what each node reported, with health and why."""
    now = store.now_ms()
    items = []
    for row in await store.nodes():
        health, reasons = assess(row, now)
        stats = row["stats"]
        items.append({
            "node": row["node"],
            "commune": row["commune"],
            "commune_name": row["commune_name"],
            "last_seen_at": iso(row["last_seen_at"]),
            "last_success_at": iso(row["last_success_at"]),
            "last_success_ms": row["last_success_at"],
            "pending_events": stats.get("pending_events", 0),
            "pending_blobs": stats.get("pending_blobs", 0),
            "oldest_pending_age_s": stats.get("oldest_pending_age_s", 0),
            "clock_offset_ms": stats.get("clock_offset_ms", 0),
            "disk_free": stats.get("disk_free"),
            "dossiers": stats.get("dossiers"),
            "conflicts_open": row["conflicts_open"],
            "rejected_events": row["rejected_events"],
            "clock_ahead_events": row["clock_ahead_events"],
            "app_version": row["app_version"],
            "protocol": row["protocol"],
            "last_error": row["last_error"] or stats.get("last_error") or None,
            "sessions_ok": row["sessions_ok"],
            "sessions_failed": row["sessions_failed"],
            "bytes_in": row["bytes_in"],
            "bytes_out": row["bytes_out"],
            "revoked": row["revoked_at"] is not None,
            "health": health,
            "reasons": reasons,
        })
    return items


def build_app(store: HubStore, accounts: Accounts, config: HubConfig) -> web.Application:
    """The aiohttp application for the hub."""
    app = web.Application(
        middlewares=[error_middleware, auth_middleware(accounts)],
        client_max_size=DEFAULT_LIMITS.max_body + 1024)
    counters: dict[str, float] = {"sync_requests": 0, "sync_errors": 0, "events_in": 0,
                                  "events_out": 0, "sync_seconds_total": 0.0}
    app[STORE], app[COUNTERS] = store, counters

    async def sync(request: web.Request) -> web.Response:
        started = time.monotonic()
        counters["sync_requests"] += 1
        try:
            token = token_of(request)
            if not token:
                raise AuthError("node credential required")
            node = await store.authenticate(token)
            body = await read_body(request, DEFAULT_LIMITS.max_body)
            outcome = await exchange.serve(store, node, body, config.max_want_bytes)
            if outcome.error is not None:
                raise outcome.error
            counters["events_in"] += outcome.events_in
            counters["events_out"] += outcome.events_out
            return web.Response(body=outcome.body, content_type=CONTENT_TYPE)
        except SyncError as exc:
            counters["sync_errors"] += 1
            return web.Response(body=encode_error(exc.code, exc.message),
                                status=status_of(exc), content_type=CONTENT_TYPE)
        finally:
            counters["sync_seconds_total"] += time.monotonic() - started

    async def node_of(request: web.Request, sha: str) -> Node:
        token = token_of(request)
        if not token:
            raise AuthError("node credential required")
        node = await store.authenticate(token)
        check_sha(sha)
        if not await store.blob_allowed(sha, node.commune):
            raise NotFound("no attachment of this commune names that blob")
        return node

    def _int(request: web.Request, name: str, low: int, high: int) -> int:
        try:
            value = int(request.query.get(name, ""))
        except ValueError as exc:
            raise ValidationError(f"{name} must be a whole number", field=name) from exc
        if not low <= value <= high:
            raise ValidationError(f"{name} must be {low}–{high}", field=name)
        return value

    async def blob_status(request: web.Request) -> web.Response:
        sha = request.match_info["sha"]
        await node_of(request, sha)
        return json_response({"have": store.blobs.have(sha), "complete": store.blobs.has(sha)})

    async def blob_put(request: web.Request) -> web.Response:
        sha = request.match_info["sha"]
        await node_of(request, sha)
        offset = _int(request, "offset", 0, MAX_BLOB)
        size = _int(request, "size", 1, MAX_BLOB)
        chunk = await read_body(request, MAX_CHUNK)
        have = await store.blobs.append(sha, offset, chunk, size)
        return json_response({"have": have, "complete": have == size})

    async def blob_get(request: web.Request) -> web.Response:
        sha = request.match_info["sha"]
        await node_of(request, sha)
        if not store.blobs.has(sha):
            raise NotFound("the hub does not hold this blob yet")
        offset = _int(request, "offset", 0, MAX_BLOB)
        limit = _int(request, "limit", 1, MAX_CHUNK)
        return web.Response(body=await store.blobs.read(sha, offset, limit),
                            content_type="application/octet-stream")

    async def enroll(request: web.Request) -> web.Response:
        body = await json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("token"), str):
            raise ValidationError("token is required", field="token")
        result = await store.enroll(body["token"])
        return json_response({"node": result.node, "commune": result.commune,
                              "commune_name": result.commune_name, "agency": result.agency,
                              "credential": result.credential, "hub_version": APP_VERSION,
                              "hub_time": store.now_ms()})

    async def nodes(request: web.Request) -> web.Response:
        return json_response({"items": await node_items(store)})

    async def healthz(request: web.Request) -> web.Response:
        return json_response({"ok": True, "version": APP_VERSION, "log": await store.log_size()})

    async def metrics(request: web.Request) -> web.Response:
        text = render_metrics(await node_items(store), counters, await store.log_size())
        return web.Response(text=text, content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=(
            "Commune sync central hub. Operator API under /api (GET /api/nodes), metrics at "
            "/metrics; the operator dashboard is not built yet.\n"), content_type="text/plain")

    app.add_routes([
        web.post("/v1/sync", sync),
        web.post("/v1/enroll", enroll),
        web.get("/v1/blobs/{sha}", blob_status),
        web.put("/v1/blobs/{sha}", blob_put),
        web.get("/v1/blobs/{sha}/data", blob_get),
        *dossier_routes(store),
        *account_routes(accounts),
        web.get("/api/nodes", nodes),
        web.get("/healthz", healthz),
        web.get("/metrics", metrics),
        web.get("/", index),
    ])

    async def on_cleanup(app: web.Application) -> None:
        await accounts.conn.close()
        await store.close()

    app.on_cleanup.append(on_cleanup)
    return app


async def make_app(data_dir: Path, config: HubConfig) -> web.Application:
    """Open the hub's store and accounts from its data dir and build the app."""
    store = await HubStore.open(data_dir / "hub.db")
    return build_app(store, await open_accounts(data_dir), config)
