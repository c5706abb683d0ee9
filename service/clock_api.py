"""The clock-check flag over HTTP, for both servers: list the flagged dossiers, clear one's flag.

`GET /api/clock-checks[?commune=]` → `{"items": [...], "total": n}` (`service.clock_flags.flagged`)
and `POST /api/dossiers/{id}/clock-check` → 200 dossier with its flag cleared (staff checked its
received-at and due dates; needs the right to edit). Both need a login like the rest of `/api`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from service import clock_flags
from service.accounts import User
from service.api import answers, bodies
from service.api.spec import operation
from service.dossier_store import DossierStore
from service.web import Authorize, current_user, json_response

log = logging.getLogger(__name__)


def _anyone(user: User, action: str, body: Any) -> None:
    """The default policy: any logged-in user may clear a flag."""


def clock_check_routes(store: DossierStore, on_write: Callable[[], None] = lambda: None,
                       authorize: Authorize = _anyone) -> list[web.RouteDef]:
    """The two routes, writing through `store` (then `on_write`) and checked by `authorize`."""

    @operation("Dossiers whose times need checking (stamped with a wrong clock)", tag="dossiers",
               query=bodies.ClockCheckQuery, answer=answers.ClockChecks)
    async def listing(request: web.Request, query: bodies.ClockCheckQuery) -> web.Response:
        """Newest received first; the flag stands until staff mark the dossier checked."""
        items = await clock_flags.flagged(store, query.commune)
        return json_response({"items": items, "total": len(items)})

    @operation("Mark a dossier's times checked (clears its clock-check flag)", tag="dossiers",
               answer=answers.Dossier, errors=(403,))
    async def clear(request: web.Request) -> web.Response:
        """Written as an ordinary edit: it syncs, and the history keeps who checked."""
        user = current_user(request)
        authorize(user, "edit", None)
        view = await clock_flags.clear(store, request.match_info["id"], user.username)
        on_write()
        return json_response(view)

    return [web.get("/api/clock-checks", listing),
            web.post("/api/dossiers/{id}/clock-check", clear)]
