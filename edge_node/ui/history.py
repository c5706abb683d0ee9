"""A dossier's history as people read it: who did what, when, and where (the commune or the province)."""

from __future__ import annotations

import logging
from typing import Any

from edge_node.ui.desk import Desk, field_label, show_value, status_label
from service.ui import formats
from service.ui.i18n import Messages

log = logging.getLogger(__name__)


def describe(entry: dict[str, Any], t: Messages, desk: Desk, procedure: str | None) -> str:
    """One history entry (protocol.views.summarize) as a sentence."""
    kind = entry.get("kind")
    if kind == "create":
        if entry.get("status") == "refused":
            return t("history.refused", code=entry.get("code") or "")
        if entry.get("duplicates"):
            return t("history.create_duplicate", code=entry.get("code") or "",
                     others=", ".join(entry["duplicates"]))
        return t("history.create", code=entry.get("code") or "")
    if kind == "set":
        labels = [field_label(desk, t, procedure, p) for p in entry.get("fields", [])]
        return t("history.amend" if entry.get("reason") else "history.set",
                 fields=", ".join(labels))
    if kind == "transition":
        text = t("history.transition", old=status_label(entry.get("from"), t.lang),
                 new=status_label(entry.get("to"), t.lang))
        handover = entry.get("handover") or {}
        if handover:
            text += " · " + t("history.handover", name=handover.get("collected_by") or "",
                              doc=handover.get("id_document") or "")
        if entry.get("supplement_by"):
            text += " · " + t("history.supplement_by", day=formats.iso_day(entry["supplement_by"]))
        return text
    if kind == "resolve":
        path = str(entry.get("field") or "")
        return t("history.resolve", field=field_label(desk, t, procedure, path),
                 value=show_value(t, path, entry.get("value")))
    if kind == "attach":
        return t("history.attach", name=entry.get("document") or entry.get("name") or "")
    if kind == "detach":
        return t("history.detach", name=entry.get("name") or "")
    if kind == "transfer":
        return t("history.transfer", name=desk.store.communes.name_of(str(entry.get("to"))))
    if entry.get("apology"):
        return t("history.apology", when=formats.dt(entry["apology"].get("new_due")))
    return t("history.comment")


def timeline(view: dict[str, Any], t: Messages, desk: Desk) -> list[dict[str, Any]]:
    """The dossier's history, newest first, ready for the template."""
    out = []
    notes = {"transition": "note", "comment": "text", "set": "reason", "create": "reasons",
             "transfer": "reason"}
    for entry in view.get("history", []):
        kind = str(entry.get("kind"))
        out.append({"at": entry.get("at"), "actor": entry.get("actor"),
                    "where": t("where." + str(entry.get("where", "commune"))),
                    "hub": entry.get("where") == "hub", "kind": kind,
                    "text": describe(entry, t, desk, view.get("procedure_code")),
                    "note": entry.get(notes[kind]) if kind in notes else None})
    out.reverse()
    return out


def last_supplement_request(view: dict[str, Any]) -> dict[str, Any] | None:
    """The latest move to `supplement_requested` (what form 02 prints), if any."""
    for entry in reversed(view.get("history", [])):
        if entry.get("kind") == "transition" and entry.get("to") == "supplement_requested":
            return dict(entry)
    return None
