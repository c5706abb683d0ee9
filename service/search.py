"""Listing dossiers: filtered, newest first, keyset-paged both ways, read from the materialized rows.

Every filter runs down an index of `dossiers` (service/schema.py); a name or a searchable form value
is matched as a substring of the folded search text (`service/search_text.py`), a code by its
prefix, a phone by its subscriber digits, a day by the received date or a form's date, a citizen ID
or a whole code exactly. Reads go through the reader connection: they see committed rows only and
never wait on a writer.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from protocol import codec
from protocol.calendar import is_overdue
from protocol.errors import ValidationError
from protocol.lifecycle import STATUSES
from protocol.merge import from_plain
from protocol.stats import Period
from protocol.text import SEPARATOR, search_key
from protocol.views import dossier_view
from service.db import index_hint
from service.ui.formats import parse_day

log = logging.getLogger(__name__)

Units = str | tuple[str, ...]  # one commune code, or a unit's codes after mergers

MAX_PAGE = 10_000
MAX_OFFSET = 1_000_000
CITIZEN_ID_RE = re.compile(r"^\d{12}$")
PHONE_RE = re.compile(r"^(\+84|0)\d{9,10}$")
PHONE_JUNK = re.compile(r"[\s.\-()]")
FULL_CODE_RE = re.compile(r"^\S+-\d{6}-\d{4,}$")
CHUNK = 500


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing, with the cursors of the next (older) and previous pages."""

    items: list[dict[str, Any]]
    next: str | None
    prev: str | None = None


def _cursor(token: str | None, name: str) -> tuple[int, str]:
    """A page cursor (`received_at~id`), or ValidationError naming the parameter."""
    at, _, last_id = (token or "").partition("~")
    try:
        return int(at), last_id
    except ValueError as exc:
        raise ValidationError(f"{name} must be a cursor from a previous page",
                              field=name) from exc


def overdue_statuses() -> list[str]:
    """The statuses in which a dossier past its due time counts as overdue (protocol.calendar)."""
    return [s for s in STATUSES if is_overdue(0, 1, s)]


def _like(text: str) -> str:
    """`text` as a literal inside a LIKE pattern (escape character: backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search(reader: Any, now_ms: int, *, status: str | None = None, q: str | None = None,
                 commune: Units | None = None, conflicts_only: bool = False,
                 limit: int = 50, after: str | None = None, procedure: str | None = None,
                 overdue_at: int | None = None, before: str | None = None,
                 offset: int = 0) -> Page:
    """Dossiers newest first as seen at `now_ms`, filtered, keyset-paged both ways: `after` is
    a page's `next` (the older page), `before` its `prev` (the newer page); without either,
    `offset` skips that many from the newest (a page number; the walk stays inside an index).
    `overdue_at` (a time in ms) keeps only dossiers overdue at that time."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit must be 1–{MAX_PAGE}", field="limit")
    if not 0 <= offset <= MAX_OFFSET:
        raise ValidationError(f"offset must be 0–{MAX_OFFSET}", field="offset")
    where, args, scan = _filters(reader, status, q, commune, conflicts_only, procedure,
                                 overdue_at)
    order, backwards = "DESC", False
    if after or before:
        at, last_id = _cursor(after or before, "after" if after else "before")
        backwards = before is not None and not after
        op = ">" if backwards else "<"
        where.append(f"(received_at {op} ? OR (received_at = ? AND id {op} ?))")
        args += [at, at, last_id]
        order = "ASC" if backwards else "DESC"
        offset = 0
    # Two steps: pick the page's ids from an index, then read only those rows' states.
    sql = (f"SELECT id, received_at FROM dossiers {scan} WHERE {' AND '.join(where)} "
           f"ORDER BY received_at {order}, id {order} LIMIT ? OFFSET ?")
    async with reader.execute(sql, (*args, limit + 1, offset)) as cur:
        rows = list(await cur.fetchall())
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    states = await _read_states(reader, [r[0] for r in rows])
    items = [dossier_view(from_plain(codec.unpack_stored(states[r[0]])), now_ms) for r in rows]
    for item in items:
        item.pop("history", None)
    first = f"{rows[0][1]}~{rows[0][0]}" if rows else None
    last = f"{rows[-1][1]}~{rows[-1][0]}" if rows else None
    if backwards:  # the page we came from is after this one
        return Page(items, last, first if more else None)
    return Page(items, last if more else None, first if (after or offset) else None)


async def count(reader: Any, *, status: str | None = None, q: str | None = None,
                commune: Units | None = None, conflicts_only: bool = False,
                procedure: str | None = None, overdue_at: int | None = None) -> int:
    """How many dossiers `search` finds with these filters (down the same indexes)."""
    where, args, scan = _filters(reader, status, q, commune, conflicts_only, procedure,
                                 overdue_at)
    async with reader.execute(
            f"SELECT count(*) FROM dossiers {scan} WHERE {' AND '.join(where)}", args) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


def _filters(reader: Any, status: str | None, q: str | None, commune: Units | None,
             conflicts_only: bool, procedure: str | None, overdue_at: int | None,
             ) -> tuple[list[str], list[Any], str]:
    """The WHERE terms, their arguments and the index hint of a listing's filters."""
    where: list[str] = ["received_at IS NOT NULL"]
    args: list[Any] = []
    if status:
        where.append("status=?")
        args.append(status)
    if commune:
        codes = (commune,) if isinstance(commune, str) else tuple(commune)
        where.append("commune=?" if len(codes) == 1 else
                     f"commune IN ({','.join('?' * len(codes))})")
        args.extend(codes)
    if conflicts_only:
        where.append("conflicts>0")
    if procedure:
        where.append("procedure=?")
        args.append(procedure)
    if overdue_at is not None:
        running = overdue_statuses()
        where.append(f"status IN ({','.join('?' * len(running))}) AND due_at < ?")
        args += [*running, overdue_at]
    scan = ""
    if q and q.strip():
        term = q.strip()
        if CITIZEN_ID_RE.match(term):  # an exact ID or code: straight down its own index
            where.append("citizen_id=?")
            args.append(term)
        elif FULL_CODE_RE.match(term):
            where.append("code=?")
            args.append(term)
        elif PHONE_RE.match(phone := PHONE_JUNK.sub("", term)):  # its subscriber digits
            where.append("name_fold LIKE ? ESCAPE '\\'")
            args.append("%" + phone[-9:] + "%")
            scan = index_hint(reader, "dossiers_search")
        elif (day := parse_day(term)) is not None:  # received that day, or a form's date
            one = Period(date.fromisoformat(day), date.fromisoformat(day))
            where.append("(name_fold LIKE ? OR (received_at >= ? AND received_at < ?))")
            args += [f"%{SEPARATOR}{day}%", one.start_ms, one.end_ms]
            scan = index_hint(reader, "dossiers_search")
        elif any(ch.isdigit() for ch in term):  # the beginning of a code (names have none)
            where.append("code LIKE ? ESCAPE '\\'")
            args.append(_like(term) + "%")
            scan = index_hint(reader, "dossiers_search")
        else:  # part of a name (the applicant's or a searchable field's), diacritics optional
            where.append("name_fold LIKE ? ESCAPE '\\'")
            args.append("%" + _like(search_key(term)) + "%")
            scan = index_hint(reader, "dossiers_search")
    return where, args, scan


async def _read_states(reader: Any, ids: list[str]) -> dict[str, bytes]:
    """The packed states of these dossiers, through the reader."""
    out: dict[str, bytes] = {}
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i:i + CHUNK]
        async with reader.execute(
                f"SELECT id, state FROM dossiers WHERE id IN ({','.join('?' * len(chunk))})",
                chunk) as cur:
            out.update({r[0]: r[1] for r in await cur.fetchall()})
    return out


async def count_conflicts(reader: Any, commune: Units | None = None) -> int:
    """How many dossiers have an open conflict."""
    sql = "SELECT count(*) FROM dossiers WHERE conflicts>0"
    args: list[Any] = []
    if commune:
        codes = (commune,) if isinstance(commune, str) else tuple(commune)
        sql += f" AND commune IN ({','.join('?' * len(codes))})"
        args.extend(codes)
    async with reader.execute(sql, args) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0
