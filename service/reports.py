"""What the period reports read, the same on the edge and the hub: the facts statistics count
(`protocol.stats`) and the dossiers of the register (form 06), from the `dossiers` table and the
event log through a store's reader (SQLite or PostgreSQL)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from typing import Any, Protocol, TypeVar

from protocol import codec
from protocol.errors import ValidationError
from protocol.lifecycle import STATUSES
from protocol.merge import from_plain
from protocol.stats import CLOSED, Facts, Period
from protocol.views import dossier_view
from service.db import index_hint
from service.ui.formats import parse_day
from service.ui.i18n import Messages

log = logging.getLogger(__name__)

T = TypeVar("T")

CHUNK = 500
MAX_REGISTER = 20_000
# Dossiers by their last change: the closed ones a period's report still counts (resolved,
# returned… in it) are found down this index instead of a walk of every row (both databases'
# migration 5).
UPDATED_INDEX = "CREATE INDEX IF NOT EXISTS dossiers_updated ON dossiers(updated_hlc)"
MAX_DAYS = 3 * 366


def _day(raw: str, name: str, t: Messages | None) -> date:
    parsed = parse_day(raw)
    if parsed is None:
        raise ValidationError(
            t("stats.err.date", field=t(f"stats.{name}"), value=raw) if t else
            f"{name} must be a date (YYYY-MM-DD or dd/mm/yyyy)", field=name)
    return date.fromisoformat(parsed)


def parse_period(query: Any, today: date, *, default_first: date | None = None,
                 t: Messages | None = None) -> Period:
    """The period of `from` and `to` (dd/mm/yyyy as the pages show, or YYYY-MM-DD; this month to
    today by default, or `default_first` to today), at most three years. Errors in English, or
    in `t`'s language for a page (its `stats.err.*` messages)."""
    first = _day(query["from"], "from", t) if query.get("from") else \
        (default_first or today.replace(day=1))
    last = _day(query["to"], "to", t) if query.get("to") else today
    if last < first:
        raise ValidationError(t("stats.err.order") if t else "to must not be before from",
                              field="to")
    if (last - first).days >= MAX_DAYS:
        raise ValidationError(t("stats.err.long", days=MAX_DAYS) if t else
                              f"a period of at most {MAX_DAYS} days", field="to")
    return Period(first, last)


class Reading(Protocol):
    """What these reads need of a store: its reader connection and its corrected time."""

    reader: Any

    def now_ms(self) -> int: ...


async def _events(store: Reading, ids: list[str], kinds: tuple[str, ...],
                  decode: Callable[[bytes], T]) -> dict[str, list[T]]:
    """These dossiers' events of these kinds, in log order, each decoded by `decode`."""
    out: dict[str, list[T]] = {i: [] for i in ids}
    kind_marks = ",".join("?" * len(kinds))
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i:i + CHUNK]
        async with store.reader.execute(
                f"SELECT dossier, body FROM events WHERE dossier IN ({','.join('?' * len(chunk))})"
                f" AND kind IN ({kind_marks}) ORDER BY pos", [*chunk, *kinds]) as cur:
            for dossier, body in await cur.fetchall():
                out[dossier].append(decode(body))
    return out


async def stats_facts(store: Reading, start_ms: int, end_ms: int,
                      commune: str | tuple[str, ...] | None = None) -> list[Facts]:
    """The dossiers that count in [start, end): received before its end and not closed before
    its start (a dossier untouched since before the start in a closed status is skipped).

    Only what the period can count is read: the moves and apologies of dossiers changed since
    its start (one untouched since is open, and its one move is its status now), and the create
    (how it came in) of those received in it."""
    marks = ",".join("?" * len(CLOSED))
    opened = [s for s in STATUSES if s not in CLOSED]
    since = start_ms << 16  # an hlc
    codes = (commune,) if isinstance(commune, str) else tuple(commune or ())
    where = f" AND commune IN ({','.join('?' * len(codes))})" if codes else ""
    more = list(codes)
    # Three disjoint parts, each down an index: received in the period (dossiers_order); received
    # before it and open (dossiers_status); received before it, closed, changed since its start
    # (dossiers_updated).
    columns = ("SELECT id, commune, procedure, received_at, due_at, status, updated_hlc "
               "FROM dossiers ")
    sql = (f"{columns}WHERE received_at >= ? AND received_at < ?{where} UNION ALL "
           f"{columns}{index_hint(store.reader, 'dossiers_status')} WHERE status IN "
           f"({','.join('?' * len(opened))}) AND received_at < ?{where} UNION ALL "
           f"{columns}{index_hint(store.reader, 'dossiers_updated')} WHERE updated_hlc >= ? "
           f"AND status IN ({marks}) AND received_at < ?{where}")
    args: list[Any] = [start_ms, end_ms, *more, *opened, start_ms, *more,
                       since, *CLOSED, start_ms, *more]
    async with store.reader.execute(sql, args) as cur:
        rows = list(await cur.fetchall())
    changes = codec.stored_change  # (hlc, kind, payload): no Event built for each
    events = await _events(store, [r[0] for r in rows if r[6] >= since],
                           ("transition", "comment"), changes)
    for dossier, create in (await _events(store, [r[0] for r in rows if r[3] >= start_ms],
                                          ("create",), changes)).items():
        events[dossier] = create + events[dossier]
    out = []
    for dossier, commune_code, procedure, received, due, status, updated in rows:
        reached: dict[str, int] = {}
        moves: list[tuple[int, str]] = []
        apologies: list[int] = []
        channel, initial = "counter", "accepted"
        if dossier not in events:
            moves.append((updated >> 16, str(status)))
        for hlc, kind, payload in events.get(dossier, ()):
            at = hlc >> 16
            if kind == "create":  # how it came in; `refused`: at the counter (form 03)
                channel = payload.get("channel") or channel
                initial = "refused" if payload.get("status") == "refused" else initial
            elif kind == "comment":
                if isinstance(payload.get("apology"), dict):
                    apologies.append(at)
            else:
                to = str(payload.get("to"))
                moves.append((at, to))
                if to not in reached or at < reached[to]:
                    reached[to] = at
        out.append(Facts(commune_code, procedure or "", channel, int(received),
                         due if isinstance(due, int) else None, reached, tuple(sorted(moves)),
                         initial, tuple(sorted(apologies))))
    return out


async def register_views(store: Reading, start_ms: int, end_ms: int,
                         commune: str | None = None) -> list[dict[str, Any]]:
    """The dossiers received in [start, end), oldest first, each as its full view (history and
    what the forms recorded): the rows of the register (form 06)."""
    sql = ("SELECT id, state FROM dossiers WHERE received_at >= ? AND received_at < ?"
           + (" AND commune=?" if commune else "") + " ORDER BY received_at, id LIMIT ?")
    args: list[Any] = [start_ms, end_ms, *([commune] if commune else []), MAX_REGISTER]
    async with store.reader.execute(sql, args) as cur:
        rows = list(await cur.fetchall())
    histories = await _events(store, [r[0] for r in rows],
                              ("create", "set", "transition", "resolve", "comment"),
                              codec.decode_stored)
    now = store.now_ms()
    return [dossier_view(from_plain(codec.unpack_stored(state)), now, histories[dossier])
            for dossier, state in rows]
