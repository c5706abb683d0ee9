"""How a dossier looks to people and to API clients: the CONTRACT §7 shape, built from state."""

from __future__ import annotations

import logging
from typing import Any

from protocol import is_hub_origin, lifecycle
from protocol.calendar import is_overdue, iso
from protocol.commands import APPLICANT_KEYS, encode_version
from protocol.events import CLOCK_CHECK, Event
from protocol.hlc import wall_ms
from protocol.merge import DossierState, Write

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
        detail: Any = {"code": payload.get("code"), "procedure": payload.get("procedure")}
    elif event.kind == "set":
        detail = {"fields": sorted(payload.get("set", {}))}
    elif event.kind == "transition":
        detail = {"from": payload.get("from"), "to": payload.get("to"), "note": payload.get("note")}
    elif event.kind == "resolve":
        detail = {"field": payload.get("field"), "value": payload.get("value")}
    elif event.kind in ("attach", "detach"):
        detail = {"sha256": payload.get("sha256"), "name": payload.get("name")}
    else:
        detail = {"text": payload.get("text")}
    return {
        "event": f"{event.origin}:{event.seq}",
        "kind": event.kind,
        "actor": event.actor,
        "origin": event.origin,
        "where": "hub" if is_hub_origin(event.origin) else "commune",
        "at": iso(wall_ms(event.hlc)),
        **detail,
    }


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
    conflicts = [
        {"field": path, "values": [_who(w) for w in writes]}
        for path, writes in state.conflicts().items()
    ]
    events = sorted(history or [], key=lambda e: (e.hlc, e.origin, e.seq))
    return {
        "id": state.id,
        "code": header.get("code"),
        "procedure_code": header.get("procedure"),
        "commune": header.get("commune"),
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
        "attachments": state.live_attachments(),
        "comments": [
            {**c, "at": iso(wall_ms(c["hlc"]))}
            for _, c in sorted(state.comments.items(), key=lambda kv: (kv[1]["hlc"], kv[0]))
        ],
        "history": [summarize(e) for e in events],
        "next_statuses": lifecycle.next_statuses(status) if not conflicts else [],
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
