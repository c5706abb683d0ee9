"""The operator dashboard at the hub's `/`: fleet health, alerts, conflicts, dossiers, statistics
and node management, on the shared staff UI plumbing of `service.ui` (login, CSRF, languages)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from central_hub.config import HubConfig
from central_hub.dashboard import clockchecks, dossiers, manage, node, overview, statsview
from central_hub.dashboard.common import (
    HUB,
    Hub,
    duration,
    field_label,
    nav,
    procedure_name,
    size,
    status_name,
    why,
)
from central_hub.metrics import HubMetrics
from central_hub.nodes.monitor import Monitor, NodeSnapshot
from central_hub.store import HubStore
from service.accounts import Accounts
from service.ui.mount import mount

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
PUBLIC = ("/metrics",)


def mount_dashboard(app: web.Application, *, store: HubStore, accounts: Accounts,
                    config: HubConfig, monitor: Monitor, metrics: HubMetrics,
                    snapshot: NodeSnapshot, public_pages: tuple[str, ...] = ()) -> Hub:
    """Add the dashboard's pages and its JSON routes to the hub's app (`public_pages`: other
    pages of the app that need no operator login)."""
    renderer = mount(app, accounts, name="hub", folder=HERE, title_key="app.title",
                     public=(*PUBLIC, *public_pages))
    hub = Hub(store, accounts, config, monitor, metrics, renderer, snapshot)
    app[HUB] = hub

    async def context(request: web.Request) -> dict[str, Any]:
        t = renderer.t(request)
        return {
            "nav": nav(request, t), "province": config.province_title,
            "why": lambda r: why(t, r), "dur": lambda s: duration(t, s), "size": size,
            "status_name": lambda s: status_name(t, s),
            "proc_name": lambda c: procedure_name(hub, t, c),
            "field_label": lambda p, path: field_label(hub, t, p, path),
        }

    renderer.hooks.append(context)
    app.router.add_routes([*overview.routes(), *node.routes(), *dossiers.routes(),
                           *manage.routes(), *statsview.routes(), *clockchecks.routes()])
    return hub
