"""Dossiers to check for the clock, across communes: stamped while their node's clock was
detectably wrong (`service.clock_flags`). The operator checks the received-at and due dates with
the commune and marks the dossier checked; the hub writes that as its own origin, and the flag
clears at the commune too."""

from __future__ import annotations

import logging

from aiohttp import web

from central_hub.dashboard.common import duration, hub_of, user_name
from central_hub.nodes import fleet
from protocol.errors import NotFound
from service import clock_flags
from service.ui import csrf
from service.ui.render import flash, redirect, safe_next

log = logging.getLogger(__name__)


async def listing(request: web.Request) -> web.Response:
    """GET /clock-checks[?commune=]: the flagged dossiers, newest received first."""
    hub = hub_of(request)
    t = hub.renderer.t(request)
    commune = request.query.get("commune", "").strip()
    items = await clock_flags.flagged(hub.store, commune or None)
    for item in items:
        side = "behind" if item["error_ms"] < 0 else "ahead"
        item["error_text"] = t(f"clockcheck.{side}",
                               offset=duration(t, round(abs(int(item["error_ms"])) / 60_000) * 60))
    return await hub.renderer.page(request, "clock_checks.html", items=items, commune=commune,
                                   communes=await fleet.commune_names(hub.store))


async def clear(request: web.Request) -> web.StreamResponse:
    """POST /dossiers/{id}/clock-check: the operator checked the dates; clear the flag."""
    hub = hub_of(request)
    form = await request.post()
    csrf.check(request, form)
    dossier_id = request.match_info["id"]
    response = redirect(safe_next(str(form.get("next", "")), f"/dossiers/{dossier_id}"))
    try:
        view = await clock_flags.clear(hub.store, dossier_id, user_name(request))
    except NotFound:
        flash(response, "clockcheck.gone", "warn")
        return response
    flash(response, "clockcheck.cleared", code=view.get("code") or "")
    return response


def routes() -> list[web.RouteDef]:
    """The page and its action."""
    return [web.get("/clock-checks", listing),
            web.post("/dossiers/{id}/clock-check", clear)]
