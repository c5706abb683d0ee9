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
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from protocol.errors import Unavailable


class HubBusy(Unavailable):
    """The hub has more exchanges waiting than it will queue: retry after `retry_after_s`."""

    code = "busy"


class Admission:
    """At most `inflight` exchanges at once (0: no admission control) and `waiting` more
    queued (0: none).

    A refused node is told when to come back: a random time up to how long the hub needs to
    serve the crowd outside (the distinct nodes it turned away that have not been served since,
    × the time an exchange holds a slot ÷ the slots), within `retry_s`. A node counts once however
    often it retries, and leaves the crowd when it is admitted or `grace_s` after the time it was
    given; so a small overload comes back within a second or two, and a burst of a thousand
    communes is spread over the half-minute the hub needs for them, not over a multiple of it."""

    def __init__(self, inflight: int, waiting: int, retry_s: tuple[float, float] = (1.0, 60.0),
                 rng: random.Random | None = None, grace_s: float = 10.0) -> None:
        self.inflight, self.limit_waiting = inflight, waiting
        self.retry_s, self.grace_s = retry_s, grace_s
        self.rng = rng or random.Random()
        self._sem = asyncio.Semaphore(inflight) if inflight > 0 else None
        self.waiting = 0
        self.refused = 0
        self.hold_s = 0.05  # moving average of how long an exchange holds its slot
        # node → until when it counts as outside (the time it was given + grace), oldest first
        self._outside: OrderedDict[str, float] = OrderedDict()

    @property
    def crowd(self) -> int:
        """Distinct nodes turned away and not served since."""
        return len(self._outside)

    def retry_after(self, now: float, node: str | None = None) -> float:
        """When a node refused now should come back, in seconds (and count it outside)."""
        while self._outside:
            oldest, until = next(iter(self._outside.items()))
            if until >= now:
                break
            del self._outside[oldest]
        low, high = self.retry_s
        ahead = self.waiting + len(self._outside) - (node in self._outside)  # queued + outside
        spread = (ahead + 1) * self.hold_s / max(1, self.inflight)
        wait = self.rng.uniform(low, min(high, max(2 * low, spread)))
        if node is not None:
            self._outside.pop(node, None)
            self._outside[node] = now + wait + self.grace_s
        return wait

    @asynccontextmanager
    async def slot(self, node: str | None = None) -> AsyncIterator[None]:
        """Hold one exchange slot for `node`; HubBusy if the queue is full."""
        if self._sem is None:
            yield
            return
        loop = asyncio.get_running_loop()
        if self._sem.locked() and self.waiting >= self.limit_waiting:
            self.refused += 1
            raise HubBusy(f"the hub is busy ({self.waiting} exchanges waiting); retry later",
                          self.retry_after(loop.time(), node))
        if node is not None:
            self._outside.pop(node, None)  # in the queue now: no longer part of the crowd outside
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
