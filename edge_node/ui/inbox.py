"""The online inbox: dossiers filed online for this commune, which arrive from the hub with the
sync as `submitted`. The clerk reads one and answers it: accept (form 01, sent electronically: the
due date is counted from now by this desk's calendar and the hub's tracking page shows it), ask for
a supplement (form 02, what to bring) or refuse (form 03, with the reasons). The answer is a status
change like any other, so it reaches the hub, and the citizen's tracking page, with the next sync.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from edge_node.roles import PERMITS, may
from edge_node.ui.desk import desk_of
from edge_node.ui.dossiers import field_rows
from protocol.errors import Conflict, NotFound, ValidationError
from service.ui import csrf, formats
from service.ui.render import flash, redirect
from service.ui.session import need, page_user

log = logging.getLogger(__name__)

LIMIT = 200
SUBMITTED = "submitted"
# what each answer moves the dossier to, whether it needs a note (what to bring, why not), and
# where the clerk goes next: the printed form of the answer
ANSWERS: dict[str, tuple[str, bool, str]] = {
    "accept": ("accepted", False, "/dossiers/{id}?new=1"),
    "supplement": ("supplement_requested", True, "/dossiers/{id}/supplement"),
    "refuse": ("refused", True, "/dossiers/{id}/refusal"),
}


async def inbox(request: web.Request) -> web.Response:
    """GET /inbox: the dossiers filed online awaiting an answer, oldest first."""
    desk = desk_of(request)
    page = await desk.store.search(status=SUBMITTED, limit=LIMIT)
    items = []
    for item in reversed(page.items):  # the search gives the newest first
        scans = [a for a in item["attachments"] if a["sha256"] is not None]
        items.append({**item, "documents": len(item["attachments"]),
                      "scans_missing": sum(not desk.store.blobs.has(a["sha256"]) for a in scans)})
    return await desk.renderer.page(request, "inbox.html", items=items,
                                    more=page.next is not None, limit=LIMIT)


async def _submitted(request: web.Request) -> dict[str, Any]:
    view = await desk_of(request).store.view(request.match_info["id"])
    if view["status"] != SUBMITTED:
        raise NotFound("this dossier is not waiting in the online inbox")
    return view


async def inbox_dossier(request: web.Request) -> web.StreamResponse:
    """GET /inbox/{id}: one filing with its documents and the three answers."""
    desk = desk_of(request)
    user = page_user(request)
    t = desk.renderer.t(request)
    view = await desk.store.view(request.match_info["id"])
    if view["status"] != SUBMITTED:  # answered meanwhile (another desk, or the province)
        return redirect(f"/dossiers/{view['id']}")
    files = [{**a, "here": a["sha256"] is not None and desk.store.blobs.has(a["sha256"])}
             for a in view["attachments"]]
    return await desk.renderer.page(
        request, "inbox_dossier.html", d=view, fields=field_rows(
            t, desk.procedure(view["procedure_code"]), view), files=files, marks={},
        can_answer=may(user.role, "transition"))


async def answer(request: web.Request) -> web.StreamResponse:
    """POST /inbox/{id}/{answer}: accept, supplement or refuse, based on the version shown."""
    desk = desk_of(request)
    user = need(request, PERMITS["transition"], "answer dossiers filed online")
    form = await request.post()
    csrf.check(request, form)
    kind = request.match_info["answer"]
    if kind not in ANSWERS:
        raise NotFound(f"no answer {kind!r}")
    target, needs_note, then = ANSWERS[kind]
    view = await _submitted(request)
    note = "\n".join(line.strip() for line in str(form.get("note", "")).splitlines()
                     if line.strip())
    back = redirect(f"/inbox/{view['id']}")
    if needs_note and not note:
        flash(back, f"inbox.{kind}_note", "error")
        return back
    body = {"to": target, "base": str(form.get("base", "")) or None, "note": note or None}
    try:
        done = await desk.store.transition(view["id"], body, user.username)
    except Conflict:
        flash(back, "dossier.stale", "error")
        return back
    except ValidationError as exc:
        flash(back, "dossier.invalid", "error", detail=exc.message)
        return back
    desk.loop.kick()
    response = redirect(then.format(id=view["id"]))
    flash(response, f"inbox.{kind}_done", code=done["code"], due=formats.dt(done["due_at"]))
    return response


def routes() -> list[web.RouteDef]:
    """Inbox routes."""
    return [web.get("/inbox", inbox), web.get("/inbox/{id}", inbox_dossier),
            web.post("/inbox/{id}/{answer}", answer)]
