"""The hub's web server: the sync endpoint, enrollment, the operator API and dashboard, health
checks, metrics, and the background monitor (alerts, history downsampling)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from central_hub import exchange, logs, public, recovery, submissions
from central_hub.admission import Admission
from central_hub.config import HubConfig
from central_hub.dashboard import mount_dashboard
from central_hub.metrics import CONTENT_TYPE as METRICS_TYPE
from central_hub.metrics import HubMetrics, hub_metrics
from central_hub.nodeauth import NodeGuard
from central_hub.nodes import fleet
from central_hub.nodes.health import DEFAULT_RULES, HealthRules
from central_hub.nodes.monitor import Monitor, NodeSnapshot
from central_hub.portal import Portals
from central_hub.schema import MIGRATIONS
from central_hub.store import HubStore, Node
from central_hub.submissions import Intake
from central_hub.tls import Authority
from central_hub.tracking import Tracker
from protocol import APP_VERSION
from protocol.codec import DEFAULT_LIMITS, inflate_bound
from protocol.errors import NotFound, SyncError, TransportError, ValidationError, status_of
from protocol.messages import CONTENT_TYPE, encode_error
from service.accounts import Accounts
from service.api import answers
from service.api.openapi import openapi_route
from service.api.spec import operation
from service.blobs import MAX_BLOB, check_sha
from service.budget import BODIES
from service.clock_api import clock_check_routes
from service.db import PgConnection, is_pg_url, redact
from service.migrations import upgraded
from service.sqlite import connect
from service.web import (
    PUBLIC,
    account_routes,
    auth_middleware,
    dossier_routes,
    error_middleware,
    json_response,
    read_body,
    retry_headers,
)

log = logging.getLogger(__name__)

ROLES = ("operator", "admin")
# the API routes the staff login does not guard: they check their callers themselves (the
# portal's key) or have none (tracking)
PUBLIC_API = (*PUBLIC, "/api/track", "/api/submissions", "/api/submissions/")
TITLE = "Commune sync — central hub API"


class ClientGone(TransportError):
    """The client closed its connection before its exchange started: nothing to do."""

MAX_CHUNK = 2 * 1024 * 1024
STORE = web.AppKey("store", HubStore)
METRICS = web.AppKey("metrics", HubMetrics)
MONITOR = web.AppKey("monitor", Monitor)


async def open_accounts(data_dir: Path, db: str = "sqlite") -> Accounts:
    """Operator accounts live in the hub database, on their own connection (PostgreSQL: a
    small pool; each statement commits on its own, as with SQLite here)."""
    if is_pg_url(db):
        writer, reader = await PgConnection.open(db, pool_size=2)
        await upgraded(writer, MIGRATIONS, redact(db))  # closes the pool if refused
        await writer.release()
        return Accounts(reader, ROLES)  # type: ignore[arg-type]
    path = data_dir / "hub.db"
    return Accounts(await upgraded(await connect(path), MIGRATIONS, str(path)), ROLES)


async def open_store(data_dir: Path, config: HubConfig) -> HubStore:
    """The hub's store, where its config says (SQLite in the data dir, or PostgreSQL)."""
    return await HubStore.open(data_dir / "hub.db", config.db)


async def node_items(store: HubStore, rules: HealthRules = DEFAULT_RULES,
                     links: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """`GET /api/nodes` items: what each node reported, with health and why."""
    return await fleet.node_items(store, rules, links)


def _route(request: web.Request) -> str:
    """The route's pattern (never the raw path: label values must stay few)."""
    info = request.match_info
    resource = info.route.resource if info.route is not None else None
    return resource.canonical if resource is not None else "unmatched"


def metrics_middleware(metrics: HubMetrics) -> Any:
    """Count every answer by route, method and status."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        status = 500
        try:
            response: web.StreamResponse = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            metrics.http_requests.labels(_route(request), request.method, str(status)).inc()

    return middleware


def build_app(store: HubStore, accounts: Accounts, config: HubConfig,
              authority: Authority | None = None) -> web.Application:
    """The aiohttp application for the hub; with `authority` (HTTPS), nodes authenticate by
    client certificate, else (plain HTTP, loopback development) by bearer credential."""
    metrics = hub_metrics()
    app = web.Application(
        middlewares=[metrics_middleware(metrics), error_middleware,
                     auth_middleware(accounts, PUBLIC_API)],
        client_max_size=DEFAULT_LIMITS.max_body + 1024,
        handler_args={"auto_decompress": False})  # compressed bodies are refused, never inflated
    guard = NodeGuard(store, authority, config)
    admission = Admission(config.sync_inflight, config.sync_waiting)
    snapshot = NodeSnapshot(store, config, lambda: metrics.links)
    monitor = Monitor(store, config, snapshot)
    app[STORE], app[METRICS], app[MONITOR] = store, metrics, monitor
    intake = Intake(store, Portals(store.conn, store.reader, store.lock, store.now_ms),
                    config.hub_agency)

    async def sync(request: web.Request) -> web.Response:
        started = time.monotonic()
        metrics.sync_requests.inc()
        outcome_label = "ok"
        try:
            node = await guard.node(request)
            async with admission.slot(node.node), BODIES.hold() as hold:
                if request.transport is None or request.transport.is_closing():
                    raise ClientGone("the node went away while its exchange waited")
                read_from = time.monotonic()
                body = await read_body(request, DEFAULT_LIMITS.max_body, hold)
                metrics.meter(node.node, len(body), time.monotonic() - read_from)
                await hold.grow(inflate_bound(body))  # what decoding it may allocate
                outcome = await exchange.serve(store, node, body, config.max_want_bytes)
            snapshot.touch(node.node)
            monitor.kick()
            if outcome.error is not None:
                raise outcome.error
            metrics.events_in.inc(outcome.events_in)
            metrics.events_out.inc(outcome.events_out)
            return web.Response(body=outcome.body, content_type=CONTENT_TYPE)
        except SyncError as exc:
            outcome_label = "refused"
            metrics.sync_errors.labels(exc.code).inc()
            return web.Response(body=encode_error(exc.code, exc.message),
                                status=status_of(exc), content_type=CONTENT_TYPE,
                                headers=retry_headers(exc))
        finally:
            elapsed = time.monotonic() - started
            metrics.sync_seconds.inc(elapsed)
            metrics.sync_duration.labels(outcome_label).observe(elapsed)

    async def node_of(request: web.Request, sha: str) -> Node:
        node = await guard.node(request)
        check_sha(sha)
        if not await store.refs.allowed(sha, node.commune):
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
        async with BODIES.hold() as hold:
            chunk = await read_body(request, MAX_CHUNK, hold)
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

    @operation("Every edge node, with its health and why", tag="fleet", answer=answers.Nodes)
    async def nodes(request: web.Request) -> web.Response:
        return json_response({"items": await snapshot.items()})

    @operation("The latest security alerts", tag="fleet", answer=answers.SecurityEvents)
    async def security(request: web.Request) -> web.Response:
        return json_response({"items": await store.trust.security_events()})

    @operation("Liveness", tag="health", answer=answers.HubHealth, public=True)
    async def healthz(request: web.Request) -> web.Response:
        return json_response({"ok": True, "version": APP_VERSION, "log": await store.log_size()})

    async def metrics_page(request: web.Request) -> web.Response:
        items = await snapshot.items()
        return web.Response(body=metrics.render(items, await store.log_size()),
                            headers={"Content-Type": METRICS_TYPE,
                                     "X-Content-Type-Options": "nosniff"})

    app.add_routes([
        web.post("/v1/sync", sync),
        *guard.routes(),
        web.get("/api/security", security),
        web.get("/v1/blobs/{sha}", blob_status),
        web.put("/v1/blobs/{sha}", blob_put),
        web.get("/v1/blobs/{sha}/data", blob_get),
        *recovery.routes(guard, store),
        *dossier_routes(store.dossiers, on_write=snapshot.invalidate),
        *clock_check_routes(store.dossiers, on_write=snapshot.invalidate),
        *submissions.routes(intake),
        *account_routes(accounts),
        web.get("/api/nodes", nodes),
        web.get("/healthz", healthz),
        web.get("/metrics", metrics_page),
        openapi_route(TITLE),
    ])
    mount_dashboard(app, store=store, accounts=accounts, config=config, monitor=monitor,
                    metrics=metrics, snapshot=snapshot, public_pages=public.PATHS)
    public.mount_public(app, intake=intake, tracker=Tracker(store, config), config=config)

    async def on_startup(app: web.Application) -> None:
        await monitor.start()

    async def on_cleanup(app: web.Application) -> None:
        await monitor.stop()
        await accounts.conn.close()
        await store.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


async def make_app(data_dir: Path, config: HubConfig,
                   authority: Authority | None = None) -> web.Application:
    """Open the hub's store and accounts from its data dir and build the app."""
    if config.log_format == "json":
        logs.use_json()
    store = await open_store(data_dir, config)
    return build_app(store, await open_accounts(data_dir, config.db), config, authority)
