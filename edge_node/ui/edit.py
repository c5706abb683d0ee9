"""Correct a dossier: the intake form again, filled in; only what changed is written, based on the
version the clerk saw (so a concurrent change elsewhere becomes a visible conflict, never lost).
Once the dossier is final (returned, refused, withdrawn, stopped) a correction is an amendment: only
a leader makes it, and its reason goes into the history."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from edge_node.roles import PERMITS
from edge_node.ui.desk import desk_of
from edge_node.ui.intake import field_groups
from edge_node.ui.intake_form import Error, check_edit, form_value
from protocol.catalogue import Procedure
from protocol.commands import closed_status
from protocol.errors import Conflict, NotFound, ValidationError
from service.ui import csrf
from service.ui.render import flash, redirect
from service.ui.session import need

log = logging.getLogger(__name__)


def current_values(proc: Procedure, view: dict[str, Any]) -> dict[str, str]:
    """The dossier's values as form inputs."""
    values = {f"applicant.{k}": str(v or "") for k, v in view["applicant"].items()}
    for spec in proc.fields:
        values[f"fields.{spec.name}"] = form_value(spec, view["fields"].get(spec.name))
    return values


async def _page(request: web.Request, view: dict[str, Any], proc: Procedure,
                values: dict[str, str], errors: dict[str, Error], base: str,
                closed: str | None, status: int = 200) -> web.Response:
    desk = desk_of(request)
    t = desk.renderer.t(request)
    return await desk.renderer.page(
        request, "edit.html", status=status, d=view, proc=proc, values=values, base=base,
        errors={k: t(key, **params) for k, (key, params) in errors.items()},
        groups=field_groups(proc), today=desk.store.today(), closed=closed)


async def _load(request: web.Request) -> tuple[dict[str, Any], Procedure, str | None]:
    """The dossier, its procedure, and the final status that makes an edit an amendment; the
    user's role must allow the one or the other."""
    need(request, PERMITS["edit"], "edit dossiers")
    desk = desk_of(request)
    dossier_id = request.match_info["id"]
    view = await desk.store.view(dossier_id)
    proc = desk.procedure(view["procedure_code"])
    if proc is None:
        raise NotFound("this dossier's procedure is not in the catalogue here")
    state = await desk.store.load_state(dossier_id)
    closed = closed_status(state) if state is not None else None
    if closed:
        need(request, PERMITS["amend"], "amend a dossier that is " + closed)
    return view, proc, closed


async def edit_form(request: web.Request) -> web.Response:
    """GET /dossiers/{id}/edit."""
    view, proc, closed = await _load(request)
    return await _page(request, view, proc, current_values(proc, view), {}, view["version"],
                       closed)


async def save_edit(request: web.Request) -> web.StreamResponse:
    """POST /dossiers/{id}/edit."""
    view, proc, closed = await _load(request)
    user = need(request, PERMITS["edit"], "edit dossiers")
    form = await request.post()
    csrf.check(request, form)
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    desk = desk_of(request)
    base = values.get("base", "")
    checked = check_edit(proc, values, view, desk.store.today())
    reason = " ".join(values.get("reason", "").split())
    if closed and not reason:
        checked.errors["reason"] = ("v.required", {})
    if not checked.ok:
        return await _page(request, view, proc, values, checked.errors, base, closed, 422)
    response = redirect(f"/dossiers/{view['id']}")
    if not checked.body["set"]:
        flash(response, "edit.nothing")
        return response
    body = {**checked.body, "base": base or None}
    if closed:
        body["reason"] = reason
    try:
        await desk.store.edit(view["id"], body, user.username)
    except ValidationError as exc:
        checked.errors[exc.field or "form"] = ("v.rejected", {"detail": exc.message})
        return await _page(request, view, proc, values, checked.errors, base, closed, 422)
    except Conflict:
        flash(response, "dossier.stale", "error")
        return response
    desk.loop.kick()
    flash(response, "edit.saved")
    return response


def routes() -> list[web.RouteDef]:
    """Edit routes."""
    return [web.get("/dossiers/{id}/edit", edit_form), web.post("/dossiers/{id}/edit", save_edit)]
