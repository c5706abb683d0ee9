"""How a dossier looks to people and to API clients: the CONTRACT §7 shape, built from state."""

from __future__ import annotations

import logging
from typing import Any

from protocol import forms, is_hub_origin, lifecycle
from protocol.attachments import DOC_KINDS
from protocol.calendar import is_overdue, iso
from protocol.commands import APPLICANT_KEYS, encode_version, next_moves
from protocol.events import CLOCK_CHECK, Event, seen_by
from protocol.hlc import wall_ms
from protocol.merge import DossierState, Write, fold

log = logging.getLogger(__name__)


def _who(write: Write) -> dict[str, Any]:
    return {
        "value": write.value,
        "actor": write.actor,
        "origin": write.origin,
        "where": "hub" if is_hub_origin(write.origin) else "commune",
        "at": iso(wall_ms(write.hlc)),
    }


def summarize(event: Event) -> dict[str, Any]:
    """One history line: who, what, when and where."""
    payload = event.payload
    if event.kind == "create":
        detail: Any = {"code": payload.get("code"), "procedure": payload.get("procedure"),
                       "status": payload.get("status", lifecycle.INITIAL_AT_COUNTER)}
        for key in ("reasons", "duplicates"):
            if payload.get(key):
                detail[key] = payload[key]
    elif event.kind == "set":
        detail = {"fields": sorted(payload.get("set", {}))}
        if payload.get("reason"):
            detail["reason"] = payload["reason"]
    elif event.kind == "transition":
        detail = {"from": payload.get("from"), "to": payload.get("to"), "note": payload.get("note")}
        for key in ("handover", "supplement_by"):
            if payload.get(key):
                detail[key] = payload[key]
    elif event.kind == "resolve":
        detail = {"field": payload.get("field"), "value": payload.get("value")}
    elif event.kind == "attach":
        detail = {"sha256": payload.get("sha256"), "name": payload.get("name"),
                  **_document(payload)}
    elif event.kind == "detach":
        detail = {"tags": list(payload.get("tags", []))}
    elif event.kind == "transfer":
        detail = {"to": payload.get("to"), "reason": payload.get("reason")}
    else:
        detail = {"text": payload.get("text")}
        if isinstance(payload.get("apology"), dict):
            detail["apology"] = {"new_due": iso(payload["apology"].get("new_due"))}
    return {
        "event": f"{event.origin}:{event.seq}",
        "kind": event.kind,
        "actor": event.actor,
        "origin": event.origin,
        "where": "hub" if is_hub_origin(event.origin) else "commune",
        "at": iso(wall_ms(event.hlc)),
        **detail,
    }


def _document(info: dict[str, Any]) -> dict[str, Any]:
    """What form 01 lists for an entry: the document's name, how it was handed in, how many.
    Entries written before `doc_kind` existed carry the kind in the label: `Tờ khai (bản sao)`."""
    label = str(info.get("label") or info.get("name") or "")
    kind = info.get("doc_kind")
    if kind is None:
        kind = ""
        for known in DOC_KINDS:
            if label.endswith(f" ({known})"):
                label, kind = label[: -len(known) - 3], known
                break
    return {"document": label, "doc_kind": kind, "count": info.get("count") or 1}


def attachment_entries(state: DossierState) -> list[dict[str, Any]]:
    """The API's `attachments`: every entry with its own id, its label and document, and the blob
    it references (`sha256`, null for a paper document listed without a scan)."""
    out = []
    for entry in state.live_attachments():
        out.append({
            "id": entry["tag"], "tag": entry["tag"], "label": entry.get("label"),
            **_document(entry),
            "sha256": entry.get("sha256"), "name": entry.get("name"),
            "mime": entry.get("mime"), "size": entry.get("size"),
            "scanned": entry.get("sha256") is not None,
            "actor": entry.get("actor"), "origin": entry.get("origin"), "hlc": entry.get("hlc"),
            "at": iso(wall_ms(entry["hlc"])),
        })
    return out


def value_before(path: str, writes: tuple[Write, ...], events: list[Event]) -> Write | None:
    """The write `path` showed in the common past of its live writes — what every side started
    from — or None if it had none then."""
    common: dict[str, int] = {}
    origins = set.intersection(*(set(w.deps) for w in writes)) if writes else set()
    for origin in origins:
        common[origin] = min(w.deps[origin] for w in writes)
    past = fold([e for e in events if seen_by(e.id, common)])
    if past is None:
        return None
    shown = past.registers.get(path)
    return shown[0] if shown else None


def form_records(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """What the one-stop forms recorded (protocol.forms), from the history: the refusal (at the
    counter, or of an online submission), every apology with its new date and the appointment
    now (the latest one's), and the hand-over of the result."""
    refusal = handover = None
    apologies = []
    for entry in entries:
        kind = entry["kind"]
        if kind == "create" and entry.get("status") == "refused":
            refusal = {"reasons": entry.get("reasons") or "", "actor": entry["actor"],
                       "at": entry["at"], "at_counter": True}
        elif kind == "transition" and entry.get("to") == "refused":
            refusal = {"reasons": entry.get("note") or "", "actor": entry["actor"],
                       "at": entry["at"], "at_counter": False}
        elif kind == "transition" and entry.get("to") == "returned":
            handover = {**dict.fromkeys(forms.HANDOVER_KEYS), **(entry.get("handover") or {}),
                        "actor": entry["actor"], "at": entry["at"]}
        elif kind == "comment" and entry.get("apology"):
            apologies.append({"new_due": entry["apology"]["new_due"], "reason": entry["text"],
                              "actor": entry["actor"], "at": entry["at"],
                              "event": entry["event"]})
    return {"refusal": refusal, "apologies": apologies, "handover": handover,
            "appointment_at": apologies[-1]["new_due"] if apologies else None}


def dossier_view(state: DossierState, now_ms: int,
                 history: list[Event] | None = None) -> dict[str, Any]:
    """The API shape of a dossier."""
    header = state.header or {}
    status = state.value("status", "submitted")
    due = state.value("due_at")
    applicant = {k: state.value(f"applicant.{k}", "") for k in APPLICANT_KEYS}
    fields = {
        path[len("fields."):]: writes[0].value
        for path, writes in sorted(state.registers.items())
        if path.startswith("fields.") and writes[0].value is not None
    }
    events = sorted(history or [], key=lambda e: (e.hlc, e.origin, e.seq))
    conflicts = []
    for path, writes in state.conflicts().items():
        before = value_before(path, writes, events) if events else None
        conflicts.append({"field": path, "values": [_who(w) for w in writes],
                          "before": _who(before) if before else None})
    free, waiting = next_moves(state)
    history_entries = [summarize(e) for e in events]
    records = form_records(history_entries)
    apology_tags = {a["event"] for a in records["apologies"]}
    return {
        "id": state.id,
        "code": header.get("code"),
        "procedure_code": header.get("procedure"),
        "commune": state.value("commune") or header.get("commune"),
        "received_by": header.get("received_by") or header.get("commune"),
        "channel": header.get("channel"),
        "status": status,
        "status_code": lifecycle.portal_code(status) if status in lifecycle.STATUSES else None,
        "applicant": applicant,
        "fields": fields,
        "received_at": iso(header.get("received_at")),
        "due_at": iso(due) if isinstance(due, int) else None,
        "overdue": is_overdue(due if isinstance(due, int) else None, now_ms, status),
        "version": encode_version(state.vv),
        "conflicts": conflicts,
        "attachments": attachment_entries(state),
        "comments": [
            {**c, "at": iso(wall_ms(c["hlc"]))}
            for tag, c in sorted(state.comments.items(), key=lambda kv: (kv[1]["hlc"], kv[0]))
            if tag not in apology_tags
        ],
        "history": history_entries,
        **(records if history is not None else {}),  # read from the history only
        "next_statuses": free,
        "waiting_statuses": waiting,
        "created_by": {"origin": header.get("origin"), "actor": header.get("actor")},
        "clock_check": _clock_check(state),
    }


def _clock_check(state: DossierState) -> dict[str, Any] | None:
    """The standing clock-check flag: the estimated clock error and who raised it, or None."""
    writes = state.registers.get(CLOCK_CHECK)
    if not writes or not writes[0].value:
        return None
    return {"error_ms": writes[0].value, **{k: v for k, v in _who(writes[0]).items()
                                            if k != "value"}}
