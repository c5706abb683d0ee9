"""Admission control for `/v1/sync`: a bounded number of exchanges in progress and a bounded
queue behind them; past that the hub answers 503 with a jittered `Retry-After` at once.

Without it a morning burst of thousands of communes queues every request behind every other (the
store serializes ingest), each answer comes after its client gave up, and the client retries into
the same queue: memory grows and nothing completes (measured: 3,321 communes at once, 0 sessions
finished in 300 s, 1.5 GiB). Refusing early keeps the served exchanges fast and spreads the
rest over the next minutes; the edge retries with backoff and keeps its queue meanwhile.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from service.web import Unavailable


class HubBusy(Unavailable):
    """The hub has more exchanges waiting than it will queue: retry after `retry_after_s`."""

    code = "busy"


class Admission:
    """At most `inflight` exchanges at once and `waiting` more queued (0 turns it off)."""

    def __init__(self, inflight: int, waiting: int, retry_s: tuple[float, float] = (2.0, 30.0),
                 rng: random.Random | None = None) -> None:
        self.inflight, self.limit_waiting = inflight, waiting
        self.retry_s = retry_s
        self.rng = rng or random.Random()
        self._sem = asyncio.Semaphore(inflight) if inflight > 0 else None
        self.waiting = 0
        self.refused = 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one exchange slot; HubBusy if the queue is full."""
        if self._sem is None:
            yield
            return
        if self._sem.locked() and self.waiting >= self.limit_waiting:
            self.refused += 1
            low, high = self.retry_s
            raise HubBusy(f"the hub is busy ({self.waiting} exchanges waiting); retry later",
                          self.rng.uniform(low, high))
        self.waiting += 1
        try:
            await self._sem.acquire()
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            self._sem.release()
