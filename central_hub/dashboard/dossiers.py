"""Dossiers across communes: the conflicts queue with resolve, search, and one dossier's page.

Resolving keeps one of the values in conflict: the form names the value by its place in the list the
operator saw, with the version seen, so a conflict that changed meanwhile is refused (409), never
settled blind. The hub writes the resolve event as its own origin (`HubStore.resolve`).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from central_hub.dashboard.common import hub_of, user_name
from central_hub.nodes import fleet
from protocol.errors import Conflict, NotFound, ValidationError
from protocol.lifecycle import STATUSES
from service.ui import csrf
from service.ui.render import flash, redirect, safe_next

log = logging.getLogger(__name__)

QUEUE_PAGE = 20
SEARCH_PAGE = 50


def _filters(request: web.Request) -> dict[str, str]:
    q = request.query
    status = q.get("status", "")
    return {"q": q.get("q", "").strip(), "commune": q.get("commune", "").strip(),
            "status": status if status in STATUSES else ""}


async def conflicts(request: web.Request) -> web.Response:
    """GET /conflicts: dossiers in conflict across communes, newest first."""
    hub = hub_of(request)
    f = _filters(request)
    page = await hub.store.dossiers.search(conflicts_only=True, commune=f["commune"] or None,
                                  limit=QUEUE_PAGE, after=request.query.get("after") or None)
    total = await hub.store.dossiers.count_conflicts(f["commune"] or None)
    more = "/conflicts?" + urlencode({"commune": f["commune"], "after": page.next}) \
        if page.next else None
    return await hub.renderer.page(
        request, "conflicts.html", items=page.items, total=total, filters=f, more=more,
        communes=await fleet.commune_names(hub.store))


async def search(request: web.Request) -> web.Response:
    """GET /dossiers: search by name, code or citizen ID, by commune and status."""
    hub = hub_of(request)
    f = _filters(request)
    error = None
    items: list[dict[str, Any]] = []
    more = None
    searched = any(f.values())
    try:
        page = await hub.store.dossiers.search(q=f["q"] or None, commune=f["commune"] or None,
                                      status=f["status"] or None, limit=SEARCH_PAGE,
                                      after=request.query.get("after") or None)
        items = page.items
        if page.next:
            more = "/dossiers?" + urlencode({**f, "after": page.next})
    except ValidationError as exc:
        error = exc.message
    return await hub.renderer.page(
        request, "dossiers.html", items=items, filters=f, more=more, error=error,
        searched=searched, statuses=list(STATUSES), communes=await fleet.commune_names(hub.store))


async def dossier(request: web.Request) -> web.Response:
    """GET /dossiers/{id}: one dossier, its conflicts with resolve, files and history."""
    hub = hub_of(request)
    view = await hub.store.dossiers.view(request.match_info["id"])
    names = await fleet.commune_names(hub.store)
    return await hub.renderer.page(request, "dossier.html", d=view,
                                   commune_name=names.get(view["commune"] or "", ""))


async def resolve(request: web.Request) -> web.StreamResponse:
    """POST /dossiers/{id}/resolve: keep the value chosen in the form."""
    hub = hub_of(request)
    form = await request.post()
    csrf.check(request, form)
    dossier_id = request.match_info["id"]
    back = safe_next(str(form.get("next", "")), f"/dossiers/{dossier_id}")
    field = str(form.get("field", ""))
    view = await hub.store.dossiers.view(dossier_id)
    values = next((c["values"] for c in view["conflicts"] if c["field"] == field), None)
    response = redirect(back)
    if values is None:
        flash(response, "conflicts.gone", "warn")
        return response
    try:
        choice = int(str(form.get("choice", "")))
        if not 0 <= choice < len(values):
            raise ValueError(choice)
    except ValueError:
        flash(response, "conflicts.pick", "error")
        return response
    try:
        await hub.store.dossiers.resolve(dossier_id, {"field": field, "value": values[choice]["value"],
                                             "base": str(form.get("base", ""))},
                                user_name(request))
        hub.nodes.invalidate()  # the commune's count of conflicts changed
    except Conflict:
        flash(response, "conflicts.changed", "error")
        return response
    except (ValidationError, NotFound) as exc:
        flash(response, "conflicts.failed", "error", detail=exc.message)
        return response
    flash(response, "conflicts.resolved", code=view["code"] or "")
    return response


def routes() -> list[web.RouteDef]:
    """The dossier pages' routes."""
    return [web.get("/conflicts", conflicts), web.get("/dossiers", search),
            web.get("/dossiers/{id}", dossier), web.post("/dossiers/{id}/resolve", resolve)]
