"""A simulated commune: an edge's database kept in memory, synced by the real client.

`Commune` is what `edge_node/sync.py: SyncClient` needs of an edge's database (its
`ClientStore`): the sync state (`MemorySync`: ack, cursor and epoch as a
`protocol.session.EdgeSession`, the events after the ack as canonical bytes), corrected time
(`service.hubtime.HubTime`) and the health figures of a request. Staff work is simulated with the
protocol code an edge writes through (`protocol.commands` drafts, `protocol.stamp`). Only a few
recent dossiers' events are kept, to draft edits of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench.dossier_faker import DossierFaker
from protocol import codec
from protocol.calendar import Calendar, local
from protocol.catalogue import DEFAULT_CATALOGUE
from protocol.commands import Draft, create_draft, set_draft, transition_draft, validate_create
from protocol.errors import Conflict, RemoteProtocolError, ValidationError
from protocol.events import uuid7
from protocol.hlc import Clock, wall_ms
from protocol.merge import DossierState, apply
from protocol.messages import SyncResponse
from protocol.refdata import DEFAULT_HOLIDAYS
from protocol.session import EdgeSession
from protocol.stamp import stamp
from service.hubtime import HubTime

log = logging.getLogger(__name__)

ACTORS = ("clerk1", "clerk2", "leader")
TRACK = 16  # recent dossiers a commune keeps events of, to draft edits
NEXT_STATUS = {"accepted": ("processing",),
               "processing": ("resolved",) * 8 + ("supplement_requested",),
               "supplement_requested": ("processing",), "resolved": ("returned",)}
CALENDAR = Calendar.of(h.day for h in DEFAULT_HOLIDAYS)


@dataclass
class Enrolled:
    """A commune's node as enrolled at the hub."""

    code: str
    name: str
    node: str
    agency: str
    credential: str


class MemorySync:
    """The commune's sync state, by the edge's rules (`EdgeSync`'s part of `ClientStore`)."""

    def __init__(self, commune: Commune) -> None:
        self.commune = commune
        self.session = EdgeSession()
        self.ref: dict[str, int] = {}
        self.rejections: Counter[str] = Counter()
        self.rescoped: tuple[str, str] | None = None  # (a simulated commune is never merged)

    async def units(self) -> tuple[str, ...]:
        return ()

    async def ack(self) -> int:
        return self.session.ack

    async def cursor(self) -> int:
        return self.session.cursor

    async def hub_epoch(self) -> str:
        return self.session.epoch

    def refdata_held(self) -> dict[str, int]:
        return dict(self.ref)

    async def last_success(self) -> int:
        return 0

    async def pending_batch(self, after: int, max_bytes: int) -> tuple[dict[str, Any], int, int]:
        return codec.own_batch_from_stored(
            self.commune.pending[max(0, after - self.session.ack):], max_bytes)

    async def pending_stats(self) -> tuple[int, int]:
        pending = self.commune.pending
        if not pending:
            return 0, 0
        first = codec.decode_stored(pending[0])
        return len(pending), max(0, (self.commune.time.now_ms() - wall_ms(first.hlc)) // 1000)

    async def apply_response(self, resp: SyncResponse, rtt_s: float, at_mono: float,
                             sent_after: int | None = None) -> int:
        c = self.commune
        plan = self.session.answer(resp, node=c.node, own_seq=c.seq, sent_after=sent_after,
                                   held={})
        after = plan.after
        if after.ack < self.session.ack:
            raise RemoteProtocolError("a simulated commune keeps no events the hub acked: a hub "
                                      "restored from a backup is not a fleet scenario")
        del c.pending[:after.ack - self.session.ack]
        for event in plan.fresh:
            if event.dossier in c.tracked:
                c.tracked[event.dossier].append(codec.canonical(event))
        for rej in plan.rejections:
            self.rejections[rej.code] += 1
        for kind, ref in resp.refdata.items():
            self.ref[kind] = int(ref["version"])
        self.session = after.warned(plan.notices, resp.hub_time_ms, c.seq) if plan.notices \
            else after
        c.time.set_hub_time(resp.hub_time_ms, rtt_s, at_mono)
        return len(plan.fresh)


class Commune:
    """One commune's edge, reduced to its chain, its sync state and a few recent dossiers."""

    def __init__(self, e: Enrolled, rng: random.Random) -> None:
        self.code, self.name, self.node, self.agency = e.code, e.name, e.node, e.agency
        self.credential = e.credential
        self.rng = rng
        self.seq, self.prev, self.clock = 0, b"", Clock()
        self.pending: list[bytes] = []  # own canonical events after the ack (seq ack+1 …)
        self.tracked: dict[str, list[bytes]] = {}  # recent dossiers: their events
        self.codes: dict[str, int] = {}
        self.dossiers = 0
        self.time = HubTime()
        self.sync = MemorySync(self)
        self.lock = asyncio.Lock()
        self.online_at = 0.0  # day scenario: when an offline commune comes back (s)
        self.caught_up = True

    @property
    def ack(self) -> int:
        """The hub's ack of this commune's events."""
        return self.sync.session.ack

    async def settle_clock(self) -> int:
        """A simulated commune's clock is the machine's: nothing to flag."""
        return 0

    async def health(self) -> dict[str, Any]:
        """The health figures a request carries (what an `EdgeStore` reports)."""
        pending, oldest = await self.sync.pending_stats()
        return {"pending_events": pending, "pending_blobs": 0, "oldest_pending_age_s": oldest,
                "clock_offset_ms": self.time.offset_ms, "conflicts_open": 0,
                "dossiers": self.dossiers}

    # writing ------------------------------------------------------------------------------------

    def _write(self, dossier: str, draft: Draft, now_ms: int, state: DossierState | None) -> None:
        event, self.clock = stamp(draft, origin=self.node, seq=self.seq + 1, prev=self.prev,
                                  clock=self.clock, now_ms=now_ms, dossier=dossier,
                                  actor=self.rng.choice(ACTORS), state=state)
        body = codec.canonical(event)
        self.seq, self.prev = event.seq, codec.event_hash(event)
        self.pending.append(body)
        events = self.tracked.pop(dossier, None)
        if events is not None or draft.kind == "create":
            self.tracked[dossier] = [*(events or []), body]  # most recent last
            if len(self.tracked) > TRACK:
                del self.tracked[next(iter(self.tracked))]

    def create(self, faker: DossierFaker, now_ms: int) -> str:
        """File one birth registration at the counter (validated like `DossierStore.create`)."""
        today = local(now_ms).date()
        faker.commune = self.name.removeprefix("Xã ")
        new = validate_create(faker.birth(today), DEFAULT_CATALOGUE, today)
        day = local(now_ms).strftime("%y%m%d")
        self.codes[day] = self.codes.get(day, 0) + 1
        draft = create_draft(new, commune=self.code,
                             code=f"{self.agency}-{day}-{self.codes[day]:04d}",
                             received_ms=now_ms, calendar=CALENDAR)
        dossier = uuid7(now_ms, self.rng.randbytes(10))
        self._write(dossier, draft, now_ms, None)
        self.dossiers += 1
        return dossier

    def state(self, dossier: str) -> DossierState | None:
        state = None
        for body in self.tracked.get(dossier, ()):
            state = apply(state, codec.decode_stored(body))
        return state

    def edit(self, faker: DossierFaker, now_ms: int, dossier: str | None = None) -> bool:
        """Move a recent dossier along its lifecycle, or correct its applicant's phone."""
        if dossier is None:
            if not self.tracked:
                return False
            dossier = self.rng.choice(list(self.tracked))
        state = self.state(dossier)
        if state is None or state.header is None:
            return False
        draft: Draft | None = None
        targets = NEXT_STATUS.get(state.value("status"))
        if targets and self.rng.random() < 0.75:
            with contextlib.suppress(Conflict, ValidationError):
                draft = transition_draft({"to": self.rng.choice(targets)}, state, CALENDAR, now_ms)
        if draft is None:
            with contextlib.suppress(Conflict, ValidationError):
                draft = set_draft({"set": {"applicant.phone": faker.phone()}}, state,
                                  DEFAULT_CATALOGUE, local(now_ms).date())
        if draft is None:
            return False
        self._write(dossier, draft, now_ms, state)
        return True
