"""The edge node's web server: the staff JSON API (CONTRACT §7) and the background sync loop."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from edge_node.config import EdgeConfig
from edge_node.loop import SyncLoop
from edge_node.roles import ROLES, authorize
from edge_node.store import EdgeStore
from edge_node.sync import CLOCK_WARNING_MS, SyncClient
from edge_node.ui import mount_desk
from protocol import APP_VERSION, lifecycle
from protocol.calendar import iso
from service import clock_flags
from service.accounts import Accounts
from service.clock_api import clock_check_routes
from service.sqlite import connect
from service.web import (
    account_routes,
    auth_middleware,
    current_user,
    dossier_routes,
    error_middleware,
    json_body,
    json_response,
)

log = logging.getLogger(__name__)

STORE = web.AppKey("store", EdgeStore)
LOOP = web.AppKey("sync_loop", SyncLoop)
CLIENT = web.AppKey("sync_client", SyncClient)


async def open_accounts(data_dir: Path) -> Accounts:
    """Staff accounts live in the edge database, on their own connection."""
    accounts = Accounts(await connect(data_dir / "edge.db"), ROLES)
    await accounts.setup()
    return accounts


async def sync_status(store: EdgeStore, client: SyncClient) -> dict[str, Any]:
    """What `GET /api/sync` answers, also used by `edge-node status`."""
    pending, oldest = await store.pending_stats()
    last = await store.get_meta("last_success_at")
    back = await clock_flags.went_back(store)  # offline, the clock went back: say so already
    offset = store.clock_offset_ms if back is None else back
    return {
        "state": client.state,
        "pending_events": pending,
        "pending_blobs": await store.pending_blobs(),
        "oldest_pending_age_s": oldest,
        "last_success_at": iso(int(last)) if last else None,
        "last_error": client.last_error,
        "clock_offset_ms": offset,
        "clock_warning": abs(offset) > CLOCK_WARNING_MS,
        "clock_checks": await clock_flags.count_flagged(store),  # dossiers to check: clock
        "rejected": await store.rejections(),
        "warning": await store.sync_warning(),  # e.g. the hub was restored from a backup
    }


def build_app(store: EdgeStore, accounts: Accounts, client: SyncClient, loop: SyncLoop,
              config: EdgeConfig) -> web.Application:
    """The aiohttp application for one edge node."""
    app = web.Application(middlewares=[error_middleware, auth_middleware(accounts)],
                          client_max_size=2 * 1024 * 1024)
    app[STORE], app[LOOP], app[CLIENT] = store, loop, client

    async def create(request: web.Request) -> web.Response:
        body = await json_body(request)
        user = current_user(request)
        authorize(user, "intake", body)
        view = await store.create(body, user.username)
        loop.kick()
        return json_response(view, status=201)

    async def get_sync(request: web.Request) -> web.Response:
        return json_response(await sync_status(store, client))

    async def post_sync(request: web.Request) -> web.Response:
        loop.kick()
        return json_response({"ok": True, "state": client.state}, status=202)

    async def catalogue(request: web.Request) -> web.Response:
        return json_response({"version": store.ref_versions.get("procedures", 0), "items": [
            {"code": p.code, "name_vi": p.name_vi, "name_en": p.name_en,
             "limit_days": p.limit_days, "same_day_cutoff": p.same_day_cutoff,
             "fields": [{"name": f.name, "label_vi": f.label_vi, "label_en": f.label_en,
                         "type": f.type, "required": f.required, "choices": list(f.choices)}
                        for f in p.fields]}
            for p in store.catalogue.procedures]})

    async def holidays(request: web.Request) -> web.Response:
        return json_response({"version": store.ref_versions.get("holidays", 0),
                              "items": sorted(d.isoformat() for d in store.calendar.holidays)})

    async def statuses(request: web.Request) -> web.Response:
        return json_response({"items": [
            {"name": name, "code": code, "vi": vi, "en": en,
             "next": lifecycle.next_statuses(name)}
            for name, (code, vi, en) in lifecycle.STATUSES.items()]})

    async def healthz(request: web.Request) -> web.Response:
        return json_response({"ok": True, "node": config.node, "commune": config.commune,
                              "version": APP_VERSION})

    app.add_routes([
        web.post("/api/dossiers", create),
        *dossier_routes(store, on_write=loop.kick, authorize=authorize),
        *clock_check_routes(store, on_write=loop.kick, authorize=authorize),
        *account_routes(accounts),
        web.get("/api/sync", get_sync),
        web.post("/api/sync", post_sync),
        web.get("/api/procedures", catalogue),
        web.get("/api/statuses", statuses),
        web.get("/api/holidays", holidays),
        web.get("/healthz", healthz),
    ])
    mount_desk(app, store=store, accounts=accounts, client=client, loop=loop, config=config,
               sync_status=lambda: sync_status(store, client))

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
    accounts = await open_accounts(data_dir)
    client = SyncClient(store, config)
    client.data_dir = str(data_dir)
    return build_app(store, accounts, client, SyncLoop(client), config)
