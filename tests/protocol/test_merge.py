"""The dossier fold, case by case: registers, conflicts, resolves, sets, duplicates, plain form."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from protocol.codec import pack, unpack
from protocol.events import Event
from protocol.hlc import pack as hlc_pack
from protocol.merge import (
    DossierState,
    apply,
    digest,
    fold,
    from_plain,
    to_plain,
    writes_of,
)

DOSSIER = "01943a2b-7c00-7abc-8def-0123456789ab"
OTHER_DOSSIER = "01943a2b-7c00-7abc-8def-0123456789ac"
T = 1_767_600_000_000
SHA_A = "a" * 64
SHA_B = "b" * 64


def ev(origin: str, seq: int, kind: str, payload: dict[str, Any],
       deps: dict[str, int] | None = None, *, at: int | None = None, actor: str = "clerk",
       dossier: str = DOSSIER) -> Event:
    hlc = hlc_pack(T + (at if at is not None else seq * 10), 0)
    return Event(origin, seq, hlc, dossier, actor, kind, payload, deps or {},
                 b"" if seq == 1 else b"\x00" * 32)


def set_(origin: str, seq: int, values: dict[str, Any], deps: dict[str, int],
         at: int | None = None) -> Event:
    return ev(origin, seq, "set", {"set": values}, deps, at=at)


CREATE = ev("e1", 1, "create", {
    "procedure": "1.001193",
    "commune": "02245",
    "code": "H57.132-260105-0001",
    "received_at": T,
    "channel": "counter",
    "status": "accepted",
    "due_at": T + 3_600_000,
    "set": {"applicant.full_name": "Nguyễn Văn An", "fields.child_full_name": "Nguyễn Thị Bình"},
}, at=0)

ADDR = "applicant.address"


def fold_all(events: list[Event]) -> DossierState:
    state = fold(events)
    assert state is not None
    return state


def every_order(events: list[Event]) -> list[DossierState]:
    return [fold_all(list(p)) for p in itertools.permutations(events)]


def values_of(state: DossierState, path: str) -> set[Any]:
    return {w.value for w in state.registers[path]}


# -- create and plain registers -----------------------------------------------------------------


def test_create_gives_accepted_and_fields() -> None:
    state = fold_all([CREATE])
    assert state.id == DOSSIER
    assert state.value("status") == "accepted"
    assert state.value("applicant.full_name") == "Nguyễn Văn An"
    assert state.value("fields.child_full_name") == "Nguyễn Thị Bình"
    assert state.value("due_at") == T + 3_600_000
    assert state.header is not None
    assert state.header["procedure"] == "1.001193"
    assert state.header["code"] == "H57.132-260105-0001"
    assert state.header["origin"] == "e1"
    assert state.vv == {"e1": 1}
    assert state.conflicts() == {}


def test_create_without_status_defaults_to_accepted() -> None:
    payload = {k: v for k, v in CREATE.payload.items() if k != "status"}
    state = fold_all([ev("e1", 1, "create", payload)])
    assert state.value("status") == "accepted"


def test_missing_path_gives_the_default() -> None:
    state = fold_all([CREATE])
    assert state.value("applicant.phone") is None
    assert state.value("applicant.phone", "") == ""


def test_sequential_writes_keep_the_last_even_delivered_backwards() -> None:
    a = set_("e1", 2, {ADDR: "Thôn 1"}, {"e1": 1})
    b = set_("e1", 3, {ADDR: "Thôn 2"}, {"e1": 2})
    for state in every_order([CREATE, a, b]):
        assert state.value(ADDR) == "Thôn 2"
        assert len(state.registers[ADDR]) == 1
        assert state.conflicts() == {}


def test_causality_beats_a_fast_clock() -> None:
    # e2's clock runs an hour ahead; e1 saw e2's write and overwrote it: e1's value wins.
    fast = set_("e2", 1, {ADDR: "from e2"}, {"e1": 1}, at=3_600_000)
    later = set_("e1", 2, {ADDR: "from e1"}, {"e1": 1, "e2": 1}, at=50)
    for state in every_order([CREATE, fast, later]):
        assert state.value(ADDR) == "from e1"
        assert state.conflicts() == {}


# -- conflicts ----------------------------------------------------------------------------------


def test_concurrent_different_values_conflict_and_keep_both() -> None:
    a = set_("e1", 2, {ADDR: "Thôn Nà Lầu"}, {"e1": 1}, at=20)
    b = set_("e2", 1, {ADDR: "Thôn Khuổi Phầy"}, {"e1": 1}, at=10)
    for state in every_order([CREATE, a, b]):
        conflicts = state.conflicts()
        assert list(conflicts) == [ADDR]
        assert {w.value for w in conflicts[ADDR]} == {"Thôn Nà Lầu", "Thôn Khuổi Phầy"}
        assert {(w.origin, w.seq) for w in conflicts[ADDR]} == {("e1", 2), ("e2", 1)}
        assert state.value(ADDR) == "Thôn Nà Lầu"  # highest hlc


def test_displayed_value_is_highest_hlc_then_origin() -> None:
    a = set_("e1", 2, {ADDR: "by e1"}, {"e1": 1}, at=20)
    b = set_("e2", 1, {ADDR: "by e2"}, {"e1": 1}, at=20)
    assert a.hlc == b.hlc
    for state in every_order([CREATE, a, b]):
        assert state.value(ADDR) == "by e2"
        assert state.conflicts()[ADDR][0].origin == "e2"
    c = set_("e0", 1, {ADDR: "by e0"}, {"e1": 1}, at=21)
    for state in every_order([CREATE, a, b, c]):
        assert state.value(ADDR) == "by e0"
        assert [w.origin for w in state.conflicts()[ADDR]] == ["e0", "e2", "e1"]


def test_conflict_keeps_who_and_when() -> None:
    a = ev("e1", 2, "set", {"set": {ADDR: "A"}}, {"e1": 1}, at=20, actor="canbo.hoa")
    b = ev("hub", 1, "set", {"set": {ADDR: "B"}}, {"e1": 1}, at=30, actor="op.minh")
    state = fold_all([CREATE, a, b])
    writes = {w.value: w for w in state.conflicts()[ADDR]}
    assert (writes["A"].actor, writes["A"].origin, writes["A"].hlc) == ("canbo.hoa", "e1", a.hlc)
    assert (writes["B"].actor, writes["B"].origin, writes["B"].hlc) == ("op.minh", "hub", b.hlc)


def test_concurrent_different_fields_merge_without_conflict() -> None:
    a = set_("e1", 2, {ADDR: "Thôn 3"}, {"e1": 1})
    b = set_("e2", 1, {"applicant.phone": "0912345678"}, {"e1": 1})
    for state in every_order([CREATE, a, b]):
        assert state.conflicts() == {}
        assert state.value(ADDR) == "Thôn 3"
        assert state.value("applicant.phone") == "0912345678"
        assert state.vv == {"e1": 2, "e2": 1}


def test_same_value_concurrently_is_no_conflict() -> None:
    a = set_("e1", 2, {ADDR: "Thôn 3"}, {"e1": 1}, at=20)
    b = set_("e2", 1, {ADDR: "Thôn 3"}, {"e1": 1}, at=30)
    for state in every_order([CREATE, a, b]):
        assert state.conflicts() == {}
        assert state.value(ADDR) == "Thôn 3"
        assert len(state.registers[ADDR]) == 2  # both live, they just agree


def test_values_of_different_types_are_different() -> None:
    a = set_("e1", 2, {"fields.copies": 1}, {"e1": 1})
    b = set_("e2", 1, {"fields.copies": "1"}, {"e1": 1})
    assert "fields.copies" in fold_all([CREATE, a, b]).conflicts()


def test_concurrent_transitions_are_a_status_conflict() -> None:
    a = ev("e1", 2, "transition", {"to": "processing", "from": "accepted"}, {"e1": 1}, at=20)
    b = ev("hub", 1, "transition", {"to": "withdrawn", "from": "accepted"}, {"e1": 1}, at=30)
    for state in every_order([CREATE, a, b]):
        assert values_of(state, "status") == {"processing", "withdrawn"}
        assert "status" in state.conflicts()
        assert state.value("status") == "withdrawn"


def test_transition_may_move_the_due_date() -> None:
    t = ev("e1", 2, "transition", {"to": "processing", "from": "accepted", "due_at": T + 99},
           {"e1": 1})
    state = fold_all([CREATE, t])
    assert state.value("due_at") == T + 99
    assert state.value("status") == "processing"


# -- resolves -----------------------------------------------------------------------------------


A = set_("e1", 2, {ADDR: "A"}, {"e1": 1}, at=20)
B = set_("e2", 1, {ADDR: "B"}, {"e1": 1}, at=30)
RESOLVE = ev("hub", 1, "resolve", {"field": ADDR, "value": "C"}, {"e1": 2, "e2": 1}, at=40)


def test_a_resolve_that_saw_both_ends_the_conflict() -> None:
    for state in every_order([CREATE, A, B, RESOLVE]):
        assert state.conflicts() == {}
        assert state.value(ADDR) == "C"
        assert [(w.origin, w.seq) for w in state.registers[ADDR]] == [("hub", 1)]


def test_a_resolve_that_saw_only_one_side_does_not_end_it() -> None:
    partial = ev("hub", 1, "resolve", {"field": ADDR, "value": "C"}, {"e1": 2}, at=40)
    for state in every_order([CREATE, A, B, partial]):
        assert values_of(state, ADDR) == {"B", "C"}
        assert ADDR in state.conflicts()


def test_resolve_with_an_older_clock_still_wins() -> None:
    slow = ev("e3", 1, "resolve", {"field": ADDR, "value": "C"}, {"e1": 2, "e2": 1}, at=5)
    assert slow.hlc < B.hlc
    for state in every_order([CREATE, A, B, slow]):
        assert state.value(ADDR) == "C"
        assert state.conflicts() == {}


def test_a_write_concurrent_with_the_resolve_keeps_a_conflict() -> None:
    # e2 wrote again having seen only its own write, not e1's nor the resolve.
    d = set_("e2", 2, {ADDR: "D"}, {"e1": 1, "e2": 1}, at=35)
    for state in every_order([CREATE, A, B, RESOLVE, d]):
        assert values_of(state, ADDR) == {"C", "D"}
        assert ADDR in state.conflicts()
        assert state.value(ADDR) == "C"  # the resolve has the higher hlc


def test_a_write_after_the_resolve_is_plain() -> None:
    e = set_("e1", 3, {ADDR: "E"}, {"e1": 2, "e2": 1, "hub": 1}, at=50)
    for state in every_order([CREATE, A, B, RESOLVE, e]):
        assert state.conflicts() == {}
        assert state.value(ADDR) == "E"


def test_status_resolve() -> None:
    a = ev("e1", 2, "transition", {"to": "processing", "from": "accepted"}, {"e1": 1}, at=20)
    b = ev("hub", 1, "transition", {"to": "withdrawn", "from": "accepted"}, {"e1": 1}, at=30)
    r = ev("e1", 3, "resolve", {"field": "status", "value": "processing"},
           {"e1": 2, "hub": 1}, at=40)
    for state in every_order([CREATE, a, b, r]):
        assert state.value("status") == "processing"
        assert state.conflicts() == {}


# -- sets: attachments and comments -------------------------------------------------------------


def attach(origin: str, seq: int, sha: str, deps: dict[str, int], name: str = "giay_chung_sinh.pdf",
           at: int | None = None) -> Event:
    return ev(origin, seq, "attach",
              {"sha256": sha, "name": name, "mime": "application/pdf", "size": 1234,
               "label": "Giấy chứng sinh"}, deps, at=at)


def test_attach_then_detach_removes() -> None:
    a = attach("e1", 2, SHA_A, {"e1": 1})
    d = ev("e1", 3, "detach", {"tags": ["e1:2"]}, {"e1": 2})
    for state in every_order([CREATE, a, d]):
        assert state.live_attachments() == []
        assert state.conflicts() == {}


def test_detach_only_removes_what_it_observed() -> None:
    a = attach("e1", 2, SHA_A, {"e1": 1}, at=20)
    again = attach("e2", 1, SHA_A, {"e1": 1}, name="scan2.pdf", at=25)  # concurrent re-attach
    d = ev("e1", 3, "detach", {"tags": ["e1:2"]}, {"e1": 2}, at=30)
    for state in every_order([CREATE, a, again, d]):
        live = state.live_attachments()
        assert [(x["sha256"], x["tag"], x["name"]) for x in live] == [(SHA_A, "e2:1", "scan2.pdf")]


def test_entries_sharing_a_blob_are_all_kept_oldest_first() -> None:
    """One scanned stack attached to two documents lists both (issue 18: the second one used to
    vanish from the dossier and form 01)."""
    b = attach("e1", 2, SHA_B, {"e1": 1}, name="b.pdf", at=20)
    a1 = attach("e2", 1, SHA_A, {"e1": 1}, name="a1.pdf", at=30)
    a2 = ev("e1", 3, "attach", {"sha256": SHA_A, "name": "a2.pdf", "mime": "application/pdf",
                                "size": 1234, "label": "Tờ khai"}, {"e1": 2}, at=40)
    for state in every_order([CREATE, b, a1, a2]):
        live = state.live_attachments()
        assert [(x["name"], x["tag"]) for x in live] == [
            ("b.pdf", "e1:2"), ("a1.pdf", "e2:1"), ("a2.pdf", "e1:3")]
        assert [x["label"] for x in live[1:]] == ["Giấy chứng sinh", "Tờ khai"]
        assert live[1]["sha256"] == live[2]["sha256"] == SHA_A


def test_detaching_one_entry_keeps_the_others_on_the_same_blob() -> None:
    a1 = attach("e1", 2, SHA_A, {"e1": 1}, at=20)
    a2 = attach("e1", 3, SHA_A, {"e1": 2}, name="again.pdf", at=30)
    d = ev("e1", 4, "detach", {"tags": ["e1:2"]}, {"e1": 3}, at=40)
    for state in every_order([CREATE, a1, a2, d]):
        assert [x["tag"] for x in state.live_attachments()] == ["e1:3"]


def test_a_paper_document_is_an_entry_without_a_blob() -> None:
    paper = ev("e1", 2, "attach", {"label": "Giấy chứng nhận kết hôn", "doc_kind": "bản sao",
                                   "count": 2}, {"e1": 1}, at=20)
    scan = attach("e1", 3, SHA_A, {"e1": 2}, at=30)
    for state in every_order([CREATE, paper, scan]):
        first, second = state.live_attachments()
        assert first["sha256"] is None and first["label"] == "Giấy chứng nhận kết hôn"
        assert (first["doc_kind"], first["count"]) == ("bản sao", 2)
        assert second["sha256"] == SHA_A and "doc_kind" not in second


def test_an_old_attach_folds_to_the_same_state_as_before() -> None:
    """Entries written before doc_kind/count keep exactly their old plain form (and digest)."""
    state = fold_all([CREATE, attach("e1", 2, SHA_A, {"e1": 1}, at=20)])
    assert set(to_plain(state)["attachments"]["e1:2"]) == {
        "sha256", "name", "mime", "size", "label", "actor", "origin", "hlc"}


def test_comments_grow_and_never_conflict() -> None:
    c1 = ev("e1", 2, "comment", {"text": "Thiếu giấy chứng sinh"}, {"e1": 1})
    c2 = ev("hub", 1, "comment", {"text": "Đã liên hệ công dân"}, {"e1": 1})
    for state in every_order([CREATE, c1, c2]):
        assert {c["text"] for c in state.comments.values()} == {
            "Thiếu giấy chứng sinh", "Đã liên hệ công dân"}
        assert set(state.comments) == {"e1:2", "hub:1"}
        assert state.conflicts() == {}


# -- duplicates, order, plain form --------------------------------------------------------------


def test_duplicates_are_no_ops() -> None:
    events = [CREATE, A, B, RESOLVE]
    state = fold_all(events)
    for event in events:
        assert apply(state, event) is state
    assert digest(fold_all(events + events[::-1])) == digest(state)


def test_a_late_duplicate_of_an_overwritten_write_does_not_come_back() -> None:
    state = fold_all([CREATE, A, B, RESOLVE, A, B])
    assert state.value(ADDR) == "C"
    assert state.conflicts() == {}


def test_a_write_arriving_after_its_overwrite_stays_dead() -> None:
    state = fold_all([CREATE, RESOLVE, B, A])
    assert [(w.origin, w.seq) for w in state.registers[ADDR]] == [("hub", 1)]


def test_every_order_gives_the_same_digest() -> None:
    events = [CREATE, A, B, RESOLVE, set_("e2", 2, {ADDR: "D"}, {"e1": 1, "e2": 1}, at=35),
              attach("e1", 3, SHA_A, {"e1": 2}, at=45)]
    assert len({digest(s) for s in every_order(events)}) == 1


def test_state_before_create_is_completed_by_it() -> None:
    state = fold_all([A, B])
    assert state.header is None
    state = apply(state, CREATE)
    assert state.header is not None
    assert digest(state) == digest(fold_all([CREATE, A, B]))


def test_vv_seen_and_last_hlc() -> None:
    state = fold_all([CREATE, B, A])
    assert state.vv == {"e1": 2, "e2": 1}
    assert state.seen == frozenset({("e1", 1), ("e1", 2), ("e2", 1)})
    assert state.last_hlc == B.hlc


def test_an_event_of_another_dossier_is_refused() -> None:
    state = fold_all([CREATE])
    stray = ev("e1", 2, "comment", {"text": "x"}, {"e1": 1}, dossier=OTHER_DOSSIER)
    with pytest.raises(ValueError):
        apply(state, stray)


def test_fold_of_nothing_is_nothing() -> None:
    assert fold([]) is None


def test_digest_tells_states_apart() -> None:
    assert digest(fold_all([CREATE, A])) != digest(fold_all([CREATE, B]))
    assert digest(fold_all([CREATE, A, B])) != digest(fold_all([CREATE, A, B, RESOLVE]))


def test_plain_round_trip_keeps_digest() -> None:
    state = fold_all([CREATE, A, B, attach("e1", 3, SHA_A, {"e1": 2}),
                      ev("e1", 4, "detach", {"tags": ["e1:3"]}, {"e1": 3}),
                      ev("hub", 1, "comment", {"text": "Đã xem"}, {"e1": 1})])
    rebuilt = from_plain(to_plain(state))
    assert digest(rebuilt) == digest(state)
    assert rebuilt.conflicts().keys() == state.conflicts().keys()
    assert rebuilt.value(ADDR) == state.value(ADDR)
    assert rebuilt.seen == state.seen
    assert rebuilt.tombstones == state.tombstones


def test_plain_form_survives_msgpack() -> None:
    state = fold_all([CREATE, A, B, RESOLVE])
    stored = unpack(pack(to_plain(state)))
    rebuilt = from_plain(stored)
    assert digest(rebuilt) == digest(state)
    # and the rebuilt state keeps folding like the original
    d = set_("e2", 2, {ADDR: "D"}, {"e1": 1, "e2": 1}, at=35)
    assert digest(apply(rebuilt, d)) == digest(apply(state, d))


# -- what each kind writes ----------------------------------------------------------------------


def test_writes_of_each_kind() -> None:
    assert writes_of(CREATE) == {
        "applicant.full_name": "Nguyễn Văn An",
        "fields.child_full_name": "Nguyễn Thị Bình",
        "status": "accepted",
        "due_at": T + 3_600_000,
    }
    assert writes_of(A) == {ADDR: "A"}
    assert writes_of(ev("e1", 2, "transition", {"to": "processing"}, {"e1": 1})) == {
        "status": "processing"}
    assert writes_of(RESOLVE) == {ADDR: "C"}
    assert writes_of(ev("e1", 2, "comment", {"text": "x"}, {"e1": 1})) == {}
    assert writes_of(attach("e1", 2, SHA_A, {"e1": 1})) == {}


def test_two_creates_of_one_dossier_do_not_make_the_fold_order_dependent() -> None:
    # Nothing in event validation stops a second create of the same dossier id (a buggy or
    # restored node); the state must still be a function of the set of events.
    second = ev("e2", 1, "create", {**CREATE.payload, "code": "H57.132-260105-0002"}, at=5)
    digests = {digest(s) for s in every_order([CREATE, second])}
    assert len(digests) == 1
