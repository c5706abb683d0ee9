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
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from service.web import Unavailable


class HubBusy(Unavailable):
    """The hub has more exchanges waiting than it will queue: retry after `retry_after_s`."""

    code = "busy"


class Admission:
    """At most `inflight` exchanges at once and `waiting` more queued (0 turns it off).

    A refused node is told when to come back: a random time up to how long the hub needs to
    serve everyone it turned away in the last `window_s` (their number × the time an exchange
    holds a slot ÷ the slots), within `retry_s`. A small overload comes back within a second or
    two; a burst of a thousand communes is spread over the half-minute the hub needs for them."""

    def __init__(self, inflight: int, waiting: int, retry_s: tuple[float, float] = (1.0, 60.0),
                 rng: random.Random | None = None, window_s: float = 10.0) -> None:
        self.inflight, self.limit_waiting = inflight, waiting
        self.retry_s, self.window_s = retry_s, window_s
        self.rng = rng or random.Random()
        self._sem = asyncio.Semaphore(inflight) if inflight > 0 else None
        self.waiting = 0
        self.refused = 0
        self.hold_s = 0.05  # moving average of how long an exchange holds its slot
        self._turned_away: deque[float] = deque()

    def retry_after(self, now: float) -> float:
        """When a node refused now should come back, in seconds."""
        while self._turned_away and self._turned_away[0] < now - self.window_s:
            self._turned_away.popleft()
        low, high = self.retry_s
        spread = len(self._turned_away) * self.hold_s / max(1, self.inflight)
        return self.rng.uniform(low, min(high, max(2 * low, spread)))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one exchange slot; HubBusy if the queue is full."""
        if self._sem is None:
            yield
            return
        loop = asyncio.get_running_loop()
        if self._sem.locked() and self.waiting >= self.limit_waiting:
            self.refused += 1
            now = loop.time()
            self._turned_away.append(now)
            raise HubBusy(f"the hub is busy ({self.waiting} exchanges waiting); retry later",
                          self.retry_after(now))
        self.waiting += 1
        try:
            await self._sem.acquire()
        finally:
            self.waiting -= 1
        started = loop.time()
        try:
            yield
        finally:
            self._sem.release()
            self.hold_s = 0.9 * self.hold_s + 0.1 * (loop.time() - started)
