"""The commune desk: the staff web UI of an edge node (pages, receipts, users), mounted at `/`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from edge_node.config import EdgeConfig
from edge_node.loop import SyncLoop
from edge_node.store import EdgeStore
from edge_node.sync import SyncClient
from edge_node.ui import (
    admin,
    clockcheck,
    dossiers,
    edit,
    home,
    inbox,
    intake,
    printing,
    reports,
    syncview,
)
from edge_node.ui.desk import DESK, Desk, nav, procedure_name, status_label
from service.accounts import Accounts
from service.dossier_store import DossierStore
from service.ui.mount import mount
from service.worklists import Worklists

log = logging.getLogger(__name__)

HERE = Path(__file__).parent


def mount_desk(app: web.Application, *, store: DossierStore, accounts: Accounts,
               client: SyncClient[EdgeStore], loop: SyncLoop, config: EdgeConfig,
               sync_status: Callable[[], Awaitable[dict[str, Any]]]) -> Desk:
    """Add the desk's pages to an edge node's app (the JSON API stays as it is)."""
    renderer = mount(app, accounts, name="desk", folder=HERE, title_key="app.title")
    desk = Desk(store, accounts, client, loop, config, renderer, Worklists(store), sync_status)
    app[DESK] = desk

    async def context(request: web.Request) -> dict[str, Any]:
        t = renderer.t(request)

        sync = await syncview.indicator(desk, t)

        def proc_name(code: str | None) -> str:
            return procedure_name(desk.procedure(code), code, t.lang)

        return {
            "nav": nav(request, t), "sync": sync,
            "sync_poll_s": sync["poll_s"], "agency_name": desk.agency_name(), "node": config.node,
            "status_name": lambda s: status_label(s, t.lang), "proc_name": proc_name,
        }

    renderer.hooks.append(context)
    app.router.add_routes([*home.routes(), *syncview.routes(), *intake.routes(), *inbox.routes(),
                           *dossiers.routes(), *edit.routes(), *printing.routes(), *admin.routes(),
                           *reports.routes(), *clockcheck.routes()])
    return desk
