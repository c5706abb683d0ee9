"""Hybrid logical clock (Kulkarni et al., 2014) packed in one 64-bit int: 48 bits of ms, 16 of counter.

Time is always passed in. `send` stamps a local event; `receive` merges a remote stamp. A remote
stamp more than `max_forward_ms` ahead of our physical time is accepted but does not drag our clock
forward: the caller is told, so it can flag the peer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

COUNTER_BITS = 16
COUNTER_MAX = (1 << COUNTER_BITS) - 1
MS_MAX = (1 << 48) - 1


def pack(ms: int, counter: int) -> int:
    """Pack wall milliseconds and a counter into one HLC integer."""
    if not 0 <= ms <= MS_MAX or not 0 <= counter <= COUNTER_MAX:
        raise ValueError(f"hlc out of range: ms={ms} counter={counter}")
    return (ms << COUNTER_BITS) | counter


def unpack(value: int) -> tuple[int, int]:
    """Split an HLC integer into (ms, counter)."""
    return value >> COUNTER_BITS, value & COUNTER_MAX


def wall_ms(value: int) -> int:
    """The physical-time part of an HLC, in ms since the epoch."""
    return value >> COUNTER_BITS


@dataclass(frozen=True, slots=True)
class Clock:
    """The last HLC issued or seen; a value, so callers persist it like any other state."""

    last: int = 0

    def send(self, now_ms: int) -> tuple[Clock, int]:
        """Stamp a local event at physical time `now_ms`; return the new clock and the stamp."""
        l_old, c_old = unpack(self.last)
        ms = max(l_old, now_ms)
        counter = c_old + 1 if ms == l_old else 0
        if counter > COUNTER_MAX:  # 65,536 events in one ms: borrow the next ms
            ms, counter = ms + 1, 0
        stamp = pack(ms, counter)
        return Clock(stamp), stamp

    def receive(self, remote: int, now_ms: int, max_forward_ms: int | None = None) -> tuple[Clock, bool]:
        """Merge a remote stamp; return the new clock and whether the remote was too far ahead."""
        r_ms, r_c = unpack(remote)
        ahead = max_forward_ms is not None and r_ms > now_ms + max_forward_ms
        if ahead:
            return self, True
        l_old, c_old = unpack(self.last)
        ms = max(l_old, r_ms, now_ms)
        if ms == l_old and ms == r_ms:
            counter = max(c_old, r_c) + 1
        elif ms == l_old:
            counter = c_old + 1
        elif ms == r_ms:
            counter = r_c + 1
        else:
            counter = 0
        if counter > COUNTER_MAX:
            ms, counter = ms + 1, 0
        return Clock(pack(ms, counter)), False
