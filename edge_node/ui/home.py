"""The home page: today's intake, due today, overdue, awaiting supplement, open conflicts."""

from __future__ import annotations

import logging

from aiohttp import web

from edge_node.roles import may
from edge_node.ui.desk import desk_of
from service.ui.session import page_user

log = logging.getLogger(__name__)

MORE = {"today": "/dossiers", "due": "/dossiers", "overdue": "/dossiers?overdue=1",
        "supplement": "/dossiers?status=supplement_requested"}


async def home(request: web.Request) -> web.Response:
    """GET /."""
    desk = desk_of(request)
    user = page_user(request)
    now, today = desk.store.now_ms(), desk.store.today()
    w = desk.worklists
    lists = {
        "today": await w.received_on(today, now, limit=10),
        "due": await w.due_on(today, now, limit=20),
        "overdue": await w.overdue(now, limit=10),
        "supplement": await w.awaiting_supplement(now, limit=10),
        "conflicts": await w.conflicts(now, limit=10),
    }
    return await desk.renderer.page(request, "home.html", lists=lists, more=MORE,
                                    can_intake=may(user.role, "intake"))


def routes() -> list[web.RouteDef]:
    """The home page's route."""
    return [web.get("/", home)]
