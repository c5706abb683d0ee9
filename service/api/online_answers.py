"""What the hub answers the province's portal and citizens: a filing, its scans, tracking."""

from __future__ import annotations

import logging

from service.api.answer import Answer

log = logging.getLogger(__name__)


class Submitted(Answer):
    """A dossier filed online: its id, its code, and the tracking check for GET /api/track
    (give both to the citizen)."""

    id: str
    code: str
    tracking: str


class Uploaded(Answer):
    """A scan held for a filing: refer to it by `sha256` in the submission's attachments."""

    sha256: str
    size: int
    mime: str


class Tracked(Answer):
    """What tracking shows of a dossier, and nothing else: its code, status, the appointment
    (null until it is accepted) and what the citizen is asked for (documents to bring, or the
    reasons of a refusal)."""

    code: str | None
    status: str
    status_label: str
    due_at: str | None
    missing: list[str]


class SubmissionStatus(Tracked):
    """A filing as its portal sees it: what tracking shows, with its id and commune."""

    id: str
    commune: str
