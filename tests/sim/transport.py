"""An in-memory link from one edge's SyncClient to a HubStore, with faults the test controls.

`SimLink` is the `transport` callable of `edge_node.sync.SyncClient`: it hands the request body to
`central_hub.exchange.serve` for the node and returns the answer body, unless a fault says
otherwise. Faults are chosen per call, first from a queue the test fills (`plan`), else from
per-fault probabilities drawn from a seeded `random.Random`: nothing here reads a clock or the OS,
so a seed replays exactly.

- DROP_REQUEST: lost on the way up; the hub never sees it (NetworkError).
- DROP_REPLY: the hub committed and answered; the answer is lost (NetworkError). From the edge's
  side this is also a crash between the hub's commit and the edge applying the reply.
- DUPLICATE: the body reaches the hub twice; the edge gets the second answer.
- HOLD: the body is stuck in the network (the edge times out); `deliver_held` hands it to the hub
  later, after newer requests, as a stale replay whose answer nobody reads.
- `partitioned`: every call fails before the hub sees anything.

Every answer the hub produced is decoded and its ack remembered (`acks_sent`), delivered or not:
the hub promises it acks only what it has committed, so every one of those must be in its log.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from central_hub.exchange import Outcome, serve
from central_hub.store import HubStore, Node
from protocol.errors import NetworkError, ReadTimeout
from protocol.messages import decode_response
from tests.sim.faults import Fault as Fault
from tests.sim.faults import Odds

log = logging.getLogger(__name__)


@dataclass
class SimLink:
    """One edge node's link to the hub. `hub` is a getter so the hub can be restarted."""

    hub: Callable[[], HubStore]
    node: Node
    rng: random.Random | None = None
    odds: Odds = field(default_factory=Odds)
    partitioned: bool = False
    plan: deque[Fault] = field(default_factory=deque)
    held: list[bytes] = field(default_factory=list)
    acks_sent: int = 0  # highest ack in any answer the hub produced for this node
    calls: int = 0
    log: list[str] = field(default_factory=list)  # one line per call: fault and result

    def queue(self, *faults: Fault) -> None:
        """Apply these faults to the next calls, in order."""
        self.plan.extend(faults)

    def _next_fault(self) -> Fault:
        if self.plan:
            return self.plan.popleft()
        if self.rng is None:
            return Fault.NONE
        return self.odds.pick(self.rng)

    async def _serve(self, body: bytes) -> Outcome:
        outcome = await serve(self.hub(), self.node, body)
        if outcome.error is None:
            self.acks_sent = max(self.acks_sent, decode_response(outcome.body).ack)
        return outcome

    async def __call__(self, body: bytes) -> bytes:
        """Send one request body; return the hub's answer or raise what the edge would see."""
        self.calls += 1
        if self.partitioned:
            self.log.append("partitioned")
            raise NetworkError("simulated partition: the hub is unreachable")
        fault = self._next_fault()
        if fault is Fault.DROP_REQUEST:
            self.log.append("drop_request")
            raise NetworkError("simulated loss of the request")
        if fault is Fault.HOLD:
            self.held.append(body)
            self.log.append("hold")
            raise ReadTimeout("simulated delay: the request is stuck in the network")
        outcome = await self._serve(body)
        if fault is Fault.DUPLICATE and outcome.error is None:
            outcome = await self._serve(body)
        self.log.append(f"{fault.value}:{'ok' if outcome.error is None else outcome.error.code}")
        if fault is Fault.DROP_REPLY:
            raise NetworkError("simulated loss of the reply after the hub committed")
        if outcome.error is not None:
            raise outcome.error
        return outcome.body

    async def deliver_held(self, index: int = 0) -> Outcome | None:
        """Hand one held (stale) request to the hub now; its answer is discarded. None if none."""
        if not self.held:
            return None
        body = self.held.pop(index % len(self.held))
        outcome = await self._serve(body)
        self.log.append(f"stale:{'ok' if outcome.error is None else outcome.error.code}")
        return outcome

    def heal(self) -> None:
        """End the partition, forget planned faults and stop drawing new ones."""
        self.partitioned = False
        self.plan.clear()
        self.odds = Odds()
