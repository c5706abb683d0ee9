"""Statistics kept while they cannot have changed: the one cache of the hub's and the edge's reports.

Theory. A report (`protocol.stats.report`) is a function of the facts of its period and of the
time it is made at. The facts are read from the dossier rows and events, and every change to a
dossier is an event with a new position in the log (`events.pos`, never reused): while the log's
highest position stays the same the facts read the same. Time enters the counting only at the
moments `stats.steady_until` names, so a report made at `made` still holds at `now` when
`made <= now < steady_until` (a clock set back makes it again). Reading the facts and counting
them is most of a report's cost at 100,000 dossiers; the answer is the same as computed afresh.
Each process keeps its own (several hub processes each read the shared database's position).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from protocol import stats
from protocol.stats import Facts, Period
from service import reports

log = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")
# how a caller counts: (facts, periods, now_ms) -> the report (names of communes, procedures)
Make = Callable[[list[Facts], list[Period], int], Awaitable[dict[str, Any]]]
Units = str | tuple[str, ...] | None  # a commune, a merged unit's codes, or every commune


async def log_position(store: reports.Reading) -> int:
    """The highest position in the store's event log (0 when empty)."""
    async with store.reader.execute("SELECT coalesce(max(pos), 0) FROM events") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


class StatsCache:
    """The facts of the last few periods asked for, and the last few reports made of them."""

    size = 8

    def __init__(self) -> None:
        self._facts: dict[tuple[Any, ...], tuple[int, list[Facts]]] = {}
        self._reports: dict[tuple[Any, ...], tuple[int, int, int | None, dict[str, Any]]] = {}

    async def facts(self, store: reports.Reading, period: Period,
                    commune: Units) -> tuple[int, list[Facts]]:
        """(log position, `reports.stats_facts` for the period and the unit's codes `commune`,
        all of them when None), reused if nothing was logged."""
        key = (period.start_ms, period.end_ms, commune)
        position = await log_position(store)
        kept = self._facts.pop(key, None)
        if kept is None or kept[0] != position:
            kept = (position, await reports.stats_facts(store, period.start_ms, period.end_ms,
                                                        commune))
        return self._keep(self._facts, key, kept)

    async def report(self, store: reports.Reading, period: Period, commune: Units, by: str,
                     variant: Hashable, make: Make) -> dict[str, Any]:
        """The report of `period` split by `by`, made by `make` (`variant`: what else it depends
        on, e.g. the language of the names), reused while nothing it counts can have changed.
        Never to be changed by the caller: it is kept."""
        position, facts = await self.facts(store, period, commune)
        now = store.now_ms()
        key = (period.start_ms, period.end_ms, commune, by, variant)
        kept = self._reports.pop(key, None)
        if kept is None or kept[0] != position or not kept[1] <= now < (kept[2] or now + 1):
            periods = stats.split(period, by)
            kept = (position, now, stats.steady_until(facts, periods, now),
                    await make(facts, periods, now))
        return self._keep(self._reports, key, kept)[3]

    def _keep(self, table: dict[K, V], key: K, value: V) -> V:
        table[key] = value  # most recently used last
        while len(table) > self.size:
            del table[next(iter(table))]
        return value


_CACHES: weakref.WeakKeyDictionary[Any, StatsCache] = weakref.WeakKeyDictionary()


def of(store: reports.Reading) -> StatsCache:
    """The cache of this store (one per open store, gone with it)."""
    return _CACHES.setdefault(store, StatsCache())
