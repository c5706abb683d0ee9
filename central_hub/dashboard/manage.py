"""Node management: every enrolled node (200 a page, filtered by commune or node), a one-time
enrollment token for a commune (shown once, on the answer to the form, never in a cookie or a URL),
and revoking a node's credential."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from central_hub.dashboard.common import PAGE, hub_of, node_matches, paginate
from central_hub.nodes import fleet
from central_hub.store import check_commune
from protocol.errors import NotFound, ValidationError
from service.ui import csrf
from service.ui.render import flash, redirect

log = logging.getLogger(__name__)


async def _page(request: web.Request, *, status: int = 200, token: str | None = None,
                enrolled: dict[str, str] | None = None, errors: dict[str, str] | None = None,
                values: dict[str, str] | None = None) -> web.Response:
    hub = hub_of(request)
    q = request.query.get("q", "").strip()
    items = sorted((i for i in await hub.nodes.items() if node_matches(i, q)),
                   key=lambda i: (i["revoked"], i["commune"], i["node"]))
    page, pages = paginate(request.query, len(items), PAGE)
    hub_url = hub.config.public_url.rstrip("/") or f"{request.scheme}://{request.host}"

    def link(**change: Any) -> str:
        return "/nodes?" + urlencode({k: v for k, v in {"q": q, **change}.items() if v})

    return await hub.renderer.page(
        request, "nodes.html", status=status, items=items[(page - 1) * PAGE:page * PAGE],
        matched=len(items), q=q, page=page, pages=pages, link=link, token=token,
        enrolled=enrolled, errors=errors or {}, values=values or {}, hub_url=hub_url)


async def nodes(request: web.Request) -> web.Response:
    """GET /nodes."""
    return await _page(request)


async def enroll(request: web.Request) -> web.Response:
    """POST /nodes/enroll: a new one-time token, shown on this answer only."""
    hub = hub_of(request)
    form = await request.post()
    csrf.check(request, form)
    commune = str(form.get("commune", "")).strip()
    name = " ".join(str(form.get("name", "")).split())[:120] or None
    try:
        check_commune(commune)
    except ValidationError:
        return await _page(request, status=422, errors={"commune": "nodes.bad_commune"},
                           values={"commune": commune, "name": name or ""})
    token = await hub.store.create_enroll_token(commune, name)
    hub.nodes.invalidate()
    names = await fleet.commune_names(hub.store)
    log.info("enrollment token issued for commune %s", commune, extra={"commune": commune})
    return await _page(request, token=token,
                       enrolled={"commune": commune, "name": names.get(commune, "")})


async def revoke(request: web.Request) -> web.StreamResponse:
    """POST /nodes/{node}/revoke."""
    hub = hub_of(request)
    form = await request.post()
    csrf.check(request, form)
    node = request.match_info["node"]
    response = redirect("/nodes")
    try:
        await hub.store.revoke(node)
        hub.nodes.invalidate()
    except NotFound:
        flash(response, "nodes.unknown", "error", node=node)
        return response
    log.warning("node %s revoked from the dashboard", node, extra={"node": node})
    flash(response, "nodes.revoked", node=node)
    return response


def routes() -> list[web.RouteDef]:
    """Node management routes."""
    return [web.get("/nodes", nodes), web.post("/nodes/enroll", enroll),
            web.post("/nodes/{node}/revoke", revoke)]
