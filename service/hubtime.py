"""Corrected time: the hub's clock as this node knows it, the reference for stamps and legal times.

After an exchange in this process, corrected time is the hub's time then plus the monotonic time
since, so a jump of the machine's clock (a dead BIOS battery, an operator fixing it) changes
nothing. Before one (after a restart), it is the machine's clock plus the correction learned at
the last exchange, which the caller keeps in its database. At the hub the correction is 0.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import date

from protocol.calendar import local
from protocol.session import hub_clock_at

log = logging.getLogger(__name__)


def wall_clock_ms() -> int:
    """The machine's clock in ms; corrected time adds the hub's correction to it."""
    return int(time.time() * 1000)


class HubTime:
    """This node's corrected clock."""

    def __init__(self, correction_ms: int = 0) -> None:
        self.correction_ms = correction_ms  # hub time minus this machine's clock, last known
        self.wall: Callable[[], int] = wall_clock_ms  # the machine's clock; tests skew it
        self._anchor: tuple[int, float] | None = None  # (hub ms, monotonic s) in this process
        self._anchor_rtt = 0.0  # the round trip of that reading (s)

    def now_ms(self) -> int:
        """Corrected time, in ms since the epoch."""
        if self._anchor is not None:
            hub_ms, mono = self._anchor
            return hub_ms + int((time.monotonic() - mono) * 1000)
        return self.wall() + self.correction_ms

    def today(self) -> date:
        """Today in Vietnam, by corrected time."""
        return local(self.now_ms()).date()

    @property
    def anchored(self) -> bool:
        """Whether an exchange in this process placed the hub's clock."""
        return self._anchor is not None

    @property
    def offset_ms(self) -> int:
        """How far this machine's clock is ahead of the hub's (negative: behind)."""
        return self.wall() - self.now_ms()

    def correction_for(self, hub_ms: int, rtt_s: float) -> int:
        """The correction an answer carrying the hub's clock `hub_ms` after a round trip of
        `rtt_s` teaches (to keep in the database with the answer)."""
        return hub_clock_at(hub_ms, rtt_s) - self.wall()

    def set_hub_time(self, hub_ms: int, rtt_s: float, at_mono: float) -> int:
        """Anchor corrected time on an answer received at monotonic time `at_mono`; return the
        correction. A reading over a round trip much slower than the anchor's (a new TLS
        connection, a busy link) is less precise: within ten minutes of the better one it is not
        taken (as NTP trusts the sample of least delay)."""
        if self._anchor is not None and rtt_s > 2 * self._anchor_rtt + 0.05 \
                and at_mono - self._anchor[1] < 600:
            return self.correction_ms
        estimate = hub_clock_at(hub_ms, rtt_s)
        self._anchor, self._anchor_rtt = (estimate, at_mono), rtt_s
        self.correction_ms = estimate - self.wall()
        return self.correction_ms
