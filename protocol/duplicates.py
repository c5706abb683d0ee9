"""Likely duplicates at intake: the same procedure for the same applicant (citizen ID) with the same
key fields (catalogue `key`), received within the last 90 days and not refused, withdrawn or
stopped (a new dossier after those is the normal way on). The desk flags them with a link; the
clerk may still go on, deliberately, and the create records which ones were seen."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from protocol.calendar import to_ms
from protocol.catalogue import Procedure
from protocol.text import search_key

log = logging.getLogger(__name__)

WINDOW_DAYS = 90
DAY_MS = 86_400_000
NOT_COMPETING = frozenset({"refused", "withdrawn", "stopped"})


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return search_key(a) == search_key(b)  # "Nguyễn Văn  Bình" is "nguyen van binh"
    return bool(a == b)


def key_names(procedure: Procedure) -> list[str]:
    """The procedure's key fields (all of them must match)."""
    return [f.name for f in procedure.fields if f.key]


def likely_duplicates(body: dict[str, Any], procedure: Procedure,
                      candidates: Iterable[dict[str, Any]], now_ms: int) -> list[dict[str, Any]]:
    """The dossiers among `candidates` (views, newest first) that the create request `body`
    (CONTRACT §7 shape, checked) likely repeats."""
    citizen = (body.get("applicant") or {}).get("citizen_id")
    if not citizen:
        return []
    fields = body.get("fields") or {}
    keys = key_names(procedure)
    since = now_ms - WINDOW_DAYS * DAY_MS
    out = []
    for view in candidates:
        received = view.get("received_at")
        if view.get("procedure_code") != procedure.code or view.get("status") in NOT_COMPETING \
                or (view.get("applicant") or {}).get("citizen_id") != citizen:
            continue
        if not received or to_ms(datetime.fromisoformat(received)) < since:
            continue
        theirs = view.get("fields") or {}
        if all(_same(fields.get(k), theirs.get(k)) for k in keys):
            out.append(view)
    return out
