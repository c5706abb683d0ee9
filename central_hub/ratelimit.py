"""Request rates: a token bucket per key (a node, a client address), refilled continuously (time
passed in)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

MAX_KEYS = 100_000  # forget idle buckets past this many (each full bucket is the default anyway)


@dataclass(slots=True)
class TokenBuckets:
    """`rate` requests per second sustained, `burst` at once, per key."""

    rate: float
    burst: float
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, at)

    def wait(self, key: str, now_s: float) -> float:
        """Seconds until `key` has a token again (0: it has one now); spends nothing."""
        if self.rate <= 0:
            return 0.0
        tokens, at = self._buckets.get(key, (self.burst, now_s))
        tokens = min(self.burst, tokens + max(0.0, now_s - at) * self.rate)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def take(self, key: str, now_s: float) -> float:
        """Spend one token for `key`; return 0 if allowed, else seconds until one is due."""
        if self.rate <= 0:
            return 0.0
        tokens, at = self._buckets.get(key, (self.burst, now_s))
        tokens = min(self.burst, tokens + max(0.0, now_s - at) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now_s)
            return (1 - tokens) / self.rate
        if len(self._buckets) >= MAX_KEYS and key not in self._buckets:
            self._buckets.clear()
        self._buckets[key] = (tokens - 1, now_s)
        return 0.0
