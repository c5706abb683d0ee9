"""What the servers answer: the declared shapes of JSON responses, for the OpenAPI document.

The handlers build plain dicts (protocol/views.py, the stores); these structs describe them and
are checked against live answers by schemathesis (tests/test_schemathesis.py). A key listed
without a default is always present; `X | None` may be null. Objects may gain keys over time:
clients must ignore keys they do not know.
"""

from __future__ import annotations

import logging
from typing import Any

from service.api.answer import Answer
from service.api.form_answers import ApologyView, HandoverView, Refusal

log = logging.getLogger(__name__)


class Error(Answer):
    """Every 4xx/5xx of the API: a stable code, a sentence, and the field at fault if any."""

    error: str
    message: str
    field: str | None = None


class Ok(Answer):
    """A plain acknowledgement."""

    ok: bool


class Token(Answer):
    """A login: the bearer token (also set as the `session` cookie)."""

    token: str


class Me(Answer):
    """The logged-in user."""

    username: str
    role: str


class ApplicantView(Answer):
    """The person the dossier is for."""

    full_name: str
    citizen_id: str
    phone: str
    address: str


class Writer(Answer):
    """One live value of a conflicting field: who wrote it, where and when."""

    value: Any
    actor: str | None
    origin: str
    where: str
    at: str | None


class ConflictView(Answer):
    """A field with several live values, shown until someone resolves it; `before` is the value
    every side started from (null when the field had none, or in a listing's summaries)."""

    field: str
    values: list[Writer]
    before: Writer | None = None


class Attachment(Answer):
    """One document received: its own `id`, its name, kind and count, and the scan it references
    (download it from …/attachments/{sha256}); `sha256` is null for a document listed on paper
    only. Several entries may reference one scan."""

    id: str
    document: str
    doc_kind: str
    count: int
    scanned: bool
    sha256: str | None
    name: str | None
    mime: str | None
    size: int | None
    label: str | None = None
    actor: str | None = None
    at: str | None = None


class CommentView(Answer):
    """A comment."""

    text: str
    actor: str | None
    at: str | None


class Creator(Answer):
    """Where the dossier was created, and by whom."""

    origin: str | None
    actor: str | None


class ClockCheck(Answer):
    """The standing clock-check flag: the dossier's times were stamped with a clock this far off
    (ms, negative: behind), flagged by `actor` at `origin` (service/clock_flags.py)."""

    error_ms: int
    actor: str
    origin: str
    where: str
    at: str | None


class DossierSummary(Answer):
    """A dossier as listed (CONTRACT §7); `version` is the `base` for the next change."""

    id: str
    code: str | None
    procedure_code: str | None
    commune: str | None
    channel: str | None
    status: str
    status_code: int | None
    applicant: ApplicantView
    fields: dict[str, Any]
    received_at: str | None
    due_at: str | None
    overdue: bool
    version: str
    conflicts: list[ConflictView]
    attachments: list[Attachment]
    comments: list[CommentView]
    next_statuses: list[str]
    waiting_statuses: dict[str, list[str]]  # moves a conflict holds up → the paths they wait for
    created_by: Creator
    clock_check: ClockCheck | None


class HistoryLine(Answer):
    """One event of the dossier's history; the kind's own keys (from, to, note, fields…) follow."""

    event: str
    kind: str
    actor: str | None
    origin: str
    where: str
    at: str | None


class Dossier(DossierSummary):
    """A dossier with its history, and what the one-stop forms recorded in it."""

    history: list[HistoryLine]
    refusal: Refusal | None
    apologies: list[ApologyView]
    appointment_at: str | None  # the latest apology's new date; due_at stays the legal one
    handover: HandoverView | None


class DossierPage(Answer):
    """One page of dossiers; pass `next` as `after` for the following one (null: the last), and
    `prev` as `before` for the one before it (null: the first)."""

    items: list[DossierSummary]
    next: str | None
    prev: str | None


class Rejection(Answer):
    """An event of this node the hub refused."""

    seq: int
    code: str
    reason: str
    at: int | None


class SyncWarning(Answer):
    """Something wrong with the hub that still stands (e.g. it was restored from a backup)."""

    code: str
    message: str
    at: int


class SyncStatus(Answer):
    """The edge's sync state (CONTRACT §7)."""

    state: str
    pending_events: int
    pending_blobs: int
    oldest_pending_age_s: float
    last_success_at: str | None
    last_error: str | None
    clock_offset_ms: int
    clock_warning: bool
    clock_checks: int
    rejected: list[Rejection]
    warning: SyncWarning | None


class ClockCheckItem(Answer):
    """A dossier whose received-at and due dates need checking: stamped with a wrong clock."""

    id: str
    commune: str
    code: str | None
    received_at: str | None
    due_at: str | None
    status: str | None
    applicant: str
    error_ms: int
    flagged_by: str
    flagged_at: str | None


class ClockChecks(Answer):
    """The standing clock-check flags, newest received first."""

    items: list[ClockCheckItem]
    total: int


class SyncKick(Answer):
    """A sync started now."""

    ok: bool
    state: str


class FormField(Answer):
    """A field of a procedure's form."""

    name: str
    label_vi: str
    label_en: str
    type: str
    required: bool
    choices: list[str]


class Procedure(Answer):
    """A procedure of the catalogue."""

    code: str
    name_vi: str
    name_en: str
    limit_days: int
    same_day_cutoff: str | None
    fields: list[FormField]


class Procedures(Answer):
    """The procedure catalogue this node holds, and its version."""

    version: int
    items: list[Procedure]


class Holidays(Answer):
    """The holiday calendar this node holds (ISO dates), and its version."""

    version: int
    items: list[str]


class StatusInfo(Answer):
    """A lifecycle status: its portal code, names, and where it may go next."""

    name: str
    code: int
    vi: str
    en: str
    next: list[str]


class Statuses(Answer):
    """The lifecycle."""

    items: list[StatusInfo]


class EdgeHealth(Answer):
    """The edge is up."""

    ok: bool
    node: str
    commune: str
    version: str


class HubHealth(Answer):
    """The hub is up; `log` is its event log's size."""

    ok: bool
    version: str
    log: int


class Node(Answer):
    """One edge node as the hub sees it (CONTRACT §7), with its health and why."""

    node: str
    commune: str
    commune_name: str | None
    last_seen_at: str | None
    last_success_at: str | None
    pending_events: int
    oldest_pending_age_s: float
    clock_offset_ms: int
    conflicts_open: int
    health: str
    reasons: list[str]
    revoked: bool


class Nodes(Answer):
    """Every enrolled node."""

    items: list[Node]


class SecurityEvent(Answer):
    """A security alert (refused credentials, tampering, forks…)."""

    id: int
    at: int
    kind: str
    node: str | None
    origin: str | None
    seq: int | None
    detail: Any


class SecurityEvents(Answer):
    """The latest security alerts, newest first."""

    items: list[SecurityEvent]


class ActiveAlert(Answer):
    """A node not healthy now."""

    node: str
    commune: str
    commune_name: str | None
    health: str
    reasons: list[Any]


class Alerts(Answer):
    """Active alerts and the latest health changes."""

    active: list[ActiveAlert]
    changes: list[dict[str, Any]]


class Stats(Answer):
    """The statistics report: one row per commune × procedure (× period), and totals."""

    rows: list[dict[str, Any]]
    totals: list[dict[str, Any]]
    commune: str | None
    by: str


class NodeHistory(Answer):
    """A node's sync history in buckets, for its charts."""

    node: str
    window: str
    start: int
    end: int
    bucket_ms: int
    buckets: list[dict[str, Any]]
    last_24h: dict[str, Any]
