"""A hub and edges that keep everything in memory and decide only by protocol/session.py.

`MemoryHub` takes request bodies and answers response bodies (the real codec both ways); its
log, chain heads and dossier communes are lists and dicts, its accept and answer rules are
`protocol.session.accept`/`read_from` and `protocol.scope.check_writes`. `MemoryEdge` writes
hash-chained events, builds requests, and applies answers with `EdgeSession.answer`, `warned` and
`settled`. `Link` carries bodies between them with faults drawn from a seeded `random.Random`
(`tests.sim.faults`): nothing reads a clock, a disk or the network, so a seed replays exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from protocol import HUB_ORIGIN, codec, hlc, is_hub_origin
from protocol.errors import NetworkError
from protocol.events import Event, uuid7
from protocol.messages import (
    Rejection,
    SyncRequest,
    SyncResponse,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from protocol.scope import check_writes
from protocol.session import (
    MIN_BATCH,
    Adaptive,
    ChainHead,
    EdgeSession,
    accept,
    read_from,
    replay_probe,
    session_done,
    want_bytes,
)
from tests.sim.faults import Fault, Odds

START_MS = 1_800_000_000_000


class Chain:
    """One origin's events, numbered and hash-chained as their writer stamps them."""

    def __init__(self, origin: str, rng: random.Random) -> None:
        self.origin = origin
        self.rng = rng
        self.events: list[Event] = []
        self.dossiers: list[str] = []

    def add(self, now_ms: int, kind: str, dossier: str, payload: dict[str, object],
            deps: dict[str, int]) -> Event:
        seq = len(self.events) + 1
        prev = codec.event_hash(self.events[-1]) if self.events else b""
        event = Event(self.origin, seq, hlc.pack(now_ms, seq), dossier, "clerk", kind,
                      codec.sorted_value(payload), codec.sorted_value(deps), prev)
        self.events.append(event)
        return event

    def create(self, now_ms: int, commune: str) -> Event:
        dossier = uuid7(now_ms, self.rng.randbytes(10))
        self.dossiers.append(dossier)
        return self.add(now_ms, "create", dossier, {
            "procedure": "1.001193", "commune": commune,
            "code": f"{self.origin}-270301-{len(self.dossiers):04d}", "received_at": now_ms,
            "channel": "counter", "status": "accepted", "due_at": now_ms + 3_600_000,
            "set": {"applicant.full_name": "Nguyễn Văn An"}}, {})

    def edit(self, now_ms: int, dossier: str, address: str) -> Event:
        seen = {self.origin: len(self.events)} if self.events else {}
        return self.add(now_ms, "set", dossier, {"set": {"applicant.address": address}}, seen)


@dataclass
class MemoryHub:
    """The hub's side: a log in position order, each node's chain head, dossiers' communes."""

    nodes: dict[str, str]  # node -> commune
    log: list[tuple[Event, str]] = field(default_factory=list)  # (event, commune); pos = i + 1
    heads: dict[str, ChainHead] = field(default_factory=dict)
    communes: dict[str, str] = field(default_factory=dict)  # dossier -> commune
    quarantined: list[Rejection] = field(default_factory=list)
    epoch: str = "epoch-0"
    origin: str = HUB_ORIGIN
    now_ms: int = START_MS
    max_want: int = 4096  # small answers: sessions take several round trips

    def __post_init__(self) -> None:
        self.chains: dict[str, Chain] = {}

    def edit(self, rng: random.Random) -> None:
        """An operator edits a dossier at the hub (under the hub's origin)."""
        if self.communes:
            chain = self.chains.setdefault(self.origin, Chain(self.origin, rng))
            self.append(chain.edit(self.now_ms, rng.choice(sorted(self.communes)), "Tỉnh"))

    def held(self, origin: str, seq: int) -> bytes | None:
        return next((codec.event_hash(e) for e, _ in self.log
                     if e.origin == origin and e.seq == seq), None)

    def append(self, event: Event) -> None:
        commune = (event.payload["commune"] if event.kind == "create"
                   else self.communes[event.dossier])
        self.communes.setdefault(event.dossier, str(commune))
        self.log.append((event, str(commune)))

    def serve(self, node: str, body: bytes) -> bytes:
        """One exchange: the hub commits (here: appends) before it answers."""
        req = decode_request(body)
        assert req.node == node
        head = self.heads.get(node, ChainHead())
        probe = replay_probe(head, req.events)
        taken = accept(node, head, req.events, self.held(node, probe) if probe else None)
        ok, rejected = check_writes(self.nodes[node], taken.fresh,
                                    {d: c for d, c in self.communes.items()})
        for event in ok:
            self.append(event)
        self.quarantined += rejected
        self.heads[node] = taken.head
        start, reset = read_from(req.cursor, req.epoch, self.epoch, len(self.log))
        events, cursor, size = [], start, 0
        want = want_bytes(req.want_bytes, self.max_want)
        more = False
        for pos in range(start + 1, len(self.log) + 1):
            event, commune = self.log[pos - 1]
            if commune != self.nodes[node]:
                cursor = pos
                continue
            if event.origin != node:
                if events and size + len(codec.canonical(event)) > want:
                    more = True
                    break
                events.append(event)
                size += len(codec.canonical(event))
            cursor = pos
        return encode_response(SyncResponse(taken.ack, events, cursor, more, self.now_ms,
                                             rejected, epoch=self.epoch, reset=reset))

    def restore(self, keep: int) -> None:
        """Restored from a backup holding the first `keep` positions: the rest is lost, the
        epoch rotates and the hub writes under a new origin."""
        self.log = self.log[:keep]
        self.heads, self.communes = {}, {}
        for event, commune in self.log:
            self.communes.setdefault(event.dossier, commune)
            if event.origin in self.nodes:
                self.heads[event.origin] = ChainHead(event.seq, codec.event_hash(event))
        self.epoch = f"epoch-{keep}"
        self.origin = f"{HUB_ORIGIN}.{self.epoch}"


@dataclass
class MemoryEdge:
    """The edge's side: its chain, what it holds of the hub's log, its `EdgeSession`."""

    node: str
    commune: str
    rng: random.Random
    session: EdgeSession = field(default_factory=EdgeSession)
    held: dict[tuple[str, int], bytes] = field(default_factory=dict)
    received: list[Event] = field(default_factory=list)
    edit_others: bool = True  # edit dossiers other PCs of the commune took in
    batch_bytes: int = MIN_BATCH
    sizes: Adaptive = field(default_factory=lambda: Adaptive(MIN_BATCH, 16 * 1024))

    def __post_init__(self) -> None:
        self.chain = Chain(self.node, self.rng)

    @property
    def own_seq(self) -> int:
        return len(self.chain.events)

    def write(self, now_ms: int) -> None:
        """Take a dossier in, or edit one of this commune's (its own or another PC's)."""
        mine = [e.dossier for e in (*self.chain.events,
                                    *(self.received if self.edit_others else ()))
                if e.kind == "create"]
        if mine and self.rng.random() < 0.6:
            event = self.chain.edit(now_ms, self.rng.choice(mine), f"Thôn {self.rng.randrange(9)}")
        else:
            event = self.chain.create(now_ms, self.commune)
        self.held[(event.origin, event.seq)] = codec.event_hash(event)

    def request(self) -> tuple[bytes, int, int]:
        """(body, the ack it is built on, how many events it sends)."""
        ack = self.session.ack
        batch, size = [], 0
        for event in self.chain.events[ack:]:
            if batch and size + len(codec.canonical(event)) > self.batch_bytes:
                break
            batch.append(event)
            size += len(codec.canonical(event))
        body = encode_request(SyncRequest(self.node, batch, self.session.cursor, 2048, 0,
                                          epoch=self.session.epoch))
        return body, ack, len(batch)

    def apply(self, body: bytes, sent_after: int, now_ms: int) -> SyncResponse:
        """Commit an answer the way the edge's store does, in memory."""
        resp = decode_response(body)
        hub_events = [(e.origin, e.seq, e.dossier) for e in self.received
                      if is_hub_origin(e.origin)]
        plan = self.session.answer(
            resp, node=self.node, own_seq=self.own_seq, sent_after=sent_after, held=self.held,
            held_hub=hub_events if self.session.ends_reread(resp) else ())
        for event in plan.fresh:
            self.received.append(event)
            self.held[(event.origin, event.seq)] = codec.event_hash(event)
        after = plan.after
        if plan.notices:
            after = after.warned(plan.notices, resp.hub_time_ms, self.own_seq)
        else:
            after = after.settled(now_ms=now_ms, more=resp.more, uploads_waiting=0)
        self.session = after
        return resp


@dataclass
class Link:
    """Bodies between one edge and the hub, with seeded faults: a request lost, an answer lost
    after the hub committed, a request delivered twice, a request held back and delivered late
    (its answer never read)."""

    hub: MemoryHub
    edge: MemoryEdge
    rng: random.Random
    odds: Odds = field(default_factory=Odds)
    held_back: list[bytes] = field(default_factory=list)

    def round_trip(self, body: bytes) -> bytes:
        fault = self.odds.pick(self.rng)
        if fault is Fault.DROP_REQUEST:
            raise NetworkError("request lost")
        if fault is Fault.HOLD:
            self.held_back.append(body)
            raise NetworkError("request stuck")
        answer = self.hub.serve(self.edge.node, body)
        if fault is Fault.DUPLICATE:
            answer = self.hub.serve(self.edge.node, body)
        if fault is Fault.DROP_REPLY:
            raise NetworkError("answer lost")
        return answer

    def deliver_late(self) -> None:
        if self.held_back:
            self.hub.serve(self.edge.node, self.held_back.pop(self.rng.randrange(
                len(self.held_back))))

    def session(self, max_trips: int = 200) -> bool:
        """Round trips until `session_done` (True) or a fault ends the session (False)."""
        edge = self.edge
        for _ in range(max_trips):
            body, sent_after, sent = edge.request()
            try:
                answer = self.round_trip(body)
            except NetworkError:
                edge.batch_bytes = edge.sizes.after_timeout(edge.batch_bytes)
                return False
            before = edge.session.ack
            resp = edge.apply(answer, sent_after, self.hub.now_ms)
            edge.batch_bytes = edge.sizes.after(edge.batch_bytes, 0.1, bool(sent))
            if session_done(sent=sent, more=resp.more, ack_before=before,
                            ack_after=edge.session.ack,
                            pending=edge.own_seq - edge.session.ack):
                return True
        raise AssertionError(f"{edge.node}: a session did not end in {max_trips} round trips")
