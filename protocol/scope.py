"""Scope: which dossiers a node may read and write, decided from the hub's records, never from
the payload.

A dossier has two units (`Units`): the competent commune (`commune`, which a `transfer` moves)
and the receiving unit (`received_by`: the desk that took it in — any commune of the province,
Decree 118/2025 — or `online`). A node's scope set is its commune plus every code merged into
it (the hub's `HubStore.scope_of`, from the mergers it recorded). A dossier is in a node's
scope when either of its units is in the set, and the node's role
(`role_of`) decides what it may write (`may_write`):

- the competent commune's nodes: anything the lifecycle allows, a transfer included;
- the receiving desk's nodes: the create (the receipt), the supplements it takes in (attach,
  comment) and the hand-back (`transition` to `returned`); nothing else;
- anyone else: nothing (a commune the dossier was transferred away from keeps reading what it
  received, and writes no more).

What the node claims in an event is not trusted; the hub's record of each dossier's units is.

Units are compared after mergers (`unit_of`, `protocol.communes.Mergers.unit_of`: old code ->
successor): a node of a merged commune is the new one's, and an event it queued offline under
the old code before it heard of the merger is the new unit's too — accepted, not a violation.
History keeps the code the event names; only the comparison resolves it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from protocol.events import Event
from protocol.merge import DossierState
from protocol.messages import Rejection

log = logging.getLogger(__name__)

ONLINE = "online"  # the receiving unit of a dossier filed through the hub's online intake
COMPETENT, RECEIVING = "competent", "receiving"
RECEIVING_KINDS = frozenset({"attach", "comment"})  # supplements the receiving desk takes in
HAND_BACK = "returned"  # the one move the receiving desk may make: handing back the result


@dataclass(frozen=True, slots=True)
class Units:
    """A dossier's competent commune and the unit that received it."""

    commune: str
    received_by: str

    @classmethod
    def of_create(cls, event: Event) -> Units:
        """The units a create names (the receiving unit defaults to the competent one)."""
        commune = str(event.payload.get("commune") or "")
        return cls(commune, str(event.payload.get("received_by") or commune))

    def moved(self, event: Event) -> Units:
        """The units after `event` (a transfer moves competence; the receiving unit stays)."""
        if event.kind == "transfer":
            return Units(str(event.payload["to"]), self.received_by)
        return self

    def resolved(self, unit_of: Callable[[str], str]) -> Units:
        """The same units after mergers (`online` stays itself)."""
        return Units(unit_of(self.commune),
                     self.received_by if self.received_by == ONLINE else unit_of(self.received_by))

    def all(self) -> frozenset[str]:
        """The communes that hold the dossier (`online` is no commune)."""
        return frozenset(u for u in (self.commune, self.received_by) if u and u != ONLINE)


def same_unit(code: str) -> str:
    """No mergers: every code is its own unit."""
    return code


def units_of(state: DossierState | None) -> Units | None:
    """A folded dossier's units, or None while its create is not known."""
    if state is None or state.header is None:
        return None
    header = state.header
    commune = str(state.value("commune") or header.get("commune") or "")
    return Units(commune, str(header.get("received_by") or header.get("commune") or ""))


def role_of(units: Units, scope: Iterable[str]) -> str | None:
    """The role a node with this scope set has for a dossier: competent, receiving, or None."""
    held = frozenset(scope)
    if units.commune in held:
        return COMPETENT
    if units.received_by in held:
        return RECEIVING
    return None


def may_write(role: str | None, kind: str, to: object = None) -> str | None:
    """Why a node in `role` may not write an event of `kind` (a transition's target `to`), or
    None when it may. The lifecycle's own rule is checked where the event is written."""
    if role == COMPETENT:
        return None
    if role == RECEIVING:
        if kind in RECEIVING_KINDS or (kind == "transition" and to == HAND_BACK):
            return None
        return f"the receiving desk may not write {kind!r} (the competent commune does)"
    return "dossier belongs to another commune"


def check_writes(scope: str | Iterable[str], events: list[Event],
                 known: Mapping[str, Units | str | None],
                 unit_of: Callable[[str], str] = same_unit
                 ) -> tuple[list[Event], list[Rejection]]:
    """Which of a node's `events` (in seq order) its scope set (or its one commune) may write,
    given `known`: the units the hub holds each dossier under (a plain commune: received there
    too; None or absent: no such dossier). A dossier created earlier in the same batch counts as
    known from there on, and a transfer accepted earlier moves it. Every code is compared as
    the unit it belongs to now (`unit_of`: mergers)."""
    held = frozenset(unit_of(s) for s in ((scope,) if isinstance(scope, str) else scope))
    units: dict[str, Units] = {d: (u if isinstance(u, Units) else Units(u, u)).resolved(unit_of)
                               for d, u in known.items() if u is not None}
    accepted: list[Event] = []
    rejections: list[Rejection] = []
    for event in events:
        have = units.get(event.dossier)
        if event.kind == "create":
            new = Units.of_create(event).resolved(unit_of)
            if new.received_by not in held:
                # a desk takes in for any commune of the province, but only as itself
                rejections.append(Rejection(event.seq, "scope",
                                            "dossier created for another commune"))
                continue
            if have is not None:
                rejections.append(Rejection(event.seq, "duplicate_id",
                                            "a dossier with this id already exists"))
                continue
            units[event.dossier] = new
        elif have is None:
            rejections.append(Rejection(event.seq, "unknown_dossier",
                                        "no such dossier at the hub"))
            continue
        else:
            role = role_of(have, held)
            why = may_write(role, event.kind, event.payload.get("to"))
            if why is not None:
                rejections.append(Rejection(event.seq, "scope" if role is None else "role", why))
                continue
            units[event.dossier] = have.moved(event).resolved(unit_of)
        accepted.append(event)
    return accepted, rejections
