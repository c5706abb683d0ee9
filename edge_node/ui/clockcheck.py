"""Dossiers to check for the clock: their received-at and due dates were stamped while this PC's
clock was detectably wrong (`service.clock_flags`). Staff check each against the paper trail, fix
what is wrong, and mark it checked; the flag clears at the province too, and stays in the history."""

from __future__ import annotations

import logging

from aiohttp import web

from edge_node.roles import may
from edge_node.ui.desk import desk_of
from protocol.errors import Forbidden, NotFound
from service import clock_flags
from service.ui import csrf
from service.ui.render import flash, redirect, safe_next
from service.ui.session import page_user

log = logging.getLogger(__name__)


def error_text(error_ms: int, lang: str) -> str:
    """`1 ngày 2 giờ chậm` / `1 d 2 h behind`: how far off the stamping clock was."""
    s = abs(int(error_ms)) // 1000
    if s >= 60:
        s = round(s / 60) * 60  # to the minute: 23 h 59 min 59 s is a day
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    vi = lang == "vi"
    parts = ([f"{d} {'ngày' if vi else 'd'}"] if d else []) + \
        ([f"{h} {'giờ' if vi else 'h'}"] if h and d < 30 else []) + \
        ([f"{m} {'phút' if vi else 'min'}"] if m and not d else [])
    amount = " ".join(parts) or (f"{s} giây" if vi else f"{s} s")
    if vi:
        return f"{amount} {'chậm' if error_ms < 0 else 'nhanh'}"
    return f"{amount} {'behind' if error_ms < 0 else 'ahead'}"


async def listing(request: web.Request) -> web.Response:
    """GET /clock-checks: the flagged dossiers, newest received first."""
    desk = desk_of(request)
    t = desk.renderer.t(request)
    items = await clock_flags.flagged(desk.store)
    for item in items:
        item["error_text"] = error_text(item["error_ms"], t.lang)
    return await desk.renderer.page(request, "clock_checks.html", items=items,
                                    can_clear=may(page_user(request).role, "edit"))


async def clear(request: web.Request) -> web.StreamResponse:
    """POST /dossiers/{id}/clock-check: staff checked the dates; clear the flag."""
    form = await request.post()
    csrf.check(request, form)
    desk = desk_of(request)
    user = page_user(request)
    dossier_id = request.match_info["id"]
    response = redirect(safe_next(str(form.get("next", "")), f"/dossiers/{dossier_id}"))
    if not may(user.role, "edit"):
        raise Forbidden("your role may not mark dossiers checked")
    try:
        view = await clock_flags.clear(desk.store, dossier_id, user.username)
    except NotFound:
        flash(response, "clockcheck.gone", "warn")
        return response
    desk.loop.kick()
    flash(response, "clockcheck.cleared", code=view.get("code") or "")
    return response


def routes() -> list[web.RouteDef]:
    """The page and its action."""
    return [web.get("/clock-checks", listing),
            web.post("/dossiers/{id}/clock-check", clear)]
