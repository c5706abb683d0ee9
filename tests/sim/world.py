"""A simulated province: one hub and edge nodes on SQLite files, in simulated time, over SimLinks.

The World drives the real stores (`EdgeStore`, `HubStore`) and the real `SyncClient` through
`tests.sim.transport.SimLink`. It offers the operations staff, operators and the weather perform
(create, edit with a fresh or stale base, transition, resolve, comment, sync under faults, crash,
clock skew) and checks the promises of DESIGN §4–5 after them:

- every event the hub ever acked to a node is in the hub's log, contiguously from seq 1;
- acks and cursors never move backwards, even across crashes; nothing is quarantined;
- a node holds only its commune's events and dossiers;
- each dossier's folded `seen` set is exactly the set of its events in that store's log;
- at quiescence every replica of a dossier has the same digest and row, the other commune has
  none of it, every node holds and uses the hub's reference data, every store passes
  `PRAGMA integrity_check`, and `rebuild()` changes no row.

Time is simulated (`SimClock`). `deterministic()` routes the stores' clocks and the edge's uuid
randomness through the simulation, so a seed replays to the same bytes. Choice made: rather than
resetting `DossierStore._anchor` after each exchange, the `time` module seen by
`service.dossier_store` and `edge_node.sync` is replaced by a shim whose `monotonic()` is simulated
time; the real anchor code runs (a jump of a node's wall clock after an exchange changes nothing,
as in production), a round trip takes 0 simulated ms, and each node's wall clock is
`store.wall = simulated time + that node's skew`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import edge_node.store
import edge_node.sync
import service.clock_flags
import service.dossier_store
from central_hub.store import HubStore, Node
from edge_node.config import EdgeConfig
from edge_node.store import EdgeStore
from edge_node.sync import SyncClient
from protocol import codec, lifecycle
from protocol.calendar import VN_TZ
from protocol.errors import Conflict, NotFound, StoreError, TransportError, ValidationError
from protocol.merge import DossierState, digest, from_plain
from protocol.refdata import DEFAULT_HOLIDAYS_DATA, parse_holidays
from service import crashpoints
from service.sqlite import integrity_ok
from tests.sim.transport import Fault, Odds, SimLink

log = logging.getLogger(__name__)

# Monday 1 March 2027, 00:00 in Vietnam: after the harness's birth dates, at the start of a week.
START_MS = int(datetime(2027, 3, 1, tzinfo=VN_TZ).timestamp() * 1000)
HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS
DEFAULT_LAYOUT = (("02245", 2), ("02227", 1))  # two PCs in Côn Lôn, one in a neighbour commune
HUB = "hub"
# service.crashpoints names; in the simulation they raise SimCrash instead of SIGKILL
EDGE_POINTS = frozenset({"edge.after_request", "edge.apply.before_commit"})
HUB_POINTS = frozenset({"hub.ingest.before_commit", "hub.after_commit"})
WRITE_POINT = "store.write.before_commit"
# a few events per round trip each way
SMALL: dict[str, Any] = {"batch_bytes": 1024, "batch_bytes_max": 2048, "want_bytes": 1024}


class SimCrash(Exception):
    """A simulated power cut at a named crash point; the store is reopened after it."""

    def __init__(self, point: str) -> None:
        super().__init__(f"simulated crash at {point}")
        self.point = point


class SimClock:
    """Simulated time: epoch ms for wall clocks, and a monotonic clock in seconds from the start."""

    def __init__(self, start_ms: int = START_MS) -> None:
        self.ms = start_ms
        self.start_ms = start_ms

    def advance(self, ms: int) -> None:
        """Let `ms` of simulated time pass (never backwards: only wall clocks jump)."""
        self.ms += max(0, ms)

    def monotonic(self) -> float:
        """Like `time.monotonic()`, in simulated time."""
        return (self.ms - self.start_ms) / 1000

    def time(self) -> float:
        """Like `time.time()`, in simulated time."""
        return self.ms / 1000


class _Shim:
    """A module with some functions replaced; everything else is the real module's."""

    def __init__(self, real: ModuleType, **replaced: Any) -> None:
        self._real = real
        self.__dict__.update(replaced)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@contextmanager
def deterministic(clock: SimClock, rand: random.Random) -> Iterator[None]:
    """Route the stores' clocks and the edge's uuid randomness through the simulation."""
    shim_time = _Shim(time, time=clock.time, monotonic=clock.monotonic)
    shim_os = _Shim(os, urandom=rand.randbytes)
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(service.dossier_store, "time", shim_time))
        stack.enter_context(mock.patch.object(service.clock_flags, "time", shim_time))
        stack.enter_context(mock.patch.object(edge_node.sync, "time", shim_time))
        stack.enter_context(mock.patch.object(edge_node.store, "os", shim_os))
        yield


@dataclass(eq=False)
class Replica:
    """A store that staff or operators write to, and the versions they have seen of each dossier."""

    name: str
    commune: str  # the hub: "*"
    actor: str
    store: Any  # EdgeStore | HubStore
    versions: dict[str, list[str]] = field(default_factory=dict)

    def remember(self, view: dict[str, Any]) -> None:
        """Keep a version seen on screen: a later write may be based on it (stale)."""
        seen = self.versions.setdefault(view["id"], [])
        if not seen or seen[-1] != view["version"]:
            seen.append(view["version"])


@dataclass(eq=False)
class Edge(Replica):
    """An edge node: its store, sync client, link and what the World has observed of it."""

    config: EdgeConfig | None = None
    path: Path | None = None
    link: SimLink | None = None
    client: SyncClient | None = None
    skew_ms: int = 0
    ack_seen: int = 0
    cursor_seen: int = 0
    crashes: int = 0


def _set_outcome(view: dict[str, Any]) -> str:
    return f"ok {view['version']} {view['status']} c={len(view['conflicts'])}"


class World:
    """One hub and several edge nodes; see the module docstring."""

    def __init__(self, root: Path, clock: SimClock, rng: random.Random) -> None:
        self.root = root
        self.clock = clock
        self.rng = rng  # which nodes get small batches, and link faults when odds are set
        self.hub_replica = Replica(HUB, "*", "district", None)
        self.edges: list[Edge] = []
        self.dossiers: dict[str, str] = {}  # id -> commune, in creation order
        self.trace: list[str] = []
        self._hash = hashlib.sha256()
        self.hub_restarts = 0
        self._armed: set[str] = set()
        self._unpatch: Any = None
        self._readers: dict[Path, sqlite3.Connection] = {}

    # -- building ---------------------------------------------------------------------------------

    @classmethod
    async def open(cls, root: Path, clock: SimClock, rng: random.Random,
                   layout: tuple[tuple[str, int], ...] = DEFAULT_LAYOUT,
                   small_batches: float | tuple[bool, ...] = 1.0) -> World:
        """A hub and `layout` = ((commune, nodes), …) enrolled edge nodes. Some of them send
        and ask for about 1 KiB per round trip, so sessions take several round trips and the
        hub's `more` path runs: a share `small_batches` drawn from `rng`, or the nodes whose
        place in the layout is True in `small_batches`; the others use the default sizes."""
        world = cls(root, clock, rng)
        world._unpatch = mock.patch.object(crashpoints, "hit", world._hit)
        world._unpatch.start()
        try:
            world.hub_replica.store = await world._open_hub()
            for commune, count in layout:
                for _ in range(count):
                    if isinstance(small_batches, tuple):
                        small = small_batches[len(world.edges) % len(small_batches)]
                    else:
                        small = rng.random() < small_batches
                    await world._add_edge(commune, SMALL if small else {})
        except BaseException:
            await world.close()
            raise
        return world

    @property
    def hub(self) -> HubStore:
        store: HubStore = self.hub_replica.store
        return store

    async def _open_hub(self) -> HubStore:
        hub = await HubStore.open(self.root / "hub.db")
        hub.wall = lambda: self.clock.ms
        return hub

    async def _add_edge(self, commune: str, sizes: dict[str, Any]) -> Edge:
        token = await self.hub.create_enroll_token(commune, f"Xã {commune}")
        enrolled = await self.hub.enroll(token)
        config = EdgeConfig(node=enrolled.node, commune=enrolled.commune,
                            commune_name=enrolled.commune_name, agency=enrolled.agency,
                            hub_url="https://hub.sim.invalid", credential=enrolled.credential,
                            **sizes)
        config.validate()
        link = SimLink(lambda: self.hub, Node(enrolled.node, enrolled.commune), self.rng)
        edge = Edge(enrolled.node, commune, "clerk", None, config=config,
                    path=self.root / f"edge-{enrolled.node}.db", link=link)
        await self._open_edge(edge)
        self.edges.append(edge)
        return edge

    async def _open_edge(self, edge: Edge) -> None:
        assert edge.config is not None and edge.path is not None
        store = await EdgeStore.open(edge.path, edge.config.node, edge.config.commune,
                                     edge.config.agency)
        store.wall = lambda: self.clock.ms + edge.skew_ms
        edge.store = store
        edge.client = SyncClient(store, edge.config, transport=edge.link)

    async def close(self) -> None:
        """Close every store and stop standing in for the crash points (idempotent)."""
        if self._unpatch is not None:
            self._unpatch.stop()
            self._unpatch = None
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()
        for edge in self.edges:
            if edge.client is not None:
                await edge.client.close()
            if edge.store is not None:
                await edge.store.close()
                edge.store = None
        if self.hub_replica.store is not None:
            await self.hub.close()
            self.hub_replica.store = None

    def record(self, line: str) -> None:
        """Append one operation and its outcome to the trace (and its running hash)."""
        stamped = f"{self.clock.ms - self.clock.start_ms} {line}"
        self.trace.append(stamped)
        self._hash.update(stamped.encode() + b"\n")

    def trace_hash(self) -> str:
        """sha256 over the trace so far."""
        return self._hash.hexdigest()

    def replicas(self) -> list[Replica]:
        """The hub, then every edge."""
        return [self.hub_replica, *self.edges]

    # -- what people do ---------------------------------------------------------------------------

    async def create(self, edge: Edge, body: dict[str, Any]) -> str:
        """Take a dossier in at the counter; return its id."""
        view = await edge.store.create(body, edge.actor)
        self.dossiers[view["id"]] = edge.commune
        edge.remember(view)
        self.record(f"{edge.name} create {view['id']} {view['code']}")
        return str(view["id"])

    async def _current(self, who: Replica, dossier: str) -> dict[str, Any] | None:
        try:
            view: dict[str, Any] = await who.store.view(dossier)
        except NotFound:
            return None
        who.remember(view)
        return view

    def _absent(self, who: Replica, op: str, dossier: str) -> str:
        self.record(f"{who.name} {op} {dossier} -> absent")
        return "absent"

    def _base(self, who: Replica, dossier: str, stale: int) -> str:
        seen = who.versions[dossier]
        return seen[-1 - stale % len(seen)]

    async def _write(self, who: Replica, op: str, dossier: str, call: Any) -> str:
        try:
            view = await call
        except Conflict as exc:
            outcome = f"409 {exc.message}"
        except ValidationError as exc:  # an edit of a closed dossier without its reason
            outcome = f"422 {exc.message}"
        else:
            who.remember(view)
            outcome = _set_outcome(view)
        self.record(f"{who.name} {op} {dossier} -> {outcome}")
        return outcome

    async def edit(self, who: Replica, dossier: str, values: dict[str, Any], stale: int = 0) -> str:
        """PATCH `values` based on the current version (stale=0) or an older one this replica saw."""
        if await self._current(who, dossier) is None:
            return self._absent(who, "edit", dossier)
        body = {"set": values, "base": self._base(who, dossier, stale)}
        return await self._write(who, f"edit{sorted(values.items())} stale={stale}", dossier,
                                 who.store.edit(dossier, body, who.actor))

    async def transition(self, who: Replica, dossier: str, pick: int, stale: int = 0,
                         prefer: tuple[str, ...] = ()) -> str:
        """Move along the lifecycle to one of the view's next statuses — the first of `prefer`
        that is one, else the `pick`th (409 is an outcome)."""
        view = await self._current(who, dossier)
        if view is None:
            return self._absent(who, "transition", dossier)
        return await self._transition(who, view, pick, stale, prefer)

    async def _transition(self, who: Replica, view: dict[str, Any], pick: int, stale: int,
                          prefer: tuple[str, ...]) -> str:
        dossier = view["id"]
        # the view offers only the moves no conflict holds up; the lifecycle may offer more
        choices = view["next_statuses"] or lifecycle.next_statuses(view["status"])
        if not choices:
            self.record(f"{who.name} transition {dossier} -> final")
            return "final"
        target = next((s for s in prefer if s in choices), choices[pick % len(choices)])
        body = {"to": target, "base": self._base(who, dossier, stale), "note": "xử lý"}
        return await self._write(who, f"transition {target} stale={stale}", dossier,
                                 who.store.transition(dossier, body, who.actor))

    async def process(self, who: Replica, dossier: str, pick: int, stale: int = 0,
                      prefer: tuple[str, ...] = ()) -> str:
        """What staff do with a dossier on screen: resolve its conflict if it shows one, else
        move it along (one view read for both)."""
        view = await self._current(who, dossier)
        if view is None:
            return self._absent(who, "process", dossier)
        if view["conflicts"]:
            return await self._resolve(who, view, pick)
        return await self._transition(who, view, pick, stale, prefer)

    async def resolve(self, who: Replica, dossier: str, pick: int) -> str:
        """Settle one open conflict with one of its values, having seen them all."""
        view = await self._current(who, dossier)
        if view is None:
            return self._absent(who, "resolve", dossier)
        if not view["conflicts"]:
            self.record(f"{who.name} resolve {dossier} -> no conflict")
            return "no conflict"
        return await self._resolve(who, view, pick)

    async def _resolve(self, who: Replica, view: dict[str, Any], pick: int) -> str:
        dossier = view["id"]
        conflict = view["conflicts"][pick % len(view["conflicts"])]
        value = conflict["values"][pick // 7 % len(conflict["values"])]["value"]
        body = {"field": conflict["field"], "value": value, "base": view["version"]}
        return await self._write(who, f"resolve {conflict['field']}={value!r}", dossier,
                                 who.store.resolve(dossier, body, who.actor))

    async def comment(self, who: Replica, dossier: str, text: str) -> str:
        """Add a comment (grow-only, never a conflict)."""
        if await self._current(who, dossier) is None:
            return self._absent(who, "comment", dossier)
        return await self._write(who, "comment", dossier,
                                 who.store.comment(dossier, {"text": text}, who.actor))

    async def publish_holidays(self, day: str) -> str:
        """The province publishes a new holiday calendar (the defaults plus `day`)."""
        data = {"holidays": [*DEFAULT_HOLIDAYS_DATA["holidays"],
                             {"date": day, "name": "Lễ hội xã (mô phỏng)"}]}
        parse_holidays(data)
        version = await self.hub.publish("holidays", data)
        self.record(f"hub publish holidays v{version} +{day}")
        return f"v{version}"

    # -- the weather ------------------------------------------------------------------------------

    def skew(self, edge: Edge, ms: int) -> None:
        """Set a node's wall clock to simulated time + `ms` (a jump, or a wrong clock)."""
        edge.skew_ms = ms
        self.record(f"{edge.name} skew {ms}")

    def partition(self, edge: Edge, on: bool) -> None:
        """Cut or restore a node's link."""
        assert edge.link is not None
        edge.link.partitioned = on
        self.record(f"{edge.name} partition {on}")

    def set_odds(self, edge: Edge, odds: Odds) -> None:
        """Make a node's link lossy (or clean)."""
        assert edge.link is not None
        edge.link.odds = odds

    async def sync(self, edge: Edge, faults: tuple[Fault, ...] = ()) -> str:
        """One sync session at a node; `faults` apply to its first round trips, in order."""
        assert edge.link is not None and edge.client is not None
        edge.link.queue(*faults)
        try:
            result = await edge.client.session_once()
            outcome = (f"ok sent={result.sent} recv={result.received} "
                       f"rt={result.round_trips} pending={result.pending_after}")
        except TransportError as exc:
            outcome = f"{type(exc).__name__}: {exc.message}"
        except SimCrash as crash:
            outcome = str(crash)
            await self._recover(crash, edge)
        finally:
            edge.link.plan.clear()
            self._armed -= EDGE_POINTS  # an edge crash is meant for this session only
        self.record(f"{edge.name} sync {[f.value for f in faults]} -> {outcome}")
        await self.check_sync_state(edge)
        return outcome

    async def _recover(self, crash: SimCrash, edge: Edge) -> None:
        if crash.point in HUB_POINTS:
            await self.restart_hub(record=False)
        else:
            await self._reopen(edge)

    async def deliver_held(self, edge: Edge, index: int = 0) -> str:
        """A request the network held arrives at the hub now (a stale replay)."""
        assert edge.link is not None
        try:
            outcome = await edge.link.deliver_held(index)
        except SimCrash as crash:
            await self._recover(crash, edge)
            self.record(f"{edge.name} stale replay -> {crash}")
            return str(crash)
        if outcome is None:
            return "nothing held"
        assert outcome.error is None, f"the hub refused a stale replay: {outcome.error!r}"
        self.record(f"{edge.name} stale replay -> in={outcome.events_in} out={outcome.events_out}")
        await self.check_sync_state(edge)
        return "ok"

    async def _reopen(self, edge: Edge) -> None:
        assert edge.client is not None and edge.store is not None
        await edge.client.close()
        await edge.store.close()
        edge.crashes += 1
        await self._open_edge(edge)

    def _hit(self, name: str) -> None:
        """Stands in for `service.crashpoints.hit`: raise instead of SIGKILL, once, if armed."""
        if name in self._armed:
            self._armed.discard(name)
            raise SimCrash(name)

    async def crash(self, edge: Edge) -> None:
        """Power cut while idle: every committed write must survive the reopen."""
        await self._reopen(edge)
        self.record(f"{edge.name} crash idle")
        await self.check_sync_state(edge)

    async def crash_mid_sync(self, edge: Edge, point: str = "edge.apply.before_commit",
                             faults: tuple[Fault, ...] = ()) -> str:
        """Sync, and cut the power at an edge crash point: after the hub answered, before
        anything is applied (`edge.after_request`) or with everything applied but not committed
        (`edge.apply.before_commit`). Nothing of that answer may survive, and the next session
        must pick up from there."""
        assert point in EDGE_POINTS
        self._armed.add(point)
        return await self.sync(edge, faults)

    def arm_hub_crash(self, point: str = "hub.ingest.before_commit") -> None:
        """The hub's process dies at `point` the next time it gets there — inside the ingest
        transaction of a batch with new events, or after committing, before answering. It stays
        armed until then, a restart or `quiesce`."""
        assert point in HUB_POINTS
        self._armed.add(point)
        self.record(f"hub armed to crash at {point}")

    async def crash_mid_write(self, edge: Edge, body: dict[str, Any]) -> str:
        """Cut the power inside a create's transaction: the dossier was never saved, and nothing
        of it may exist afterwards (not even a used-up code number)."""
        store = edge.store
        assert store is not None
        codes_before = self._codes(edge)
        own_seq = store.own_seq
        self._armed.add(WRITE_POINT)
        try:
            await store.create(body, edge.actor)
        except SimCrash:
            pass
        else:
            raise AssertionError("the armed crash did not fire")
        finally:
            self._armed.discard(WRITE_POINT)
        await self._reopen(edge)
        assert edge.store is not None
        assert edge.store.own_seq == own_seq, "a write that never committed left an event"
        assert self._codes(edge) == codes_before, "a rolled-back create used a code"
        self.record(f"{edge.name} crash mid-create")
        return "crashed"

    async def create_while_syncing(self, edge: Edge, body: dict[str, Any], fail: bool
                                   ) -> str | None:
        """A create whose transaction is still open while the background sync loop runs a
        session on the same store (as in `edge-node serve`): the write waits inside its
        transaction until the session's request has reached the hub. With `fail`, the
        transaction then fails before COMMIT (a full disk) and rolls back: the staff are told
        the dossier was not saved, so nothing of it may have left the node. Return the new
        dossier's id, or None if it was not saved."""
        store, client, link = edge.store, edge.client, edge.link
        assert store is not None and client is not None and link is not None
        served = asyncio.Event()
        session: list[asyncio.Future[Any]] = []

        async def watched(request: bytes) -> bytes:
            try:
                return await link(request)
            finally:
                served.set()

        async def after_local_write(event: Any) -> None:
            session.append(asyncio.ensure_future(client.session_once()))
            waiter = asyncio.ensure_future(served.wait())
            await asyncio.wait([session[0], waiter], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if fail:
                raise StoreError("commit failed: database or disk is full (simulated)")

        client.transport = watched
        store.after_local_write = after_local_write
        dossier: str | None = None
        try:
            view = await store.create(body, edge.actor)
            dossier = str(view["id"])
            created = f"created {view['id']} {view['code']}"
            self.dossiers[view["id"]] = edge.commune
            edge.remember(view)
        except StoreError as exc:
            created = f"not saved: {exc.message}"
        finally:
            del store.after_local_write
            client.transport = link
        try:
            result = await session[0]
            synced = f"ok sent={result.sent} recv={result.received}"
        except TransportError as exc:
            synced = f"{type(exc).__name__}: {exc.message}"
        except SimCrash as crash:  # the hub died serving it (armed earlier)
            synced = str(crash)
            await self._recover(crash, edge)
        finally:
            link.plan.clear()
        self.record(f"{edge.name} create while syncing fail={fail} -> {created}; sync {synced}")
        await self.check_sync_state(edge)
        return dossier

    async def restart_hub(self, *, record: bool = True) -> None:
        """Close and reopen the hub (its process died between requests, or mid-request)."""
        self._armed -= HUB_POINTS
        await self.hub.close()
        self.hub_replica.store = await self._open_hub()
        self.hub_restarts += 1
        if record:
            self.record("hub restart")

    # -- invariants -------------------------------------------------------------------------------
    # Checks read each database through a plain sqlite3 connection of their own: between steps
    # nothing is in flight, so they see exactly what is committed, at a fraction of the cost of a
    # round trip through an aiosqlite worker thread.

    def _db(self, who: Replica) -> sqlite3.Connection:
        path = self.root / "hub.db" if who is self.hub_replica else getattr(who, "path", None)
        assert path is not None
        conn = self._readers.get(path)
        if conn is None:
            conn = sqlite3.connect(path, isolation_level=None)
            self._readers[path] = conn
        return conn

    def _q(self, who: Replica, sql: str, *args: Any) -> list[Any]:
        return self._db(who).execute(sql, args).fetchall()

    def _one(self, who: Replica, sql: str, *args: Any) -> Any:
        return self._q(who, sql, *args)[0][0]

    def local_ids(self, who: Replica) -> list[str]:
        """The dossiers a replica holds, oldest first (a deterministic order)."""
        return [r[0] for r in self._q(who, "SELECT id FROM dossiers ORDER BY received_at, id")]

    def _codes(self, edge: Edge) -> list[tuple[str, int]]:
        return [(r[0], r[1]) for r in self._q(edge, "SELECT day, n FROM code_counter ORDER BY day")]

    def _hub_chains(self) -> dict[str, tuple[int, int, int]]:
        """origin -> (events held, highest seq held, chain head) at the hub."""
        spans = {r[0]: (r[1], r[2]) for r in self._q(
            self.hub_replica, "SELECT origin, count(*), max(seq) FROM events GROUP BY origin")}
        heads = dict(self._q(self.hub_replica, "SELECT origin, last_seq FROM origins"))
        return {o: (*spans.get(o, (0, 0)), heads.get(o, 0)) for o in {*spans, *heads}}

    async def check_sync_state(self, edge: Edge,
                               chains: dict[str, tuple[int, int, int]] | None = None) -> None:
        """Cheap checks after anything that touched a node's sync position."""
        store, hub = edge.store, self.hub_replica
        assert store is not None and edge.link is not None
        meta = dict(self._q(edge, "SELECT key, value FROM meta WHERE key IN ('ack', 'cursor')"))
        ack, cursor = int(meta.get("ack", 0)), int(meta.get("cursor", 0))
        assert ack >= edge.ack_seen, f"{edge.name}: ack went back {edge.ack_seen} -> {ack}"
        assert cursor >= edge.cursor_seen, \
            f"{edge.name}: cursor went back {edge.cursor_seen} -> {cursor}"
        assert ack <= store.own_seq, f"{edge.name}: ack {ack} beyond own seq {store.own_seq}"
        edge.ack_seen, edge.cursor_seen = ack, cursor
        chains = self._hub_chains() if chains is None else chains
        count, top, head = chains.get(edge.name, (0, 0, 0))
        assert count == top, f"hub holds {count} events of {edge.name} but seq up to {top}: a hole"
        acked = max(ack, edge.link.acks_sent)
        assert top >= acked, f"hub acked {edge.name} up to {acked} but holds only {top}"
        assert head == top, f"hub chain head {head} != events held {top} for {edge.name}"
        assert top <= store.own_seq, \
            f"hub holds {top} events of {edge.name}, it wrote only {store.own_seq}"
        assert cursor <= self._one(hub, "SELECT coalesce(max(pos), 0) FROM events")
        quarantined = self._q(hub, "SELECT origin, seq, code, reason FROM quarantine")
        assert not quarantined, f"hub quarantined events: {quarantined}"

    async def check_step(self, deep: bool = True) -> None:
        """Invariants that hold after every step (`deep`: also fold-vs-log of every dossier)."""
        chains = self._hub_chains()
        for edge in self.edges:
            await self.check_sync_state(edge, chains)
            assert edge.store is not None
            other, own, top = self._q(
                edge, "SELECT count(*) FILTER (WHERE commune != ?), count(*) FILTER (WHERE "
                "origin = ?), coalesce(max(seq) FILTER (WHERE origin = ?), 0) FROM events",
                edge.commune, edge.name, edge.name)[0]
            assert other == 0, f"{edge.name} holds {other} events of another commune"
            other = self._one(edge, "SELECT count(*) FROM dossiers WHERE commune != ?",
                              edge.commune)
            assert other == 0, f"{edge.name} holds {other} dossiers of another commune"
            assert own == top == edge.store.own_seq, f"{edge.name}: own chain has a hole"
        count, top, _ = chains.get(HUB, (0, 0, 0))
        assert count == top == self.hub.own_seq, "hub: own chain has a hole"
        if deep:
            for who in self.replicas():
                self.check_fold_matches_log(who)

    def _states(self, who: Replica) -> dict[str, DossierState]:
        return {r[0]: from_plain(codec.unpack(r[1]))
                for r in self._q(who, "SELECT id, state FROM dossiers")}

    def check_fold_matches_log(self, who: Replica) -> None:
        """Each dossier's `seen` set is exactly its events in this store's log (no event folded
        that the log lacks, none stored and not folded, none twice)."""
        states = self._states(who)
        logged: dict[str, set[tuple[str, int]]] = {}
        rows = 0
        for dossier, origin, seq in self._q(who, "SELECT dossier, origin, seq FROM events"):
            logged.setdefault(dossier, set()).add((origin, seq))
            rows += 1
        assert rows == sum(len(s) for s in logged.values()), f"{who.name}: an event stored twice"
        assert set(states) == set(logged), f"{who.name}: dossiers without events or vice versa"
        for dossier, state in states.items():
            assert set(state.seen) == logged[dossier], \
                f"{who.name}: fold of {dossier} disagrees with its log"

    async def quiesce(self, max_rounds: int = 60) -> int:
        """Heal every link, let held requests arrive, and sync every node until two whole rounds
        move nothing. Return how many rounds it took."""
        self._armed.clear()
        for edge in self.edges:
            assert edge.link is not None
            edge.link.heal()
            while edge.link.held:
                await self.deliver_held(edge)
        quiet = 0
        for rounds in range(1, max_rounds + 1):
            moved = False
            for edge in self.edges:
                assert edge.client is not None
                result = await edge.client.session_once()
                await self.check_sync_state(edge)
                moved |= bool(result.sent or result.received or result.pending_after)
            quiet = 0 if moved else quiet + 1
            if quiet == 2:
                self.record(f"quiescent after {rounds} rounds")
                return rounds
        raise AssertionError(f"no quiescence after {max_rounds} rounds")

    async def check_converged(self) -> dict[str, str]:
        """The full check at quiescence; return every dossier's digest (by id)."""
        await self.check_step(deep=True)
        for who in self.replicas():
            assert await integrity_ok(who.store.conn), f"{who.name}: integrity_check failed"
        hub_rows = await self.hub.dossier_rows()
        hub_states = self._states(self.hub_replica)
        missing = [d for d in self.dossiers if d not in hub_rows]
        assert not missing, f"dossiers saved at a node never reached the hub: {missing}"
        hub_events = self._event_hashes(self.hub_replica)
        for edge in self.edges:
            store = edge.store
            assert store is not None
            assert await store.ack() == store.own_seq, f"{edge.name}: not everything acked"
            assert self._one(edge, "SELECT count(*) FROM rejected") == 0
            rows = await store.dossier_rows()
            mine = {d for d, row in hub_rows.items() if row[1] == edge.commune}
            assert set(rows) == mine, (
                f"{edge.name}: holds {len(rows)} dossiers, the hub has {len(mine)} in its commune; "
                f"missing {sorted(mine - set(rows))[:3]}, foreign {sorted(set(rows) - mine)[:3]}")
            states = self._states(edge)
            for dossier in sorted(mine):
                assert digest(states[dossier]) == digest(hub_states[dossier]), \
                    f"{edge.name}: {dossier} diverged from the hub"
                assert rows[dossier] == hub_rows[dossier], \
                    f"{edge.name}: row of {dossier} differs from the hub's"
            events = self._event_hashes(edge)
            scope = {k: v for k, v in hub_events.items() if k[2] == edge.commune}
            assert events == scope, f"{edge.name}: its log differs from the hub's for its commune"
        hub_ref = self._q(self.hub_replica, "SELECT kind, version, data FROM refdata ORDER BY kind")
        for edge in self.edges:
            assert edge.store is not None
            assert self._q(edge, "SELECT kind, version, data FROM refdata ORDER BY kind") == hub_ref, \
                f"{edge.name}: reference data differs from the hub's"
            assert edge.store.ref_versions == self.hub.ref_versions, \
                f"{edge.name}: uses reference data {edge.store.ref_versions}, the hub has " \
                f"{self.hub.ref_versions}"
        for who in self.replicas():
            before = await who.store.dossier_rows()
            await who.store.rebuild()
            assert await who.store.dossier_rows() == before, f"{who.name}: rebuild changed rows"
        return {d: digest(s) for d, s in sorted(hub_states.items())}

    def _event_hashes(self, who: Replica) -> dict[tuple[str, int, str], bytes]:
        return {(r[0], r[1], r[2]): bytes(r[3])
                for r in self._q(who, "SELECT origin, seq, commune, hash FROM events")}
