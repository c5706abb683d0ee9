"""The lifecycle table is DOMAIN.md's, written out here by hand so a drift in either shows."""

from __future__ import annotations

import pytest

from protocol import lifecycle
from protocol.events import STATUS_NAMES

# DOMAIN.md, "Dossier lifecycle": API name -> national portal code.
EXPECTED_CODES = {
    "submitted": 1,
    "accepted": 2,
    "refused": 3,
    "processing": 4,
    "supplement_requested": 5,
    "fee_requested": 6,
    "withdrawn": 7,
    "stopped": 8,
    "resolved": 9,
    "returned": 10,
}

# DOMAIN.md, "Allowed transitions".
EXPECTED_TRANSITIONS = {
    "submitted": {"accepted", "refused", "supplement_requested", "withdrawn"},
    "accepted": {"processing", "supplement_requested", "withdrawn"},
    "processing": {"supplement_requested", "fee_requested", "stopped", "resolved", "withdrawn"},
    "supplement_requested": {"processing", "withdrawn", "stopped"},
    "fee_requested": {"processing", "withdrawn", "stopped"},
    "resolved": {"returned"},
    "refused": set(),
    "withdrawn": set(),
    "stopped": set(),
    "returned": set(),
}
EXPECTED_FINAL = {"refused", "withdrawn", "stopped", "returned"}

ALL_PAIRS = [(a, b) for a in EXPECTED_CODES for b in EXPECTED_CODES]


def test_statuses_are_the_domain_list_in_portal_order() -> None:
    assert list(lifecycle.STATUSES) == list(EXPECTED_CODES)
    assert {s: info[0] for s, info in lifecycle.STATUSES.items()} == EXPECTED_CODES


def test_portal_codes_are_one_to_ten() -> None:
    assert sorted(lifecycle.portal_code(s) for s in lifecycle.STATUSES) == list(range(1, 11))
    for status, code in EXPECTED_CODES.items():
        assert lifecycle.portal_code(status) == code


def test_vietnamese_labels_match_domain() -> None:
    assert lifecycle.STATUSES["accepted"][1] == "Được tiếp nhận"
    assert lifecycle.STATUSES["supplement_requested"][1] == "Yêu cầu bổ sung giấy tờ"
    assert lifecycle.STATUSES["returned"][1] == "Đã trả kết quả"


def test_transition_table_matches_domain_exactly() -> None:
    assert {s: set(t) for s, t in lifecycle.TRANSITIONS.items()} == EXPECTED_TRANSITIONS


@pytest.mark.parametrize(("current", "target"), ALL_PAIRS)
def test_allowed_agrees_with_the_table(current: str, target: str) -> None:
    assert lifecycle.allowed(current, target) == (target in EXPECTED_TRANSITIONS[current])


def test_finals_have_no_exits() -> None:
    assert lifecycle.FINAL == EXPECTED_FINAL
    for final in EXPECTED_FINAL:
        assert lifecycle.next_statuses(final) == []
        assert not any(lifecycle.allowed(final, target) for target in EXPECTED_CODES)


def test_no_status_goes_to_itself_or_back_to_submitted() -> None:
    for status in EXPECTED_CODES:
        assert not lifecycle.allowed(status, status)
        assert not lifecycle.allowed(status, "submitted")


def test_unknown_statuses_are_never_allowed() -> None:
    assert not lifecycle.allowed("overdue", "processing")
    assert not lifecycle.allowed("accepted", "overdue")


def test_overdue_is_not_a_status() -> None:
    assert "overdue" not in lifecycle.STATUSES


def test_counter_dossiers_start_accepted() -> None:
    assert lifecycle.INITIAL_AT_COUNTER == "accepted"


def test_next_statuses_in_table_order() -> None:
    assert lifecycle.next_statuses("processing") == [
        "supplement_requested", "fee_requested", "withdrawn", "stopped", "resolved",
    ]
    assert lifecycle.next_statuses("submitted") == [
        "accepted", "refused", "supplement_requested", "withdrawn",
    ]


def test_event_validation_knows_the_same_statuses() -> None:
    assert frozenset(lifecycle.STATUSES) == STATUS_NAMES
