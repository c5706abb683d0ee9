"""What the hub's answers can show to be wrong with it, and how long staff are told (a table).

A `Notice` is raised by one answer (`protocol.session.EdgeSession.answer`); the most serious one
stands for staff (`Standing`) until it is over. `WARNINGS` says how each kind behaves: a more
serious one replaces a lesser; a restore's ends by itself once what the restore undid is done
again; a lasting one — a disagreement no later answer heals — stays a week.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

HUB_RESTORED = "hub_restored"  # the hub acks less than it had: this node sends its events again
HUB_LOG_RESET = "hub_log_reset"  # the hub's log restarted (new epoch): it is read again from 0
HUB_ID_REUSED = "hub_id_reused"  # the hub sent an id held here with other content: kept ours
HUB_EDITS_LOST = "hub_edits_lost"  # the restored hub lacks its own edits held here: kept here
HUB_WARNING = "hub_warning"  # a warning kept by a version that stored no code
LASTING_KEEP_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class WarningKind:
    """How a warning kind behaves: `rank` (0 most serious: a warning stands against a lesser
    one), and whether it is `lasting` (a disagreement no later answer heals: kept a week, long
    enough for staff to see it and call the province) or ends once its cause is undone."""

    rank: int
    lasting: bool


WARNINGS: dict[str, WarningKind] = {
    HUB_ID_REUSED: WarningKind(0, lasting=True),
    HUB_EDITS_LOST: WarningKind(0, lasting=True),
    HUB_RESTORED: WarningKind(1, lasting=False),
    HUB_LOG_RESET: WarningKind(1, lasting=False),
    HUB_WARNING: WarningKind(9, lasting=False),
}


def warning_kind(code: str) -> WarningKind:
    """The kind of a warning code (an unknown one, kept by another version: the least)."""
    return WARNINGS.get(code, WARNINGS[HUB_WARNING])


@dataclass(frozen=True, slots=True)
class Notice:
    """Something one answer showed to be wrong with the hub (`code` of `WARNINGS`)."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Standing:
    """The warning kept for staff: since `at` (hub ms); a restore's ends once the hub acks this
    node's events up to `until` (its last seq when warned) and all is read again."""

    code: str
    message: str
    at: int
    until: int


def edits_lost(seen: Mapping[str, int], held: Iterable[tuple[str, int, str]]) -> Notice | None:
    """At the end of a re-read: the hub events held here (origin, seq, dossier code) past what
    the restored hub sent are edits it lost; they stay here, and staff are told which dossiers."""
    lost: list[str] = []
    for origin, seq, dossier in held:
        if seq > seen.get(origin, 0) and dossier not in lost:
            lost.append(dossier)
    if not lost:
        return None
    return Notice(HUB_EDITS_LOST,
        f"the restored hub lacks edits it had made to {len(lost)} dossier(s) held here "
        f"({', '.join(lost[:5])}{'…' if len(lost) > 5 else ''}): kept here; tell the hub's "
        "operators to redo them")
