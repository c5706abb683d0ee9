"""Filing online for citizens: `/submit`. Pick the commune (from the province's list, those with a
desk) and the procedure, fill the procedure's form (from the catalogue), attach scans, and file:
the answer is the tracking page with the code, the tracking check and a QR code to keep or print.

The form is checked by the same intake as the portal's API (`central_hub.submissions.Intake`), so
a filing here is refused for the same reasons; the page says which field and why, in the
visitor's language, and keeps what was typed (a file must be chosen again). Scans are stored only
once everything else is right. Filings are rate-limited per client address.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from central_hub.portal import PAGE_PORTAL
from central_hub.public import Public, public_of, shown_errors
from protocol.attachments import MAX_ATTACHMENT
from protocol.catalogue import FormField, Procedure
from protocol.errors import ValidationError
from protocol.events import MAX_LABEL
from service.blobs import sniff
from service.ui import csrf
from service.ui.forms import Upload, read_form
from service.ui.i18n import Messages
from service.ui.render import redirect
from service.web import RateLimited

log = logging.getLogger(__name__)

MAX_FILES = 4  # scans per filing on this page (the portal's API takes more)
ACTOR = "citizen"  # who filed, in the dossier's history
APPLICANT = ("full_name", "citizen_id", "phone", "address")


def form_body(proc: Procedure, commune: str, values: dict[str, str]) -> dict[str, Any]:
    """The filing (the API's body) from the form's text fields."""
    applicant = {key: " ".join(values.get(f"applicant.{key}", "").split()) for key in APPLICANT}
    fields: dict[str, Any] = {}
    for spec in proc.fields:
        raw = values.get(f"fields.{spec.name}", "").strip()
        if raw:
            fields[spec.name] = int(raw) if spec.type == "int" and raw.isdigit() else raw
    return {"procedure_code": proc.code, "commune": commune, "applicant": applicant,
            "fields": fields}


def explain(t: Messages, proc: Procedure, exc: ValidationError) -> tuple[str, str]:
    """(the form input at fault, a sentence for the visitor) for a refused filing."""
    where = exc.field or "form"
    if exc.message.endswith("is required") or exc.message.endswith("is required."):
        return where, t("public.v.required")
    key = where.rpartition(".")[2]
    spec: FormField | None = proc.field(key) if where.startswith("fields.") else None
    if key in ("citizen_id", "phone") or (spec is not None and spec.type in ("date", "year")):
        kind = key if spec is None else spec.type
        if t.has(f"public.v.{kind}"):
            return where, t(f"public.v.{kind}")
    return where, t("public.v.invalid", detail=exc.message)


async def _form(request: web.Request, public: Public, proc: Procedure, commune: str,
                values: dict[str, str], errors: dict[str, str], status: int = 200
                ) -> web.Response:
    return await public.renderer.page(
        request, "submit_form.html", status=status, proc=proc, commune=commune,
        commune_name=(await public.intake.enrolled()).get(commune, commune), values=values,
        errors=errors, max_files=MAX_FILES, max_mb=MAX_ATTACHMENT // 2**20,
        today=public.intake.store.dossiers.today().isoformat())


@shown_errors
async def submit_page(request: web.Request) -> web.StreamResponse:
    """GET /submit[?commune=…&procedure=…]: choose, then the procedure's form."""
    public = public_of(request)
    store = public.intake.store
    communes = await public.intake.enrolled()
    commune, code = request.query.get("commune", ""), request.query.get("procedure", "")
    proc = store.dossiers.catalogue.get(code) if code else None
    if commune in communes and proc is not None:
        return await _form(request, public, proc, commune, {}, {})
    errors = {}
    if commune and commune not in communes:
        errors["commune"] = public.renderer.t(request)("public.no_commune")
    return await public.renderer.page(
        request, "submit_pick.html", status=422 if errors else 200, communes=communes,
        procedures=store.dossiers.catalogue.procedures, commune=commune, procedure=code, errors=errors)


async def _scans(t: Messages, values: dict[str, str], files: dict[str, Upload],
                 errors: dict[str, str]) -> list[tuple[str, bytes, str]]:
    """(label, bytes, file name) of each scan chosen; a file of the wrong kind is an error."""
    out = []
    for i in range(MAX_FILES):
        upload = files.get(f"doc_file.{i}")
        if upload is None:
            continue
        if len(upload.data) > MAX_ATTACHMENT or sniff(upload.data[:16]) is None:
            errors[f"doc_file.{i}"] = t("public.v.file", mb=MAX_ATTACHMENT // 2**20)
            continue
        label = " ".join(values.get(f"doc_label.{i}", "").split())[:MAX_LABEL]
        out.append((label or upload.filename.rsplit(".", 1)[0][:MAX_LABEL] or "scan",
                    upload.data, upload.filename))
    return out


@shown_errors
async def file_dossier(request: web.Request) -> web.StreamResponse:
    """POST /submit: check, store the scans, file, and show the tracking page."""
    public = public_of(request)
    address = public.tracker.address(request)
    wait = public.may_file(address)
    if wait:
        raise RateLimited("too many dossiers filed from this address; try again later", wait)
    values, files = await read_form(request, max_file=MAX_ATTACHMENT + 1, max_files=MAX_FILES)
    csrf.check(request, values)
    store, t = public.intake.store, public.renderer.t(request)
    proc = store.dossiers.catalogue.get(values.get("procedure_code", ""))
    commune = values.get("commune", "")
    if proc is None:
        return redirect("/submit?" + urlencode({"commune": commune}))
    body = form_body(proc, commune, values)
    errors: dict[str, str] = {}
    scans = await _scans(t, values, files, errors)
    try:
        await public.intake.check(body, PAGE_PORTAL)  # everything but the scans, first
    except ValidationError as exc:
        where, message = explain(t, proc, exc)
        errors[where] = message
    if errors:
        return await _form(request, public, proc, commune, values, errors, 422)
    attachments = []
    for label, data, _name in scans:
        sha = await store.blobs.put(data)
        await public.intake.portals.uploaded(PAGE_PORTAL, sha)
        attachments.append({"sha256": sha, "label": label})
    answer = await public.intake.file({**body, "attachments": attachments},
                                      portal=PAGE_PORTAL, actor=ACTOR)
    public.filed(address)
    return redirect("/track?" + urlencode({"code": answer["code"], "check": answer["tracking"],
                                          "new": "1"}))


def routes() -> list[web.RouteDef]:
    """GET and POST /submit."""
    return [web.get("/submit", submit_page), web.post("/submit", file_dossier)]
