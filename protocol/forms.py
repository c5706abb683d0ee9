"""What the one-stop forms record beside the lifecycle (Circular 01/2018/TT-VPCP).

Each is an optional key of an event kind peers already know, so older peers accept the event
and ignore the key (docs/protocol.md: Forms):
- form 03, a refusal at the counter: a `create` whose status is `refused`, with `reasons`; no due
  date, and no receipt is ever issued for it;
- form 04, an apology with a new appointment: a `comment` whose text is the reason and which
  carries `apology: {"new_due": ms}`. The due date is not touched: the dossier still counts as late
  against it; the new date is the appointment shown and printed;
- the hand-over of a result: the move `resolved → returned` with `handover: {"collected_by",
  "id_document"}` (who took it and the ID document they showed; when is the event's time);
- form 02's deadline: the move to `supplement_requested` with `supplement_by` (a day, ISO).
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime, time, timedelta
from typing import Any

from protocol.calendar import OFFICE_CLOSE, VN_TZ, Calendar, local, to_ms
from protocol.errors import Conflict, ValidationError

log = logging.getLogger(__name__)

MAX_REASONS = 2000
MAX_PERSON = 100
HANDOVER_KEYS = ("collected_by", "id_document")
MAX_SUPPLEMENT_DAYS = 90
DEFAULT_SUPPLEMENT_DAYS = 5  # working days the desk offers for bringing the documents
MAX_APOLOGY_DAYS = 366
# An apology is for a dossier still being worked on: not before acceptance, not once the result
# is ready or the dossier is closed.
APOLOGY_STATUSES = frozenset({"accepted", "processing", "supplement_requested", "fee_requested"})
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TIME_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _text(raw: Any, where: str, limit: int, *, required: bool = True) -> str:
    if raw is not None and not isinstance(raw, str):
        raise ValidationError(f"{where} must be text", field=where)
    lines = [" ".join(line.split()) for line in (raw or "").splitlines()]
    text = "\n".join(line for line in lines if line)
    if required and not text:
        raise ValidationError(f"{where} is required", field=where)
    if len(text) > limit:
        raise ValidationError(f"{where} is longer than {limit}", field=where)
    return text


def check_refusal(raw: Any) -> str:
    """The reasons of a refusal at the counter (form 03), one per line."""
    if not isinstance(raw, dict):
        raise ValidationError("refuse must be an object with reasons", field="refuse")
    return _text(raw.get("reasons"), "refuse.reasons", MAX_REASONS)


def check_handover(raw: Any) -> dict[str, str]:
    """Who collected a result and the ID document they showed."""
    if not isinstance(raw, dict):
        raise ValidationError("handover must be an object", field="handover")
    unknown = set(raw) - set(HANDOVER_KEYS)
    if unknown:
        raise ValidationError(f"unknown handover key {sorted(unknown)[0]!r}", field="handover")
    return {key: _text(raw.get(key), f"handover.{key}", MAX_PERSON).replace("\n", " ")
            for key in HANDOVER_KEYS}


def check_supplement_by(raw: Any, today: date) -> str:
    """Form 02's deadline for bringing the documents: a day from today on, within 90 days."""
    if not isinstance(raw, str) or not DATE_RE.fullmatch(raw):
        raise ValidationError("supplement_by must be a date YYYY-MM-DD", field="supplement_by")
    try:
        day = date.fromisoformat(raw)
    except ValueError as exc:
        raise ValidationError("supplement_by is not a real date", field="supplement_by") from exc
    if not today <= day <= today + timedelta(days=MAX_SUPPLEMENT_DAYS):
        raise ValidationError(f"supplement_by must be from today to {MAX_SUPPLEMENT_DAYS} days "
                              "ahead", field="supplement_by")
    return raw


def new_appointment(raw: Any, now_ms: int, calendar: Calendar) -> int:
    """The new appointment of an apology (`YYYY-MM-DD` at the close of office hours, or
    `YYYY-MM-DDTHH:MM`): a working day, later than now, within a year."""
    if not isinstance(raw, str):
        raise ValidationError("new_due must be a date YYYY-MM-DD[THH:MM]", field="new_due")
    day_text, _, hour = raw.partition("T")
    try:
        day = date.fromisoformat(day_text) if DATE_RE.fullmatch(day_text) else None
    except ValueError:
        day = None
    if day is None or (hour and not TIME_RE.fullmatch(hour)):
        raise ValidationError("new_due must be a date YYYY-MM-DD[THH:MM]", field="new_due")
    at = time.fromisoformat(hour) if hour else OFFICE_CLOSE
    if not calendar.is_working_day(day):
        raise ValidationError("new_due must be a working day", field="new_due")
    ms = to_ms(datetime.combine(day, at, VN_TZ))
    if ms <= now_ms:
        raise ValidationError("new_due must be later than now", field="new_due")
    if day > local(now_ms).date() + timedelta(days=MAX_APOLOGY_DAYS):
        raise ValidationError("new_due must be within a year", field="new_due")
    return ms


def apology_payload(body: Any, status: str, due: int | None, now_ms: int,
                    calendar: Calendar) -> dict[str, Any]:
    """The payload of an apology (form 04): the reason as the comment's text, the new date."""
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object")
    if status not in APOLOGY_STATUSES:
        raise Conflict(f"an apology is for a dossier being processed, not one that is {status}")
    reason = _text(body.get("reason"), "reason", MAX_REASONS)
    new_due = new_appointment(body.get("new_due"), now_ms, calendar)
    if due is not None and new_due <= due:
        raise ValidationError("new_due must be later than the due date", field="new_due")
    return {"text": reason, "apology": {"new_due": new_due}}

