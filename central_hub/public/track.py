"""Tracking for citizens: the page `/track` (a form, or what the receipt's QR code opens) and its
JSON twin `GET /api/track`; both go through `central_hub.tracking.Tracker`, so they share its
rate limit and show exactly what `protocol.tracking.public_status` gives."""

from __future__ import annotations

import logging

from aiohttp import web

from central_hub.public import public_of, shown_errors
from central_hub.tracking import Tracker
from protocol.errors import NotFound
from protocol.tracking import normalize_check, track_link
from service.api import bodies, online_answers
from service.api.spec import operation
from service.ui.i18n import lang_of
from service.ui.qr import qr_svg
from service.web import json_response

log = logging.getLogger(__name__)


@shown_errors
async def track_page(request: web.Request) -> web.StreamResponse:
    """GET /track[?code=…&check=…[&new=1]]: the lookup form, and the dossier's status once both
    are given (`new`: just filed on /submit, so the confirmation with its QR code comes too)."""
    public = public_of(request)
    code = request.query.get("code", "").strip()[:64]
    check = request.query.get("check", "").strip()[:40]
    ctx: dict[str, object] = {"code": code, "found": None, "missing_pair": False}
    status = 200
    if code or check:
        if not (code and check):
            ctx["missing_pair"], status = True, 422
        else:
            try:
                ctx["found"] = await public.tracker.lookup(
                    public.tracker.address(request), code, check, lang_of(request))
            except NotFound:
                status = 404
    normal = normalize_check(check)
    if ctx["found"] is not None and normal is not None and request.query.get("new") == "1":
        link = track_link(public.base_url(request), code, normal)
        ctx.update(new=True, check=check, qr=qr_svg(link, code), link=link)
    else:
        ctx.update(new=False)
    return await public.renderer.page(request, "track.html", status=status, **ctx)


def routes(tracker: Tracker) -> list[web.RouteDef]:
    """GET /track and GET /api/track (both public)."""

    @operation("Track a dossier by its code and tracking check (public)", tag="tracking",
               query=bodies.TrackQuery, answer=online_answers.Tracked, public=True, errors=(404, 429))
    async def track_api(request: web.Request, query: bodies.TrackQuery) -> web.Response:
        """The check is printed on the receipt (in its QR code) and returned at filing. An
        unknown code and a wrong check answer the same 404; an address whose lookups keep
        finding nothing gets 429 with Retry-After."""
        shown = await tracker.lookup(tracker.address(request), query.code, query.check,
                                     "en" if query.lang == "en" else "vi")
        response = json_response(shown)
        response.headers["Cache-Control"] = "no-store"
        return response

    return [web.get("/track", track_page), web.get("/api/track", track_api)]
