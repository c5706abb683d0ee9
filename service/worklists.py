"""Worklists and counters for staff screens, read from the materialized `dossiers` table.

Today's intake, due today, overdue and awaiting supplement, and per-status statistics. Overdue is
decided here from `due_at` and the time passed in, never stored. Every query is a range over an
index (`dossiers_order`, `dossiers_due`, `dossiers_status`), so the screens stay fast at 100,000
dossiers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from protocol import codec
from protocol.calendar import VN_TZ, to_ms
from protocol.merge import from_plain
from protocol.views import dossier_view
from service.dossier_store import DossierStore
from service.search import overdue_statuses

log = logging.getLogger(__name__)

SUPPLEMENT = "supplement_requested"


@dataclass(frozen=True, slots=True)
class Worklist:
    """How many dossiers are in a list, and the first few of them."""

    count: int
    items: list[dict[str, Any]]


def day_bounds(day: date) -> tuple[int, int]:
    """[start, end) of a day in Vietnam, in epoch ms."""
    start = datetime.combine(day, time(0), VN_TZ)
    return to_ms(start), to_ms(start + timedelta(days=1))


class Worklists:
    """Read-only queries over one store's dossiers (a commune's, at the edge)."""

    def __init__(self, store: DossierStore) -> None:
        self.store = store

    async def _count(self, where: str, args: list[Any]) -> int:
        async with self.store.reader.execute(f"SELECT count(*) FROM dossiers WHERE {where}",
                                             args) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def _items(self, where: str, args: list[Any], order: str, limit: int,
                     now_ms: int) -> list[dict[str, Any]]:
        async with self.store.reader.execute(
                f"SELECT state FROM dossiers WHERE {where} ORDER BY {order} LIMIT ?",
                (*args, limit)) as cur:
            rows = await cur.fetchall()
        items = [dossier_view(from_plain(codec.unpack_stored(r[0])), now_ms) for r in rows]
        for item in items:
            item.pop("history", None)
        return items

    async def _list(self, where: str, args: list[Any], order: str, limit: int,
                    now_ms: int) -> Worklist:
        return Worklist(await self._count(where, args),
                        await self._items(where, args, order, limit, now_ms))

    async def received_on(self, day: date, now_ms: int, limit: int = 10) -> Worklist:
        """Dossiers received on `day`, newest first."""
        start, end = day_bounds(day)
        return await self._list("received_at >= ? AND received_at < ?", [start, end],
                                "received_at DESC, id DESC", limit, now_ms)

    async def due_on(self, day: date, now_ms: int, limit: int = 10) -> Worklist:
        """Running dossiers due on `day` and not yet overdue, soonest first."""
        start, end = day_bounds(day)
        running = overdue_statuses()
        marks = ",".join("?" * len(running))
        return await self._list(f"status IN ({marks}) AND due_at >= ? AND due_at < ?",
                                [*running, max(start, now_ms), end], "due_at, id", limit, now_ms)

    async def overdue(self, now_ms: int, limit: int = 10) -> Worklist:
        """Running dossiers past their due time, the longest overdue first."""
        running = overdue_statuses()
        marks = ",".join("?" * len(running))
        return await self._list(f"status IN ({marks}) AND due_at < ?", [*running, now_ms],
                                "due_at, id", limit, now_ms)

    async def awaiting_supplement(self, now_ms: int, limit: int = 10) -> Worklist:
        """Dossiers waiting for the citizen to bring missing documents, oldest first."""
        return await self._list("status = ?", [SUPPLEMENT], "received_at, id", limit, now_ms)

    async def conflicts(self, now_ms: int, limit: int = 10) -> Worklist:
        """Dossiers with an open conflict, newest first."""
        return await self._list("conflicts > 0", [], "received_at DESC, id DESC", limit, now_ms)

    async def by_status(self) -> dict[str, int]:
        """How many dossiers are in each status."""
        async with self.store.reader.execute(
                "SELECT status, count(*) FROM dossiers WHERE received_at IS NOT NULL "
                "GROUP BY status") as cur:
            return {str(r[0]): int(r[1]) for r in await cur.fetchall()}

    async def by_procedure(self, start_ms: int, end_ms: int) -> dict[str, int]:
        """How many dossiers of each procedure were received in [start, end)."""
        async with self.store.reader.execute(
                "SELECT procedure, count(*) FROM dossiers WHERE received_at >= ? AND "
                "received_at < ? GROUP BY procedure", (start_ms, end_ms)) as cur:
            return {str(r[0]): int(r[1]) for r in await cur.fetchall()}

    async def count_overdue(self, now_ms: int) -> int:
        """How many running dossiers are past their due time."""
        running = overdue_statuses()
        return await self._count(f"status IN ({','.join('?' * len(running))}) AND due_at < ?",
                                 [*running, now_ms])
