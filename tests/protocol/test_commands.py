"""Commands: input validation naming the bad field, and drafts that respect what the writer saw."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.calendar import Calendar, iso
from protocol.catalogue import DEFAULT_CATALOGUE
from protocol.commands import (
    Draft,
    create_draft,
    decode_version,
    encode_version,
    resolve_draft,
    set_draft,
    transition_draft,
    validate_create,
)
from protocol.errors import Conflict, ValidationError
from protocol.events import Event
from protocol.hlc import pack as hlc_pack
from protocol.merge import DossierState, apply

TODAY = date(2026, 1, 5)
T = 1_767_600_000_000  # 2026-01-05 15:00 in Vietnam
DOSSIER = "01943a2b-7c00-7abc-8def-0123456789ab"
ADDR = "applicant.address"

GOOD_BODY: dict[str, Any] = {
    "procedure_code": "1.001193",
    "applicant": {
        "full_name": "Nguyễn Văn An",
        "citizen_id": "008095001234",
        "phone": "0912345678",
        "address": "Thôn Nà Lầu, xã Côn Lôn",
    },
    "fields": {
        "relationship": "Cha",
        "child_full_name": "Nguyễn Thị Bình",
        "child_birth_date": "2026-01-01",
        "child_sex": "Nữ",
        "child_ethnicity": "Tày",
        "child_nationality": "Việt Nam",
        "child_birth_place": "Trạm y tế xã Côn Lôn",
        "mother_birth_year": "1998",
    },
}


def body_with(path: str, value: Any) -> dict[str, Any]:
    """GOOD_BODY with one dotted path set (or removed when value is ...)."""
    body = copy.deepcopy(GOOD_BODY)
    *parents, last = path.split(".")
    target = body
    for key in parents:
        target = target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return body


def stamp(draft: Draft, origin: str, seq: int, at: int = 0) -> Event:
    return Event(origin, seq, hlc_pack(T + at + seq, 0), DOSSIER, f"{origin}.clerk", draft.kind,
                 draft.payload, draft.deps, b"" if seq == 1 else b"\x00" * 32)


def created() -> DossierState:
    new = validate_create(GOOD_BODY, DEFAULT_CATALOGUE, TODAY)
    draft = create_draft(new, commune="02245", code="H57.132-260105-0001", received_ms=T,
                         calendar=Calendar())
    return apply(None, stamp(draft, "e1", 1))


def write(state: DossierState, origin: str, seq: int, kind: str, payload: dict[str, Any],
          deps: dict[str, int]) -> DossierState:
    return apply(state, stamp(Draft(kind, payload, deps), origin, seq))


def in_conflict() -> DossierState:
    """e1 and e2 set the address concurrently after the create."""
    state = created()
    state = write(state, "e1", 2, "set", {"set": {ADDR: "Thôn 1"}}, {"e1": 1})
    return write(state, "e2", 1, "set", {"set": {ADDR: "Thôn 2"}}, {"e1": 1})


# -- validate_create ----------------------------------------------------------------------------


def test_a_good_birth_registration_is_accepted() -> None:
    new = validate_create(GOOD_BODY, DEFAULT_CATALOGUE, TODAY)
    assert new.procedure.code == "1.001193"
    assert new.applicant == GOOD_BODY["applicant"]
    assert new.fields == GOOD_BODY["fields"]
    assert new.channel == "counter"


def test_input_is_normalized() -> None:
    body = body_with("applicant.phone", "091 234 5678")
    body["applicant"]["full_name"] = "  Nguyễn Văn An "
    body["fields"]["child_full_name"] = " Nguyễn Thị Bình  "
    new = validate_create(body, DEFAULT_CATALOGUE, TODAY)
    assert new.applicant["phone"] == "0912345678"
    assert new.applicant["full_name"] == "Nguyễn Văn An"
    assert new.fields["child_full_name"] == "Nguyễn Thị Bình"


@pytest.mark.parametrize("phone", ["0912345678", "+84912345678", "02073822222", ""])
def test_good_phones(phone: str) -> None:
    validate_create(body_with("applicant.phone", phone), DEFAULT_CATALOGUE, TODAY)


@pytest.mark.parametrize("citizen_id", ["008095001234", "001300000001", "096199999999",
                                        "008226001234"])
def test_good_citizen_ids(citizen_id: str) -> None:
    new = validate_create(body_with("applicant.citizen_id", citizen_id), DEFAULT_CATALOGUE, TODAY)
    assert new.applicant["citizen_id"] == citizen_id


@pytest.mark.parametrize(("path", "value", "field"), [
    ("procedure_code", "9.999999", "procedure_code"),
    ("procedure_code", ..., "procedure_code"),
    ("applicant", ..., "applicant"),
    ("applicant", "Nguyễn Văn An", "applicant"),
    ("applicant.full_name", "", "applicant.full_name"),
    ("applicant.full_name", "x" * 101, "applicant.full_name"),
    ("applicant.citizen_id", "00809500123", "applicant.citizen_id"),
    ("applicant.citizen_id", "0080950012345", "applicant.citizen_id"),
    ("applicant.citizen_id", "00809500123a", "applicant.citizen_id"),
    ("applicant.citizen_id", ..., "applicant.citizen_id"),
    ("applicant.citizen_id", 8095001234, "applicant.citizen_id"),
    ("applicant.citizen_id", "000095001234", "applicant.citizen_id"),
    ("applicant.citizen_id", "097095001234", "applicant.citizen_id"),
    ("applicant.citizen_id", "008227001234", "applicant.citizen_id"),
    ("applicant.citizen_id", "008495001234", "applicant.citizen_id"),
    ("applicant.phone", "12345", "applicant.phone"),
    ("applicant.phone", "0912-345-678", "applicant.phone"),
    ("applicant.phone", "+1 555 0100", "applicant.phone"),
    ("applicant.email", "an@example.vn", "applicant"),
    ("fields.child_eye_colour", "nâu", "fields.child_eye_colour"),
    ("fields.child_full_name", ..., "fields.child_full_name"),
    ("fields.child_full_name", "", "fields.child_full_name"),
    ("fields.child_birth_date", "2026-02-30", "fields.child_birth_date"),
    ("fields.child_birth_date", "01/01/2026", "fields.child_birth_date"),
    ("fields.child_birth_date", "2026-01-06", "fields.child_birth_date"),
    ("fields.child_sex", "X", "fields.child_sex"),
    ("fields.child_sex", ..., "fields.child_sex"),
    ("fields.mother_birth_year", "98", "fields.mother_birth_year"),
    ("fields.mother_birth_year", "2027", "fields.mother_birth_year"),
    ("fields", ["x"], "fields"),
    ("channel", "fax", "channel"),
], ids=lambda v: str(v)[:30])
def test_bad_create_names_the_field(path: str, value: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_create(body_with(path, value), DEFAULT_CATALOGUE, TODAY)
    assert info.value.field == field


def test_body_must_be_an_object() -> None:
    with pytest.raises(ValidationError):
        validate_create(["1.001193"], DEFAULT_CATALOGUE, TODAY)


def test_int_field_must_be_an_int() -> None:
    body = {"procedure_code": "2.000815", "applicant": GOOD_BODY["applicant"],
            "fields": {"document_name": "Bằng tốt nghiệp", "copies": 2}}
    assert validate_create(body, DEFAULT_CATALOGUE, TODAY).fields["copies"] == 2
    body["fields"]["copies"] = "2"
    with pytest.raises(ValidationError) as info:
        validate_create(body, DEFAULT_CATALOGUE, TODAY)
    assert info.value.field == "fields.copies"


def test_create_draft_carries_code_due_date_and_values() -> None:
    new = validate_create(GOOD_BODY, DEFAULT_CATALOGUE, TODAY)
    draft = create_draft(new, commune="02245", code="H57.132-260105-0001", received_ms=T,
                         calendar=Calendar())
    assert draft.kind == "create"
    assert draft.deps == {}
    payload = draft.payload
    assert payload["procedure"] == "1.001193"
    assert payload["code"] == "H57.132-260105-0001"
    assert payload["status"] == "accepted"
    assert payload["received_at"] == T
    assert payload["due_at"] > T
    assert payload["set"]["applicant.citizen_id"] == "008095001234"
    assert payload["set"]["fields.child_sex"] == "Nữ"
    state = created()
    assert state.value("status") == "accepted"
    assert state.value("fields.child_birth_place") == "Trạm y tế xã Côn Lôn"


# -- set_draft ----------------------------------------------------------------------------------


def test_set_with_a_stale_base_keeps_the_base_and_becomes_a_conflict() -> None:
    state = created()
    base = encode_version(state.vv)
    state = write(state, "e2", 1, "set", {"set": {ADDR: "Thôn Khuổi Phầy"}}, {"e1": 1})
    draft = set_draft({"base": base, "set": {ADDR: "Thôn Nà Lầu"}}, state, DEFAULT_CATALOGUE,
                      TODAY)
    assert draft is not None
    assert draft.deps == {"e1": 1}
    assert draft.payload == {"set": {ADDR: "Thôn Nà Lầu"}}
    after = apply(state, stamp(draft, "e1", 2))
    assert {w.value for w in after.conflicts()[ADDR]} == {"Thôn Khuổi Phầy", "Thôn Nà Lầu"}


def test_set_with_a_fresh_base_overwrites() -> None:
    state = created()
    state = write(state, "e2", 1, "set", {"set": {ADDR: "Thôn Khuổi Phầy"}}, {"e1": 1})
    draft = set_draft({"base": encode_version(state.vv), "set": {ADDR: "Thôn Nà Lầu"}}, state,
                      DEFAULT_CATALOGUE, TODAY)
    assert draft is not None
    assert draft.deps == {"e1": 1, "e2": 1}
    after = apply(state, stamp(draft, "e1", 2))
    assert after.conflicts() == {}
    assert after.value(ADDR) == "Thôn Nà Lầu"


def test_set_without_base_uses_the_current_version() -> None:
    state = in_conflict()
    draft = set_draft({"set": {"applicant.phone": "0987654321"}}, state, DEFAULT_CATALOGUE, TODAY)
    assert draft is not None
    assert draft.deps == state.vv


def test_set_that_changes_nothing_is_none() -> None:
    state = created()
    body = {"base": encode_version(state.vv),
            "set": {ADDR: "  Thôn Nà Lầu, xã Côn Lôn ", "fields.child_sex": "Nữ"}}
    assert set_draft(body, state, DEFAULT_CATALOGUE, TODAY) is None


def test_set_keeps_only_the_changed_paths() -> None:
    state = created()
    body = {"set": {ADDR: "Thôn Nà Lầu, xã Côn Lôn", "fields.child_home_town": "Tuyên Quang"}}
    draft = set_draft(body, state, DEFAULT_CATALOGUE, TODAY)
    assert draft is not None
    assert draft.payload == {"set": {"fields.child_home_town": "Tuyên Quang"}}


def test_set_of_a_conflicted_path_to_one_of_its_values_is_a_write() -> None:
    state = in_conflict()
    draft = set_draft({"set": {ADDR: "Thôn 1"}}, state, DEFAULT_CATALOGUE, TODAY)
    assert draft is not None


@pytest.mark.parametrize(("changes", "field"), [
    ({"status": "returned"}, "status"),
    ({"header.code": "X"}, "header.code"),
    ({"applicant.phone": "12345"}, "applicant.phone"),
    ({"applicant.citizen_id": "000095001234"}, "applicant.citizen_id"),
    ({"fields.child_sex": "X"}, "fields.child_sex"),
    ({"fields.nope": "x"}, "fields.nope"),
    ({"fields.child_full_name": ""}, "fields.child_full_name"),
], ids=lambda v: str(v)[:30])
def test_bad_set_names_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        set_draft({"set": changes}, created(), DEFAULT_CATALOGUE, TODAY)
    assert info.value.field == field


@pytest.mark.parametrize("body", [{}, {"set": {}}, {"set": "x"}, "x"])
def test_set_needs_a_non_empty_map(body: Any) -> None:
    with pytest.raises(ValidationError):
        set_draft(body, created(), DEFAULT_CATALOGUE, TODAY)


def test_set_with_a_base_from_the_future_is_a_conflict() -> None:
    with pytest.raises(Conflict):
        set_draft({"base": "e1:1,e9:4", "set": {ADDR: "x"}}, created(), DEFAULT_CATALOGUE, TODAY)


def test_set_with_a_base_of_another_dossier_is_refused() -> None:
    state = write(created(), "e2", 1, "set", {"set": {ADDR: "x"}}, {"e1": 1})
    with pytest.raises(ValidationError) as info:
        set_draft({"base": "e2:1", "set": {ADDR: "y"}}, state, DEFAULT_CATALOGUE, TODAY)
    assert info.value.field == "base"


def test_set_before_the_create_arrived_is_a_conflict() -> None:
    state = apply(None, stamp(Draft("set", {"set": {ADDR: "x"}}, {"e1": 1}), "e2", 1))
    with pytest.raises(Conflict):
        set_draft({"set": {ADDR: "y"}}, state, DEFAULT_CATALOGUE, TODAY)


# -- transition_draft ---------------------------------------------------------------------------


def test_allowed_transition() -> None:
    state = created()
    draft = transition_draft({"to": "processing", "base": encode_version(state.vv),
                              "note": "Chuyển công chức tư pháp"}, state)
    assert draft.kind == "transition"
    assert draft.payload == {"to": "processing", "from": "accepted",
                             "note": "Chuyển công chức tư pháp"}
    assert draft.deps == {"e1": 1}
    assert apply(state, stamp(draft, "e1", 2)).value("status") == "processing"


@pytest.mark.parametrize("target", ["resolved", "returned", "submitted", "accepted", "refused"])
def test_transition_not_in_the_table_is_a_conflict(target: str) -> None:
    with pytest.raises(Conflict):
        transition_draft({"to": target}, created())


def test_transition_from_a_final_status_is_a_conflict() -> None:
    state = write(created(), "e1", 2, "transition", {"to": "withdrawn", "from": "accepted"},
                  {"e1": 1})
    with pytest.raises(Conflict):
        transition_draft({"to": "processing"}, state)


def test_transition_refused_while_status_is_in_conflict() -> None:
    state = created()
    state = write(state, "e1", 2, "transition", {"to": "processing", "from": "accepted"}, {"e1": 1})
    state = write(state, "e2", 1, "transition", {"to": "withdrawn", "from": "accepted"}, {"e1": 1})
    assert "status" in state.conflicts()
    with pytest.raises(Conflict):
        transition_draft({"to": "resolved", "base": encode_version(state.vv)}, state)


def test_transition_refused_when_the_base_is_stale_on_status() -> None:
    state = created()
    stale = encode_version(state.vv)
    state = write(state, "e2", 1, "transition", {"to": "processing", "from": "accepted"},
                  {"e1": 1})
    # processing -> withdrawn is allowed, but the writer saw "accepted", not "processing"
    with pytest.raises(Conflict):
        transition_draft({"to": "withdrawn", "base": stale}, state)
    assert transition_draft({"to": "withdrawn", "base": encode_version(state.vv)}, state)


def test_transition_with_a_base_stale_only_on_other_fields_is_allowed() -> None:
    state = created()
    stale = encode_version(state.vv)
    state = write(state, "e2", 1, "set", {"set": {ADDR: "x"}}, {"e1": 1})
    draft = transition_draft({"to": "processing", "base": stale}, state)
    assert draft.payload["from"] == "accepted"


@pytest.mark.parametrize(("body", "field"), [
    ({"to": "flying"}, "to"),
    ({}, "to"),
    ({"to": "processing", "note": "x" * 2001}, "note"),
    ({"to": "processing", "note": 5}, "note"),
    ({"to": "processing", "base": 17}, "base"),
])
def test_bad_transition_names_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        transition_draft(body, created())
    assert info.value.field == field


# -- resolve_draft ------------------------------------------------------------------------------


def test_resolve_ends_the_conflict() -> None:
    state = in_conflict()
    draft = resolve_draft({"field": ADDR, "value": "Thôn 3", "base": encode_version(state.vv)},
                          state, DEFAULT_CATALOGUE, TODAY)
    assert draft.kind == "resolve"
    assert draft.payload == {"field": ADDR, "value": "Thôn 3"}
    assert draft.deps == {"e1": 2, "e2": 1}
    after = apply(state, stamp(draft, "hub", 1))
    assert after.conflicts() == {}
    assert after.value(ADDR) == "Thôn 3"


def test_resolve_normalizes_the_value() -> None:
    state = created()
    state = write(state, "e1", 2, "set", {"set": {"applicant.phone": "0911111111"}}, {"e1": 1})
    state = write(state, "e2", 1, "set", {"set": {"applicant.phone": "0922222222"}}, {"e1": 1})
    draft = resolve_draft({"field": "applicant.phone", "value": "092 222 2222"}, state,
                          DEFAULT_CATALOGUE, TODAY)
    assert draft.payload["value"] == "0922222222"


def test_resolve_refuses_an_invalid_value() -> None:
    with pytest.raises(ValidationError):
        resolve_draft({"field": "applicant.phone", "value": "12"}, _phone_conflict(),
                      DEFAULT_CATALOGUE, TODAY)


def _phone_conflict() -> DossierState:
    state = created()
    state = write(state, "e1", 2, "set", {"set": {"applicant.phone": "0911111111"}}, {"e1": 1})
    return write(state, "e2", 1, "set", {"set": {"applicant.phone": "0922222222"}}, {"e1": 1})


def test_resolve_refused_when_there_is_no_conflict() -> None:
    state = created()
    with pytest.raises(Conflict):
        resolve_draft({"field": ADDR, "value": "x"}, state, DEFAULT_CATALOGUE, TODAY)
    state = write(state, "e1", 2, "set", {"set": {ADDR: "Thôn 3"}}, {"e1": 1})
    state = write(state, "e2", 1, "set", {"set": {ADDR: "Thôn 3"}}, {"e1": 1})  # same value
    with pytest.raises(Conflict):
        resolve_draft({"field": ADDR, "value": "x"}, state, DEFAULT_CATALOGUE, TODAY)


def test_resolve_refused_when_the_base_misses_a_live_write() -> None:
    state = created()
    state = write(state, "e1", 2, "set", {"set": {ADDR: "Thôn 1"}}, {"e1": 1})
    saw_one = encode_version(state.vv)
    state = write(state, "e2", 1, "set", {"set": {ADDR: "Thôn 2"}}, {"e1": 1})
    with pytest.raises(Conflict):
        resolve_draft({"field": ADDR, "value": "Thôn 1", "base": saw_one}, state,
                      DEFAULT_CATALOGUE, TODAY)
    # a third concurrent value arrives after the operator loaded both: refused too
    loaded = encode_version(state.vv)
    state = write(state, "hub", 1, "set", {"set": {ADDR: "Thôn 9"}}, {"e1": 1})
    with pytest.raises(Conflict):
        resolve_draft({"field": ADDR, "value": "Thôn 1", "base": loaded}, state,
                      DEFAULT_CATALOGUE, TODAY)


def test_resolve_of_status() -> None:
    state = created()
    state = write(state, "e1", 2, "transition", {"to": "processing", "from": "accepted"}, {"e1": 1})
    state = write(state, "e2", 1, "transition", {"to": "withdrawn", "from": "accepted"}, {"e1": 1})
    draft = resolve_draft({"field": "status", "value": "processing"}, state, DEFAULT_CATALOGUE,
                          TODAY)
    after = apply(state, stamp(draft, "hub", 1))
    assert after.value("status") == "processing"
    assert after.conflicts() == {}
    with pytest.raises(ValidationError):
        resolve_draft({"field": "status", "value": "flying"}, state, DEFAULT_CATALOGUE, TODAY)


@pytest.mark.parametrize("body", [{"value": "x"}, {"field": ADDR}, {"field": 5, "value": "x"}])
def test_resolve_needs_field_and_value(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        resolve_draft(body, in_conflict(), DEFAULT_CATALOGUE, TODAY)


# -- version tokens -----------------------------------------------------------------------------


def test_version_round_trip() -> None:
    vv = {"hub": 12, "e08-02245": 7, "e1": 3}
    token = encode_version(vv)
    assert token == "e08-02245:7,e1:3,hub:12"
    assert decode_version(token) == vv
    assert decode_version(encode_version({})) == {}


@given(st.dictionaries(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,31}\Z"),
                       st.integers(1, 2**63 - 1), max_size=8))
def test_version_round_trip_property(vv: dict[str, int]) -> None:
    assert decode_version(encode_version(vv)) == vv


@pytest.mark.parametrize("token", [
    5, None, ["e1:1"], "e1", "e1:", "e1:0", "e1:-1", "e1:x", ":3", "bad origin:3", "é1:3",
    "e1:1," + "e1:1," * 800, "e1:²", "e1\n:3",
], ids=lambda v: repr(v)[:20])
def test_bad_version_tokens(token: Any) -> None:
    with pytest.raises(ValidationError) as info:
        decode_version(token)
    assert info.value.field == "base"


# -- leaving a paused status --------------------------------------------------------------------


def _awaiting_supplement(paused_ms: int) -> DossierState:
    state = created()  # received Monday 5 Jan 2026 at 15:00: due Tuesday 6 Jan at 17:00
    event = Event("e1", 2, hlc_pack(paused_ms, 0), DOSSIER, "e1.clerk", "transition",
                  {"to": "supplement_requested", "from": "accepted"}, {"e1": 1}, b"\x00" * 32)
    return apply(state, event)


def test_leaving_a_supplement_request_pushes_the_due_date_back() -> None:
    monday_16h = T + 3_600_000
    thursday_10h = T + 3 * 86_400_000 - 5 * 3_600_000
    state = _awaiting_supplement(monday_16h)
    due = state.value("due_at")
    assert iso(due) == "2026-01-06T17:00:00+07:00"
    draft = transition_draft({"to": "processing"}, state, Calendar(), thursday_10h)
    # paused Tue, Wed, Thu: three working days later than Tuesday is Friday
    assert iso(draft.payload["due_at"]) == "2026-01-09T17:00:00+07:00"
    after = apply(state, stamp(draft, "e1", 3, at=3 * 86_400_000))
    assert after.value("due_at") == draft.payload["due_at"]


def test_due_date_unchanged_without_a_pause() -> None:
    state = _awaiting_supplement(T + 3_600_000)
    assert "due_at" not in transition_draft({"to": "processing"}, state).payload
    same_day = transition_draft({"to": "processing"}, state, Calendar(), T + 2 * 3_600_000)
    assert "due_at" not in same_day.payload
    plain = transition_draft({"to": "processing"}, created(), Calendar(), T + 3 * 86_400_000)
    assert "due_at" not in plain.payload
