"""Dossier pages: the searchable list, one dossier with its history, transitions, conflicts and files."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from edge_node.roles import PERMITS, may, transition_action
from edge_node.ui.clockcheck import error_text
from edge_node.ui.desk import conflict_marks, desk_of, show_value
from edge_node.ui.documents import COUNT_RE
from edge_node.ui.history import last_supplement_request, timeline
from protocol import lifecycle
from protocol.catalogue import Procedure
from protocol.commands import DOC_KINDS, MAX_ATTACHMENT
from protocol.errors import Conflict, ValidationError
from protocol.events import MAX_DOC_COUNT
from protocol.tracking import code_in_link
from service.blobs import sniff
from service.ui import csrf
from service.ui.forms import read_form
from service.ui.i18n import Messages
from service.ui.render import flash, redirect
from service.ui.session import need, page_user

log = logging.getLogger(__name__)

PAGE_SIZE = 50


async def listing(request: web.Request) -> web.StreamResponse:
    """GET /dossiers: search by code, name (without diacritics) or citizen ID; filters; paging."""
    desk = desk_of(request)
    query = request.query
    q = code_in_link(query.get("q", "").strip()[:300]).strip()[:100]
    status = query.get("status") if query.get("status") in lifecycle.STATUSES else ""
    procedure = query.get("procedure") if desk.procedure(query.get("procedure")) else ""
    overdue, conflicts = query.get("overdue") == "1", query.get("conflicts") == "1"
    after = query.get("after") or None
    page = await desk.store.search(
        q=q or None, status=status or None, procedure=procedure or None,
        overdue_at=desk.store.now_ms() if overdue else None, conflicts_only=conflicts,
        limit=PAGE_SIZE, after=after)
    if q and not after and len(page.items) == 1 and page.items[0]["code"] == q:
        return redirect(f"/dossiers/{page.items[0]['id']}")  # a scanned receipt QR code
    params = {k: v for k, v in (("q", q), ("status", status), ("procedure", procedure),
                                ("overdue", "1" if overdue else ""),
                                ("conflicts", "1" if conflicts else "")) if v}
    next_url = f"/dossiers?{urlencode({**params, 'after': page.next})}" if page.next else None
    first_url = f"/dossiers?{urlencode(params)}" if after else None
    return await desk.renderer.page(
        request, "dossier_list.html", items=page.items, q=q, status_filter=status,
        procedure=procedure, overdue=overdue, conflicts=conflicts, next_url=next_url,
        first_url=first_url, statuses=list(lifecycle.STATUSES),
        procedures=desk.store.catalogue.procedures, filtered=bool(params))


def field_rows(t: Messages, proc: Procedure | None, view: dict[str, Any]
               ) -> list[tuple[str, str, str]]:
    """The dossier's form fields as (path, label, value shown), in the catalogue's order, then
    any the catalogue here does not know."""
    specs = proc.fields if proc else ()
    rows = [(f"fields.{spec.name}", spec.label_vi if t.lang == "vi" else spec.label_en,
             show_value(t, f"fields.{spec.name}", view["fields"].get(spec.name)))
            for spec in specs]
    known = {s.name for s in specs}
    return rows + [(f"fields.{k}", k, show_value(t, f"fields.{k}", v))
                   for k, v in view["fields"].items() if k not in known]


async def dossier_page(request: web.Request) -> web.Response:
    """GET /dossiers/{id}: everything about one dossier and what can be done next."""
    desk = desk_of(request)
    user = page_user(request)
    t = desk.renderer.t(request)
    view = await desk.store.view(request.match_info["id"])
    proc = desk.procedure(view["procedure_code"])
    fields = field_rows(t, proc, view)
    conflicts = conflict_marks(desk, t, view)
    label = {c["field"]: c["label"] for c in conflicts}
    waiting = view.get("waiting_statuses", {})
    moves = []
    for target in lifecycle.next_statuses(view["status"]):
        if target in view["next_statuses"] or target in waiting:
            permitted = may(user.role, transition_action(target))
            moves.append({"to": target, "permitted": permitted,
                          "allowed": permitted and target not in waiting,
                          "waits_for": ", ".join(label.get(p, p) for p in waiting.get(target, []))})
    files = [{**a, "here": a["sha256"] is not None and desk.store.blobs.has(a["sha256"])}
             for a in view["attachments"]]
    final = view["status"] in lifecycle.FINAL
    return await desk.renderer.page(
        request, "dossier.html", d=view, proc=proc, fields=fields, conflicts=conflicts,
        marks={c["field"]: c for c in conflicts}, moves=moves, files=files,
        history=timeline(view, t, desk), supplement=last_supplement_request(view),
        just_created=request.query.get("new") == "1", can_resolve=may(user.role, "resolve"),
        can_edit=may(user.role, "amend" if final else "edit"),
        amend_hint=final and may(user.role, "edit") and not may(user.role, "amend"),
        can_attach=may(user.role, "attach"), can_comment=may(user.role, "comment"),
        doc_kinds=DOC_KINDS, max_count=MAX_DOC_COUNT, final=final,
        clock_text=error_text(view["clock_check"]["error_ms"], t.lang)
        if view.get("clock_check") else "")


def _back(dossier_id: str) -> str:
    return f"/dossiers/{dossier_id}"


async def _act(request: web.Request, action: str, body: dict[str, Any],
               ok_key: str, **params: Any) -> web.StreamResponse:
    """Run one write on the dossier, then come back to it with a notice either way."""
    desk = desk_of(request)
    user = page_user(request)
    dossier_id = request.match_info["id"]
    method = {"transition": desk.store.transition, "resolve": desk.store.resolve,
              "comment": desk.store.comment}[action]
    response = redirect(_back(dossier_id))
    try:
        await method(dossier_id, body, user.username)
    except Conflict:
        flash(response, "dossier.stale", "error")
        return response
    except ValidationError as exc:
        flash(response, "dossier.invalid", "error", detail=exc.message)
        return response
    desk.loop.kick()
    flash(response, ok_key, **params)
    return response


async def transition(request: web.Request) -> web.StreamResponse:
    """POST /dossiers/{id}/transition: a status button was pressed."""
    form = await request.post()
    csrf.check(request, form)
    target = str(form.get("to", ""))
    need(request, PERMITS[transition_action(target)], "change this status")
    note = str(form.get("note", "")).strip()
    if target == "supplement_requested" and not note:
        response = redirect(_back(request.match_info["id"]))
        flash(response, "dossier.note_required", "error")
        return response
    t = desk_of(request).renderer.t(request)
    _, vi, en = lifecycle.STATUSES.get(target, (0, target, target))
    return await _act(request, "transition",
                      {"to": target, "base": str(form.get("base", "")) or None, "note": note},
                      "dossier.moved", status=vi if t.lang == "vi" else en)


async def resolve(request: web.Request) -> web.StreamResponse:
    """POST /dossiers/{id}/resolve: keep one of a conflict's values."""
    form = await request.post()
    csrf.check(request, form)
    need(request, PERMITS["resolve"], "resolve conflicts")
    try:
        value = json.loads(str(form.get("value_json", "")))
    except ValueError as exc:
        raise ValidationError("pick one of the values shown", field="value") from exc
    return await _act(request, "resolve", {"field": str(form.get("field", "")), "value": value,
                                           "base": str(form.get("base", "")) or None},
                      "dossier.resolved")


async def comment(request: web.Request) -> web.StreamResponse:
    """POST /dossiers/{id}/comments: a note for colleagues."""
    form = await request.post()
    csrf.check(request, form)
    need(request, PERMITS["comment"], "comment")
    return await _act(request, "comment", {"text": str(form.get("text", ""))}, "dossier.commented")


async def attach(request: web.Request) -> web.StreamResponse:
    """POST /dossiers/{id}/attachments: one more document for a dossier, scanned or not."""
    desk = desk_of(request)
    user = need(request, PERMITS["attach"], "attach files")
    values, files = await read_form(request, max_file=MAX_ATTACHMENT + 1, max_files=1)
    csrf.check(request, values)
    dossier_id = request.match_info["id"]
    response = redirect(_back(dossier_id))
    upload = files.get("file")
    mime = sniff(upload.data[:16]) if upload else None
    name = " ".join(values.get("label", "").split())[:200]
    count = values.get("count", "").strip() or "1"
    if upload is not None and (mime is None or len(upload.data) > MAX_ATTACHMENT):
        flash(response, "v.file_type", "error")
        return response
    if (upload is None and not name) or not COUNT_RE.fullmatch(count) or int(count) < 1:
        flash(response, "v.doc_name_or_file" if upload is None and not name else "v.doc_count",
              "error", max=MAX_DOC_COUNT)
        return response
    await desk.store.view(dossier_id)
    info: dict[str, Any] = {"doc_kind": values.get("kind") if values.get("kind") in DOC_KINDS
                            else DOC_KINDS[0], "count": int(count)}
    if upload is not None:
        info.update(sha256=await desk.store.blobs.put(upload.data), name=upload.filename,
                    mime=mime, size=len(upload.data))
    info["label"] = name or (upload.filename.rsplit(".", 1)[0] if upload else "")
    await desk.store.attach(dossier_id, info, user.username)
    desk.loop.kick()
    flash(response, "dossier.attached")
    return response


def routes() -> list[web.RouteDef]:
    """Dossier list and page routes."""
    return [
        web.get("/dossiers", listing),
        web.get("/dossiers/{id}", dossier_page),
        web.post("/dossiers/{id}/transition", transition),
        web.post("/dossiers/{id}/resolve", resolve),
        web.post("/dossiers/{id}/comments", comment),
        web.post("/dossiers/{id}/attachments", attach),
    ]
