"""What a dossier's answer says the one-stop forms recorded (docs/protocol.md: Forms)."""

from __future__ import annotations

import logging

from service.api.answer import Answer

log = logging.getLogger(__name__)


class Refusal(Answer):
    """A refusal (form 03): at the counter, or of an online submission."""

    reasons: str
    actor: str
    at: str | None
    at_counter: bool


class ApologyView(Answer):
    """An apology with its new appointment (form 04)."""

    new_due: str | None
    reason: str
    actor: str
    at: str | None
    event: str


class HandoverView(Answer):
    """The hand-over of the result (the move to returned)."""

    collected_by: str | None
    id_document: str | None
    actor: str
    at: str | None
