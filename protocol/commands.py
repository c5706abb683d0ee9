"""Commands: validate what a person asked for against a dossier's state and turn it into an event draft.

Both the edge and the hub write through these, so the rules are one: input is checked before anything
is stored, an edit based on a stale version keeps that version as its deps (so it merges or becomes a
conflict, never overwrites unseen work), an edit after a final status is an amendment and carries its
reason, a transition must follow the lifecycle from the status the writer saw and waits only for the
conflicts it depends on, and a resolve must have seen every live value of its field. What the
one-stop forms record beside (a refusal at intake, an apology, a hand-over) is `protocol.forms`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from protocol import forms, lifecycle
from protocol.calendar import Calendar, due_at, extend_for_pause, local
from protocol.catalogue import Catalogue, Procedure
from protocol.errors import Conflict, ValidationError
from protocol.events import ORIGIN_RE, seen_by
from protocol.hlc import wall_ms
from protocol.merge import DossierState

log = logging.getLogger(__name__)

APPLICANT_KEYS = ("full_name", "citizen_id", "phone", "address")
CHANNELS = ("counter", "online", "post")
SEQ_RE = re.compile(r"[0-9]{1,19}")
PHONE_RE = re.compile(r"^(\+84|0)\d{9,10}$")
MAX_NOTE = 2000
# Approving a result issues it from the form's data: every applicant and form field must be settled.
RESULT_STATUSES = frozenset({"resolved"})


@dataclass(frozen=True, slots=True)
class Draft:
    """An event not yet stamped: the store gives it origin, seq, hlc and prev."""

    kind: str
    payload: dict[str, Any]
    deps: dict[str, int]


@dataclass(frozen=True, slots=True)
class NewDossier:
    """A validated request to create a dossier."""

    procedure: Procedure
    applicant: dict[str, str]
    fields: dict[str, Any]
    channel: str
    refusal: str | None = None  # refused at the counter (form 03): the reasons
    duplicates: tuple[str, ...] = ()  # likely duplicates the clerk saw and went on anyway


def encode_version(vv: dict[str, int]) -> str:
    """The opaque version token for a version vector."""
    return ",".join(f"{o}:{s}" for o, s in sorted(vv.items()))


def decode_version(token: Any) -> dict[str, int]:
    """Parse a version token; raise ValidationError if it is not one."""
    if not isinstance(token, str) or len(token) > 4000:
        raise ValidationError("base must be a version string from a dossier", field="base")
    vv: dict[str, int] = {}
    for part in filter(None, token.split(",")):
        origin, _, seq = part.rpartition(":")
        if not ORIGIN_RE.fullmatch(origin) or not SEQ_RE.fullmatch(seq) or int(seq) < 1:
            raise ValidationError(f"base is not a valid version: {part!r}", field="base")
        vv[origin] = int(seq)
    return vv


def check_citizen_id(value: Any, today: date, where: str = "applicant.citizen_id") -> str:
    """A 12-digit personal ID: province of birth registration, century/sex digit, birth year."""
    if not isinstance(value, str) or not re.fullmatch(r"\d{12}", value.strip()):
        raise ValidationError("citizen ID must be exactly 12 digits", field=where)
    digits: str = value.strip()
    province = int(digits[:3])
    if not 1 <= province <= 96:
        raise ValidationError("citizen ID must start with a province code 001–096", field=where)
    century = 1900 + 100 * (int(digits[3]) // 2)
    if century + int(digits[4:6]) > today.year:
        raise ValidationError("citizen ID gives a birth year in the future", field=where)
    return digits


def check_applicant(raw: Any, today: date, *, partial: bool = False,
                    id_optional: bool = False) -> dict[str, str]:
    """Validate the applicant block (all of it, or only the keys given when `partial`; a refusal
    records whoever came, with their ID only if they showed one: `id_optional`)."""
    if not isinstance(raw, dict):
        raise ValidationError("applicant must be an object", field="applicant")
    unknown = set(raw) - set(APPLICANT_KEYS)
    if unknown:
        raise ValidationError(f"unknown applicant key {sorted(unknown)[0]!r}", field="applicant")
    out: dict[str, str] = {}
    for key in APPLICANT_KEYS:
        if partial and key not in raw:
            continue
        value = raw.get(key)
        where = f"applicant.{key}"
        if value is not None and not isinstance(value, str):
            raise ValidationError(f"{where} must be text", field=where)
        value = (value or "").strip()
        if key == "full_name":
            if not value:
                raise ValidationError("applicant full name is required", field=where)
            if len(value) > 100:
                raise ValidationError("applicant full name is longer than 100", field=where)
        elif key == "citizen_id" and (value or not id_optional):
            value = check_citizen_id(value, today)
        elif key == "phone" and value and not PHONE_RE.fullmatch(value.replace(" ", "")):
            raise ValidationError("phone must be a Vietnamese number like 0912345678", field=where)
        elif key == "address" and len(value) > 300:
            raise ValidationError("address is longer than 300", field=where)
        if key == "phone":
            value = value.replace(" ", "")
        out[key] = value
    return out


def validate_create(body: Any, catalogue: Catalogue, today: date) -> NewDossier:
    """Check a create request (CONTRACT §7) fully; nothing is stored if this raises."""
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object")
    code = body.get("procedure_code")
    if not isinstance(code, str) or not code:
        raise ValidationError("procedure_code is required", field="procedure_code")
    procedure = catalogue.get(code)
    if procedure is None:
        raise ValidationError(f"unknown procedure {code!r}", field="procedure_code")
    if "applicant" not in body:
        raise ValidationError("applicant is required", field="applicant")
    # A refusal is often for an incomplete form: whatever was typed is kept if it is valid.
    refusal = forms.check_refusal(body["refuse"]) if body.get("refuse") is not None else None
    applicant = check_applicant(body["applicant"], today, id_optional=refusal is not None)
    raw_fields = body.get("fields", {})
    if refusal is not None and isinstance(raw_fields, dict):
        raw_fields = {k: v for k, v in raw_fields.items() if v not in (None, "")}
    fields = procedure.check_fields(raw_fields, today, partial=refusal is not None)
    channel = body.get("channel", "counter")
    if channel not in CHANNELS:
        raise ValidationError(f"channel must be one of {', '.join(CHANNELS)}", field="channel")
    duplicates = body.get("duplicates") or []
    if not isinstance(duplicates, list) or len(duplicates) > 20 or not all(
            isinstance(d, str) and 0 < len(d) <= 64 for d in duplicates):
        raise ValidationError("duplicates must be a list of dossier codes", field="duplicates")
    return NewDossier(procedure, applicant, fields, channel, refusal, tuple(duplicates))


def create_draft(new: NewDossier, *, commune: str, code: str, received_ms: int,
                 calendar: Calendar, status: str = lifecycle.INITIAL_AT_COUNTER,
                 track: str | None = None, received_by: str | None = None) -> Draft:
    """The create event for a validated dossier: its code, due date (none while `submitted`, nor
    for a refusal: nothing is to be returned), tracking secret `track` and, if not `commune`,
    the unit that took it in (`received_by`)."""
    values: dict[str, Any] = {f"applicant.{k}": v for k, v in new.applicant.items()}
    values.update({f"fields.{k}": v for k, v in new.fields.items()})
    proc = new.procedure
    payload = {
        "procedure": proc.code,
        "commune": commune,
        "code": code,
        "received_at": received_ms,
        "channel": new.channel,
        "status": status,
        "due_at": None if status == "submitted" else
        due_at(received_ms, proc.limit_days, proc.same_day_cutoff, calendar),
        "set": values,
    }
    payload.update({k: v for k, v in (("track", track), ("received_by", received_by)) if v})
    if new.refusal is not None:
        payload.update(status="refused", due_at=None, reasons=new.refusal)
    if new.duplicates:
        payload["duplicates"] = list(new.duplicates)
    return Draft("create", payload, {})


def _base(body: dict[str, Any], state: DossierState) -> dict[str, int]:
    if body.get("base") is None:
        return dict(state.vv)
    base = decode_version(body["base"])
    for origin, seq in base.items():
        if state.vv.get(origin, 0) < seq:
            raise Conflict("base names changes this node has not seen; reload the dossier")
    if state.header and not seen_by((state.header["origin"], state.header["seq"]), base):
        raise ValidationError("base does not belong to this dossier", field="base")
    return base


def set_draft(body: Any, state: DossierState, catalogue: Catalogue, today: date) -> Draft | None:
    """An edit of applicant or form fields; None when it changes nothing."""
    if not isinstance(body, dict) or not isinstance(body.get("set"), dict) or not body["set"]:
        raise ValidationError("set must be a non-empty object of path: value", field="set")
    if state.header is None:
        raise Conflict("dossier is not complete here yet")
    base = _base(body, state)
    procedure = catalogue.get(state.header["procedure"])
    applicant_raw: dict[str, Any] = {}
    fields_raw: dict[str, Any] = {}
    for path, value in body["set"].items():
        group, _, key = str(path).partition(".")
        if group == "applicant" and key:
            applicant_raw[key] = value
        elif group == "fields" and key:
            fields_raw[key] = value
        else:
            raise ValidationError(f"cannot set {path!r}: only applicant.* and fields.*",
                                  field=str(path))
    values: dict[str, Any] = {}
    if applicant_raw:
        values.update({f"applicant.{k}": v
                       for k, v in check_applicant(applicant_raw, today, partial=True).items()})
    if fields_raw:
        if procedure is None:
            raise ValidationError(f"unknown procedure {state.header['procedure']!r}")
        checked = procedure.check_fields(fields_raw, today, partial=True)
        values.update({f"fields.{k}": checked.get(k) for k in fields_raw})
    reason = _reason(body)
    changed = {}
    for path, value in values.items():
        live = state.registers.get(path, ())
        same = len(live) == 1 and live[0].value == value
        if not (same and seen_by((live[0].origin, live[0].seq), base)):
            changed[path] = value
    if not changed:
        return None
    closed = closed_status(state)
    if closed and not reason:
        raise ValidationError(f"the dossier is {closed}: changing it is an amendment and needs "
                              "a reason", field="reason")
    payload: dict[str, Any] = {"set": changed}
    if reason:
        payload["reason"] = reason
    return Draft("set", payload, base)


def closed_status(state: DossierState) -> str | None:
    """The final status a dossier is in (any of its live values), or None: an edit after one is
    an amendment (a reason, and at the desk a leader)."""
    return next((w.value for w in state.registers.get("status", ())
                 if w.value in lifecycle.FINAL), None)


def _reason(body: dict[str, Any]) -> str:
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_NOTE):
        raise ValidationError(f"reason must be text of at most {MAX_NOTE} characters",
                              field="reason")
    return " ".join((reason or "").split())


def _covers_live(state: DossierState, path: str, base: dict[str, int]) -> bool:
    return all(seen_by((w.origin, w.seq), base) for w in state.registers.get(path, ()))


def move_blockers(state: DossierState, target: str) -> list[str]:
    """The conflicted paths a move to `target` depends on; empty when it may go ahead. Every move
    depends on the status; leaving a paused status rewrites the due time; approving a result
    depends on every applicant and form field. Other conflicts wait for a leader without holding
    the dossier up."""
    conflicts = state.conflicts()
    if not conflicts:
        return []
    if "status" in conflicts:
        return ["status"]
    out = []
    if "due_at" in conflicts and state.value("status") in lifecycle.CLOCK_PAUSED \
            and target not in lifecycle.CLOCK_PAUSED:
        out.append("due_at")
    if target in RESULT_STATUSES:
        out += [p for p in conflicts if p.startswith(("applicant.", "fields."))]
    return out


def next_moves(state: DossierState) -> tuple[list[str], dict[str, list[str]]]:
    """The moves the lifecycle allows now, split into those free to go and those waiting for
    conflicts (with the paths each waits for), in table order."""
    free: list[str] = []
    waiting: dict[str, list[str]] = {}
    for target in lifecycle.next_statuses(state.value("status", "submitted")):
        blockers = move_blockers(state, target)
        if blockers:
            waiting[target] = blockers
        else:
            free.append(target)
    return free, waiting


def transition_draft(body: Any, state: DossierState, calendar: Calendar | None = None,
                     now_ms: int | None = None, catalogue: Catalogue | None = None) -> Draft:
    """A status change allowed by the lifecycle from the status the writer saw. Leaving a
    paused status (a supplement awaited) pushes the due time back by the working days paused;
    one filed online gets its due time when its time limit starts (`lifecycle.TIME_LIMIT_STARTS`)."""
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object")
    target = body.get("to")
    if target not in lifecycle.STATUSES:
        raise ValidationError(f"unknown status {target!r}", field="to")
    note = body.get("note") or ""
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise ValidationError(f"note must be text of at most {MAX_NOTE} characters", field="note")
    if state.header is None:
        raise Conflict("dossier is not complete here yet")
    base = _base(body, state)
    if "status" in state.conflicts():
        raise Conflict("the status is in conflict: resolve it first")
    if not _covers_live(state, "status", base):
        raise Conflict("the status changed since you loaded the dossier; reload it")
    current = state.value("status")
    if not lifecycle.allowed(current, target):
        raise Conflict(f"cannot go from {current} to {target}")
    blockers = move_blockers(state, target)
    if blockers:
        raise Conflict(f"{', '.join(blockers)} in conflict: a leader resolves it before the "
                       f"move to {target}")
    payload: dict[str, Any] = {"to": target, "from": current}
    if note:
        payload["note"] = note
    if body.get("handover") is not None:
        if target != "returned":
            raise ValidationError("handover goes with the move to returned", field="handover")
        payload["handover"] = forms.check_handover(body["handover"])
    if body.get("supplement_by") is not None:
        if target != "supplement_requested":
            raise ValidationError("supplement_by goes with the move to supplement_requested",
                                  field="supplement_by")
        today = local(now_ms if now_ms is not None else wall_ms(state.last_hlc)).date()
        payload["supplement_by"] = forms.check_supplement_by(body["supplement_by"], today)
    due = state.value("due_at")
    proc = catalogue.get(state.header["procedure"]) if catalogue is not None else None
    if due is None and target in lifecycle.TIME_LIMIT_STARTS and proc and calendar and now_ms is not None:
        payload["due_at"] = due_at(now_ms, proc.limit_days, proc.same_day_cutoff, calendar)
    elif current in lifecycle.CLOCK_PAUSED and target not in lifecycle.CLOCK_PAUSED \
            and calendar is not None and now_ms is not None and isinstance(due, int):
        paused_at = wall_ms(state.registers["status"][0].hlc)
        extended = extend_for_pause(due, paused_at, now_ms, calendar)
        if extended != due:
            payload["due_at"] = extended
    return Draft("transition", payload, dict(state.vv))


def resolve_draft(body: Any, state: DossierState, catalogue: Catalogue, today: date) -> Draft:
    """Settle a conflict on one path with one value, having seen every live value."""
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object")
    path = body.get("field")
    if not isinstance(path, str) or "value" not in body:
        raise ValidationError("field and value are required", field="field")
    if state.header is None:
        raise Conflict("dossier is not complete here yet")
    base = _base(body, state)
    if path not in state.conflicts():
        raise Conflict(f"there is no conflict on {path}")
    if not _covers_live(state, path, base):
        raise Conflict(f"a new value of {path} arrived since you loaded the dossier; review it")
    value = body["value"]
    if path == "status":
        if value not in lifecycle.STATUSES:
            raise ValidationError(f"unknown status {value!r}", field="value")
    elif path == "due_at":
        if type(value) is not int:
            raise ValidationError("due_at must be one of the values shown", field="value")
    else:
        probe = set_draft({"set": {path: value}}, state, catalogue, today)
        if probe is not None:
            value = probe.payload["set"].get(path, value)
    return Draft("resolve", {"field": path, "value": value}, dict(state.vv))


def comment_draft(body: Any, state: DossierState) -> Draft:
    """A comment on the dossier (grow-only, never conflicts)."""
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_NOTE:
        raise ValidationError(f"text must be 1–{MAX_NOTE} characters", field="text")
    return Draft("comment", {"text": text.strip()}, dict(state.vv))


def apology_draft(body: Any, state: DossierState, calendar: Calendar, now_ms: int) -> Draft:
    """An apology with a new appointment (form 04), for a dossier that will be late: a comment
    carrying the new date; the due date stays, so the dossier still counts as late."""
    if state.header is None:
        raise Conflict("dossier is not complete here yet")
    if "status" in state.conflicts():
        raise Conflict("the status is in conflict: resolve it first")
    due = state.value("due_at")
    payload = forms.apology_payload(body, state.value("status"), due if isinstance(due, int)
                                    else None, now_ms, calendar)
    return Draft("comment", payload, dict(state.vv))
