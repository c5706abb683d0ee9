"""Scope: which dossiers a node may write, decided from the hub's records, never from the payload.

A node writes only for its own commune: it may create a dossier only for its commune and only
under an id no dossier has, and write to a dossier only if the hub holds it for that commune.
What the node claims in an event is not trusted; the hub's record of each dossier's commune is.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from protocol.events import Event
from protocol.messages import Rejection

log = logging.getLogger(__name__)


def check_writes(commune: str, events: list[Event], known: Mapping[str, str | None]
                 ) -> tuple[list[Event], list[Rejection]]:
    """Which of a node's `events` (in seq order) its commune may write, given `known`: the
    commune the hub holds each dossier under (None or absent: no such dossier). A dossier created
    earlier in the same batch counts as known from there on."""
    communes = {d: c for d, c in known.items() if c is not None}
    accepted: list[Event] = []
    rejections: list[Rejection] = []
    for event in events:
        held = communes.get(event.dossier)
        if event.kind == "create":
            if event.payload.get("commune") != commune:
                rejections.append(Rejection(event.seq, "scope",
                                            "dossier created for another commune"))
                continue
            if held is not None:
                rejections.append(Rejection(event.seq, "duplicate_id",
                                            "a dossier with this id already exists"))
                continue
            communes[event.dossier] = commune
        elif held is None:
            rejections.append(Rejection(event.seq, "unknown_dossier",
                                        "no such dossier at the hub"))
            continue
        elif held != commune:
            rejections.append(Rejection(event.seq, "scope", "dossier belongs to another commune"))
            continue
        accepted.append(event)
    return accepted, rejections
