"""What the sync client needs of an edge's database, and what one exchange and one session did.

`ClientStore` is the part of an edge database (`edge_node/store.py: EdgeStore`) that
`edge_node/sync.py: SyncClient` uses: its sync state (`SyncState`, `edge_node/syncstore.py`),
corrected time, the health figures a request carries. The fleet benchmark's simulated communes
keep the same in memory and sync with the same client.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from protocol.messages import SyncResponse
from service.hubtime import HubTime

log = logging.getLogger(__name__)


class SyncState(Protocol):
    """What the client needs of the edge's sync state (`edge_node/syncstore.py: EdgeSync`)."""

    async def ack(self) -> int: ...
    async def cursor(self) -> int: ...
    async def hub_epoch(self) -> str: ...
    async def units(self) -> tuple[str, ...]: ...
    rescoped: tuple[str, str] | None  # (code, name) a merger re-scoped it to, not yet saved
    def refdata_held(self) -> dict[str, int]: ...
    async def pending_batch(self, after: int, max_bytes: int
                            ) -> tuple[dict[str, Any], int, int]: ...
    async def pending_stats(self) -> tuple[int, int]: ...
    async def last_success(self) -> int: ...
    async def apply_response(self, resp: SyncResponse, rtt_s: float, at_mono: float,
                             sent_after: int | None = None) -> int: ...


class ClientStore(Protocol):
    """What the client needs of the edge's database (`EdgeStore`; a simulated commune in
    bench/fleet keeps the same state in memory)."""

    @property
    def sync(self) -> SyncState: ...
    @property
    def time(self) -> HubTime: ...
    async def health(self) -> dict[str, Any]: ...
    async def settle_clock(self) -> int: ...



@dataclass(frozen=True, slots=True)
class Batch:
    """Own events in compact wire form, ready to send."""

    plain: dict[str, Any]
    first: int
    last: int

    @property
    def count(self) -> int:
        """How many events."""
        return self.last - self.first + 1 if self.last else 0


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A request ready to go: its body, the batch it carries, and the ack it was built on."""

    body: bytes
    batch: Batch
    acked: int


class Exchange(NamedTuple):
    """What one round trip did (`rtt_s`: from sending the request to having read the answer)."""

    sent: int
    received: int
    more: bool
    bytes_up: int
    bytes_down: int
    acked: int = 0  # own events newly acknowledged
    rtt_s: float = 0.0


@dataclass(slots=True)
class SessionResult:
    """What one sync session did."""

    sent: int = 0
    received: int = 0
    round_trips: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    pending_after: int = 0
