"""What callers send: the declared shapes of request bodies and query strings (CONTRACT §7).

These check types and required keys only, and emit the JSON Schema of the OpenAPI document.
What a value means — a known procedure, a valid citizen ID, a transition the lifecycle allows —
is protocol/commands.py's to check, after decoding: one rule, one home. Every struct omits its
defaults when turned back into a dict, so the domain code sees the keys the caller sent.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from protocol.commands import CHANNELS, MAX_NOTE
from protocol.lifecycle import STATUSES
from service.search import MAX_PAGE

log = logging.getLogger(__name__)

Status = Annotated[str, Meta(description="a lifecycle status name",
                             extra_json_schema={"enum": list(STATUSES)})]
Version = Annotated[str, Meta(description="the `version` of the dossier the change is based on",
                              max_length=4000)]
Note = Annotated[str, Meta(max_length=MAX_NOTE)]


class Body(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A request body (unknown keys are ignored, as JSON APIs do)."""


class Login(Body):
    """POST /api/login."""

    username: str
    password: str


class PasswordChange(Body):
    """POST /api/password: the current and the new password."""

    old: str
    new: str


class Applicant(Body, forbid_unknown_fields=True):
    """The person the dossier is for; `phone` and `address` may be left out."""

    full_name: Annotated[str, Meta(description="at most 100 characters")]
    citizen_id: Annotated[str, Meta(description="12 digits")]
    phone: Annotated[str, Meta(description="a Vietnamese number like 0912345678")] | None = None
    address: Annotated[str, Meta(description="at most 300 characters")] | None = None



class Refusal(Body):
    """A refusal at the counter (form 03): the dossier is recorded as `refused`, no due date."""

    reasons: Annotated[str, Meta(min_length=1, max_length=2000, description="one per line")]


class Handover(Body):
    """Who collected the result, and the ID document they showed (the move to returned)."""

    collected_by: Annotated[str, Meta(min_length=1, max_length=100)]
    id_document: Annotated[str, Meta(min_length=1, max_length=100)]


class DossierBody(Body):
    """What every new dossier gives: the procedure, the applicant and the form."""

    procedure_code: Annotated[str, Meta(description="a code from GET /api/procedures")]
    applicant: Applicant
    fields: Annotated[dict[str, Any], Meta(
        description="the procedure's form fields, by name (GET /api/procedures)")] = {}
    channel: Annotated[str, Meta(extra_json_schema={"enum": list(CHANNELS)})] = "counter"


class NewDossier(DossierBody, kw_only=True):
    """POST /api/dossiers: a dossier received at the desk."""

    commune: Annotated[str, Meta(pattern=r"^\d{5}$", description=(
        "the competent commune when it is not this desk's (any-desk intake, Decree 118/2025): "
        "a code of the province's commune list"))] | None = None
    refuse: Refusal | None = None
    duplicates: Annotated[list[str], Meta(max_length=20, description=(
        "codes of likely duplicates the desk showed and the clerk went on past (kept in the "
        "history)"))] | None = None


class SubmittedDocument(Body, forbid_unknown_fields=True):
    """A document of a filing: a scan uploaded first (POST /api/submissions/uploads, by its
    sha256), or without one a document to bring on paper (its `label`)."""

    sha256: Annotated[str, Meta(description="an upload's sha256")] | None = None
    label: Annotated[str, Meta(description="the document's name (at most 255 characters)")] \
        | None = None
    doc_kind: Annotated[str, Meta(description="bản chính, bản sao, bản sao có chứng thực or "
                                              "bản chụp")] | None = None
    count: Annotated[int, Meta(description="how many (1–99)")] | None = None


class Submission(DossierBody, kw_only=True):
    """POST /api/submissions: a dossier filed online, for its competent commune (the portal's
    key); validated like a dossier received at a desk."""

    commune: Annotated[str, Meta(description=(
        "the competent commune's 5-digit code (the province's commune list); a merged commune "
        "files with its successor"))]
    attachments: Annotated[list[SubmittedDocument], Meta(max_length=20)] = []


class TrackQuery(Body):
    """GET /api/track: a dossier's code and the tracking check printed with it."""

    code: Annotated[str, Meta(max_length=64)]
    check: Annotated[str, Meta(max_length=40, description=(
        "the tracking check (10 characters; case, spaces and dashes do not matter)"))]
    lang: Annotated[str, Meta(description="vi (default) or en: the language of status_label",
                              extra_json_schema={"enum": ["vi", "en"]})] | None = None


class Edit(Body):
    """PATCH /api/dossiers/{id}: set applicant or form fields by path."""

    set: Annotated[dict[str, Any], Meta(
        min_length=1, description="`applicant.KEY` or `fields.NAME` → new value")]
    base: Version | None = None
    reason: Annotated[Note, Meta(description=(
        "why: required once the dossier is final (returned, refused, withdrawn, stopped), when "
        "the edit is an amendment, which at a commune only a leader makes; kept in the history"
    ))] | None = None


class Transition(Body):
    """POST /api/dossiers/{id}/transition: move to another status."""

    to: Status
    base: Version | None = None
    note: Note | None = None
    handover: Handover | None = None
    supplement_by: Annotated[str, Meta(description=(
        "form 02's deadline for the documents, YYYY-MM-DD (the move to supplement_requested)"
    ))] | None = None


class Transfer(Body):
    """POST /api/dossiers/{id}/transfer: competence moves to another commune."""

    to: Annotated[str, Meta(pattern=r"^\d{5}$", description=(
        "the competent commune's 5-digit code (the province's commune list)"))]
    reason: Annotated[str, Meta(min_length=1, max_length=4000)]
    base: Version | None = None


class Resolve(Body):
    """POST /api/dossiers/{id}/resolve: settle a conflict with one value."""

    field: Annotated[str, Meta(description="the conflict's `field`: a path or `status`")]
    value: Any
    base: Version | None = None


class Comment(Body):
    """POST /api/dossiers/{id}/comments."""

    text: Annotated[str, Meta(min_length=1, max_length=MAX_NOTE)]


class Apology(Body):
    """POST /api/dossiers/{id}/apology: form 04."""

    new_due: Annotated[str, Meta(description=(
        "the new appointment: a working day YYYY-MM-DD (at 17:00) or YYYY-MM-DDTHH:MM"))]
    reason: Annotated[str, Meta(min_length=1, max_length=2000)]


class Upload(Body):
    """POST /api/dossiers/{id}/attachments (multipart/form-data; read as a stream, so this
    documents the form rather than decoding it)."""

    file: Annotated[str, Meta(description="a PDF, JPEG or PNG, at most 20 MB", extra_json_schema={
        "format": "binary", "contentMediaType": "application/octet-stream"})]
    # a form field is text whatever it looks like ("12" included): no type to declare
    label: Annotated[Any, Meta(description="what the file is (text, cut to 255 characters)")] = ""


class DossierQuery(Body):
    """GET /api/dossiers: filters and paging (pass `next` as `after` for the next page)."""

    status: Status | None = None
    q: Annotated[str, Meta(description="code prefix, citizen ID or name (diacritics optional)")] \
        | None = None
    commune: Annotated[str, Meta(description="5-digit commune code (hub)")] | None = None
    conflicts: Annotated[bool, Meta(description="only dossiers with open conflicts")] = False
    limit: Annotated[int, Meta(ge=1, le=MAX_PAGE)] = 50
    after: Annotated[str, Meta(description="the `next` of the previous page")] | None = None
    before: Annotated[str, Meta(description="a page's `prev`: the page before it")] | None = None


class ClockCheckQuery(Body):
    """GET /api/clock-checks: one commune's only (hub)."""

    commune: Annotated[str, Meta(description="5-digit commune code")] | None = None


class StatsQuery(Body):
    """GET /api/stats: the period (this month by default), one commune, and the grouping."""

    from_: Annotated[str, Meta(description="first day, YYYY-MM-DD or dd/mm/yyyy")] | None = \
        msgspec.field(name="from", default=None)
    to: Annotated[str, Meta(description="last day (today by default)")] | None = None
    commune: Annotated[str, Meta(description="5-digit commune code")] | None = None
    by: Annotated[str, Meta(description="none, month or quarter")] | None = None


class HistoryQuery(Body):
    """GET /api/nodes/{node}/history: the chart window."""

    window: Annotated[str, Meta(description="24h, 7d, 30d or 1y (as retention allows)")] \
        | None = None


def as_dict(body: Body) -> dict[str, Any]:
    """The body as the plain dict the domain code takes (defaults left out)."""
    out: dict[str, Any] = msgspec.to_builtins(body)
    return out
