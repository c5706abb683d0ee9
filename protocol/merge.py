"""The dossier fold: state is a deterministic function of the *set* of a dossier's events.

Theory. Every scalar path (`applicant.address`, `fields.x`, `status`, `due_at`) is a multi-value
register. Its live writes are the maximal writes under happened-before, where a happened before b iff
`b.deps[a.origin] >= a.seq` (deps are full version vectors, so the relation is transitive and can be
decided pairwise). Because max(S ∪ {x}) = max(max(S) ∪ {x}) for any partial order, inserting writes
one at a time gives the same live set in any order, and a seen-set makes duplicates no-ops. Several
live writes with different values are a conflict: all are kept; the displayed one is the highest
(hlc, origin, seq) so every replica shows the same. A resolve is a write that has seen every live
write, so it replaces them. Attachments are an observed-remove set of labelled entries (attach
tags, detach tombstones): an entry references a blob by its sha256, or lists a paper document
without one, and many entries may reference one blob (a clerk scans a whole stack into one PDF).
Comments are a grow-only set. None of them conflict.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from protocol.codec import pack_canonical
from protocol.events import Event, EventId, seen_by

log = logging.getLogger(__name__)

HEADER_KEYS = ("procedure", "commune", "code", "received_at", "channel")
ATTACH_KEYS = ("sha256", "name", "mime", "size", "label")  # always kept (None when absent)
ENTRY_KEYS = ("doc_kind", "count")  # kept only when written, so older events fold as before


class Write(NamedTuple):
    """One live write of a register: the value, who wrote it, when, and what they had seen."""

    value: Any
    origin: str
    seq: int
    hlc: int
    actor: str
    deps: dict[str, int]


@dataclass(frozen=True, slots=True)
class DossierState:
    """The folded state of one dossier. Treat every container as read-only."""

    id: str
    header: dict[str, Any] | None = None
    registers: dict[str, tuple[Write, ...]] = field(default_factory=dict)
    vv: dict[str, int] = field(default_factory=dict)
    seen: frozenset[EventId] = frozenset()
    attachments: dict[str, dict[str, Any]] = field(default_factory=dict)
    tombstones: frozenset[str] = frozenset()
    comments: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_hlc: int = 0

    def value(self, path: str, default: Any = None) -> Any:
        """The displayed value of `path`: the live write with the highest (hlc, origin, seq)."""
        writes = self.registers.get(path)
        return writes[0].value if writes else default

    def conflicts(self) -> dict[str, tuple[Write, ...]]:
        """The paths whose live writes disagree, with every live write."""
        return {
            path: writes
            for path, writes in sorted(self.registers.items())
            if len(writes) > 1 and len({_value_key(w.value) for w in writes}) > 1
        }

    def live_attachments(self) -> list[dict[str, Any]]:
        """Every attachment entry present now (not tombstoned), oldest first, each with its tag;
        entries sharing a blob are all kept (each is a document of its own)."""
        return [{**info, "tag": tag}
                for tag, info in sorted(self.attachments.items(),
                                        key=lambda kv: (kv[1]["hlc"], kv[0]))
                if tag not in self.tombstones]


def _value_key(value: Any) -> Any:
    if isinstance(value, dict | list):
        return pack_canonical(value)
    return (type(value).__name__, value)


def _sort_key(write: Write) -> tuple[int, str, int]:
    return (write.hlc, write.origin, write.seq)


def _insert(live: tuple[Write, ...], new: Write) -> tuple[Write, ...]:
    if not live:
        return (new,)
    new_id = (new.origin, new.seq)
    for existing in live:
        if (existing.origin, existing.seq) == new_id or seen_by(new_id, existing.deps):
            return live  # a duplicate, or a write someone already overwrote having seen it
    kept = [w for w in live if not seen_by((w.origin, w.seq), new.deps)]
    kept.append(new)
    kept.sort(key=_sort_key, reverse=True)
    return tuple(kept)


def writes_of(event: Event) -> dict[str, Any]:
    """The register paths an event writes, with their values."""
    payload = event.payload
    if event.kind == "create":
        out = dict(payload.get("set", {}))
        out["status"] = payload.get("status", "accepted")
        out["due_at"] = payload.get("due_at")
        return out
    if event.kind == "set":
        return dict(payload.get("set", {}))
    if event.kind == "transition":
        out = {"status": payload["to"]}
        if "due_at" in payload:
            out["due_at"] = payload["due_at"]
        return out
    if event.kind == "resolve":
        return {payload["field"]: payload["value"]}
    if event.kind == "transfer":  # the competent commune is a register: transfers can conflict
        return {"commune": payload["to"]}
    return {}


def apply(state: DossierState | None, event: Event) -> DossierState:
    """Fold one event into a dossier's state; duplicates and any delivery order give the same result."""
    if state is None:
        if event.kind == "create":
            return _fresh(event)
        state = DossierState(id=event.dossier)
    elif event.dossier != state.id:
        raise ValueError("event belongs to another dossier")
    event_id = (event.origin, event.seq)
    if event_id in state.seen:
        return state
    registers = state.registers
    writes = writes_of(event)
    if writes:
        registers = dict(registers)
        origin, seq, hlc, actor, deps = event.origin, event.seq, event.hlc, event.actor, event.deps
        new = tuple.__new__
        for path, value in writes.items():
            registers[path] = _insert(registers.get(path, ()),
                                      new(Write, (value, origin, seq, hlc, actor, deps)))
    vv = state.vv
    if vv.get(event.origin, 0) < event.seq:
        vv = {**vv, event.origin: event.seq}
    header = state.header
    if event.kind == "create" and (header is None or (event.hlc, event.origin, event.seq) < (
            header["hlc"], header["origin"], header["seq"])):
        # Two creates of one id (only a hostile or broken node makes them; the hub refuses the
        # second): the earliest wins everywhere, whatever the delivery order.
        header = _header(event)
    tag = f"{event.origin}:{event.seq}"
    attachments, tombstones, comments = state.attachments, state.tombstones, state.comments
    if event.kind == "attach":
        payload = event.payload
        info = {k: payload.get(k) for k in ATTACH_KEYS}
        info.update({k: payload[k] for k in ENTRY_KEYS if k in payload})
        info.update(actor=event.actor, origin=event.origin, hlc=event.hlc)
        attachments = {**attachments, tag: info}
    elif event.kind == "detach":
        tombstones = tombstones | frozenset(event.payload.get("tags", []))
    elif event.kind == "comment":
        note = {"text": event.payload.get("text", ""), "actor": event.actor,
                "origin": event.origin, "hlc": event.hlc}
        comments = {**comments, tag: note}
    return DossierState(state.id, header, registers, vv, state.seen | {event_id}, attachments,
                        tombstones, comments, max(state.last_hlc, event.hlc))


def _header(create: Event) -> dict[str, Any]:
    """A dossier's header from its create: the original units stay here for history (a transfer
    writes the `commune` register). `received_by` is kept only when written, so a dossier
    received by its own commune folds to the same state and digest as before."""
    header = {k: create.payload.get(k) for k in HEADER_KEYS}
    if create.payload.get("received_by"):
        header["received_by"] = create.payload["received_by"]
    header.update(origin=create.origin, seq=create.seq, hlc=create.hlc, actor=create.actor)
    return header


def _fresh(event: Event) -> DossierState:
    """The state of a dossier whose first known event is its create (the common case)."""
    new = tuple.__new__
    origin, seq, hlc, actor, deps = event.origin, event.seq, event.hlc, event.actor, event.deps
    registers: dict[str, tuple[Write, ...]] = {
        path: (new(Write, (value, origin, seq, hlc, actor, deps)),)
        for path, value in writes_of(event).items()}
    header = _header(event)
    return DossierState(event.dossier, header, registers, {origin: seq},
                        frozenset(((origin, seq),)), {}, frozenset(), {}, hlc)


def fold(events: list[Event], state: DossierState | None = None) -> DossierState | None:
    """Fold many events of one dossier."""
    for event in events:
        state = apply(state, event)
    return state


def to_plain(state: DossierState) -> dict[str, Any]:
    """A msgpack-friendly form of the state, deterministic for equal states."""
    return {
        "id": state.id,
        "header": state.header,
        "registers": dict(sorted(state.registers.items())),  # Writes pack as arrays
        "vv": dict(sorted(state.vv.items())),
        "seen": sorted([list(s) for s in state.seen]),
        "attachments": dict(sorted(state.attachments.items())),
        "tombstones": sorted(state.tombstones),
        "comments": dict(sorted(state.comments.items())),
        "last_hlc": state.last_hlc,
    }


def from_plain(data: dict[str, Any]) -> DossierState:
    """Rebuild a state from `to_plain` output."""
    return DossierState(
        id=data["id"],
        header=data["header"],
        registers={p: tuple(Write(*w) for w in ws) for p, ws in data["registers"].items()},
        vv=dict(data["vv"]),
        seen=frozenset((o, s) for o, s in data["seen"]),
        attachments=dict(data["attachments"]),
        tombstones=frozenset(data["tombstones"]),
        comments=dict(data["comments"]),
        last_hlc=data["last_hlc"],
    )


def digest(state: DossierState) -> str:
    """A hex digest of the state that replicas compare to prove they converged."""
    return hashlib.sha256(pack_canonical(to_plain(state))).hexdigest()
