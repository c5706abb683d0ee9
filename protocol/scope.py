"""Scope: which dossiers a node may write, decided from the hub's records, never from the payload.

A node writes only for its own commune: it may create a dossier only for its commune and only
under an id no dossier has, and write to a dossier only if the hub holds it for that commune.
What the node claims in an event is not trusted; the hub's record of each dossier's commune is.

Units are compared after mergers (`unit_of`, `protocol.communes.Mergers.unit_of`: old code →
successor): a node of a merged commune writes for the new one, and an event it queued offline
under the old code before it heard of the merger is the new unit's too — accepted, not a
violation. History keeps the code the event names; only the comparison resolves it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from protocol.events import Event
from protocol.messages import Rejection

log = logging.getLogger(__name__)


def same_unit(code: str) -> str:
    """No mergers: every code is its own unit."""
    return code


def check_writes(commune: str, events: list[Event], known: Mapping[str, str | None],
                 unit_of: Callable[[str], str] = same_unit
                 ) -> tuple[list[Event], list[Rejection]]:
    """Which of a node's `events` (in seq order) its commune may write, given `known`: the
    commune the hub holds each dossier under (None or absent: no such dossier), and `unit_of`:
    the unit a code belongs to now (mergers). A dossier created earlier in the same batch counts
    as known from there on."""
    unit = unit_of(commune)
    communes = {d: c for d, c in known.items() if c is not None}
    accepted: list[Event] = []
    rejections: list[Rejection] = []
    for event in events:
        held = communes.get(event.dossier)
        if event.kind == "create":
            if unit_of(str(event.payload.get("commune"))) != unit:
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
        elif unit_of(held) != unit:
            rejections.append(Rejection(event.seq, "scope", "dossier belongs to another commune"))
            continue
        accepted.append(event)
    return accepted, rejections
