"""New dossier: pick a procedure, fill its form (generated from the catalogue), list the documents
received (a scan for each is optional), save, and go to the dossier with its receipt one key press
away — or refuse it at the counter with the reasons (form 03, no receipt). A form the server
sends back (an error, or likely duplicates to look at first) keeps everything typed and every
chosen scan."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from edge_node.roles import PERMITS
from edge_node.ui.desk import Desk, desk_of
from edge_node.ui.documents import MAX_DOCS, Scan, filled_rows, kept_view, read_documents
from edge_node.ui.intake_form import Error, check_intake
from protocol.attachments import DOC_KINDS, MAX_ATTACHMENT
from protocol.calendar import due_at
from protocol.catalogue import FormField, Procedure
from protocol.duplicates import likely_duplicates
from protocol.errors import NotFound, ValidationError
from protocol.events import MAX_DOC_COUNT
from service.ui import csrf
from service.ui.forms import read_form
from service.ui.render import flash, redirect
from service.ui.session import need

log = logging.getLogger(__name__)

DOC_ROWS = 3
# Documents usually brought for a procedure: suggestions for the label (official names, Vietnamese).
SUGGESTED_DOCS: dict[str, tuple[str, ...]] = {
    "1.001193": ("Tờ khai đăng ký khai sinh", "Giấy chứng sinh",
                 "Giấy chứng nhận kết hôn của cha mẹ", "Căn cước của người đi đăng ký"),
    "1.000656": ("Tờ khai đăng ký khai tử", "Giấy báo tử", "Căn cước của người đi đăng ký"),
    "1.000894": ("Tờ khai đăng ký kết hôn", "Căn cước của hai bên",
                 "Giấy xác nhận tình trạng hôn nhân"),
    "1.004873": ("Tờ khai cấp Giấy xác nhận tình trạng hôn nhân", "Căn cước của người yêu cầu"),
    "2.000815": ("Bản chính giấy tờ", "Bản sao cần chứng thực"),
    "2.000884": ("Giấy tờ cần chứng thực chữ ký", "Căn cước của người yêu cầu"),
    "2.000635": ("Tờ khai cấp bản sao trích lục", "Căn cước của người yêu cầu"),
    "1.012812": ("Đơn đề nghị hòa giải", "Giấy tờ về quyền sử dụng đất"),
}
GROUPS = ("child", "mother", "father", "husband", "wife", "deceased", "death")


def field_groups(proc: Procedure) -> list[tuple[str, list[FormField]]]:
    """The form's fieldsets: fields sharing a known prefix (child_, mother_…) go together."""
    groups: dict[str, list[FormField]] = {}
    for spec in proc.fields:
        prefix = spec.name.split("_", 1)[0]
        groups.setdefault(prefix if prefix in GROUPS else "details", []).append(spec)
    return list(groups.items())


def limit_text(desk: Desk, proc: Procedure, lang: str) -> str:
    """The time limit as the receipt states it."""
    t = desk.renderer.messages[lang]
    if proc.limit_days == 0:
        return t("intake.limit_same_day", cutoff=proc.same_day_cutoff or "15:00")
    return t("intake.limit_days", n=proc.limit_days)


async def _form_page(request: web.Request, desk: Desk, proc: Procedure, values: dict[str, str],
                     errors: dict[str, Error], status: int = 200,
                     held: dict[int, Scan] | None = None,
                     duplicates: list[dict[str, Any]] | None = None) -> web.Response:
    t = desk.renderer.t(request)
    now = desk.store.now_ms()
    expected = due_at(now, proc.limit_days, proc.same_day_cutoff, desk.store.calendar)
    held = held or {}
    return await desk.renderer.page(
        request, "intake_form.html", status=status, proc=proc, values=values,
        errors={k: t(key, **params) for k, (key, params) in errors.items()},
        groups=field_groups(proc), expected_due=expected, limit=limit_text(desk, proc, t.lang),
        doc_rows=max(DOC_ROWS, filled_rows(values, held)), max_docs=MAX_DOCS,
        doc_kinds=DOC_KINDS, max_count=MAX_DOC_COUNT, kept=kept_view(desk, request, held),
        suggestions=SUGGESTED_DOCS.get(proc.code, ()), today=desk.store.today(),
        duplicates=duplicates or [], refusing=values.get("action") == "refuse",
        own=desk.store.scope, units=desk.store.communes.current(desk.store.today()))


async def new_dossier(request: web.Request) -> web.Response:
    """GET /dossiers/new[?procedure=code]: the procedure list, or the chosen procedure's form."""
    desk = desk_of(request)
    need(request, PERMITS["intake"], "receive dossiers")
    code = request.query.get("procedure")
    if not code:
        return await desk.renderer.page(request, "intake_pick.html",
                                        procedures=desk.store.catalogue.procedures,
                                        limits={p.code: limit_text(desk, p, desk.renderer.t(
                                            request).lang) for p in desk.store.catalogue.procedures})
    proc = desk.procedure(code)
    if proc is None:
        raise NotFound(f"no procedure {code} in the catalogue")
    return await _form_page(request, desk, proc, {}, {})


async def create_dossier(request: web.Request) -> web.StreamResponse:
    """POST /dossiers/new: check, save (accepted, or refused at the counter with `action=refuse`),
    list the documents (with their scans), then show the dossier. Invalid (422), or likely a
    duplicate the clerk has not yet gone past (409, `dup_ok` names the codes seen): the form
    again, with the scans kept."""
    desk = desk_of(request)
    user = need(request, PERMITS["intake"], "receive dossiers")
    values, files = await read_form(request, max_file=MAX_ATTACHMENT + 1, max_files=MAX_DOCS)
    csrf.check(request, values)
    proc = desk.procedure(values.get("procedure_code"))
    if proc is None:
        raise ValidationError("choose a procedure from the catalogue", field="procedure_code")
    refusing = values.get("action") == "refuse"
    checked = check_intake(proc, values, desk.store.today(), refusing=refusing)
    competent = values.get("commune", "")
    if competent and competent != desk.store.scope:  # taken in here for another commune
        checked.body["commune"] = competent
    docs, held = await read_documents(desk, request, values, files, checked.errors)
    if not checked.ok:
        return await _form_page(request, desk, proc, values, checked.errors, 422, held)
    if not refusing:
        found = await _duplicates(desk, proc, checked.body)
        seen = set(values.get("dup_ok", "").split())  # the codes the clerk was shown
        if found and not {d["code"] for d in found} <= seen:
            return await _form_page(request, desk, proc, values, {}, 409, held, found)
        if found:
            checked.body["duplicates"] = [d["code"] for d in found]
    try:
        view = await desk.store.create(checked.body, user.username)
    except ValidationError as exc:  # a rule the friendly check does not know: show it anyway
        checked.errors[exc.field or "form"] = ("v.rejected", {"detail": exc.message})
        if exc.field == "commune":
            checked.errors["form"] = checked.errors["commune"]
        return await _form_page(request, desk, proc, values, checked.errors, 422, held)
    for doc in docs:
        await desk.store.attach(view["id"], doc.entry(), user.username)
    desk.loop.kick()
    response = redirect(f"/dossiers/{view['id']}?new=1")
    flash(response, "intake.refused" if refusing else "intake.saved", code=view["code"])
    return response


async def _duplicates(desk: Desk, proc: Procedure, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Dossiers the new one likely repeats (found by the applicant's citizen ID, its own index)."""
    citizen = body["applicant"].get("citizen_id")
    if not citizen:
        return []
    page = await desk.store.search(q=citizen, procedure=proc.code, limit=50)
    return likely_duplicates(body, proc, page.items, desk.store.now_ms())


def routes() -> list[web.RouteDef]:
    """Intake routes (registered before /dossiers/{id})."""
    return [web.get("/dossiers/new", new_dossier), web.post("/dossiers/new", create_dossier)]
