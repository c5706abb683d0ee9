"""The edge node's web server: the staff JSON API (CONTRACT §7) and the background sync loop."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from edge_node.backup import daily_backups
from edge_node.config import EdgeConfig
from edge_node.disk import MB, DiskGuard, is_disk_full
from edge_node.hubtime import CLOCK_WARNING_MS
from edge_node.loop import SyncLoop
from edge_node.roles import ROLES, authorize
from edge_node.schema import MIGRATIONS
from edge_node.store import EdgeStore
from edge_node.sync import SyncClient
from edge_node.ui import mount_desk
from protocol import APP_VERSION, lifecycle
from protocol.calendar import iso
from protocol.errors import DiskFull, StoreError
from service import clock_flags
from service.accounts import IDLE_S, Accounts
from service.api import answers, bodies
from service.api.openapi import openapi_route
from service.api.spec import operation
from service.clock_api import clock_check_routes
from service.migrations import upgraded
from service.sqlite import connect
from service.web import (
    Handler,
    account_routes,
    auth_middleware,
    current_user,
    dossier_routes,
    error_middleware,
    json_response,
)

log = logging.getLogger(__name__)

TITLE = "Commune sync — edge node API"
STORE = web.AppKey("store", EdgeStore)
LOOP = web.AppKey("sync_loop", SyncLoop)
CLIENT = web.AppKey("sync_client", SyncClient)


async def open_accounts(data_dir: Path, idle_s: float = IDLE_S) -> Accounts:
    """Staff accounts live in the edge database, on their own connection."""
    path = data_dir / "edge.db"
    return Accounts(await upgraded(await connect(path), MIGRATIONS, str(path)), ROLES, idle_s)


async def sync_status(store: EdgeStore, client: SyncClient[EdgeStore]) -> dict[str, Any]:
    """What `GET /api/sync` answers, also used by `edge-node status`."""
    pending, oldest = await store.sync.pending_stats()
    last = await store.log.get_meta("last_success_at")
    back = await clock_flags.went_back(store.dossiers)  # offline, the clock went back: say so
    offset = store.time.offset_ms if back is None else back
    return {
        "state": client.state,
        "pending_events": pending,
        "pending_blobs": await store.queue.pending(),
        "oldest_pending_age_s": oldest,
        "last_success_at": iso(int(last)) if last else None,
        "last_error": client.last_error,
        "clock_offset_ms": offset,
        "clock_warning": abs(offset) > CLOCK_WARNING_MS,
        "clock_checks": await clock_flags.count_flagged(store.dossiers),  # to check: clock
        "rejected": await store.sync.rejections(),
        "warning": await store.sync.warning(),  # e.g. the hub was restored from a backup
        "progress": client.progress.plain(),  # the attempt under way, or how the last one ended
    }


# New dossiers and attachments, through the API and the desk: what a full disk must refuse first.
INTAKE = re.compile(r"^(/api/dossiers|/dossiers/new|(/api)?/dossiers/[^/]+/attachments)$")


def disk_floor(guard: Callable[[], DiskGuard]) -> Any:
    """Refuse new intake below the free-space floor (edge_node/disk.py), before any write;
    `guard` gives the floors in force (a reloaded config's)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "POST" and INTAKE.match(request.path):
            guard().check_intake()
        try:
            return await handler(request)
        except (StoreError, OSError) as exc:
            if not is_disk_full(exc):
                raise
            free = guard().free() // MB
            raise DiskFull("the disk is full: nothing was saved; free disk space and try again",
                           free_mb=free, floor_mb=guard().floor_mb) from exc

    return middleware


def build_app(store: EdgeStore, accounts: Accounts, client: SyncClient[EdgeStore],
              loop: SyncLoop, config: EdgeConfig) -> web.Application:
    """The aiohttp application for one edge node."""
    app = web.Application(middlewares=[error_middleware, auth_middleware(accounts)],
                          client_max_size=2 * 1024 * 1024)
    app[STORE], app[LOOP], app[CLIENT] = store, loop, client
    dossiers = store.dossiers

    @operation("Receive a dossier at the desk", tag="dossiers", body=bodies.NewDossier,
               answer=answers.Dossier, status=201,
               guard=lambda request, plain: authorize(current_user(request), "intake", plain))
    async def create(request: web.Request, body: bodies.NewDossier) -> web.Response:
        """Status `accepted`, with its receipt code and due date; invalid input stores nothing."""
        view = await dossiers.create(bodies.as_dict(body), current_user(request).username)
        loop.kick()
        return json_response(view, status=201)

    @operation("Sync status", tag="sync", answer=answers.SyncStatus)
    async def get_sync(request: web.Request) -> web.Response:
        return json_response(await sync_status(store, client))

    @operation("Sync now", tag="sync", answer=answers.SyncKick, status=202)
    async def post_sync(request: web.Request) -> web.Response:
        loop.kick()
        return json_response({"ok": True, "state": client.state}, status=202)

    @operation("The procedure catalogue and its forms", tag="reference",
               answer=answers.Procedures)
    async def catalogue(request: web.Request) -> web.Response:
        return json_response({"version": dossiers.ref_versions.get("procedures", 0), "items": [
            {"code": p.code, "name_vi": p.name_vi, "name_en": p.name_en,
             "limit_days": p.limit_days, "same_day_cutoff": p.same_day_cutoff,
             "fields": [{"name": f.name, "label_vi": f.label_vi, "label_en": f.label_en,
                         "type": f.type, "required": f.required, "choices": list(f.choices)}
                        for f in p.fields]}
            for p in dossiers.catalogue.procedures]})

    @operation("The holiday calendar", tag="reference", answer=answers.Holidays)
    async def holidays(request: web.Request) -> web.Response:
        return json_response({"version": dossiers.ref_versions.get("holidays", 0),
                              "items": sorted(d.isoformat() for d in dossiers.calendar.holidays)})

    @operation("The dossier lifecycle", tag="reference", answer=answers.Statuses)
    async def statuses(request: web.Request) -> web.Response:
        return json_response({"items": [
            {"name": name, "code": code, "vi": vi, "en": en,
             "next": lifecycle.next_statuses(name)}
            for name, (code, vi, en) in lifecycle.STATUSES.items()]})

    @operation("Liveness", tag="health", answer=answers.EdgeHealth, public=True)
    async def healthz(request: web.Request) -> web.Response:
        return json_response({"ok": True, "node": config.node, "commune": config.commune,
                              "version": APP_VERSION})

    app.add_routes([
        web.post("/api/dossiers", create),
        *dossier_routes(dossiers, on_write=loop.kick, authorize=authorize),
        *clock_check_routes(dossiers, on_write=loop.kick, authorize=authorize),
        *account_routes(accounts),
        web.get("/api/sync", get_sync),
        web.post("/api/sync", post_sync),
        web.get("/api/procedures", catalogue),
        web.get("/api/statuses", statuses),
        web.get("/api/holidays", holidays),
        web.get("/healthz", healthz),
        openapi_route(TITLE),
    ])
    mount_desk(app, store=dossiers, accounts=accounts, client=client, loop=loop, config=config,
               sync_status=lambda: sync_status(store, client))
    # innermost, so the desk's error pages render a refusal in the user's language
    app.middlewares.append(disk_floor(lambda: client.disk))

    async def on_startup(app: web.Application) -> None:
        if config.auto_sync:
            loop.start()
            loop.kick()

    async def on_cleanup(app: web.Application) -> None:
        await loop.stop()
        await client.close()
        await accounts.conn.close()
        await store.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


async def make_app(data_dir: Path, config: EdgeConfig) -> web.Application:
    """Open everything an edge node needs from its data dir and build the app."""
    store = await EdgeStore.open(data_dir / "edge.db", config.node, config.commune, config.agency)
    accounts = await open_accounts(data_dir, config.idle_logout_min * 60)
    client = SyncClient(store, config)
    client.data_dir = str(data_dir)
    app = build_app(store, accounts, client, SyncLoop(client), config)
    if config.backup_dir:
        app.cleanup_ctx.append(daily_backups(data_dir, config))
    return app
