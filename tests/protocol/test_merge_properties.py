"""Property tests of the fold over random causal histories written by three replicas.

Each replica (two communes and the hub) keeps the set of events it has seen, its hybrid clock and
its incrementally folded state. A step either writes (set, transition, resolve, comment, attach,
detach) with deps = the writer's version vector, or delivers events from one replica to another,
an event only ever arriving after everything it depends on. The union of all events is then folded
in arbitrary orders, with duplicates, and twice, and compared with an independent oracle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.events import Event, EventId, seen_by
from protocol.hlc import Clock
from protocol.merge import DossierState, apply, digest, fold, writes_of

EXAMPLES = int(os.environ.get("FOLD_EXAMPLES", "300"))

DOSSIER = "01943a2b-7c00-7abc-8def-0123456789ab"
T = 1_767_600_000_000
ORIGINS = ("e1", "e2", "hub")
SKEW_MS = {"e1": 0, "e2": -5_000, "hub": 7_000}  # clocks disagree, so hlc order != causal order
PREV = b"\x00" * 32
SET_PATHS = ("applicant.address", "applicant.phone", "fields.child_full_name", "fields.x")
VALUES = ("A", "B", "Đông", 1, None)
STATUSES = ("processing", "supplement_requested", "withdrawn", "resolved")
SHAS = ("a" * 64, "b" * 64)
WRITE_OPS = ("set", "set", "transition", "resolve", "comment", "attach", "detach")
PAIRS = tuple((a, b) for a in ORIGINS for b in ORIGINS if a != b)
# Strategies built once: building them inside the generator dominates the run time.
SEQ_STEP = st.integers(1, 3)
TIME_STEP = st.integers(0, 3)
STEP_KIND = st.integers(0, 2)
OPS_COUNT = st.integers(4, 36)
DELIVER_COUNT = st.integers(1, 6)
BOOLS = st.booleans()
DAYS = st.integers(0, 3)
ORIGIN = st.sampled_from(ORIGINS)
PAIR = st.sampled_from(PAIRS)
WRITE_OP = st.sampled_from(WRITE_OPS)
SET_PATHS_ST = st.lists(st.sampled_from(SET_PATHS), min_size=1, max_size=2, unique=True)
VALUE = st.sampled_from(VALUES)
STATUS = st.sampled_from(STATUSES)
RESOLVE_PATH = st.sampled_from((*SET_PATHS, "status"))
TEXT = st.sampled_from(("Thiếu giấy", "OK"))
SHA = st.sampled_from(SHAS)
CREATE_PAYLOAD: dict[str, Any] = {
    "procedure": "1.001193",
    "commune": "02245",
    "code": "H57.132-260105-0001",
    "received_at": T,
    "channel": "counter",
    "status": "accepted",
    "due_at": T + 3_600_000,
    "set": {"applicant.full_name": "Nguyễn Văn An", "applicant.address": "A"},
}


@dataclass
class Replica:
    seen: dict[EventId, Event] = field(default_factory=dict)
    clock: Clock = field(default_factory=Clock)
    state: DossierState | None = None

    def add(self, event: Event) -> None:
        self.seen[event.id] = event
        self.state = apply(self.state, event)

    def vv(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for origin, seq in self.seen:
            out[origin] = max(out.get(origin, 0), seq)
        return out


@dataclass
class History:
    events: list[Event]
    replicas: dict[str, Replica]


@st.composite
def histories(draw: st.DrawFn) -> History:
    replicas = {o: Replica() for o in ORIGINS}
    next_seq = dict.fromkeys(ORIGINS, 1)
    events: list[Event] = []
    step = 0

    def now(origin: str) -> int:
        return T + step * 10 + SKEW_MS[origin]

    def write(origin: str, kind: str, payload: dict[str, Any]) -> None:
        replica = replicas[origin]
        seq = next_seq[origin]
        next_seq[origin] += draw(SEQ_STEP)  # the origin also writes other dossiers
        replica.clock, stamp = replica.clock.send(now(origin))
        event = Event(origin, seq, stamp, DOSSIER, f"{origin}.clerk", kind, payload,
                      replica.vv(), b"" if seq == 1 else PREV)
        replica.add(event)
        events.append(event)

    def deliver(src: Replica, dst: Replica, count: int, merge_clock: bool, origin: str) -> None:
        moved = 0
        progress = True
        while moved < count and progress:
            progress = False
            for eid in sorted(set(src.seen) - set(dst.seen)):
                event = src.seen[eid]
                # causal delivery: everything the writer had seen is already here
                if all(d in dst.seen for d in src.seen if seen_by(d, event.deps)):
                    if merge_clock:
                        dst.clock, _ = dst.clock.receive(event.hlc, now(origin))
                    dst.add(event)
                    moved += 1
                    progress = True
                    if moved == count:
                        return

    write("e1", "create", CREATE_PAYLOAD)
    for _ in range(draw(OPS_COUNT)):
        step += draw(TIME_STEP)
        if draw(STEP_KIND) == 0:
            src, dst = draw(PAIR)
            deliver(replicas[src], replicas[dst], draw(DELIVER_COUNT), draw(BOOLS), dst)
            continue
        origin = draw(ORIGIN)
        replica = replicas[origin]
        if replica.state is None or replica.state.header is None:
            continue  # nobody edits a dossier they have not received
        op = draw(WRITE_OP)
        if op == "set":
            paths = draw(SET_PATHS_ST)
            write(origin, "set", {"set": {p: draw(VALUE) for p in paths}})
        elif op == "transition":
            payload: dict[str, Any] = {"to": draw(STATUS),
                                       "from": replica.state.value("status")}
            if draw(BOOLS):
                payload["due_at"] = T + draw(DAYS) * 86_400_000
            write(origin, "transition", payload)
        elif op == "resolve":
            path = draw(RESOLVE_PATH)
            value = draw(STATUS if path == "status" else VALUE)
            write(origin, "resolve", {"field": path, "value": value})
        elif op == "comment":
            write(origin, "comment", {"text": draw(TEXT)})
        elif op == "attach":
            write(origin, "attach", {"sha256": draw(SHA), "name": "scan.pdf",
                                     "mime": "application/pdf", "size": 10})
        else:
            tags = sorted(f"{e.origin}:{e.seq}" for e in replica.seen.values() if e.kind == "attach")
            if tags:
                chosen = draw(st.lists(st.sampled_from(tags), min_size=1, max_size=2, unique=True))
                write(origin, "detach", {"tags": chosen})
    return History(events, replicas)


def folded(events: list[Event], state: DossierState | None = None) -> DossierState:
    result = fold(events, state)
    assert result is not None
    return result


@settings(max_examples=EXAMPLES, deadline=None)
@given(history=histories(), data=st.data())
def test_any_delivery_order_gives_the_same_digest(history: History, data: st.DataObject) -> None:
    expected = digest(folded(history.events))
    shuffled = data.draw(st.permutations(history.events))
    assert digest(folded(shuffled)) == expected


@settings(max_examples=EXAMPLES, deadline=None)
@given(history=histories(), data=st.data())
def test_duplicates_change_nothing(history: History, data: st.DataObject) -> None:
    expected = digest(folded(history.events))
    extra = data.draw(st.lists(st.sampled_from(history.events), min_size=1, max_size=20))
    with_dups = data.draw(st.permutations(history.events + extra))
    assert digest(folded(with_dups)) == expected


@settings(max_examples=EXAMPLES, deadline=None)
@given(history=histories(), data=st.data())
def test_fold_is_idempotent(history: History, data: st.DataObject) -> None:
    once = folded(history.events)
    again = folded(data.draw(st.permutations(history.events)), once)
    assert digest(again) == digest(once)
    assert again == once


def _happened_before(a: Event, b: Event) -> bool:
    return a.id != b.id and seen_by(a.id, b.deps)


@settings(max_examples=EXAMPLES, deadline=None)
@given(history=histories())
def test_fold_matches_the_oracle(history: History) -> None:
    """Live writes are exactly the maximal writes under happened-before; sets are OR-sets."""
    events = history.events
    state = folded(events)
    writers: dict[str, list[Event]] = {}
    for event in events:
        for path in writes_of(event):
            writers.setdefault(path, []).append(event)
    assert set(state.registers) == set(writers)
    for path, ws in writers.items():
        live = [w for w in ws if not any(_happened_before(w, other) for other in ws)]
        assert {(w.origin, w.seq) for w in state.registers[path]} == {w.id for w in live}
        top = max(live, key=lambda w: (w.hlc, w.origin, w.seq))
        assert state.value(path) == writes_of(top)[path]
        disagree = len({repr(writes_of(w)[path]) for w in live}) > 1
        assert (path in state.conflicts()) == disagree
    removed = {t for e in events if e.kind == "detach" for t in e.payload["tags"]}
    live_tags = {f"{e.origin}:{e.seq}" for e in events if e.kind == "attach"} - removed
    assert {a["tag"] for a in state.live_attachments()} <= live_tags
    assert {a["sha256"] for a in state.live_attachments()} == {
        state.attachments[t]["sha256"] for t in live_tags}
    assert state.vv == {o: max(e.seq for e in events if e.origin == o)
                        for o in {e.origin for e in events}}


@settings(max_examples=EXAMPLES, deadline=None)
@given(history=histories())
def test_incremental_state_equals_rebuilt(history: History) -> None:
    """Each replica folded events as they came; rebuilding from its log gives the same state."""
    by_id = {e.id: e for e in history.events}
    for replica in history.replicas.values():
        if replica.state is None:
            continue
        rebuilt = folded(sorted(replica.seen.values(), key=lambda e: e.id))
        assert digest(replica.state) == digest(rebuilt)
        assert set(replica.seen) <= set(by_id)
