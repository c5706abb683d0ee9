"""Listing dossiers: filtered, newest first, keyset-paged, read from the materialized rows.

Every filter runs down an index of `dossiers` (service/schema.py); a name is matched as a substring
of its diacritic-folded form, a code by its prefix, a citizen ID or a whole code exactly. Reads go
through the reader connection: they see committed rows only and never wait on a writer.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from protocol import codec
from protocol.calendar import is_overdue
from protocol.errors import ValidationError
from protocol.lifecycle import STATUSES
from protocol.merge import from_plain
from protocol.text import search_key
from protocol.views import dossier_view
from service.db import index_hint

log = logging.getLogger(__name__)

MAX_PAGE = 10_000
CITIZEN_ID_RE = re.compile(r"^\d{12}$")
FULL_CODE_RE = re.compile(r"^\S+-\d{6}-\d{4,}$")
CHUNK = 500


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing, with the cursor of the next page."""

    items: list[dict[str, Any]]
    next: str | None


def overdue_statuses() -> list[str]:
    """The statuses in which a dossier past its due time counts as overdue (protocol.calendar)."""
    return [s for s in STATUSES if is_overdue(0, 1, s)]


def _like(text: str) -> str:
    """`text` as a literal inside a LIKE pattern (escape character: backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search(reader: Any, now_ms: int, *, status: str | None = None, q: str | None = None,
                 commune: str | None = None, conflicts_only: bool = False,
                 limit: int = 50, after: str | None = None, procedure: str | None = None,
                 overdue_at: int | None = None) -> Page:
    """Dossiers newest first, filtered, keyset-paged (`after` is the previous `next`), as seen
    at `now_ms`. `overdue_at` (a time in ms) keeps only dossiers overdue at that time."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit must be 1–{MAX_PAGE}", field="limit")
    where: list[str] = ["received_at IS NOT NULL"]
    args: list[Any] = []
    if status:
        where.append("status=?")
        args.append(status)
    if commune:
        where.append("commune=?")
        args.append(commune)
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
        elif any(ch.isdigit() for ch in term):  # the beginning of a code (names have none)
            where.append("code LIKE ? ESCAPE '\\'")
            args.append(_like(term) + "%")
            scan = index_hint(reader, "dossiers_search")
        else:  # part of a name, with or without diacritics
            where.append("name_fold LIKE ? ESCAPE '\\'")
            args.append("%" + _like(search_key(term)) + "%")
            scan = index_hint(reader, "dossiers_search")
    if after:
        try:
            at, _, last_id = after.partition("~")
            where.append("(received_at < ? OR (received_at = ? AND id < ?))")
            args += [int(at), int(at), last_id]
        except ValueError as exc:
            raise ValidationError("after must be a next cursor from a previous page",
                                  field="after") from exc
    # Two steps: pick the page's ids from an index, then read only those rows' states.
    sql = (f"SELECT id, received_at FROM dossiers {scan} WHERE {' AND '.join(where)} "
           "ORDER BY received_at DESC, id DESC LIMIT ?")
    async with reader.execute(sql, (*args, limit + 1)) as cur:
        rows = list(await cur.fetchall())
    states = await _read_states(reader, [r[0] for r in rows[:limit]])
    items = [dossier_view(from_plain(codec.unpack_stored(states[r[0]])), now_ms)
             for r in rows[:limit]]
    for item in items:
        item.pop("history", None)
    nxt = f"{rows[limit - 1][1]}~{rows[limit - 1][0]}" if len(rows) > limit else None
    return Page(items, nxt)


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


async def count_conflicts(reader: Any, commune: str | None = None) -> int:
    """How many dossiers have an open conflict."""
    sql = "SELECT count(*) FROM dossiers WHERE conflicts>0"
    args: list[Any] = []
    if commune:
        sql += " AND commune=?"
        args.append(commune)
    async with reader.execute(sql, args) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0
