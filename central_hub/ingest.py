"""Nodes' batches into the hub's log, committed before the ack.

One node's batch (`Ingest.accept`), in one transaction: its chain head is read, the accept rule
(`protocol.session.accept`) takes the events that continue it contiguously — a batch past a gap
applies nothing and acks the prefix, one that contradicts the chain is refused whole and
alerted — the scope rule (`protocol.scope.check_writes`) splits them into those the node may write
and those it may not; the first are appended and folded (`service.eventlog.EventLog.receive`),
the others quarantined with their reason; the chain head moves. Units are compared after the
hub's commune mergers (`EventLog.mergers.unit_of`), so what a merged commune's node queued
offline under its old code is the new unit's, not a violation. Only after the commit does the
hub answer with the ack.

On SQLite, batches that arrive while a commit is in progress are committed together in the next
transaction (group commit), a savepoint each, so a refused batch rolls back alone and the group
shares one fsync. PostgreSQL already flushes concurrent commits together: there each batch is its
own transaction, under the lock of the node's commune (locks: commune → chain → log).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from central_hub.feed import Feed
from central_hub.trust_store import Node, TrustStore
from protocol import codec
from protocol.errors import StoreError
from protocol.events import Event
from protocol.messages import Rejection
from protocol.scope import Units, check_writes, units_of
from protocol.session import ChainAlert, ChainHead, accept, replay_probe
from service import crashpoints
from service.db import PgConnection, advisory_lock
from service.eventlog import EventLog
from service.sqlite import transaction

log = logging.getLogger(__name__)

MAX_FORWARD_MS = 5 * 60 * 1000  # a node's clock further ahead than this does not move the hub's
GROUP_MAX = 32  # node batches committed together at most


class Ingest:
    """The hub's intake of nodes' batches: a part of `HubStore`, over the log's connection."""

    def __init__(self, log: EventLog, trust: TrustStore,
                 scope_of: Callable[[str], frozenset[str]] | None = None,
                 feed: Feed | None = None) -> None:
        self.log = log
        self.feed = feed  # the dossiers' units, without a fold (central_hub/feed.py)
        self.scope_of = scope_of  # a node's commune -> its scope set (HubStore.scope_of)
        self.trust = trust
        self._arrived: list[tuple[Node, list[Event], asyncio.Future[Any]]] = []
        self._committer: asyncio.Task[None] | None = None
        self.groups_committed = 0

    async def accept(self, node: Node, events: list[Event]) -> tuple[int, list[Rejection]]:
        """Durably apply a node's batch; return (contiguous ack, rejections). Commits first.
        A forged origin or a broken hash chain applies nothing and records a security alert.
        Shielded: a request cancelled half-way still finishes (or rolls back) its transaction."""
        return await asyncio.shield(self._alerting(node, events))

    async def _alerting(self, node: Node, events: list[Event]) -> tuple[int, list[Rejection]]:
        try:
            if isinstance(self.log.conn, PgConnection):
                return await self._alone(node, events)
            return await self._grouped(node, events)
        except ChainAlert as exc:
            await self.trust.alert(exc.kind, exc.message, node=node.node, origin=exc.origin,
                                   seq=exc.seq)
            raise

    async def _alone(self, node: Node, events: list[Event]) -> tuple[int, list[Rejection]]:
        """One batch, one transaction: on PostgreSQL, which already flushes concurrent commits
        together in its WAL, grouping batches here only added savepoints and held the commune
        and log locks longer (ingest measured slower: docs/benchmarks.md)."""
        now = self.log.time.now_ms()
        async with self.log.lock:
            try:
                async with transaction(self.log.conn):
                    # Hub processes sharing PostgreSQL: one ingest per commune at a time, so a
                    # batch delivered twice to two processes applies once (service.db).
                    await advisory_lock(self.log.conn,
                                        f"commune:{self.log.mergers.unit_of(node.commune)}")
                    result = await self._one(node, events, now)
                    crashpoints.hit("hub.ingest.before_commit")
            except BaseException:
                self.log.forget_clock()
                raise
            self.log.commit_clock()
        return result

    async def _grouped(self, node: Node, events: list[Event]) -> tuple[int, list[Rejection]]:
        """Group commit (SQLite): batches that arrive while a commit is in progress are applied
        together in the next transaction, one savepoint each (a refused batch rolls back alone),
        and share its one fsync. No batch waits for company: a lone one commits at once."""
        done: asyncio.Future[tuple[int, list[Rejection]]] = \
            asyncio.get_running_loop().create_future()
        self._arrived.append((node, events, done))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.get_running_loop().create_task(self._commit_groups())
        return await done

    async def _commit_groups(self) -> None:
        while self._arrived:
            group, self._arrived = self._arrived[:GROUP_MAX], self._arrived[GROUP_MAX:]
            outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
            try:
                now = self.log.time.now_ms()
                # SQLite only: BEGIN IMMEDIATE makes this the one writer, no advisory locks
                async with self.log.lock, transaction(self.log.conn):
                    for node, events, done in group:
                        try:
                            async with self.log.savepoint():
                                result = await self._one(node, events, now)
                        except Exception as exc:  # this batch rolled back alone
                            outcomes.append((done, None, exc))
                        else:
                            outcomes.append((done, result, None))
                    crashpoints.hit("hub.ingest.before_commit")
                self.log.commit_clock()
                self.groups_committed += 1
            except BaseException as exc:  # the commit failed (or we are shut down): nothing held
                self.log.forget_clock()
                for _, _, done in group:
                    if not done.done():
                        done.set_exception(exc if isinstance(exc, Exception) else
                                           StoreError("the hub stopped before committing"))
                if not isinstance(exc, Exception):
                    raise
                continue
            for done, result, error in outcomes:
                if done.done():
                    continue
                if error is not None:
                    done.set_exception(error)
                else:
                    done.set_result(result)

    async def _one(self, node: Node, events: list[Event], now: int
                   ) -> tuple[int, list[Rejection]]:
        """One node's batch, inside the caller's transaction (its own, or a group's)."""
        conn = self.log.conn
        async with conn.execute(
                "SELECT last_seq, last_hash FROM origins WHERE origin=?", (node.node,)) as cur:
            row = await cur.fetchone()
        head = ChainHead(int(row[0]), bytes(row[1])) if row else ChainHead()
        probe = replay_probe(head, events)
        taken = accept(node.node, head, events,
                       await self._held_hash(node.node, probe) if probe is not None else None)
        if not taken.fresh:
            return taken.ack, []  # all replayed, or a gap: ack the prefix we hold
        states = await self.log.load_states(e.dossier for e in taken.fresh)
        scope = self.scope_of(node.commune) if self.scope_of else frozenset({node.commune})
        known: Mapping[str, Units | None] = (
            await self.feed.units(states) if self.feed is not None
            else {d: units_of(s) for d, s in states.items()})
        accepted, rejections = check_writes(scope, taken.fresh, known,
                                            self.log.mergers.unit_of)
        _, ahead = await self.log.receive(accepted, now, MAX_FORWARD_MS, hashes=taken.hashes,
                                          states=states)
        if rejections:
            by_seq = {e.seq: e for e in taken.fresh}
            await conn.executemany(
                "INSERT INTO quarantine VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                [(node.node, r.seq, taken.hashes[r.seq], codec.canonical(by_seq[r.seq]),
                  r.code, r.reason, now) for r in rejections])
        scope_refused = [r for r in rejections if r.code in ("scope", "role")]
        if scope_refused:  # in the same transaction: the quarantine and its alert go together
            await self.trust.record_alert(
                now, "scope_violation",
                f"{len(scope_refused)} event(s) outside the node's scope or role quarantined "
                f"(first: seq {scope_refused[0].seq}: {scope_refused[0].reason})",
                node=node.node, origin=node.node, seq=scope_refused[0].seq)
        top = taken.head
        await conn.execute(
            "INSERT INTO origins VALUES (?,?,?) ON CONFLICT(origin) DO UPDATE SET "
            "last_seq=excluded.last_seq, last_hash=excluded.last_hash",
            (node.node, top.seq, top.hash))
        if ahead:
            await conn.execute(
                "UPDATE nodes SET clock_ahead_events=clock_ahead_events+? WHERE node=?",
                (ahead, node.node))
        return taken.ack, rejections

    async def _held_hash(self, origin: str, seq: int) -> bytes | None:
        """The hash the hub holds for (origin, seq), logged or quarantined."""
        async with self.log.conn.execute(
                "SELECT hash FROM events WHERE origin=? AND seq=? UNION ALL "
                "SELECT hash FROM quarantine WHERE origin=? AND seq=?",
                (origin, seq, origin, seq)) as cur:
            row = await cur.fetchone()
        return None if row is None else bytes(row[0])
