"""The faults a simulated link applies to one call, drawn from a seeded `random.Random`."""

from __future__ import annotations

import enum
import logging
import random
from dataclasses import dataclass

log = logging.getLogger(__name__)


class Fault(enum.Enum):
    """What the link does to one call."""

    NONE = "none"
    DROP_REQUEST = "drop_request"
    DROP_REPLY = "drop_reply"
    DUPLICATE = "duplicate"
    HOLD = "hold"


@dataclass(slots=True)
class Odds:
    """Per-call probabilities of each fault when the plan is empty (the rest: no fault)."""

    drop_request: float = 0.0
    drop_reply: float = 0.0
    duplicate: float = 0.0
    hold: float = 0.0

    def pick(self, rng: random.Random) -> Fault:
        """Draw one fault (exactly one draw from `rng`, so traces stay aligned)."""
        x = rng.random()
        for fault, p in ((Fault.DROP_REQUEST, self.drop_request), (Fault.DROP_REPLY, self.drop_reply),
                         (Fault.DUPLICATE, self.duplicate), (Fault.HOLD, self.hold)):
            if x < p:
                return fault
            x -= p
        return Fault.NONE
