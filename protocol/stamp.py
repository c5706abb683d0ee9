"""A draft stamped as its writer's next event: seq, HLC, the previous event's hash, sorted maps.

Every writer stamps the same way (an edge's store, the hub's, a simulated commune): the HLC is
the writer's clock moved to `now_ms`, and stays after the last event of the dossier it has seen
— a peer whose clock ran ahead wrote it — without letting that peer drag the writer's clock
forward. Payload and deps keys are sorted once here, so every replica derives the same bytes.
"""

from __future__ import annotations

import logging

from protocol import codec
from protocol.commands import Draft
from protocol.events import Event
from protocol.hlc import Clock
from protocol.merge import DossierState

log = logging.getLogger(__name__)


def stamp(draft: Draft, *, origin: str, seq: int, prev: bytes, clock: Clock, now_ms: int,
          dossier: str, actor: str, state: DossierState | None) -> tuple[Event, Clock]:
    """`draft` as `origin`'s event number `seq` after the one hashing to `prev`; and the clock
    after it. `state`: the dossier as the writer holds it (None for a new one)."""
    clock, hlc = clock.send(now_ms)
    if state is not None and hlc <= state.last_hlc:
        hlc = state.last_hlc + 1
    event = Event(origin, seq, hlc, dossier, actor, draft.kind,
                  codec.sorted_value(draft.payload), codec.sorted_value(draft.deps), prev)
    return event, clock
