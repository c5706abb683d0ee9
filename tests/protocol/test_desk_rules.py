"""The desk's data rules (issue 18): attachment entries (shared blobs, paper documents), moves that
wait only for the conflicts they depend on, amendments after a final status, the value before a
conflict — in the commands, the payload check both peers run, and the API view."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.attachments import attach_draft
from protocol.calendar import Calendar
from protocol.catalogue import DEFAULT_CATALOGUE
from protocol.commands import (
    Draft,
    closed_status,
    create_draft,
    encode_version,
    move_blockers,
    next_moves,
    set_draft,
    transition_draft,
    validate_create,
)
from protocol.errors import Conflict, RemoteProtocolError, ValidationError
from protocol.events import Event, check_payload
from protocol.merge import DossierState, apply
from protocol.views import dossier_view
from tests.protocol.test_commands import ADDR, GOOD_BODY, TODAY, T, created, stamp, write

SHA = "c" * 64
SCAN = {"sha256": SHA, "name": "ho-so.pdf", "mime": "application/pdf", "size": 2048}


def history_of(*steps: tuple[str, int, str, dict[str, Any], dict[str, int]]
               ) -> tuple[DossierState, list[Event]]:
    new = validate_create(GOOD_BODY, DEFAULT_CATALOGUE, TODAY)
    first = stamp(create_draft(new, commune="02245", code="H57.132-260105-0001", received_ms=T,
                               calendar=Calendar()), "e1", 1)
    state, events = apply(None, first), [first]
    for origin, seq, kind, payload, deps in steps:
        event = stamp(Draft(kind, payload, deps), origin, seq)
        state = apply(state, event)
        events.append(event)
    return state, events


# -- entries: payloads both peers check -----------------------------------------------------------


def test_a_scan_payload_is_the_old_shape_with_optional_kind_and_count() -> None:
    check_payload("attach", SCAN)
    check_payload("attach", {**SCAN, "label": "Tờ khai", "doc_kind": "bản sao", "count": 2})


def test_a_paper_entry_has_a_label_and_no_blob() -> None:
    check_payload("attach", {"label": "Giấy chứng sinh", "doc_kind": "bản chính", "count": 1})


@pytest.mark.parametrize("payload", [
    {"doc_kind": "bản chính"},  # neither a blob nor a label
    {"label": ""},
    {"label": "x" * 256},
    {"label": "Tờ khai", "count": 0},
    {"label": "Tờ khai", "count": 100},
    {"label": "Tờ khai", "count": "2"},
    {"label": "Tờ khai", "doc_kind": ""},
    {"label": "Tờ khai", "size": 10},  # a size says a blob: then the sha256 is required
    {"label": "Tờ khai", "sha256": None},
    {**SCAN, "sha256": "C" * 64},
])
def test_bad_entries_are_refused(payload: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError):
        check_payload("attach", payload)


def test_a_reason_on_an_edit_must_be_text() -> None:
    check_payload("set", {"set": {ADDR: "x"}, "reason": "Sai địa chỉ"})
    with pytest.raises(RemoteProtocolError):
        check_payload("set", {"set": {ADDR: "x"}, "reason": 3})


# -- entries: the command and the view ----------------------------------------------------------


def test_attach_draft_writes_a_scan_or_a_paper_document() -> None:
    state = created()
    scan = attach_draft({**SCAN, "label": "  Tờ   khai ", "doc_kind": "bản sao", "count": 2}, state)
    assert scan.payload == {**SCAN, "label": "Tờ khai", "doc_kind": "bản sao", "count": 2}
    paper = attach_draft({"label": "Giấy chứng sinh", "doc_kind": "bản chính", "count": 1}, state)
    assert paper.payload == {"label": "Giấy chứng sinh", "doc_kind": "bản chính", "count": 1}
    check_payload("attach", scan.payload)
    check_payload("attach", paper.payload)


@pytest.mark.parametrize("info, field", [
    ({"doc_kind": "bản chính"}, "label"),
    ({"label": "Tờ khai", "doc_kind": "bản gốc"}, "doc_kind"),
    ({"label": "Tờ khai", "count": 0}, "count"),
    ({"label": "Tờ khai", "count": True}, "count"),
    ({**SCAN, "mime": "text/plain"}, "file"),
])
def test_attach_draft_names_the_bad_field(info: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        attach_draft(info, created())
    assert caught.value.field == field


def test_the_view_lists_every_entry_with_its_own_id() -> None:
    state, events = history_of(
        ("e1", 2, "attach", {**SCAN, "label": "Giấy chứng sinh (bản chính)"}, {"e1": 1}),
        ("e1", 3, "attach", {**SCAN, "label": "Tờ khai", "doc_kind": "bản sao", "count": 2},
         {"e1": 2}),
        ("e1", 4, "attach", {"label": "Giấy chứng nhận kết hôn", "doc_kind": "bản sao"},
         {"e1": 3}))
    view = dossier_view(state, 0, events)
    got = [(a["id"], a["document"], a["doc_kind"], a["count"], a["sha256"], a["scanned"])
           for a in view["attachments"]]
    assert got == [
        ("e1:2", "Giấy chứng sinh", "bản chính", 1, SHA, True),  # an old label, split
        ("e1:3", "Tờ khai", "bản sao", 2, SHA, True),  # the same blob, its own entry
        ("e1:4", "Giấy chứng nhận kết hôn", "bản sao", 1, None, False),
    ]
    assert [h["document"] for h in view["history"] if h["kind"] == "attach"] == [
        "Giấy chứng sinh", "Tờ khai", "Giấy chứng nhận kết hôn"]


# -- moves wait only for the conflicts they depend on ------------------------------------------


def address_conflict() -> DossierState:
    state = created()
    state = write(state, "e1", 2, "set", {"set": {ADDR: "Thôn 1"}}, {"e1": 1})
    return write(state, "hub", 1, "set", {"set": {ADDR: "Thôn 2"}}, {"e1": 1})


def test_a_field_conflict_does_not_hold_up_processing() -> None:
    state = address_conflict()
    assert move_blockers(state, "processing") == []
    free, waiting = next_moves(state)
    assert free == ["processing", "supplement_requested", "withdrawn"] and waiting == {}
    draft = transition_draft({"to": "processing", "base": encode_version(state.vv)}, state)
    assert draft.payload["to"] == "processing"


def test_approving_a_result_waits_for_the_fields() -> None:
    state = address_conflict()
    state = write(state, "e1", 3, "transition", {"to": "processing", "from": "accepted"},
                  {"e1": 2, "hub": 1})
    assert ADDR in state.conflicts()
    free, waiting = next_moves(state)
    assert "resolved" not in free and waiting == {"resolved": [ADDR]}
    assert "stopped" in free and "supplement_requested" in free
    with pytest.raises(Conflict, match=r"applicant\.address in conflict"):
        transition_draft({"to": "resolved", "base": encode_version(state.vv)}, state)


def test_a_status_conflict_holds_every_move() -> None:
    state = created()
    state = write(state, "e1", 2, "transition", {"to": "processing", "from": "accepted"}, {"e1": 1})
    state = write(state, "e2", 1, "transition", {"to": "withdrawn", "from": "accepted"}, {"e1": 1})
    assert next_moves(state)[0] == []
    assert move_blockers(state, "resolved") == ["status"]


def test_a_due_date_conflict_holds_only_leaving_a_pause() -> None:
    state = created()
    state = write(state, "e1", 2, "transition", {"to": "processing", "from": "accepted"}, {"e1": 1})
    state = write(state, "e1", 3, "transition", {"to": "supplement_requested",
                                                "from": "processing"}, {"e1": 2})
    state = write(state, "e1", 4, "resolve", {"field": "due_at", "value": 1}, {"e1": 3})
    state = write(state, "hub", 1, "resolve", {"field": "due_at", "value": 2}, {"e1": 3})
    assert "due_at" in state.conflicts()
    assert move_blockers(state, "processing") == ["due_at"]  # it would rewrite the due time
    assert move_blockers(state, "withdrawn") == ["due_at"]
    state = write(state, "e1", 5, "resolve", {"field": "due_at", "value": 2},
                  {"e1": 4, "hub": 1})
    assert move_blockers(state, "processing") == []


# -- amendments after a final status ------------------------------------------------------------


def returned() -> DossierState:
    state = created()
    for seq, (frm, to) in enumerate((("accepted", "processing"), ("processing", "resolved"),
                                     ("resolved", "returned")), start=2):
        state = write(state, "e1", seq, "transition", {"to": to, "from": frm}, {"e1": seq - 1})
    return state


def test_an_edit_after_returned_needs_a_reason_and_keeps_it() -> None:
    state = returned()
    assert closed_status(state) == "returned"
    body: dict[str, Any] = {"set": {ADDR: "Thôn Mới"}, "base": encode_version(state.vv)}
    with pytest.raises(ValidationError) as caught:
        set_draft(body, state, DEFAULT_CATALOGUE, TODAY)
    assert caught.value.field == "reason"
    with pytest.raises(ValidationError):
        set_draft({**body, "reason": "   "}, state, DEFAULT_CATALOGUE, TODAY)
    draft = set_draft({**body, "reason": "Công dân báo  sai địa chỉ"}, state, DEFAULT_CATALOGUE,
                      TODAY)
    assert draft is not None
    assert draft.payload == {"set": {ADDR: "Thôn Mới"}, "reason": "Công dân báo sai địa chỉ"}
    after = apply(state, stamp(draft, "e1", 5))
    [line] = [h for h in dossier_view(after, 0, [stamp(draft, "e1", 5)])["history"]]
    assert line["reason"] == "Công dân báo sai địa chỉ"


@pytest.mark.parametrize("final", ["refused", "withdrawn", "stopped"])
def test_every_final_status_closes_the_dossier(final: str) -> None:
    state = write(created(), "e1", 2, "transition", {"to": final, "from": "accepted"}, {"e1": 1})
    with pytest.raises(ValidationError):
        set_draft({"set": {ADDR: "x"}}, state, DEFAULT_CATALOGUE, TODAY)


def test_an_open_dossier_is_edited_without_a_reason() -> None:
    draft = set_draft({"set": {ADDR: "x"}}, created(), DEFAULT_CATALOGUE, TODAY)
    assert draft is not None and "reason" not in draft.payload
    assert closed_status(created()) is None


# -- the value before a conflict ----------------------------------------------------------------


def test_a_conflict_shows_the_value_both_sides_started_from() -> None:
    state, events = history_of(
        ("e1", 2, "set", {"set": {ADDR: "Thôn Cũ"}}, {"e1": 1}),
        ("e1", 3, "set", {"set": {ADDR: "Thôn 1"}}, {"e1": 2}),
        ("hub", 1, "set", {"set": {ADDR: "Thôn 2"}}, {"e1": 2}))
    [conflict] = dossier_view(state, 0, events)["conflicts"]
    assert {v["value"] for v in conflict["values"]} == {"Thôn 1", "Thôn 2"}
    assert conflict["before"]["value"] == "Thôn Cũ" and conflict["before"]["origin"] == "e1"


def test_a_field_first_written_on_both_sides_had_no_value_before() -> None:
    state, events = history_of(
        ("e1", 2, "set", {"set": {"fields.x": "1"}}, {"e1": 1}),
        ("hub", 1, "set", {"set": {"fields.x": "2"}}, {"e1": 1}))
    [conflict] = dossier_view(state, 0, events)["conflicts"]
    assert conflict["before"] is None


def test_the_view_matches_the_declared_api_answer() -> None:
    """Entries without a scan, a conflict with its value before, moves waiting: the shapes the
    OpenAPI document declares (service/api/answers.py) hold for them."""
    import msgspec

    from service.api import answers

    state, events = history_of(
        ("e1", 2, "attach", {**SCAN, "label": "Tờ khai"}, {"e1": 1}),
        ("e1", 3, "attach", {"label": "Giấy chứng sinh", "doc_kind": "bản chính"}, {"e1": 2}),
        ("e1", 4, "transition", {"to": "processing", "from": "accepted"}, {"e1": 3}),
        ("e1", 5, "set", {"set": {ADDR: "Thôn 1"}}, {"e1": 4}),
        ("hub", 1, "set", {"set": {ADDR: "Thôn 2"}, "reason": "x"}, {"e1": 4}))
    view = dossier_view(state, 0, events)
    assert view["waiting_statuses"] == {"resolved": [ADDR]}
    checked = msgspec.convert(view, answers.Dossier)
    assert [a.sha256 for a in checked.attachments] == [SHA, None]
    assert checked.conflicts[0].before is not None
