"""`central-hub verify`: audit the whole log and name the first bad event.

For every origin, from seq 1: each stored event (in the log or in quarantine, never both) must
decode and validate, its stored hash must be the SHA-256 of its stored canonical bytes, its
origin and seq must be where it is filed, its `prev` must be the previous event's hash, there must
be no gap, and log positions must grow with seq. The recorded chain head of each node must be its
last event. A database edited behind the hub's back fails at the edit or at the next event.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

from central_hub.store import HubStore
from protocol import codec
from protocol.errors import SyncError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Finding:
    """The first problem in one origin's chain."""

    origin: str
    seq: int
    pos: int | None
    problem: str

    def describe(self) -> str:
        """One line for people."""
        where = f"log position {self.pos}" if self.pos is not None else "quarantine"
        return f"origin {self.origin} seq {self.seq} ({where}): {self.problem}"


@dataclass(slots=True)
class Report:
    """What the audit found."""

    origins: int = 0
    events: int = 0
    quarantined: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True iff nothing is wrong."""
        return not self.findings

    @property
    def first(self) -> Finding | None:
        """The bad event earliest in the log (quarantined ones after all logged ones)."""
        if not self.findings:
            return None
        return min(self.findings, key=lambda f: (f.pos is None, f.pos or 0, f.origin, f.seq))


def _check_body(origin: str, seq: int, digest: bytes, body: bytes, prev: bytes) -> str | None:
    if hashlib.sha256(body).digest() != digest:
        return "stored hash does not match the stored event (the event or its hash was altered)"
    try:
        event = codec.event_from_list(codec.unpack(body))
    except (SyncError, ValueError, TypeError) as exc:
        return f"stored event does not decode: {exc}"
    if event.origin != origin or event.seq != seq:
        return f"stored event is {event.origin} seq {event.seq}, filed as {origin} seq {seq}"
    if codec.canonical(event) != body:
        return "stored event is not in canonical form"
    if event.prev != prev:
        return (f"prev does not match the hash of seq {seq - 1}: the chain is broken there "
                f"(seq {seq - 1} or this event was altered)")
    return None


async def _audit_origin(store: HubStore, origin: str, head: tuple[int, bytes] | None,
                        report: Report) -> Finding | None:
    expect, prev, last_pos = 1, b"", 0
    async for table, seq, pos, digest, body in store.trust.audit_rows(origin):
        report.events += table == "events"
        report.quarantined += table == "quarantine"
        if seq < expect:
            return Finding(origin, seq, pos, "the same seq is stored twice (log and quarantine)")
        if seq > expect:
            return Finding(origin, expect, pos, f"gap: seq {expect}–{seq - 1} missing")
        problem = _check_body(origin, seq, digest, body, prev)
        if problem is None and pos is not None:
            if pos <= last_pos:
                problem = f"log position {pos} is not after the previous event's ({last_pos})"
            last_pos = pos
        if problem is not None:
            return Finding(origin, seq, pos, problem)
        expect, prev = seq + 1, digest
    if head is not None and head != (expect - 1, prev):
        return Finding(origin, head[0], None,
                       f"recorded chain head (seq {head[0]}) does not match the last stored "
                       f"event (seq {expect - 1})")
    return None


async def audit(store: HubStore) -> Report:
    """Audit every origin's chain in the hub's log."""
    report = Report()
    for origin, head in sorted((await store.trust.audit_origins()).items()):
        report.origins += 1
        finding = await _audit_origin(store, origin, head, report)
        if finding is not None:
            report.findings.append(finding)
    return report
