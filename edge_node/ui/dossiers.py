"""Dossier pages: the searchable list, one dossier with its history, transitions (a supplement with
its deadline, a hand-over with who collected the result), conflicts, files, and apologies with a
new appointment (form 04)."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from edge_node.roles import PERMITS, may, transition_action
from edge_node.ui.clockcheck import error_text
from edge_node.ui.desk import Desk, conflict_marks, desk_of, show_value
from edge_node.ui.documents import COUNT_RE
from edge_node.ui.history import last_supplement_request, timeline
from edge_node.ui.printing import RECEIPTLESS
from protocol import lifecycle
from protocol.attachments import DOC_KINDS, MAX_ATTACHMENT
from protocol.catalogue import Procedure
from protocol.errors import Conflict, ValidationError
from protocol.events import MAX_DOC_COUNT
from protocol.forms import APOLOGY_STATUSES, DEFAULT_SUPPLEMENT_DAYS
from protocol.text import search_key
from protocol.tracking import code_in_link
from service.blobs import sniff
from service.ui import csrf
from service.ui.formats import iso_day, moment, parse_day
from service.ui.forms import read_form
from service.ui.i18n import Messages
from service.ui.render import flash, redirect
from service.ui.session import need, page_user

log = logging.getLogger(__name__)

PAGE_SIZE = 50


async def listing(request: web.Request) -> web.StreamResponse:
    """GET /dossiers: search by code, name (without diacritics) or citizen ID; filters; the
    total, and pages both ways (keyset cursors for the neighbours, numbers for the rest)."""
    desk = desk_of(request)
    query = request.query
    q = code_in_link(query.get("q", "").strip()[:300]).strip()[:100]
    status = query.get("status") if query.get("status") in lifecycle.STATUSES else ""
    procedure = query.get("procedure") if desk.procedure(query.get("procedure")) else ""
    overdue, conflicts = query.get("overdue") == "1", query.get("conflicts") == "1"
    after, before = query.get("after") or None, query.get("before") or None
    number = int(query["page"]) if query.get("page", "").isdigit() else 1
    filters: dict[str, Any] = {
        "q": q or None, "status": status or None, "procedure": procedure or None,
        "overdue_at": desk.store.now_ms() if overdue else None, "conflicts_only": conflicts}
    # A page asked for by number needs the total first (past the last, the last is shown); the
    # first page counts only when it is full (a search that finds a few walks its index once).
    total = await desk.store.count(**filters) if number > 1 and not (after or before) else None
    if total is not None:
        number = min(number, max(1, -(-total // PAGE_SIZE)))
    number = max(number, 1)
    page = await desk.store.search(**filters, limit=PAGE_SIZE, after=after, before=before,
                                   offset=0 if after or before else (number - 1) * PAGE_SIZE)
    if total is None:
        total = len(page.items) if number == 1 and not (page.next or page.prev) else \
            await desk.store.count(**filters)
    pages = max(1, -(-total // PAGE_SIZE))
    if q and not (after or before) and len(page.items) == 1 and page.items[0]["code"] == q:
        return redirect(f"/dossiers/{page.items[0]['id']}")  # a scanned receipt QR code
    if q:
        t = desk.renderer.t(request)
        for item in page.items:
            item["matched"] = matched_field(desk, item, q, t.lang)
    params = {k: v for k, v in (("q", q), ("status", status), ("procedure", procedure),
                                ("overdue", "1" if overdue else ""),
                                ("conflicts", "1" if conflicts else "")) if v}

    def url(**extra: Any) -> str:
        return "/dossiers?" + urlencode({**params, **extra})

    return await desk.renderer.page(
        request, "dossier_list.html", items=page.items, q=q, status_filter=status,
        procedure=procedure, overdue=overdue, conflicts=conflicts, statuses=list(lifecycle.STATUSES),
        procedures=desk.store.catalogue.procedures, filtered=bool(params), total=total,
        number=number, pages=pages, first_shown=(number - 1) * PAGE_SIZE + 1 if page.items else 0,
        next_url=url(after=page.next, page=number + 1) if page.next else None,
        prev_url=url(before=page.prev, page=number - 1) if page.prev and number > 1 else None,
        page_links=[(n, url(page=n) if n else "") for n in page_numbers(number, pages)])


def matched_field(desk: Desk, item: dict[str, Any], q: str, lang: str) -> str:
    """The searchable form field a text search found the dossier by ("Họ, chữ đệm, tên: Nguyễn
    Văn Bình"), when it was not the applicant's name; empty otherwise."""
    key, day = search_key(q), parse_day(q)
    if key in search_key(item["applicant"].get("full_name") or ""):
        return ""
    proc = desk.procedure(item["procedure_code"])
    for spec in proc.fields if proc else ():
        value = item["fields"].get(spec.name)
        if spec.searchable and isinstance(value, str) and (
                value == day or (day is None and key and key in search_key(value))):
            label = spec.label_vi if lang == "vi" else spec.label_en
            return f"{label}: {iso_day(value) if spec.type == 'date' else value}"
    return ""


def page_numbers(current: int, pages: int, around: int = 2) -> list[int]:
    """The page numbers to offer: the first, the last, and a few around the current one; 0
    stands for a gap ("…")."""
    shown = sorted({1, pages, *range(max(1, current - around), min(pages, current + around) + 1)})
    out: list[int] = []
    for n in shown:
        if out and n > out[-1] + 1:
            out.append(0)
        out.append(n)
    return out


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
    calendar, today = desk.store.calendar, desk.store.today()
    due = moment(view["due_at"])
    after_due = max(today, due.date()) if due else today
    return await desk.renderer.page(
        request, "dossier.html", d=view, proc=proc, fields=fields, conflicts=conflicts,
        marks={c["field"]: c for c in conflicts}, moves=moves, files=files,
        history=timeline(view, t, desk), supplement=last_supplement_request(view),
        just_created=request.query.get("new") == "1", can_resolve=may(user.role, "resolve"),
        can_edit=may(user.role, "amend" if final else "edit"),
        amend_hint=final and may(user.role, "edit") and not may(user.role, "amend"),
        can_attach=may(user.role, "attach"), can_comment=may(user.role, "comment"),
        doc_kinds=DOC_KINDS, max_count=MAX_DOC_COUNT, final=final,
        receipt=view["status"] not in RECEIPTLESS,
        can_apologize=view["status"] in APOLOGY_STATUSES and may(user.role, "apology"),
        can_transfer=not final and may(user.role, "transfer")
        and view.get("commune") == desk.store.scope,
        units=[u for u in desk.store.communes.current(today) if u.code != desk.store.scope],
        apology_day=calendar.next_working_day(after_due),
        supplement_day=calendar.add_working_days(today, DEFAULT_SUPPLEMENT_DAYS),
        clock_text=error_text(view["clock_check"]["error_ms"], t.lang)
        if view.get("clock_check") else "")


def _back(dossier_id: str) -> str:
    return f"/dossiers/{dossier_id}"


async def _act(request: web.Request, action: str, body: dict[str, Any],
               ok_key: str, errors: dict[str, str] | None = None,
               **params: Any) -> web.StreamResponse:
    """Run one write on the dossier, then come back to it with a notice either way (`errors`:
    the notice for a refusal naming a field, instead of the protocol's own words)."""
    desk = desk_of(request)
    user = page_user(request)
    dossier_id = request.match_info["id"]
    method = {"transition": desk.store.transition, "resolve": desk.store.resolve,
              "comment": desk.store.comment, "apology": desk.store.apologize,
              "transfer": desk.store.transfer}[action]
    response = redirect(_back(dossier_id))
    try:
        await method(dossier_id, body, user.username)
    except Conflict:
        flash(response, "dossier.stale", "error")
        return response
    except ValidationError as exc:
        key = (errors or {}).get(exc.field or "")
        if key:
            flash(response, key, "error")
        else:
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
    body: dict[str, Any] = {"to": target, "base": str(form.get("base", "")) or None,
                            "note": note}
    problem = None
    if target == "supplement_requested":  # form 02: what to bring, and by when
        body["supplement_by"] = parse_day(str(form.get("supplement_by", "")))
        problem = None if note else "dossier.note_required"
        problem = problem or (None if body["supplement_by"] else "dossier.deadline_required")
    elif target == "returned":  # the hand-over: who took the result, on which ID document
        body["handover"] = {k: " ".join(str(form.get(k, "")).split())
                            for k in ("collected_by", "id_document")}
        problem = None if all(body["handover"].values()) else "dossier.handover_required"
    if problem:
        response = redirect(_back(request.match_info["id"]))
        flash(response, problem, "error")
        return response
    t = desk_of(request).renderer.t(request)
    _, vi, en = lifecycle.STATUSES.get(target, (0, target, target))
    return await _act(request, "transition", body, "dossier.moved",
                      {"supplement_by": "dossier.deadline_rule"},
                      status=vi if t.lang == "vi" else en)


async def apology(request: web.Request) -> web.StreamResponse:
    """POST /dossiers/{id}/apology: form 04, a new appointment for a dossier that will be late."""
    form = await request.post()
    csrf.check(request, form)
    need(request, PERMITS["apology"], "apologize with a new appointment")
    day = parse_day(str(form.get("new_due_day", "")))
    hour = str(form.get("new_due_time", "")).strip() or "17:00"
    reason = str(form.get("reason", "")).strip()
    if not reason or day is None:
        response = redirect(_back(request.match_info["id"]))
        flash(response, "dossier.apology_reason" if not reason else "dossier.apology_date",
              "error")
        return response
    return await _act(request, "apology", {"new_due": f"{day}T{hour}", "reason": reason},
                      "dossier.apologized", {"new_due": "dossier.apology_date"})


async def transfer(request: web.Request) -> web.StreamResponse:
    """POST /dossiers/{id}/transfer: competence moves to another commune (the leader's call);
    this desk keeps what it holds and writes no more."""
    form = await request.post()
    csrf.check(request, form)
    need(request, PERMITS["transfer"], "transfer a dossier to another commune")
    to, reason = str(form.get("to", "")), str(form.get("reason", "")).strip()
    if not to or not reason:
        response = redirect(_back(request.match_info["id"]))
        flash(response, "dossier.transfer_required", "error")
        return response
    names = desk_of(request).store.communes
    return await _act(request, "transfer", {"to": to, "reason": reason,
                                            "base": str(form.get("base", "")) or None},
                      "dossier.transferred", name=names.name_of(to))


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
        web.post("/dossiers/{id}/apology", apology),
        web.post("/dossiers/{id}/transfer", transfer),
        web.post("/dossiers/{id}/attachments", attach),
    ]
