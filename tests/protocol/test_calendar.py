"""Legal time: the 15:00 rule, working days, weekends and holidays, overdue, Vietnam's time zone."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from protocol.calendar import (
    VN_TZ,
    Calendar,
    due_at,
    extend_for_pause,
    is_overdue,
    iso,
    local,
    to_ms,
    working_days_between,
)
from protocol.lifecycle import FINAL

PLAIN = Calendar()  # 2026-01-05 is a Monday, 2026-01-09 a Friday
# Tết Nguyên đán 2027: Friday 5 to Thursday 11 February inclusive (4 Feb is a Thursday).
TET_2027 = Calendar.of(date(2027, 2, 5) + timedelta(days=i) for i in range(7))


def at(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0,
       ms: int = 0) -> int:
    return to_ms(datetime(year, month, day, hour, minute, second, ms * 1000, tzinfo=VN_TZ))


def close_of(year: int, month: int, day: int) -> int:
    return at(year, month, day, 17)


def same_day(received: int, calendar: Calendar = PLAIN) -> int:
    return due_at(received, 0, "15:00", calendar)


# -- same-day procedures ------------------------------------------------------------------------


def test_received_at_14_59_is_due_at_17_00_the_same_day() -> None:
    assert same_day(at(2026, 1, 5, 14, 59)) == close_of(2026, 1, 5)
    assert same_day(at(2026, 1, 5, 14, 59, 59, 999)) == close_of(2026, 1, 5)
    assert same_day(at(2026, 1, 5, 7, 30)) == close_of(2026, 1, 5)


def test_received_at_15_00_sharp_is_due_the_next_working_day() -> None:
    assert same_day(at(2026, 1, 5, 15, 0)) == close_of(2026, 1, 6)
    assert same_day(at(2026, 1, 5, 16, 45)) == close_of(2026, 1, 6)


def test_friday_afternoon_is_due_monday() -> None:
    assert same_day(at(2026, 1, 9, 15, 30)) == close_of(2026, 1, 12)
    assert same_day(at(2026, 1, 9, 10, 0)) == close_of(2026, 1, 9)


@pytest.mark.parametrize(("day", "hour"), [(10, 9), (10, 16), (11, 8), (11, 23)])
def test_received_on_the_weekend_is_due_the_next_working_day(day: int, hour: int) -> None:
    assert same_day(at(2026, 1, day, hour)) == close_of(2026, 1, 12)


def test_the_cutoff_is_taken_from_the_procedure() -> None:
    received = at(2026, 1, 5, 14, 0)
    assert due_at(received, 0, "13:30", PLAIN) == close_of(2026, 1, 6)
    assert due_at(received, 0, "15:00", PLAIN) == close_of(2026, 1, 5)
    assert due_at(received, 0, None, PLAIN) == close_of(2026, 1, 5)  # 15:00 by default
    assert due_at(at(2026, 1, 5, 15), 0, None, PLAIN) == close_of(2026, 1, 6)


def test_the_local_date_decides_not_the_utc_date() -> None:
    # 23:30 Monday in Vietnam is 16:30 UTC Monday; 00:30 Tuesday is still Monday in UTC.
    assert same_day(at(2026, 1, 5, 23, 30)) == close_of(2026, 1, 6)
    assert same_day(at(2026, 1, 6, 0, 30)) == close_of(2026, 1, 6)


# -- limits in working days ---------------------------------------------------------------------


def test_three_working_days_within_a_week() -> None:
    assert due_at(at(2026, 1, 5, 9), 3, None, PLAIN) == close_of(2026, 1, 8)


def test_three_working_days_across_a_weekend() -> None:
    # received Thursday: Friday, Monday, Tuesday
    assert due_at(at(2026, 1, 8, 9), 3, None, PLAIN) == close_of(2026, 1, 13)


def test_the_day_of_receipt_is_not_counted_even_late_in_the_day() -> None:
    assert due_at(at(2026, 1, 8, 16, 30), 1, None, PLAIN) == close_of(2026, 1, 9)


def test_a_limit_received_on_saturday_starts_monday() -> None:
    assert due_at(at(2026, 1, 10, 9), 3, None, PLAIN) == close_of(2026, 1, 15)


def test_a_period_rolls_past_tet() -> None:
    # received Thursday 4 Feb 2027; 5–11 Feb are Tết (6–7 a weekend too): 12, 15, 16 Feb
    assert due_at(at(2027, 2, 4, 10), 3, None, TET_2027) == close_of(2027, 2, 16)
    assert due_at(at(2027, 2, 4, 10), 3, None, PLAIN) == close_of(2027, 2, 9)


def test_same_day_procedure_on_the_eve_of_tet() -> None:
    assert same_day(at(2027, 2, 4, 14), TET_2027) == close_of(2027, 2, 4)
    assert same_day(at(2027, 2, 4, 15, 5), TET_2027) == close_of(2027, 2, 12)


def test_received_during_tet() -> None:
    assert same_day(at(2027, 2, 8, 9), TET_2027) == close_of(2027, 2, 12)
    assert due_at(at(2027, 2, 9, 9), 2, None, TET_2027) == close_of(2027, 2, 16)


def test_a_period_ending_on_a_holiday_rolls_to_the_next_working_day() -> None:
    # received Wednesday 3 Feb: 2 working days lands on Tết without it (Fri 5), after it on 12 Feb
    assert due_at(at(2027, 2, 3, 10), 2, None, PLAIN) == close_of(2027, 2, 5)
    assert due_at(at(2027, 2, 3, 10), 2, None, TET_2027) == close_of(2027, 2, 12)


def test_due_time_is_the_close_of_office_hours_in_vietnam() -> None:
    due = same_day(at(2026, 1, 5, 9))
    assert local(due).hour == 17
    assert local(due).minute == 0
    assert iso(due) == "2026-01-05T17:00:00+07:00"


# -- the calendar itself ------------------------------------------------------------------------


def test_working_days() -> None:
    assert PLAIN.is_working_day(date(2026, 1, 9))
    assert not PLAIN.is_working_day(date(2026, 1, 10))
    assert not PLAIN.is_working_day(date(2026, 1, 11))
    assert not TET_2027.is_working_day(date(2027, 2, 8))
    assert PLAIN.is_working_day(date(2027, 2, 8))


def test_next_and_add_working_days() -> None:
    assert PLAIN.next_working_day(date(2026, 1, 9)) == date(2026, 1, 12)
    assert PLAIN.next_working_day(date(2026, 1, 5)) == date(2026, 1, 6)
    assert TET_2027.next_working_day(date(2027, 2, 4)) == date(2027, 2, 12)
    assert PLAIN.add_working_days(date(2026, 1, 5), 0) == date(2026, 1, 5)
    assert PLAIN.add_working_days(date(2026, 1, 5), 10) == date(2026, 1, 19)
    assert TET_2027.add_working_days(date(2027, 2, 1), 5) == date(2027, 2, 15)


def test_calendar_of_is_a_frozen_set_of_holidays() -> None:
    days = [date(2027, 2, 5), date(2027, 2, 5), date(2027, 9, 2)]
    cal = Calendar.of(iter(days))
    assert cal.holidays == frozenset({date(2027, 2, 5), date(2027, 9, 2)})
    assert cal == Calendar.of(reversed(days))


# -- overdue ------------------------------------------------------------------------------------


DUE = close_of(2026, 1, 5)


def test_overdue_after_the_due_time_while_in_progress() -> None:
    for status in ("accepted", "processing", "fee_requested", "submitted"):
        assert is_overdue(DUE, DUE + 1, status)
        assert not is_overdue(DUE, DUE, status)
        assert not is_overdue(DUE, DUE - 60_000, status)


@pytest.mark.parametrize("status", sorted(FINAL | {"resolved"}))
def test_never_overdue_once_resolved_or_final(status: str) -> None:
    assert not is_overdue(DUE, DUE + 30 * 86_400_000, status)


def test_no_due_date_is_never_overdue() -> None:
    assert not is_overdue(None, DUE, "processing")


def test_time_conversions() -> None:
    moment = datetime(2026, 1, 5, 15, 0, tzinfo=VN_TZ)
    assert to_ms(moment) == 1_767_600_000_000
    assert local(1_767_600_000_000) == moment
    assert local(1_767_600_000_000).utcoffset() == timedelta(hours=7)
    assert iso(None) is None
    assert iso(1_767_600_000_000) == "2026-01-05T15:00:00+07:00"


# -- the legal clock paused while a supplement is awaited ---------------------------------------


def test_working_days_between_counts_after_the_first_day() -> None:
    assert working_days_between(at(2026, 1, 6, 10), at(2026, 1, 8, 9), PLAIN) == 2
    assert working_days_between(at(2026, 1, 6, 10), at(2026, 1, 6, 16), PLAIN) == 0
    assert working_days_between(at(2026, 1, 9, 10), at(2026, 1, 12, 9), PLAIN) == 1
    assert working_days_between(at(2027, 2, 4, 10), at(2027, 2, 12, 9), TET_2027) == 1


def test_extend_for_pause_moves_the_due_date_by_the_working_days_paused() -> None:
    due = close_of(2026, 1, 12)
    assert extend_for_pause(due, at(2026, 1, 6, 10), at(2026, 1, 8, 9), PLAIN) == close_of(
        2026, 1, 14)
    assert extend_for_pause(due, at(2026, 1, 6, 10), at(2026, 1, 6, 16), PLAIN) == due
    # a pause over a weekend counts only Monday; the new date skips the weekend too
    assert extend_for_pause(close_of(2026, 1, 9), at(2026, 1, 9, 10), at(2026, 1, 12, 9),
                            PLAIN) == close_of(2026, 1, 12)
