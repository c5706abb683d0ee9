"""Property tests of the fold over random causal histories written by three replicas.

Each replica (two communes and the hub) keeps the log of events it has seen, its version vector,
its hybrid clock and its incrementally folded state. A step either writes (set, transition,
resolve, comment, attach, detach) with deps = the writer's version vector, or delivers events from
one replica to another in a random causal order (an event only ever arrives after everything it
depends on). The union of all events is then folded in arbitrary orders, with duplicates, and
twice, and compared with an independent oracle; each replica's incremental state is compared with
a rebuild from its log.

Speed (each property runs FOLD_EXAMPLES examples, default 10,000, in plain `pytest`): Hypothesis
draws two integers per example (a size and a seed) and the history is built from
`random.Random(seed)`, with payloads taken from pools validated once at import, so events are
built without re-validation (`test_generated_events_are_valid_and_histories_interesting` checks
that they would pass it, and that the histories really have conflicts, resolves, detaches and
skewed clocks). The orders, duplicates and picks of the checks come from the same generator, so a
failure's `size=..., seed=...` replays it exactly; shrinking `size` keeps a prefix of the same
history. All five properties are checked on each example of one test (`test_fold_algebra`), so
the build and Hypothesis's per-example overhead are paid once, not five times.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from itertools import permutations
from typing import Any

from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from protocol.events import Event, EventId, check_payload, seen_by
from protocol.hlc import Clock
from protocol.merge import DossierState, apply, digest, fold, writes_of

EXAMPLES = int(os.environ.get("FOLD_EXAMPLES", "10000"))
# No example database (nothing to replay: size and seed are printed) and no explain phase (it
# re-runs the failing case under a tracer, slow and useless for a seed-driven generator).
FOLD = settings(max_examples=EXAMPLES, deadline=None, database=None,
                phases=(Phase.explicit, Phase.generate, Phase.shrink))
SIZES = st.integers(4, 40)  # steps of a history (writes and deliveries)
SEEDS = st.integers(0, 2**32 - 1)

DOSSIER = "01943a2b-7c00-7abc-8def-0123456789ab"
T = 1_767_600_000_000
DAY = 86_400_000
ORIGINS = ("e1", "e2", "hub")
SKEW_MS = {"e1": 0, "e2": -5_000, "hub": 7_000}  # clocks disagree, so hlc order != causal order
PREV = b"\x00" * 32
SET_PATHS = ("applicant.address", "applicant.phone", "fields.child_full_name", "fields.x")
VALUES = ("A", "B", "Đông", 1, None)
STATUSES = ("processing", "supplement_requested", "withdrawn", "resolved")
SHAS = ("a" * 64, "b" * 64)
WRITE_OPS = ("set", "set", "transition", "resolve", "comment", "attach", "detach")
DUE_DAYS = (None, None, 0, 1, 2, 3)  # None: the transition leaves due_at alone
PAIRS = tuple((a, b) for a in ORIGINS for b in ORIGINS if a != b)
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

# Every payload a history can use (detach tags aside), validated once here. Events share these
# dicts: the fold treats payloads as read-only.
SET_PAYLOADS = tuple(
    {"set": dict(zip(paths, values, strict=True))}
    for n in (1, 2)
    for paths in permutations(SET_PATHS, n)
    for values in ([(v,) for v in VALUES] if n == 1 else [(a, b) for a in VALUES for b in VALUES])
)
TRANSITION_PAYLOADS = {
    (to, frm, due): {"to": to, "from": frm} | ({} if due is None else {"due_at": T + due * DAY})
    for to in STATUSES for frm in ("accepted", *STATUSES) for due in DUE_DAYS
}
RESOLVE_PAYLOADS = tuple(
    [{"field": p, "value": v} for p in SET_PATHS for v in VALUES]
    + [{"field": "status", "value": s} for s in STATUSES]
)
COMMENT_PAYLOADS = ({"text": "Thiếu giấy"}, {"text": "OK"})
# Scans (several entries may reference one blob) and paper documents listed without a scan.
ATTACH_PAYLOADS = (*({"sha256": s, "name": "scan.pdf", "mime": "application/pdf", "size": 10,
                      "label": label} for s in SHAS for label in ("Tờ khai", "Giấy chứng sinh")),
                   {"label": "Giấy chứng sinh", "doc_kind": "bản chính", "count": 1},
                   {"label": "Tờ khai", "doc_kind": "bản sao", "count": 2})
for _kind, _pool in (("create", [CREATE_PAYLOAD]), ("set", SET_PAYLOADS),
                     ("transition", TRANSITION_PAYLOADS.values()), ("resolve", RESOLVE_PAYLOADS),
                     ("comment", COMMENT_PAYLOADS), ("attach", ATTACH_PAYLOADS)):
    for _payload in _pool:
        check_payload(_kind, _payload)


@dataclass(slots=True)
class Replica:
    log: list[Event] = field(default_factory=list)  # in arrival order
    seen: set[EventId] = field(default_factory=set)
    vv: dict[str, int] = field(default_factory=dict)
    clock: Clock = field(default_factory=Clock)
    state: DossierState | None = None
    tags: list[str] = field(default_factory=list)  # attachments seen here

    def add(self, event: Event) -> None:
        self.log.append(event)
        self.seen.add((event.origin, event.seq))
        if self.vv.get(event.origin, 0) < event.seq:
            self.vv[event.origin] = event.seq
        self.state = apply(self.state, event)
        if event.kind == "attach":
            self.tags.append(f"{event.origin}:{event.seq}")

    def ready(self, event: Event) -> bool:
        """Everything the writer had seen is here. A replica's log is causally closed and each
        origin's events are chained by deps, so comparing version vectors decides it."""
        vv = self.vv
        return all(vv.get(o, 0) >= s for o, s in event.deps.items())


@dataclass(slots=True)
class History:
    events: list[Event]  # in the order they were written
    replicas: dict[str, Replica]
    rng: random.Random  # carries on from the build: the test's orders and picks come from it


def build_history(size: int, seed: int) -> History:
    """A causal history of one dossier; a function of (size, seed) only, and the history of a
    smaller size is a prefix of the larger one's."""
    rng = random.Random(seed)
    rand, choice = rng.random, rng.choice
    replicas = {o: Replica() for o in ORIGINS}
    next_seq = dict.fromkeys(ORIGINS, 1)
    events: list[Event] = []
    step = 0

    def write(origin: str, kind: str, payload: dict[str, Any]) -> None:
        replica = replicas[origin]
        seq = next_seq[origin]
        next_seq[origin] += 1 + int(rand() * 3)  # the origin also writes other dossiers
        replica.clock, stamp = replica.clock.send(T + step * 10 + SKEW_MS[origin])
        event = Event.trusted(origin, seq, stamp, DOSSIER, f"{origin}.clerk", kind, payload,
                              dict(replica.vv), b"" if seq == 1 else PREV)
        replica.add(event)
        events.append(event)

    write("e1", "create", CREATE_PAYLOAD)
    for _ in range(size):
        step += int(rand() * 4)
        if rand() < 1 / 3:
            src_name, dst_name = choice(PAIRS)
            src, dst = replicas[src_name], replicas[dst_name]
            missing = [e for e in src.log if (e.origin, e.seq) not in dst.seen]
            merge_clock = rand() < 0.5
            for _ in range(1 + int(rand() * 6)):
                ready = [e for e in missing if dst.ready(e)]
                if not ready:
                    break
                event = choice(ready)
                missing.remove(event)
                if merge_clock:
                    dst.clock, _ = dst.clock.receive(event.hlc, T + step * 10 + SKEW_MS[dst_name])
                dst.add(event)
            continue
        origin = choice(ORIGINS)
        replica = replicas[origin]
        if replica.state is None or replica.state.header is None:
            continue  # nobody edits a dossier they have not received
        op = choice(WRITE_OPS)
        if op == "set":
            write(origin, "set", choice(SET_PAYLOADS))
        elif op == "transition":
            key = (choice(STATUSES), replica.state.value("status"), choice(DUE_DAYS))
            write(origin, "transition", TRANSITION_PAYLOADS[key])
        elif op == "resolve":
            write(origin, "resolve", choice(RESOLVE_PAYLOADS))
        elif op == "comment":
            write(origin, "comment", choice(COMMENT_PAYLOADS))
        elif op == "attach":
            write(origin, "attach", choice(ATTACH_PAYLOADS))
        elif replica.tags:
            write(origin, "detach", {"tags": rng.sample(replica.tags, min(len(replica.tags),
                                                                          rng.randint(1, 2)))})
    return History(events, replicas, rng)


def folded(events: list[Event], state: DossierState | None = None) -> DossierState:
    result = fold(events, state)
    assert result is not None
    return result


def shuffled(rng: random.Random, events: list[Event]) -> list[Event]:
    out = list(events)
    rng.shuffle(out)
    return out


def check_any_delivery_order_gives_the_same_digest(history: History, once: DossierState,
                                                   expected: str) -> None:
    state = folded(shuffled(history.rng, history.events))
    assert digest(state) == expected
    assert state == once


def check_duplicates_change_nothing(history: History, once: DossierState) -> None:
    rng, events = history.rng, history.events
    extra = rng.choices(events, k=rng.randint(1, 20))
    assert folded(shuffled(rng, events + extra)) == once


def check_fold_is_idempotent(history: History, once: DossierState) -> None:
    assert folded(shuffled(history.rng, history.events), once) == once


def _happened_before(a: Event, b: Event) -> bool:
    return a.id != b.id and seen_by(a.id, b.deps)


def check_fold_matches_the_oracle(history: History) -> None:
    """Live writes are exactly the maximal writes under happened-before; sets are OR-sets."""
    events = shuffled(history.rng, history.events)
    state = folded(events)
    writers: dict[str, list[Event]] = {}
    for event in events:
        for path in writes_of(event):
            writers.setdefault(path, []).append(event)
    assert set(state.registers) == set(writers)
    conflicts = state.conflicts()
    for path, ws in writers.items():
        live = [w for w in ws if not any(_happened_before(w, other) for other in ws)]
        assert {(w.origin, w.seq) for w in state.registers[path]} == {w.id for w in live}
        top = max(live, key=lambda w: (w.hlc, w.origin, w.seq))
        assert state.value(path) == writes_of(top)[path]
        disagree = len({repr(writes_of(w)[path]) for w in live}) > 1
        assert (path in conflicts) == disagree
    removed = {t for e in events if e.kind == "detach" for t in e.payload["tags"]}
    live_tags = {f"{e.origin}:{e.seq}" for e in events if e.kind == "attach"} - removed
    live = state.live_attachments()
    assert [a["tag"] for a in live] == sorted(live_tags, key=lambda t: (
        state.attachments[t]["hlc"], t))  # every entry, shared blob or none, oldest first
    by_tag = {f"{e.origin}:{e.seq}": e for e in events if e.kind == "attach"}
    for a in live:
        assert a["sha256"] == by_tag[a["tag"]].payload.get("sha256")
        assert a["label"] == by_tag[a["tag"]].payload.get("label")
    assert set(state.comments) == {f"{e.origin}:{e.seq}" for e in events if e.kind == "comment"}
    assert state.vv == {o: max(e.seq for e in events if e.origin == o)
                        for o in {e.origin for e in events}}
    assert state.seen == {e.id for e in events}


def check_incremental_state_equals_rebuilt(history: History) -> None:
    """Each replica folded events as they came; rebuilding from its log, in any order, gives the
    same state."""
    by_id = {e.id for e in history.events}
    for replica in history.replicas.values():
        if replica.state is None:
            continue
        rebuilt = folded(shuffled(history.rng, replica.log))
        assert replica.state == rebuilt
        assert replica.seen <= by_id


@FOLD
@given(size=SIZES, seed=SEEDS)
def test_fold_algebra(size: int, seed: int) -> None:
    """Every example checks all five properties on one history: the build and Hypothesis's own
    per-example cost (~1 ms) are then paid once, not five times, which is what lets each property
    run FOLD_EXAMPLES (10,000) examples in `make test`. A failing assertion's traceback names the
    `check_*` property.

    States are compared with ==, which implies equal digests (`digest` packs `to_plain`, which
    sorts every map and set) and costs ~1 µs against ~130 µs for a digest, so only the
    delivery-order property, which is stated in digests, also compares them."""
    history = build_history(size, seed)
    once = folded(history.events)
    expected = digest(once)
    check_any_delivery_order_gives_the_same_digest(history, once, expected)
    check_duplicates_change_nothing(history, once)
    check_fold_is_idempotent(history, once)
    check_fold_matches_the_oracle(history)
    check_incremental_state_equals_rebuilt(history)


def test_generated_events_are_valid_and_histories_interesting() -> None:
    """The generator skips validation for speed: check here that every event would pass it, and
    that the histories exercise what the properties are about (not a degenerate generator)."""
    seen: dict[str, int] = dict.fromkeys(
        ("conflict", "resolved_conflict", "concurrent_status", "detached", "spread", "skew"), 0)
    for seed in range(300):
        history = build_history(40, seed)
        for e in history.events:
            assert Event(e.origin, e.seq, e.hlc, e.dossier, e.actor, e.kind, e.payload,
                         e.deps, e.prev) == e
        state = folded(history.events)
        seen["conflict"] += bool(state.conflicts())
        seen["concurrent_status"] += len(state.registers["status"]) > 1
        seen["resolved_conflict"] += any(
            e.kind == "resolve" and len(folded([w for w in history.events if seen_by(w.id, e.deps)])
                                        .registers.get(e.payload["field"], ())) > 1
            for e in history.events)
        seen["detached"] += any(e.kind == "detach" for e in history.events)
        seen["spread"] += any(e.origin == "e1" and e.id in history.replicas["e2"].seen
                               for e in history.events[1:])
        seen["skew"] += any(_happened_before(a, b) and a.hlc > b.hlc
                            for a in history.events for b in history.events)
    assert all(count >= 30 for count in seen.values()), seen

