"""Scope sets and write roles: the competent commune, the receiving desk, and transfers."""

from __future__ import annotations

import random
from datetime import date

import pytest

from protocol.communes import DEFAULT_COMMUNES
from protocol.errors import Conflict, RemoteProtocolError, ValidationError
from protocol.events import Event
from protocol.merge import fold
from protocol.scope import Units, check_writes, units_of
from protocol.transfer import transfer_draft
from protocol.views import dossier_view
from tests.protocol.memory import START_MS, Chain

A, B, C = "02221", "02245", "02230"  # Na Hang takes in for Côn Lôn; Thượng Lâm elsewhere


def received_at_a(chain: Chain, competent: str = B) -> Event:
    """A create at desk A's node for commune `competent` (any-desk intake)."""
    event = chain.create(START_MS, competent)
    payload = {**event.payload, "received_by": A}
    chain.events.pop()
    return chain.add(START_MS, "create", event.dossier, payload, {})


def test_the_receiving_desk_records_receipt_supplements_and_the_hand_back_only() -> None:
    desk = Chain(f"{A}.01", random.Random(1))
    create = received_at_a(desk)
    seen = {desk.origin: 1}
    attach = desk.add(START_MS, "attach", create.dossier, {"label": "Tờ khai"}, seen)
    note = desk.add(START_MS, "comment", create.dossier, {"text": "bổ sung"}, seen)
    edit = desk.add(START_MS, "set", create.dossier, {"set": {"applicant.address": "x"}}, seen)
    move = desk.add(START_MS, "transition", create.dossier, {"to": "processing"}, seen)
    back = desk.add(START_MS, "transition", create.dossier, {"to": "returned"}, seen)
    away = desk.add(START_MS, "transfer", create.dossier, {"to": C, "reason": "r"}, seen)
    ok, rejected = check_writes(A, desk.events, {})
    assert ok == [create, attach, note, back]
    assert [(r.seq, r.code) for r in rejected] == [
        (edit.seq, "role"), (move.seq, "role"), (away.seq, "role")]
    # the competent commune may write all of it; a third commune none of it
    units = {create.dossier: Units(B, A)}
    assert check_writes(B, desk.events[1:], units)[0] == desk.events[1:]
    assert {r.code for r in check_writes(C, desk.events[1:], units)[1]} == {"scope"}


def test_a_desk_creates_only_as_itself_whatever_the_competent_commune() -> None:
    desk = Chain(f"{A}.01", random.Random(2))
    create = received_at_a(desk)
    assert check_writes(A, [create], {})[0] == [create]
    assert check_writes(C, [create], {})[1][0].code == "scope"  # claims another desk
    assert check_writes(B, [create], {})[1][0].code == "scope"


def test_a_transfer_moves_competence_and_the_old_commune_keeps_only_its_desk_role() -> None:
    desk = Chain(f"{B}.01", random.Random(3))
    create = desk.create(START_MS, B)
    away = desk.add(START_MS, "transfer", create.dossier, {"to": C, "reason": "sai địa bàn"},
                    {desk.origin: 1})
    desk.add(START_MS, "set", create.dossier, {"set": {"applicant.address": "x"}},
             {desk.origin: 2})
    note = desk.add(START_MS, "comment", create.dossier, {"text": "x"}, {desk.origin: 2})
    ok, rejected = check_writes(B, desk.events, {})
    # B took the dossier in: it stays its receiving desk (a comment), no longer processes it
    assert ok == [create, away, note] and [(r.seq, r.code) for r in rejected] == [(3, "role")]
    # a commune it went through without taking it in writes nothing at all
    units = {create.dossier: Units(A, B)}
    assert [r.code for r in check_writes(C, desk.events[2:], units)[1]] == ["scope"] * 2
    state = fold(desk.events[:2])
    assert units_of(state) == Units(C, B)
    view = dossier_view(state, START_MS, desk.events[:2])  # type: ignore[arg-type]
    assert view["commune"] == C and view["received_by"] == B
    assert state is not None and state.header is not None and state.header["commune"] == B


def test_concurrent_transfers_are_a_visible_conflict() -> None:
    one, two = Chain(f"{B}.01", random.Random(4)), Chain("hub", random.Random(5))
    create = one.create(START_MS, B)
    seen = {one.origin: 1}
    x = one.add(START_MS + 1, "transfer", create.dossier, {"to": C, "reason": "r"}, seen)
    y = two.add(START_MS + 2, "transfer", create.dossier, {"to": A, "reason": "r"}, seen)
    for order in ([create, x, y], [create, y, x]):
        state = fold(order)
        assert state is not None and set(state.conflicts()) == {"commune"}
        assert units_of(state) == Units(A, B)  # the displayed value: highest hlc


def test_transfer_payload_and_command_are_checked() -> None:
    chain = Chain(f"{B}.01", random.Random(6))
    create = chain.create(START_MS, B)
    for bad in ({"to": "2245", "reason": "r"}, {"to": C}, {"to": C, "reason": ""}):
        with pytest.raises(RemoteProtocolError):
            Event(chain.origin, 2, 1, create.dossier, "clerk", "transfer", bad, {}, b"x" * 32)
    state = fold([create])
    assert state is not None
    today = date(2026, 12, 6)
    with pytest.raises(ValidationError):
        transfer_draft({"to": "99999", "reason": "r"}, state, DEFAULT_COMMUNES, today)
    with pytest.raises(ValidationError):
        transfer_draft({"to": C, "reason": " "}, state, DEFAULT_COMMUNES, today)
    with pytest.raises(Conflict):
        transfer_draft({"to": B, "reason": "r"}, state, DEFAULT_COMMUNES, today)
    # a merged commune's code goes to the commune it joined
    draft = transfer_draft({"to": "02227", "reason": "r"}, fold([create, chain.add(
        START_MS, "transfer", create.dossier, {"to": C, "reason": "r"}, {chain.origin: 1})])
        or state, DEFAULT_COMMUNES, today)
    assert draft.payload == {"to": B, "reason": "r"}


def test_units_are_compared_after_mergers_old_codes_and_transfers_alike() -> None:
    """Sinh Long (02227) merged into Côn Lôn (B): what Sinh Long's node queued offline under its
    old code is Côn Lôn's; a transfer to the old code lands with the new unit."""
    merged = {"02227": B}.get

    def unit_of(code: str) -> str:
        return merged(code, code)

    old = Chain("02227.01", random.Random(7))
    create = old.create(START_MS, "02227")
    edit = old.add(START_MS, "set", create.dossier, {"set": {"applicant.address": "x"}},
                   {old.origin: 1})
    assert check_writes(B, old.events, {}, unit_of) == (old.events, [])
    assert [r.code for r in check_writes(B, old.events, {})[1]] == ["scope", "unknown_dossier"]
    # known under the old code, written by the new unit's node; a third commune still nothing
    known = {create.dossier: Units("02227", "02227")}
    assert check_writes(B, [edit], known, unit_of) == ([edit], [])
    assert [r.code for r in check_writes(C, [edit], known, unit_of)[1]] == ["scope"]
    away = old.add(START_MS, "transfer", create.dossier, {"to": C, "reason": "r"},
                   {old.origin: 2})
    later = old.add(START_MS, "set", create.dossier, {"set": {"applicant.phone": "1"}},
                    {old.origin: 3})
    ok, rejected = check_writes(B, [away, later], known, unit_of)
    assert ok == [away] and [r.code for r in rejected] == ["role"]  # received here: a desk now
