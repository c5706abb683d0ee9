"""Legal time: working days, the 15:00 rule, and due dates, in Vietnam's time zone (UTC+7).

Limits are in working days; the day of receipt is not counted; a period ending on a weekend or a
holiday rolls to the next working day (Civil Code 2015 art. 147–148). A same-day procedure received
after its cutoff (15:00) is due the next working day. Results are due at the close of office hours.
Overdue is computed from the due time here, never stored.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone

from protocol.lifecycle import CLOCK_PAUSED, FINAL

log = logging.getLogger(__name__)

VN_TZ = timezone(timedelta(hours=7), "ICT")
OFFICE_CLOSE = time(17, 0)


@dataclass(frozen=True, slots=True)
class Calendar:
    """Which days are working days: weekends and a set of holidays (reference data)."""

    holidays: frozenset[date] = frozenset()
    weekend: frozenset[int] = frozenset({5, 6})  # Saturday, Sunday

    @classmethod
    def of(cls, holidays: Iterable[date]) -> Calendar:
        """A calendar with these holidays."""
        return cls(holidays=frozenset(holidays))

    def is_working_day(self, day: date) -> bool:
        """True iff `day` is neither a weekend day nor a holiday."""
        return day.weekday() not in self.weekend and day not in self.holidays

    def next_working_day(self, day: date) -> date:
        """The first working day strictly after `day`."""
        day += timedelta(days=1)
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day

    def add_working_days(self, day: date, n: int) -> date:
        """The n-th working day after `day` (`day` itself not counted)."""
        for _ in range(n):
            day = self.next_working_day(day)
        return day


def local(ms: int) -> datetime:
    """Epoch ms as an aware datetime in Vietnam's time zone."""
    return datetime.fromtimestamp(ms / 1000, tz=VN_TZ)


def to_ms(moment: datetime) -> int:
    """An aware datetime as epoch ms."""
    return int(moment.astimezone(UTC).timestamp() * 1000)


def iso(ms: int | None) -> str | None:
    """Epoch ms as ISO 8601 with the +07:00 offset, to the second."""
    return None if ms is None else local(ms).isoformat(timespec="seconds")


def due_at(received_ms: int, limit_days: int, cutoff: str | None, calendar: Calendar) -> int:
    """The appointment to return the result for a dossier received at `received_ms`."""
    received = local(received_ms)
    day = received.date()
    if not calendar.is_working_day(day):
        # Received on a day off: the period starts as if received at the next opening.
        day = calendar.next_working_day(day)
        received = datetime.combine(day, time(7, 30), VN_TZ)
    if limit_days == 0:
        hh, mm = (int(x) for x in (cutoff or "15:00").split(":"))
        if received.time() >= time(hh, mm):
            day = calendar.next_working_day(day)
    else:
        day = calendar.add_working_days(day, limit_days)
    return to_ms(datetime.combine(day, OFFICE_CLOSE, VN_TZ))


def working_days_between(start_ms: int, end_ms: int, calendar: Calendar) -> int:
    """Working days after the day of `start_ms`, up to and including the day of `end_ms`."""
    day, end = local(start_ms).date(), local(end_ms).date()
    count = 0
    while day < end:
        day += timedelta(days=1)
        count += calendar.is_working_day(day)
    return count


def extend_for_pause(due_ms: int, paused_ms: int, resumed_ms: int, calendar: Calendar) -> int:
    """The due time pushed back by the working days the legal clock was paused (a supplement
    was awaited from `paused_ms` to `resumed_ms`); same time of day, on a working day."""
    days = working_days_between(paused_ms, resumed_ms, calendar)
    if days == 0:
        return due_ms
    due = local(due_ms)
    new_day = calendar.add_working_days(due.date(), days)
    return to_ms(datetime.combine(new_day, due.timetz()))


def is_overdue(due_ms: int | None, now_ms: int, status: str) -> bool:
    """Overdue: past the due time, not yet resolved or closed, and not paused (a supplement
    awaited: the legal clock stops, and resuming pushes the due time back)."""
    return (due_ms is not None and now_ms > due_ms
            and status not in FINAL | {"resolved"} | CLOCK_PAUSED)
