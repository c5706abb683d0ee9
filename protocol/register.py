"""Form 06, the register (sổ theo dõi hồ sơ): one row per dossier received, from its view (with its
history), in the order received — the procedure, the applicant, when it was received and due, the
new appointment an apology gave, when it was resolved (early, on time or late, against the first
due date), when it was returned and to whom, on which ID document, and what the forms noted."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from protocol.calendar import to_ms
from protocol.stats import timeliness

log = logging.getLogger(__name__)

COLUMNS = ("no", "code", "procedure", "procedure_name", "applicant", "address", "phone",
           "received_at", "due_at", "appointment_at", "status", "resolved_at", "timeliness",
           "returned_at", "collected_by", "id_document", "note")


def _ms(value: str | None) -> int | None:
    return to_ms(datetime.fromisoformat(value)) if value else None


def _first_move(view: dict[str, Any], to: str) -> str | None:
    return next((h["at"] for h in view.get("history", [])
                 if h.get("kind") == "transition" and h.get("to") == to), None)


def row(no: int, view: dict[str, Any], procedure_name: str) -> dict[str, Any]:
    """The register's row for one dossier (times as ISO text, as in the view)."""
    applicant = view.get("applicant") or {}
    resolved = _first_move(view, "resolved")
    resolved_ms = _ms(resolved)
    handover = view.get("handover") or {}
    refusal = view.get("refusal")
    notes = []
    if refusal:
        notes.append("; ".join(refusal["reasons"].splitlines()))
    notes += [a["reason"] for a in view.get("apologies", [])]
    return {
        "no": no, "code": view.get("code"), "procedure": view.get("procedure_code"),
        "procedure_name": procedure_name, "applicant": applicant.get("full_name") or "",
        "address": applicant.get("address") or "", "phone": applicant.get("phone") or "",
        "received_at": view.get("received_at"), "due_at": view.get("due_at"),
        "appointment_at": view.get("appointment_at"), "status": view.get("status"),
        "resolved_at": resolved,
        "timeliness": timeliness(resolved_ms, _ms(view.get("due_at")))
        if resolved_ms is not None else None,
        "returned_at": handover.get("at"), "collected_by": handover.get("collected_by"),
        "id_document": handover.get("id_document"), "note": " · ".join(notes),
    }


def rows(views: list[dict[str, Any]], procedure_names: dict[str, str]) -> list[dict[str, Any]]:
    """The register's rows, numbered from 1."""
    return [row(i, v, procedure_names.get(v.get("procedure_code") or "", ""))
            for i, v in enumerate(views, 1)]
