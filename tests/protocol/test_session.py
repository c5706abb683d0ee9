"""The exchange's rules one by one (protocol/session.py, protocol/scope.py, the error registry)."""

from __future__ import annotations

import random

import pytest

from protocol import codec
from protocol.errors import (
    ERRORS,
    AuthError,
    Conflict,
    LocalProtocolError,
    NotFound,
    RemoteProtocolError,
    ServerBusy,
    SyncError,
    TooLarge,
    Unavailable,
    VersionMismatch,
    from_answer,
    status_of,
)
from protocol.messages import SyncResponse
from protocol.notices import (
    HUB_EDITS_LOST,
    HUB_ID_REUSED,
    HUB_LOG_RESET,
    HUB_RESTORED,
    LASTING_KEEP_MS,
    Notice,
    edits_lost,
)
from protocol.scope import check_writes
from protocol.session import (
    Adaptive,
    ChainAlert,
    ChainHead,
    EdgeSession,
    accept,
    next_state,
    read_from,
    replay_probe,
    session_done,
    want_bytes,
)
from tests.protocol.memory import START_MS, Chain

NODE = "02245.01"


def chain(n: int) -> Chain:
    c = Chain(NODE, random.Random(1))
    d = c.create(START_MS, "02245").dossier
    for i in range(n - 1):
        c.edit(START_MS + i, d, f"Thôn {i}")
    return c


def head(c: Chain, seq: int) -> ChainHead:
    return ChainHead(seq, codec.event_hash(c.events[seq - 1])) if seq else ChainHead()


# -- the hub's accept rule ------------------------------------------------------------------------

def test_a_batch_continuing_the_chain_is_taken_whole() -> None:
    c = chain(5)
    taken = accept(NODE, head(c, 2), c.events[2:])
    assert [e.seq for e in taken.fresh] == [3, 4, 5] and taken.ack == 5
    assert taken.head == head(c, 5)


def test_replays_are_skipped_when_they_are_what_the_hub_holds() -> None:
    c = chain(5)
    assert replay_probe(head(c, 3), c.events) == 3
    taken = accept(NODE, head(c, 3), c.events, codec.event_hash(c.events[2]))
    assert [e.seq for e in taken.fresh] == [4, 5]
    nothing = accept(NODE, head(c, 5), c.events, codec.event_hash(c.events[4]))
    assert nothing.fresh == [] and nothing.head == head(c, 5)  # the head keeps its hash


def test_a_replay_with_other_content_is_a_fork() -> None:
    c, other = chain(3), Chain(NODE, random.Random(2))
    other.create(START_MS, "02245")
    with pytest.raises(ChainAlert) as raised:
        accept(NODE, head(c, 1), other.events, codec.event_hash(c.events[0]))
    assert raised.value.kind == "fork" and raised.value.seq == 1


def test_a_gap_takes_only_the_contiguous_prefix() -> None:
    c = chain(6)
    taken = accept(NODE, head(c, 1), [c.events[1], c.events[3], c.events[4]])
    assert [e.seq for e in taken.fresh] == [2] and taken.ack == 2
    assert accept(NODE, head(c, 1), c.events[3:]).ack == 1  # starts past a gap: nothing


def test_another_origin_or_a_broken_chain_refuses_the_whole_batch() -> None:
    c = chain(3)
    with pytest.raises(ChainAlert) as raised:
        accept("02245.02", ChainHead(), c.events)
    assert raised.value.kind == "forged_origin"
    with pytest.raises(ChainAlert) as raised:
        accept(NODE, ChainHead(1, b"x" * 32), c.events[1:])
    assert raised.value.kind == "chain_broken"


def test_scope_takes_what_the_hub_holds_for_the_commune_not_the_payload() -> None:
    c = chain(2)
    other = Chain(NODE, random.Random(3))
    foreign = other.create(START_MS, "02227")
    ok, rejected = check_writes("02245", [*c.events, foreign], {})
    assert ok == c.events  # the edit follows a create in the same batch
    assert [(r.seq, r.code) for r in rejected] == [(1, "scope")]
    ok, rejected = check_writes("02245", c.events[1:], {c.events[0].dossier: "02227"})
    assert ok == [] and rejected[0].code == "scope"
    assert check_writes("02245", c.events[1:], {})[1][0].code == "unknown_dossier"
    assert check_writes("02245", c.events[:1], {c.events[0].dossier: "02245"})[1][0].code == \
        "duplicate_id"


def test_the_answer_reads_from_zero_for_a_cursor_of_another_log() -> None:
    assert read_from(40, "e1", "e1", 50) == (40, False)
    assert read_from(40, "e0", "e1", 50) == (0, True)  # another epoch
    assert read_from(40, "", "e1", 50) == (40, False)  # an edge that knows no epoch yet
    assert read_from(60, "e1", "e1", 50) == (0, True)  # past the end: a restore, same epoch
    assert want_bytes(10, 4096) == 1024 and want_bytes(1 << 30, 4096) == 4096


# -- the edge's plan for an answer ----------------------------------------------------------------

def answer(ack: int, cursor: int = 0, *, events: list | None = None, more: bool = False,  # type: ignore[type-arg]
           reset: bool = False, epoch: str = "e1") -> SyncResponse:
    return SyncResponse(ack, events or [], cursor, more, START_MS, epoch=epoch, reset=reset)


def test_acks_and_cursors_move_forward_and_stale_answers_change_nothing() -> None:
    s = EdgeSession(ack=5, cursor=10, epoch="e1")
    plan = s.answer(answer(8, 12), node=NODE, own_seq=9, sent_after=5, held={})
    assert (plan.after.ack, plan.after.cursor, plan.notices) == (8, 12, [])
    stale = s.answer(answer(4, 9), node=NODE, own_seq=9, sent_after=3, held={})
    assert (stale.after.ack, stale.after.cursor, stale.notices) == (5, 10, [])
    with pytest.raises(RemoteProtocolError):
        s.answer(answer(10), node=NODE, own_seq=9, sent_after=5, held={})


def test_a_lower_ack_than_was_sent_rewinds_and_a_reset_rereads() -> None:
    s = EdgeSession(ack=5, cursor=10, epoch="e1")
    plan = s.answer(answer(2, 3, reset=True, epoch="e2", more=True), node=NODE, own_seq=9,
                    sent_after=5, held={})
    assert (plan.after.ack, plan.after.cursor, plan.after.epoch) == (2, 3, "e2")
    assert plan.rewound and [n.code for n in plan.notices] == [HUB_RESTORED, HUB_LOG_RESET]
    assert plan.after.reread == {}  # re-reading: the hub's events are noted from here


def test_a_held_id_with_other_content_is_kept_ours_and_warned_of() -> None:
    hub = Chain("hub", random.Random(4))
    mine, theirs = hub.create(START_MS, "02245"), Chain("hub", random.Random(5)).create(
        START_MS, "02245")
    plan = EdgeSession().answer(answer(0, 1, events=[theirs]), node=NODE, own_seq=0,
                                sent_after=0, held={("hub", 1): codec.event_hash(mine)})
    assert plan.fresh == [] and [n.code for n in plan.notices] == [HUB_ID_REUSED]


def test_the_end_of_a_reread_names_the_hub_edits_the_restored_hub_lost() -> None:
    s = EdgeSession(reread={"hub": 2})
    resp = answer(0, 5)
    assert s.ends_reread(resp)
    plan = s.answer(resp, node=NODE, own_seq=0, sent_after=0, held={},
                    held_hub=[("hub", 1, "A"), ("hub", 3, "B"), ("hub", 4, "B")])
    assert plan.after.reread is None and plan.notices[0].code == HUB_EDITS_LOST
    assert "1 dossier(s)" in plan.notices[0].message and "(B)" in plan.notices[0].message
    assert edits_lost({"hub": 9}, [("hub", 3, "B")]) is None


def test_warnings_follow_their_table() -> None:
    restored, lost = Notice(HUB_RESTORED, "r"), Notice(HUB_EDITS_LOST, "l")
    s = EdgeSession(ack=3).warned([restored], START_MS, own_seq=7)
    assert s.standing is not None and (s.standing.code, s.standing.until) == (HUB_RESTORED, 7)
    s = s.warned([lost], START_MS + 1, own_seq=7)  # more serious: replaces it
    assert s.standing is not None and s.standing.code == HUB_EDITS_LOST
    assert s.warned([restored], START_MS + 2, 9).standing == s.standing  # lesser: stays
    assert s.warned([lost], START_MS + 2, 9).standing == s.standing  # lasting: its week runs
    assert s.settled(now_ms=START_MS + 1, more=False, uploads_waiting=0) == s
    assert s.settled(now_ms=START_MS + 1 + LASTING_KEEP_MS, more=False,
                     uploads_waiting=0).standing is None
    healing = EdgeSession(ack=6).warned([restored], START_MS, own_seq=7)
    assert healing.settled(now_ms=START_MS, more=False, uploads_waiting=0) == healing
    done = EdgeSession(ack=7, standing=healing.standing)
    assert done.settled(now_ms=START_MS, more=True, uploads_waiting=0) == done
    assert done.settled(now_ms=START_MS, more=False, uploads_waiting=1) == done
    assert done.settled(now_ms=START_MS, more=False, uploads_waiting=0).standing is None


# -- sessions, sizes ------------------------------------------------------------------------------

def test_a_session_ends_when_nothing_is_pending_either_way() -> None:
    done = {"sent": 3, "more": False, "ack_before": 0, "ack_after": 3, "pending": 0}
    assert session_done(**done)
    assert not session_done(**{**done, "more": True})
    assert not session_done(**{**done, "pending": 2})  # sent, acked, more to send
    assert session_done(**{**done, "ack_after": 0, "pending": 3})  # not acked: a later session
    assert not session_done(**{**done, "ack_before": 5, "ack_after": 2, "pending": 7})  # rewound
    assert session_done(**{**done, "sent": 0, "ack_after": 0, "pending": 4})
    assert session_done(**{**done, "more": True, "pull": False})  # a full disk: not the hub's
    assert not session_done(**{**done, "more": True, "pull": False, "pending": 2})


def test_session_states_follow_their_table() -> None:
    assert next_state("offline", "start") == "syncing"
    assert next_state("syncing", "done") == "online"
    assert next_state("syncing", "transport") == "offline"
    assert next_state("online", "refused") == "error"  # an overlapping session's end
    with pytest.raises(LocalProtocolError):
        next_state("online", "nap")


def test_sizes_follow_the_link() -> None:
    size = Adaptive(4096, 16384)
    assert size.after(4096, 0.5) == 8192 and size.after(16384, 0.5) == 16384
    assert size.after(8192, 0.5, moved=False) == 8192
    assert size.after(8192, 5.0) == 8192
    assert size.after(8192, 11.0) == 4096 and size.after_timeout(4096) == 4096


# -- one registry of errors -----------------------------------------------------------------------

def test_one_registry_drives_the_server_status_and_the_client_error() -> None:
    assert ERRORS["not_found"] is NotFound and status_of(TooLarge("x")) == 413
    assert status_of(Unavailable("busy", 2.0)) == 503 and status_of(SyncError("x")) == 400
    for cls in ERRORS.values():  # every answered error comes back as one of ours
        assert isinstance(from_answer(cls.status, cls.code, "m"), SyncError)
    assert isinstance(from_answer(404, "not_found", "m"), NotFound)
    assert isinstance(from_answer(409, "conflict", "m"), Conflict)
    assert isinstance(from_answer(426, "version", "m"), VersionMismatch)
    assert isinstance(from_answer(403, "forbidden", "m"), AuthError)
    busy = from_answer(503, "unavailable", "m", 3.0)
    assert isinstance(busy, ServerBusy) and busy.retry_after_s == 3.0
    assert isinstance(from_answer(502, "error", "<html>"), ServerBusy)  # a proxy's page
    assert isinstance(from_answer(401, "error", "<html>"), AuthError)
    assert type(from_answer(413, "too_large", "m")) is RemoteProtocolError
