"""One budget per process for the memory of request bodies: the bytes of every body being read
(service/web/body.py: `read_body`), and of every sync body being decompressed and decoded, across
all requests at once.

Each request holds what it may need (a body's Content-Length, or the route's limit when the length
is not given; then what its zstd frames can inflate to, from their headers) before it reads or
decompresses, and gives it back when it is answered. A request that does not fit waits up to
`wait_s` for others to finish, then is refused with 503 and `Retry-After` (the edge retries later;
its data waits intact). 503, not 413: the request is fine, the server is busy, and the same body
is served once the memory is free. A need larger than the whole budget can never fit: 413.

So many bombs or big bodies at once cost at most the budget, not their number times the limits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from protocol.errors import SyncError, TooLarge

log = logging.getLogger(__name__)

MiB = 1024 * 1024
# One sync body at its limits (8 MiB on the wire, 32 MiB inflated) fits with room to spare; the
# bodies edges really send (≤ 4 MiB batches) fit eight times over (the hub's `sync_inflight`).
DEFAULT_TOTAL = 64 * MiB
WAIT_S = 1.0


class Budget:
    """Pure counting: `total` bytes, of which `used` are held."""

    def __init__(self, total: int) -> None:
        if total <= 0:
            raise ValueError("a budget needs a positive total")
        self.total = total
        self.used = 0

    @property
    def available(self) -> int:
        """Bytes not held by anyone."""
        return self.total - self.used

    def take(self, n: int) -> bool:
        """Hold `n` more bytes if they fit; say whether they did."""
        if n < 0:
            raise ValueError("cannot take a negative amount")
        if self.used + n > self.total:
            return False
        self.used += n
        return True

    def give(self, n: int) -> None:
        """Give back `n` bytes held before."""
        if not 0 <= n <= self.used:
            raise ValueError(f"giving back {n} bytes of {self.used} held")
        self.used -= n


def _busy(message: str, retry_after_s: float) -> SyncError:
    from service.web.errors import Unavailable  # here: service.web reads bodies through us
    return Unavailable(message, retry_after_s)


class BodyBudget:
    """The asyncio side of a `Budget`: a request waits up to `wait_s` for room, else is refused.

    Waiters are plain futures of the loop that waits (no lock or condition bound to one event
    loop), so a module-level budget serves every server a process runs."""

    def __init__(self, total: int = DEFAULT_TOTAL, wait_s: float = WAIT_S) -> None:
        self.budget = Budget(total)
        self.wait_s = wait_s
        self.refused = 0
        self._waiters: list[asyncio.Future[None]] = []

    async def take(self, n: int) -> None:
        """Hold `n` bytes, waiting briefly for them; TooLarge if they can never fit, 503 if
        they do not fit in time."""
        if n > self.budget.total:
            raise TooLarge(f"a request needing {n} bytes of memory is over this server's "
                           f"budget of {self.budget.total}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        while not self.budget.take(n):
            left = deadline - loop.time()
            if left <= 0:
                self.refused += 1
                log.warning("memory for request bodies is short (%d of %d bytes held): "
                            "refusing one needing %d", self.budget.used, self.budget.total, n)
                raise _busy("the server is short of memory for request bodies; retry shortly",
                            self.wait_s)
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, left)
            except TimeoutError:
                pass
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def give(self, n: int) -> None:
        """Give back `n` bytes and wake everyone waiting (each checks whether it fits now)."""
        if n == 0:
            return
        self.budget.give(n)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done() and not waiter.get_loop().is_closed():
                waiter.set_result(None)

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[Hold]:
        """A hold for one request, empty at first; everything it holds is given back at the
        end of the `async with`, however the request ends."""
        held = Hold(self)
        try:
            yield held
        finally:
            held.release()


class Hold:
    """The bytes one request holds against a `BodyBudget`."""

    def __init__(self, budget: BodyBudget) -> None:
        self.budget = budget
        self.size = 0

    async def grow(self, n: int) -> None:
        """Hold `n` bytes more (waiting briefly; see `BodyBudget.take`)."""
        if self.size + n > self.budget.budget.total:
            raise TooLarge(f"a request needing {self.size + n} bytes of memory is over this "
                           f"server's budget of {self.budget.budget.total}")
        await self.budget.take(n)
        self.size += n

    def shrink(self, n: int) -> None:
        """Give back `n` of the bytes held (no more than are held)."""
        n = min(n, self.size)
        self.budget.give(n)
        self.size -= n

    def release(self) -> None:
        """Give everything back."""
        self.shrink(self.size)


BODIES = BodyBudget()  # the process's budget, shared by every server and route in it
