"""The transfer command: competence over a dossier moves to another commune of the province.

A transfer is an event like any other (`transfer`, payload `to` and `reason`): it writes the
`commune` register, so two concurrent transfers to different communes are a visible conflict,
and the create's header keeps the original unit for history. Who may write it is
`protocol/scope.py`'s rule (the competent commune, or the hub).
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from protocol.commands import Draft
from protocol.commands import _base as base_of
from protocol.communes import Communes
from protocol.errors import Conflict, ValidationError
from protocol.events import MAX_TEXT
from protocol.merge import DossierState
from protocol.scope import units_of

log = logging.getLogger(__name__)


def transfer_draft(body: Any, state: DossierState, communes: Communes, today: date) -> Draft:
    """`POST /api/dossiers/{id}/transfer {"to", "reason", "base"}` as a draft; ValidationError
    naming the field, Conflict when the dossier is already the commune's."""
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object")
    to, reason = body.get("to"), body.get("reason")
    if not isinstance(to, str) or communes.get(to) is None:
        raise ValidationError(f"commune {to!r} is not a commune of this province", field="to")
    to = communes.resolve(to, today)
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_TEXT:
        raise ValidationError("a transfer needs its reason (at most 4000 characters)",
                              field="reason")
    units = units_of(state)
    if units is None:
        raise Conflict("dossier is not complete here yet")
    if units.commune == to:
        raise Conflict(f"the dossier is already commune {to}'s")
    return Draft("transfer", {"to": to, "reason": reason.strip()}, base_of(body, state))
