"""One-stop statistics per commune × procedure × period, as the provincial reports count them.

The edge (its own commune, offline) and the hub (every commune) count with this one module, from
the facts `service.reports.stats_facts` reads. For a period [start, end) (Vietnamese days; `to` is
the last day counted):
- received: in the period, by channel (online, at the counter, by post) — a dossier refused at the
  counter (form 03) was never received: it counts as refused only; carried over: received
  before the period and not yet closed (resolved, refused, withdrawn, stopped, returned) at its start;
- resolved (the first move to `resolved` in the period): early if on a day before the due day, late
  if after the due time, otherwise on time;
- in progress at the end of the period (or now, if that is sooner): received and not closed, not yet
  due or overdue (past the due time, which a supplement pause has already pushed back; a dossier
  awaiting a supplement then is paused, so not overdue, as `protocol.calendar.is_overdue` says);
- withdrawn, returned: moves to those statuses in the period; refused: refusals in the period, at
  the counter or of an online submission;
- apologies: apologies with a new appointment (form 04) issued in the period. They change no other
  count: a dossier resolved after its due date is late whatever new date it was given;
- % on time = (early + on time) / resolved; % online = online / received (carried over excluded).
After a commune merger a period counts the merged communes under the new unit from the merger's
effective day on (`unit_on`: the unit on the period's first day); periods before stay under the
old units (DOMAIN: reports before a merger stay under the old unit).
Pure: the facts are passed in.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from protocol.calendar import VN_TZ, local, to_ms
from protocol.lifecycle import CLOCK_PAUSED

log = logging.getLogger(__name__)

COUNTS = ("received_online", "received_counter", "received_post", "carried_over",
          "received_total", "resolved_early", "resolved_on_time", "resolved_late",
          "resolved_total", "in_progress_not_due", "in_progress_overdue", "withdrawn", "returned",
          "refused", "apologies")
COLUMNS = ("period", "commune", "commune_name", "procedure", "procedure_name", *COUNTS,
           "pct_on_time", "pct_online")
CHANNELS = {"online": "received_online", "counter": "received_counter", "post": "received_post"}
GROUPINGS = ("none", "month", "quarter")
CLOSED = ("resolved", "refused", "withdrawn", "stopped", "returned")


@dataclass(frozen=True, slots=True)
class Facts:
    """What statistics need of one dossier: where, what, how it came in, when it reached each
    status (the first time), its moves, and when apologies (form 04) were issued. A reader may
    leave out what a period cannot count (`service.reports.stats_facts`)."""

    commune: str
    procedure: str
    channel: str
    received_at: int
    due_at: int | None
    reached: dict[str, int]
    moves: tuple[tuple[int, str], ...] = ()
    initial: str = "accepted"  # `refused`: refused at the counter (form 03)
    apologies: tuple[int, ...] = ()

    def status_at(self, ms: int) -> str | None:
        """The status the dossier was in at `ms` (None: before any move)."""
        current = None
        for at, to in self.moves:
            if at > ms:
                break
            current = to
        return current


@dataclass(frozen=True, slots=True)
class Period:
    """Days `first`..`last` (inclusive), in Vietnam."""

    first: date
    last: date

    @property
    def start_ms(self) -> int:
        return to_ms(datetime.combine(self.first, time(0), VN_TZ))

    @property
    def end_ms(self) -> int:
        return to_ms(datetime.combine(self.last + timedelta(days=1), time(0), VN_TZ))

    @property
    def label(self) -> str:
        return f"{self.first.isoformat()}/{self.last.isoformat()}"


def split(period: Period, by: str) -> list[Period]:
    """The period cut into calendar months or quarters (`none`: itself)."""
    if by == "none":
        return [period]
    months = 1 if by == "month" else 3
    out, first = [], period.first
    while first <= period.last:
        if by == "quarter":
            month0 = (first.month - 1) // 3 * 3
        else:
            month0 = first.month - 1
        year, month = first.year + (month0 + months) // 12, (month0 + months) % 12 + 1
        nxt = date(year, month, 1)
        out.append(Period(first, min(period.last, nxt - timedelta(days=1))))
        first = nxt
    return out


def _empty() -> dict[str, int]:
    return dict.fromkeys(COUNTS, 0)


def timeliness(resolved_ms: int, due_ms: int | None) -> str:
    """`early` (on a day before the due day), `late` (after the due time) or `on_time`; without
    a due time, on time."""
    if due_ms is None:
        return "on_time"
    if local(resolved_ms).date() < local(due_ms).date():
        return "early"
    return "late" if resolved_ms > due_ms else "on_time"


def _count(row: dict[str, int], f: Facts, start: int, end: int, at: int) -> None:
    row["apologies"] += sum(start <= a < end for a in f.apologies)
    if f.initial == "refused":
        row["refused"] += start <= f.received_at < end
        return
    closed = min((f.reached[s] for s in CLOSED if s in f.reached), default=None)
    if start <= f.received_at < end:
        row[CHANNELS.get(f.channel, "received_counter")] += 1
    elif f.received_at < start and (closed is None or closed >= start):
        row["carried_over"] += 1
    resolved = f.reached.get("resolved")
    if resolved is not None and start <= resolved < end:
        row[f"resolved_{timeliness(resolved, f.due_at)}"] += 1
    for status in ("withdrawn", "returned", "refused"):
        moved = f.reached.get(status)
        if moved is not None and start <= moved < end:
            row[status] += 1
    if f.received_at < at and (closed is None or closed >= at):
        if f.due_at is not None and f.due_at < at and f.status_at(at) not in CLOCK_PAUSED:
            row["in_progress_overdue"] += 1
        else:
            row["in_progress_not_due"] += 1


def _finish(row: dict[str, Any]) -> dict[str, Any]:
    received = row["received_online"] + row["received_counter"] + row["received_post"]
    resolved = row["resolved_early"] + row["resolved_on_time"] + row["resolved_late"]
    row["received_total"], row["resolved_total"] = received, resolved
    row["pct_on_time"] = round(100 * (resolved - row["resolved_late"]) / resolved, 1) \
        if resolved else None
    row["pct_online"] = round(100 * row["received_online"] / received, 1) if received else None
    return row


def report(facts: Iterable[Facts], periods: list[Period], now_ms: int, *,
           commune_names: dict[str, str], procedure_names: dict[str, str],
           unit_on: Callable[[str, date], str] | None = None) -> dict[str, Any]:
    """Rows per period × commune × procedure (only where something counts), with totals per
    period and overall; `unit_on(code, first day)` is the unit a commune counts under in a
    period (mergers: `protocol.communes.Mergers.unit_on`)."""
    facts = list(facts)
    rows: list[dict[str, Any]] = []
    totals: list[dict[str, Any]] = []
    for period in periods:
        start, end = period.start_ms, period.end_ms
        at = min(end, now_ms)
        cells: dict[tuple[str, str], dict[str, int]] = {}
        total = _empty()
        for f in facts:  # counted straight into its cell; a cell where nothing counts is dropped
            unit = f.commune if unit_on is None else unit_on(f.commune, period.first)
            cell = cells.get((unit, f.procedure))
            if cell is None:
                cell = cells[(unit, f.procedure)] = _empty()
            _count(cell, f, start, end, at)
        for cell in cells.values():
            for key, value in cell.items():
                total[key] += value
        for (commune, procedure), cell in sorted(cells.items()):
            if not any(cell.values()):
                continue
            rows.append(_finish({
                "period": period.label, "commune": commune,
                "commune_name": commune_names.get(commune, commune), "procedure": procedure,
                "procedure_name": procedure_names.get(procedure, procedure), **cell}))
        totals.append(_finish({"period": period.label, "commune": "", "commune_name": "",
                               "procedure": "", "procedure_name": "", **total}))
    return {"from": periods[0].first.isoformat(), "to": periods[-1].last.isoformat(),
            "rows": rows, "totals": totals}


def steady_until(facts: Iterable[Facts], periods: list[Period], now_ms: int) -> int | None:
    """Until when a report made at `now_ms` stays the same (None: for good). Time enters it only
    by comparing `min(end, now)` with the facts' moments (received, due, each move) and the
    periods' ends, so it can read otherwise only once now reaches the next of those."""
    moments = (m for f in facts for m in (f.received_at, f.due_at, *f.reached.values(),
                                          *(at for at, _ in f.moves)) if m is not None)
    ends = (p.end_ms for p in periods)
    return min((m for src in (moments, ends) for m in src if m >= now_ms), default=None)


def to_csv(data: dict[str, Any], headers: dict[str, str] | None = None) -> str:
    """The report's rows, then a total line per period, as CSV (`csv_text`)."""
    return csv_text(COLUMNS, [*data["rows"], *data["totals"]], headers)


def csv_text(columns: Iterable[str], rows: Iterable[dict[str, Any]],
             headers: dict[str, str] | None = None) -> str:
    """Rows as CSV with a BOM (Excel opens it in UTF-8); `headers` renames the columns (for
    people), the keys stay the JSON names otherwise."""
    columns = list(columns)
    buf = io.StringIO()
    buf.write("\ufeff")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([(headers or {}).get(c, c) for c in columns])
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return buf.getvalue()
