"""One-stop statistics per commune × procedure × period, as the provincial reports count them.

For a period [start, end) (Vietnamese days; `to` is the last day counted):
- received: in the period, by channel (online, at the counter, by post); carried over: received
  before the period and not yet closed (resolved, refused, withdrawn, stopped, returned) at its start;
- resolved (the first move to `resolved` in the period): early if on a day before the due day, late
  if after the due time, otherwise on time;
- in progress at the end of the period (or now, if that is sooner): received and not closed, not yet
  due or overdue (past the due time, which a supplement pause has already pushed back; a dossier
  awaiting a supplement then is paused, so not overdue, as `protocol.calendar.is_overdue` says);
- withdrawn, returned: moves to those statuses in the period;
- % on time = (early + on time) / resolved; % online = online / received (carried over excluded).
Pure: the facts come from `central_hub.nodes.fleet.stats_facts`.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from central_hub.nodes.fleet import CLOSED, Facts
from protocol.calendar import VN_TZ, local, to_ms
from protocol.lifecycle import CLOCK_PAUSED

log = logging.getLogger(__name__)

COUNTS = ("received_online", "received_counter", "received_post", "carried_over",
          "received_total", "resolved_early", "resolved_on_time", "resolved_late",
          "resolved_total", "in_progress_not_due", "in_progress_overdue", "withdrawn", "returned")
COLUMNS = ("period", "commune", "commune_name", "procedure", "procedure_name", *COUNTS,
           "pct_on_time", "pct_online")
CHANNELS = {"online": "received_online", "counter": "received_counter", "post": "received_post"}
GROUPINGS = ("none", "month", "quarter")


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


def _count(row: dict[str, int], f: Facts, start: int, end: int, at: int) -> None:
    closed = min((f.reached[s] for s in CLOSED if s in f.reached), default=None)
    if start <= f.received_at < end:
        row[CHANNELS.get(f.channel, "received_counter")] += 1
    elif f.received_at < start and (closed is None or closed >= start):
        row["carried_over"] += 1
    resolved = f.reached.get("resolved")
    if resolved is not None and start <= resolved < end:
        if f.due_at is None or local(resolved).date() < local(f.due_at).date():
            row["resolved_early"] += f.due_at is not None
            row["resolved_on_time"] += f.due_at is None
        elif resolved > f.due_at:
            row["resolved_late"] += 1
        else:
            row["resolved_on_time"] += 1
    for status in ("withdrawn", "returned"):
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
           commune_names: dict[str, str], procedure_names: dict[str, str]) -> dict[str, Any]:
    """Rows per period × commune × procedure (only where something counts), with totals per
    period and overall."""
    facts = list(facts)
    rows: list[dict[str, Any]] = []
    totals: list[dict[str, Any]] = []
    for period in periods:
        start, end = period.start_ms, period.end_ms
        at = min(end, now_ms)
        cells: dict[tuple[str, str], dict[str, int]] = {}
        total = _empty()
        for f in facts:
            row = _empty()
            _count(row, f, start, end, at)
            counted = [(key, value) for key, value in row.items() if value]
            if counted:  # a dossier counts in one or two columns: add those alone
                cell = cells.get((f.commune, f.procedure))
                if cell is None:
                    cell = cells[(f.commune, f.procedure)] = _empty()
                for key, value in counted:
                    cell[key] += value
                    total[key] += value
        for (commune, procedure), cell in sorted(cells.items()):
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
    """The report's rows, then a total line per period, as CSV with a BOM (Excel opens it in
    UTF-8); `headers` renames the columns (for people), the keys stay the JSON names otherwise."""
    buf = io.StringIO()
    buf.write("\ufeff")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([(headers or {}).get(c, c) for c in COLUMNS])
    for row in [*data["rows"], *data["totals"]]:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in COLUMNS])
    return buf.getvalue()
