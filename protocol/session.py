"""The sync exchange's rules for both roles, without I/O: what each side decides, and when.

Theory. An exchange is one round trip, repeated until nothing is pending either way (a session).
Each side keeps a little state across round trips and crashes, and every rule here is a function
of that state and of what just arrived; the shells (`central_hub/ingest.py`, `edge_node/
syncstore.py`, `edge_node/sync.py`) read the state from their database, ask here, and commit
what they are told in one transaction. Nothing here reads a clock or a database.

The hub, per node: the head of the node's hash chain it holds (`ChainHead`). A batch is
accepted as the contiguous run of events that continues that chain (`accept`): events at or
below the head are replays (harmless, if they are the ones held: `replay_probe`), an event past
a gap ends the run (the ack says where to resend from), and an event that contradicts the chain
(another origin, another `prev`, other content under a held seq) refuses the whole batch as a
`ChainAlert`. Which of the accepted events the node may write is `protocol/scope.py`'s rule.
The answer reads the node's scope from its cursor, or from 0 when the cursor is of another log
(`read_from`).

The edge: its committed position (`EdgeSession`: ack, cursor, the cursor's epoch), the warning
that stands for staff, and, while a restored hub's log is read again, the hub events it sent.
The hub's answer is authoritative, also backwards (`EdgeSession.answer`): a lower ack than the
edge held when it sent means the hub lost events (they are sent again), a `reset` means the
cursor was of another log; an older answer is ignored. What an answer shows to be wrong with
the hub is a notice for staff, kept by the table of `protocol/notices.py` (`warned`,
`settled`). A session is done by `session_done`; the batch size follows the link by `Adaptive`;
the hub's clock is placed by `hub_clock_at`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from protocol import codec, is_hub_origin
from protocol.errors import LocalProtocolError, RemoteProtocolError
from protocol.events import Event
from protocol.messages import Rejection, SyncResponse
from protocol.notices import (
    HUB_ID_REUSED,
    HUB_LOG_RESET,
    HUB_RESTORED,
    LASTING_KEEP_MS,
    Notice,
    Standing,
    edits_lost,
    warning_kind,
)

log = logging.getLogger(__name__)

# -- the hub: which events of a node's batch it takes ------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last event of one origin's hash chain that a replica holds (seq 0: none yet)."""

    seq: int = 0
    hash: bytes = b""


class ChainAlert(RemoteProtocolError):
    """A batch that contradicts the chain the hub holds: refused whole, and a security alert
    (`kind`: forged_origin, chain_broken or fork)."""

    def __init__(self, kind: str, origin: str, seq: int, message: str) -> None:
        super().__init__(message)
        self.kind, self.origin, self.seq = kind, origin, seq


@dataclass(frozen=True, slots=True)
class Accepted:
    """The events of a batch that continue the node's chain, their hashes, and the chain's head
    once they are appended (its seq is the ack: the highest seq held contiguously)."""

    fresh: list[Event]
    hashes: dict[int, bytes]  # seq -> event hash, of `fresh`
    head: ChainHead

    @property
    def ack(self) -> int:
        """The highest seq of the node's held contiguously once `fresh` is appended."""
        return self.head.seq


def replay_probe(head: ChainHead, events: list[Event]) -> int | None:
    """The seq whose held hash must be compared (`accept`'s `replayed_hash`), or None when the
    batch replays nothing. The batch's chain is recomputed from its first `prev`, so the hash of
    its highest replayed event vouches for every replayed event before it."""
    replayed = [e.seq for e in events if e.seq <= head.seq]
    return max(replayed) if replayed else None


def accept(node: str, head: ChainHead, events: list[Event],
           replayed_hash: bytes | None = None) -> Accepted:
    """The contiguous run of `events` after `head`; `replayed_hash` is what the hub holds at
    `replay_probe`'s seq (None: nothing held there, or nothing replayed). Raise ChainAlert for a
    replay with other content (a fork), an event of another origin or one not chained to the
    head (fork or tampering)."""
    probe = replay_probe(head, events)
    if probe is not None and replayed_hash is not None:
        top = next(e for e in events if e.seq == probe)
        if replayed_hash != codec.event_hash(top):
            raise ChainAlert(
                "fork", node, probe,
                f"{node} resent seq {probe} with other content than the hub holds "
                "(a fork: an event rewritten or rolled back after it was sent)")
    fresh: list[Event] = []
    hashes: dict[int, bytes] = {}
    expect_seq, expect_prev = head.seq + 1, head.hash
    for event in sorted((e for e in events if e.seq > head.seq), key=lambda e: e.seq):
        if event.seq != expect_seq:
            break  # a gap: only the contiguous prefix counts
        if event.origin != node:
            raise ChainAlert("forged_origin", event.origin, event.seq,
                             "an event's origin is not the sending node")
        if event.prev != expect_prev:
            raise ChainAlert(
                "chain_broken", node, event.seq,
                f"hash chain of {node} broken at seq {event.seq}: the event does not follow "
                "the one the hub holds (fork or tampering)")
        fresh.append(event)
        hashes[event.seq] = expect_prev = codec.event_hash(event)
        expect_seq += 1
    return Accepted(fresh, hashes, ChainHead(expect_seq - 1, expect_prev))


def read_from(cursor: int, epoch_asked: str, epoch: str, log_end: int) -> tuple[int, bool]:
    """Where the answer reads the node's scope from, and whether that is a `reset`: from 0 when
    the request's cursor is of another epoch, or past the end of this log (a restore that did
    not rotate the epoch)."""
    if (epoch_asked and epoch_asked != epoch) or cursor > log_end:
        return 0, True
    return cursor, False


def want_bytes(asked: int, cap: int) -> int:
    """How many bytes of events the answer carries: what the node asked, at least 1 KiB (so it
    always moves), at most the hub's cap."""
    return min(max(asked, 1024), cap)


# -- the edge: its position, and what an answer does to it ------------------------------------


@dataclass(frozen=True, slots=True)
class EdgeSession:
    """An edge's committed sync state: the hub's ack of its events, its cursor in the hub's log
    and that log's epoch, the warning standing for staff, and, while a restored hub's log is read
    again from the start, the highest seq of each hub origin it sent (`reread`; None: not
    re-reading)."""

    ack: int = 0
    cursor: int = 0
    epoch: str = ""
    standing: Standing | None = None
    reread: dict[str, int] | None = None

    def answer(self, resp: SyncResponse, *, node: str, own_seq: int, sent_after: int | None,
               held: Mapping[tuple[str, int], bytes],
               held_hub: Iterable[tuple[str, int, str]] = ()) -> Plan:
        """What the hub's answer `resp` does. `own_seq`: this node's last seq; `sent_after`: the
        ack the request was built on (None: the committed one); `held`: the hashes of the
        answer's events (`received`) already held here, by (origin, seq); `held_hub`: when the
        answer ends a re-read (`ends_reread`), the hub's events held here as (origin, seq,
        dossier code), in log order."""
        if resp.ack > own_seq:
            raise RemoteProtocolError(
                f"the hub acknowledges {resp.ack} events of this node, which has written "
                f"{own_seq}: was this database restored from an old backup?")
        notices: list[Notice] = []
        ack, rewound = self.ack, False
        if resp.ack < (self.ack if sent_after is None else sent_after):
            # It had acknowledged more before this request left: it lost them (restored from an
            # older backup). Its ack is the truth; what follows is sent again.
            notices.append(Notice(HUB_RESTORED,
                f"hub holds less than it acknowledged (restored from backup?): it holds "
                f"{resp.ack} of this node's events, had acknowledged {self.ack}; sending the "
                "rest again"))
            ack, rewound = resp.ack, resp.ack < self.ack
        elif resp.ack > self.ack:  # (a lower ack answering a request sent before ours: stale)
            ack = resp.ack
        fresh, clashes = [], []
        for event in received(resp, node):
            digest = held.get((event.origin, event.seq))
            if digest is None:
                fresh.append(event)
            elif digest != codec.event_hash(event):
                clashes.append(f"{event.origin}:{event.seq}")
        if clashes:
            notices.append(Notice(HUB_ID_REUSED,
                f"hub sent {len(clashes)} event(s) with an id this node holds with other content "
                f"(first {clashes[0]}); kept this node's (the hub reused ids after a restore "
                "from an older backup?): tell the hub's operators"))
        reread, done = self._reread(resp)
        if done is not None:
            lost = edits_lost(done, held_hub)
            if lost is not None:
                notices.append(lost)
        cursor = self.cursor
        if resp.reset:
            notices.append(Notice(HUB_LOG_RESET,
                f"hub log restarted (epoch {resp.epoch or '?'}; restored from backup?): reading "
                f"it again from the start, position {self.cursor} was of the old log"))
            cursor = resp.cursor
        elif resp.unit is not None or resp.cursor > self.cursor:
            # (a lower cursor without reset or re-scope: an older answer)
            cursor = resp.cursor
        after = replace(self, ack=ack, cursor=cursor, epoch=resp.epoch or self.epoch,
                        reread=reread)
        return Plan(after, fresh, resp.rejections, notices, rewound)

    def ends_reread(self, resp: SyncResponse) -> bool:
        """Whether `resp` ends a re-read of a restored hub's log: then `answer` needs the hub's
        events held here, to tell which of them the restored hub lost."""
        return not resp.more and (resp.reset or self.reread is not None)

    def _reread(self, resp: SyncResponse) -> tuple[dict[str, int] | None, dict[str, int] | None]:
        """(re-read tracking to keep, the tracking of a re-read this answer ended)."""
        if resp.reset:
            seen: dict[str, int] = {}
        elif self.reread is None:
            return None, None
        else:
            seen = dict(self.reread)
        for event in resp.events:
            if is_hub_origin(event.origin) and event.seq > seen.get(event.origin, 0):
                seen[event.origin] = event.seq
        return (seen, None) if resp.more else (None, seen)

    def warned(self, notices: list[Notice], at_ms: int, own_seq: int) -> EdgeSession:
        """After an answer that warned of `notices`: the most serious of them stands, unless a
        more serious warning still stands, or a lasting one (its week runs from the first)."""
        code = min((n.code for n in notices), key=lambda c: warning_kind(c).rank)
        kept = self.standing
        if kept is not None:
            old, new = warning_kind(kept.code), warning_kind(code)
            if old.rank < new.rank or (old.lasting and new.lasting):
                return self
        message = "; ".join(n.message for n in notices)
        return replace(self, standing=Standing(code, message, at_ms, own_seq))

    def settled(self, *, now_ms: int, more: bool, uploads_waiting: int) -> EdgeSession:
        """After an answer that warned of nothing: the standing warning, or none once it is over.
        A restore's is over when the hub acks this node's events up to its last seq at the time
        of the warning, has sent the end of its log (`more` false) and no scan is left to check
        again; a lasting one a week after it was raised."""
        kept = self.standing
        if kept is None:
            return self
        if warning_kind(kept.code).lasting:
            over = now_ms - kept.at >= LASTING_KEEP_MS
        else:
            over = not more and self.ack >= kept.until and not uploads_waiting
        return replace(self, standing=None) if over else self


@dataclass(frozen=True, slots=True)
class Plan:
    """What one answer does, for the edge to commit in one transaction: the state `after`, the
    hub events to fold (`fresh`: not its own, not held), the rejections to keep, what it warned
    of (then scans the hub had confirmed are checked again), and whether the ack went back (the
    rest is sent again)."""

    after: EdgeSession
    fresh: list[Event]
    rejections: list[Rejection]
    notices: list[Notice] = field(default_factory=list)
    rewound: bool = False


def received(resp: SyncResponse, node: str) -> list[Event]:
    """The answer's events this node may take: not its own (it holds those)."""
    return [e for e in resp.events if e.origin != node]


# -- the edge: sessions, batch sizes, the hub's clock ------------------------------------------

# The sync state staff see (`GET /api/sync: state`), and what each happening of a session makes
# of it. Sessions may overlap (a kick while one runs), so an end applies from any state.
SESSION_STARTS = {"offline": "syncing", "online": "syncing", "error": "syncing",
                  "syncing": "syncing"}
SESSION_ENDS = {"done": "online", "transport": "offline", "refused": "error", "fault": "error"}
SESSION_TRANSITIONS: dict[str, dict[str, str]] = {
    state: {"start": start, **SESSION_ENDS} for state, start in SESSION_STARTS.items()}


def next_state(state: str, happening: str) -> str:
    """The sync state after `happening` (start, done, transport, refused, fault)."""
    try:
        return SESSION_TRANSITIONS[state][happening]
    except KeyError:
        raise LocalProtocolError(f"no sync state follows {state!r} on {happening!r}") from None


def session_done(*, sent: int, more: bool, ack_before: int, ack_after: int, pending: int,
                 pull: bool = True) -> bool:
    """After a round trip: is the session over? Not while the hub took our ack back (a restored
    hub: send the rest again), nor while it has more for us, unless we may not `pull` (the disk
    is below its hard floor) and have nothing left to send; otherwise once nothing is pending,
    or nothing was sent, or what was sent was not acked (a gap or a held-back event: later)."""
    if ack_after < ack_before:
        return False
    stalled = sent > 0 and ack_after == ack_before
    if more:
        return not pull and (pending == 0 or stalled)
    return pending == 0 or sent == 0 or stalled


@dataclass(frozen=True, slots=True)
class Adaptive:
    """A size that follows the link: doubled after a quick round trip that moved something,
    halved after a slow one or a timeout, within [low, high]."""

    low: int
    high: int
    quick_s: float = 2.0
    slow_s: float = 10.0

    def after(self, size: int, elapsed_s: float, moved: bool = True) -> int:
        """The next size after a round trip that took `elapsed_s`."""
        if elapsed_s > self.slow_s:
            return self.after_timeout(size)
        if moved and elapsed_s < self.quick_s:
            return min(self.high, size * 2)
        return size

    def after_timeout(self, size: int) -> int:
        """The next size after a round trip that timed out."""
        return max(self.low, size // 2)


MIN_BATCH = 4 * 1024  # own events per request, bytes (the high end is the edge's config)
BLOB_CHUNK = Adaptive(16 * 1024, 1024 * 1024)
BLOB_CHUNK_START = 64 * 1024


def hub_clock_at(hub_ms: int, rtt_s: float) -> int:
    """The hub's clock when its answer arrived: it read it about mid-way through the round trip
    that took `rtt_s`. The edge's clock correction is this minus its own clock then."""
    return hub_ms + int(rtt_s * 500)
