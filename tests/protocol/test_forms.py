"""What the one-stop forms record (protocol.forms): a refusal at the counter, an apology with a new
appointment, a hand-over, form 02's deadline; how they show in the view and count in statistics
(protocol.stats); likely duplicates (protocol.duplicates)."""

from __future__ import annotations

import copy
from datetime import date, datetime
from typing import Any

import pytest

from protocol.calendar import VN_TZ, Calendar, iso, to_ms
from protocol.catalogue import DEFAULT_CATALOGUE
from protocol.commands import apology_draft, create_draft, transition_draft, validate_create
from protocol.duplicates import likely_duplicates
from protocol.errors import Conflict, RemoteProtocolError, ValidationError
from protocol.events import check_payload
from protocol.merge import DossierState, apply
from protocol.stats import Facts, Period, report, timeliness
from protocol.views import dossier_view
from tests.protocol.test_commands import GOOD_BODY, TODAY, T, stamp

BIRTH = DEFAULT_CATALOGUE.get("1.001193")
MARITAL = DEFAULT_CATALOGUE.get("1.004873")  # 3 working days
HOUR = 3_600_000


def at(month: int, day: int, hour: int = 9) -> int:
    return to_ms(datetime(2026, month, day, hour, tzinfo=VN_TZ))


def refused_body(**extra: Any) -> dict[str, Any]:
    body = copy.deepcopy(GOOD_BODY)
    body["applicant"] = {"full_name": "Ma Văn Dũng", "citizen_id": ""}
    body["fields"] = {"child_full_name": "Ma Văn Tú", "child_birth_date": ""}
    body["refuse"] = {"reasons": " Thiếu giấy chứng sinh \n\n Sai mẫu tờ khai"}
    body.update(extra)
    return body


def state_of(body: dict[str, Any], received: int = T) -> DossierState:
    new = validate_create(body, DEFAULT_CATALOGUE, TODAY)
    draft = create_draft(new, commune="02245", code="H57.132-260105-0001",
                         received_ms=received, calendar=Calendar())
    return apply(None, stamp(draft, "e1", 1))


def test_a_refusal_is_a_create_in_status_refused_with_its_reasons_and_no_due_date() -> None:
    state = state_of(refused_body())
    assert state.value("status") == "refused" and state.value("due_at") is None
    view = dossier_view(state, T, [stamp(create_draft(
        validate_create(refused_body(), DEFAULT_CATALOGUE, TODAY), commune="02245",
        code="H57.132-260105-0001", received_ms=T, calendar=Calendar()), "e1", 1)])
    assert view["refusal"]["reasons"] == "Thiếu giấy chứng sinh\nSai mẫu tờ khai"
    assert view["refusal"]["at_counter"] and view["next_statuses"] == []
    assert view["fields"] == {"child_full_name": "Ma Văn Tú"}  # the empty date left out


@pytest.mark.parametrize("change, field", [
    ({"refuse": {"reasons": "  "}}, "refuse.reasons"),
    ({"refuse": "thiếu giấy"}, "refuse"),
    ({"refuse": {"reasons": "x" * 2001}}, "refuse.reasons"),
    ({"applicant": {"full_name": "", "citizen_id": ""}}, "applicant.full_name"),
    ({"applicant": {"full_name": "A", "citizen_id": "123"}}, "applicant.citizen_id"),
    ({"fields": {"child_birth_date": "20/11/2025"}}, "fields.child_birth_date"),
])
def test_a_refusal_still_checks_what_was_typed(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        validate_create(refused_body(**change), DEFAULT_CATALOGUE, TODAY)
    assert err.value.field == field


def test_without_refuse_every_required_field_is_still_required() -> None:
    body = refused_body()
    del body["refuse"]
    with pytest.raises(ValidationError):
        validate_create(body, DEFAULT_CATALOGUE, TODAY)


def processing(due_days: int = 3) -> DossierState:
    body = {"procedure_code": "1.004873", "applicant": GOOD_BODY["applicant"],
            "fields": {"purpose": "Kết hôn", "marital_status": "Chưa kết hôn"}}
    state = state_of(body, at(3, 2))
    move = transition_draft({"to": "processing"}, state, Calendar(), at(3, 2, 10))
    return apply(state, stamp(move, "e1", 2))


def test_an_apology_keeps_the_due_date_and_needs_a_later_working_day() -> None:
    state = processing()
    due = state.value("due_at")
    assert iso(due) == "2026-03-05T17:00:00+07:00"
    cal = Calendar.of([date(2026, 3, 10)])
    now = at(3, 5, 12)
    draft = apology_draft({"new_due": "2026-03-09T10:00", "reason": " Chờ  xác minh "}, state,
                          cal, now)
    assert draft.kind == "comment"
    assert draft.payload == {"text": "Chờ xác minh",
                             "apology": {"new_due": to_ms(datetime(2026, 3, 9, 10,
                                                                   tzinfo=VN_TZ))}}
    after = apply(state, stamp(draft, "e1", 3))
    assert after.value("due_at") == due
    for bad, why in (("2026-03-07", "working day"), ("2026-03-10", "working day"),
                     ("2026-03-05T16:00", "later than the due date"),
                     ("2027-06-01", "within a year"), ("09/03/2026", "YYYY-MM-DD"),
                     ("2026-03-09T25:00", "YYYY-MM-DD")):
        with pytest.raises(ValidationError, match=why):
            apology_draft({"new_due": bad, "reason": "x"}, state, cal, now)
    with pytest.raises(ValidationError, match="reason"):
        apology_draft({"new_due": "2026-03-09", "reason": ""}, state, cal, now)
    resolved = apply(state, stamp(transition_draft({"to": "resolved"}, state), "e1", 3))
    with pytest.raises(Conflict):
        apology_draft({"new_due": "2026-03-09", "reason": "x"}, resolved, cal, now)


def test_a_hand_over_goes_with_the_move_to_returned_and_a_deadline_with_a_supplement() -> None:
    state = processing()
    now = at(3, 3)
    draft = transition_draft({"to": "supplement_requested", "note": "Giấy chứng sinh",
                              "supplement_by": "2026-03-10"}, state, Calendar(), now)
    assert draft.payload["supplement_by"] == "2026-03-10"
    for bad in ("2026-03-02", "2026-07-01", "10/03/2026"):
        with pytest.raises(ValidationError):
            transition_draft({"to": "supplement_requested", "supplement_by": bad}, state,
                             Calendar(), now)
    with pytest.raises(ValidationError, match="returned"):
        transition_draft({"to": "resolved", "handover": {"collected_by": "A",
                                                         "id_document": "B"}}, state)
    resolved = apply(state, stamp(transition_draft({"to": "resolved"}, state), "e1", 3))
    with pytest.raises(ValidationError):
        transition_draft({"to": "returned", "handover": {"collected_by": "A"}}, resolved)
    with pytest.raises(ValidationError):
        transition_draft({"to": "returned", "handover": {"collected_by": "A", "id_document": "B",
                                                         "extra": "C"}}, resolved)
    draft = transition_draft({"to": "returned", "handover": {
        "collected_by": "Nguyễn  Văn An", "id_document": "Căn cước 008095001234"}}, resolved)
    event = stamp(draft, "e1", 4)
    view = dossier_view(apply(resolved, event), at(3, 6), [event])
    assert view["handover"]["collected_by"] == "Nguyễn Văn An"
    assert view["handover"]["id_document"] == "Căn cước 008095001234"


@pytest.mark.parametrize("kind, payload", [
    ("create", {"reasons": 7}),
    ("create", {"duplicates": "H57-260105-0001"}),
    ("transition", {"handover": "Nguyễn Văn An"}),
    ("transition", {"handover": {"collected_by": ""}}),
    ("transition", {"supplement_by": 20260310}),
    ("comment", {"apology": {"new_due": "2026-03-09"}}),
])
def test_peers_refuse_malformed_form_keys(kind: str, payload: dict[str, Any]) -> None:
    base: dict[str, Any] = {
        "create": {"procedure": "1.001193", "commune": "02245", "code": "X-260105-0001",
                   "channel": "counter", "received_at": T, "set": {}},
        "transition": {"to": "returned", "from": "resolved"},
        "comment": {"text": "x"},
    }[kind]
    check_payload(kind, base)
    with pytest.raises(RemoteProtocolError):
        check_payload(kind, {**base, **payload})


def facts(received: int, due: int | None, initial: str = "accepted", resolved: int | None = None,
          apologies: tuple[int, ...] = ()) -> Facts:
    reached = {"resolved": resolved} if resolved is not None else {}
    moves = ((resolved, "resolved"),) if resolved is not None else ()
    return Facts("02245", "1.004873", "counter", received, due, reached, moves, initial,
                 apologies)


def test_statistics_count_refusals_apart_and_apologies_change_no_lateness() -> None:
    due = at(3, 5, 17)
    rows = [
        facts(at(3, 2), None, "refused"),  # refused at the counter: not received
        facts(at(3, 2), due, resolved=at(3, 9), apologies=(at(3, 5, 12),)),  # late anyway
        facts(at(3, 3), due, resolved=at(3, 4)),  # early
        facts(at(2, 27), None, "refused"),  # refused before the period
    ]
    data = report(rows, [Period(date(2026, 3, 1), date(2026, 3, 31))], at(4, 1),
                  commune_names={}, procedure_names={})
    total = data["totals"][0]
    assert total["refused"] == 1 and total["apologies"] == 1
    assert total["received_counter"] == 2 and total["received_total"] == 2
    assert total["resolved_late"] == 1 and total["resolved_early"] == 1
    assert total["in_progress_not_due"] == 0 and total["carried_over"] == 0
    assert timeliness(at(3, 5, 16), due) == "on_time"
    assert timeliness(at(3, 5, 18), due) == "late" and timeliness(at(3, 4), None) == "on_time"


def listed(body: dict[str, Any], status: str = "processing", days_ago: int = 1,
           code: str = "X-1") -> dict[str, Any]:
    return {"code": code, "procedure_code": body["procedure_code"], "status": status,
            "applicant": body["applicant"], "fields": body["fields"],
            "received_at": iso(T - days_ago * 24 * HOUR)}


def test_likely_duplicates_match_applicant_and_key_fields_within_90_days() -> None:
    assert BIRTH is not None and MARITAL is not None
    body = copy.deepcopy(GOOD_BODY)
    same = listed(body)
    spelled = listed({**body, "fields": {**body["fields"],
                                         "child_full_name": "nguyen thi  binh"}}, code="X-2")
    other_child = listed({**body, "fields": {**body["fields"],
                                             "child_full_name": "Nguyễn Thị Hà"}}, code="X-3")
    old = listed(body, days_ago=91, code="X-4")
    refused = listed(body, status="refused", code="X-5")
    other_parent = listed({**body, "applicant": {**body["applicant"],
                                                 "citizen_id": "008095009999"}}, code="X-6")
    found = likely_duplicates(body, BIRTH, [same, spelled, other_child, old, refused,
                                            other_parent], T)
    assert [d["code"] for d in found] == ["X-1", "X-2"]
    assert likely_duplicates(body, MARITAL, [same], T) == []  # another procedure
