"""The hub's store: the union of all communes' logs, positions in the hub log, and nodes (their
enrollment, credentials, certificates and security alerts are in `central_hub/trust_store.py`).

Ingest from an edge happens in one transaction: the events that continue the node's hash chain
contiguously are checked for scope, appended (or quarantined with a reason), folded, and the chain
head moves; only then does the hub ack. A batch that starts past a gap applies nothing and acks the
contiguous prefix, so the edge resends from there. A batch that contradicts the stored chain (fork
or tampering) is refused whole.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import aiosqlite

from central_hub.schema import MIGRATIONS
from central_hub.tracking import tracking_rows
from central_hub.trust_store import TOKEN_TTL_MS as TOKEN_TTL_MS
from central_hub.trust_store import Enrollment as Enrollment
from central_hub.trust_store import Node as Node
from central_hub.trust_store import TrustStore
from central_hub.trust_store import check_commune as check_commune
from protocol import HUB_ORIGIN, codec
from protocol.errors import RemoteProtocolError, StoreError, ValidationError
from protocol.events import Event
from protocol.merge import DossierState
from protocol.messages import Rejection
from protocol.refdata import DEFAULT_REFDATA
from protocol.refdata import KINDS as REF_KINDS
from service import crashpoints
from service.blobs import BlobStore
from service.db import PgConnection, advisory_lock, index_hint, is_pg_url, redact
from service.dossier_store import DossierStore
from service.migrations import upgrade
from service.sqlite import connect, transaction

log = logging.getLogger(__name__)

MAX_FORWARD_MS = 5 * 60 * 1000
ORIGIN_KEY = "hub_origin"  # meta: the origin the hub writes under (`hub` until a restore)
SESSION_FLUSH_S = 0.5  # exchange statistics are written in batches this often
GROUP_MAX = 32  # node batches committed together at most
NODE_KEYS = ("node", "commune", "commune_name", "enrolled_at", "revoked_at", "last_seen_at",
             "last_success_at", "app_version", "protocol", "stats", "last_error", "sessions_ok",
             "sessions_failed", "bytes_in", "bytes_out", "clock_ahead_events", "rejected_events",
             "conflicts_open", "delivered")


class _ChainAlert(RemoteProtocolError):
    """A batch that contradicts what the hub holds: refused whole, and alerted."""

    def __init__(self, kind: str, origin: str, seq: int, message: str) -> None:
        super().__init__(message)
        self.kind, self.origin, self.seq = kind, origin, seq


class HubStore(DossierStore, TrustStore):
    """The province's copy of every commune's dossiers."""

    def __init__(self, conn: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        super().__init__(conn, reader, HUB_ORIGIN, None)
        self.path = Path("hub.db")  # the SQLite file, or where blobs and locks live beside
        self._sessions: list[tuple[Any, ...]] = []  # exchanges not yet written (record_session)
        self._arrived: list[tuple[Node, list[Event], asyncio.Future[Any]]] = []  # group commit
        self._committer: asyncio.Task[None] | None = None
        self.groups_committed = 0
        self._flusher: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, path: Path, db: str = "sqlite") -> HubStore:
        """Open (creating if needed) the hub database: the SQLite file at `path`, or the
        PostgreSQL database `db` (a postgresql:// URL). Blobs live next to `path` either way."""
        conn: Any
        reader: Any
        if is_pg_url(db):
            conn, reader = await PgConnection.open(db)
        else:
            conn, reader = await connect(path, synchronous="FULL"), None
        try:
            await upgrade(conn, MIGRATIONS, redact(db) if is_pg_url(db) else str(path))
            store = cls(conn, reader or await connect(path))
        except BaseException:
            await conn.close()
            raise
        store.path = path
        store.blobs = BlobStore(path.parent / "blobs")
        await store.setup()
        origin = await store.get_meta(ORIGIN_KEY)
        if origin and origin != store.origin:  # restored from a backup: a chain of its own
            store.origin = str(origin)
            store.own_seq, store.own_hash = await store._own_head()
        if not store.ref_versions:
            async with store.lock, transaction(conn):
                for kind, data in DEFAULT_REFDATA.items():
                    await store.save_refdata(kind, 1, data)
            for kind, data in DEFAULT_REFDATA.items():
                store.use_refdata(kind, 1, data)
        return store

    async def on_events(self, events: list[Event]) -> None:
        """Remember which communes may fetch (and upload) which blobs, and the tracking check of
        each new dossier (central_hub/tracking.py)."""
        tracked = tracking_rows(events)
        if tracked:
            await self.conn.executemany(
                "INSERT INTO tracking VALUES (?,?,?) ON CONFLICT DO NOTHING", tracked)
        rows = []
        for event in events:
            if event.kind == "attach" and "sha256" in event.payload:  # not a paper document
                state = await self.load_state(event.dossier)
                commune = (state.header or {}).get("commune") if state else None
                if commune:
                    rows.append((event.payload["sha256"], commune))
        if rows:
            await self.conn.executemany(
                "INSERT INTO blob_refs VALUES (?,?) ON CONFLICT DO NOTHING", rows)

    async def blob_allowed(self, sha: str, commune: str) -> bool:
        """True iff an attachment of this commune's dossiers names the blob."""
        async with self.reader.execute(
                "SELECT 1 FROM blob_refs WHERE sha256=? AND commune=?", (sha, commune)) as cur:
            return await cur.fetchone() is not None

    async def publish(self, kind: str, data: dict[str, Any]) -> int:
        """Publish a new version of reference data (validated by the caller); return it."""
        if kind not in REF_KINDS:
            raise ValidationError(f"unknown reference data {kind!r}")
        version = self.ref_versions.get(kind, 0) + 1
        async with self.lock, transaction(self.conn):
            await self.save_refdata(kind, version, data)
        self.use_refdata(kind, version, data)
        return version

    async def refdata(self, kind: str) -> dict[str, Any] | None:
        """The latest published data of `kind`, or None (read from the database)."""
        async with self.reader.execute("SELECT data FROM refdata WHERE kind=?", (kind,)) as cur:
            row = await cur.fetchone()
        return None if row is None else dict(codec.unpack(row[0]))

    async def refdata_newer(self, held: dict[str, int]) -> dict[str, dict[str, Any]]:
        """The reference data newer than what a node holds (read from the database, so data
        published by `central-hub … import` while the server runs goes out at once)."""
        out: dict[str, dict[str, Any]] = {}
        async with self.reader.execute("SELECT kind, version FROM refdata") as cur:
            current = {k: int(v) for k, v in await cur.fetchall()}
        for kind, version in current.items():
            if held.get(kind, 0) < version or self.ref_versions.get(kind, 0) < version:
                async with self.reader.execute(
                        "SELECT data FROM refdata WHERE kind=?", (kind,)) as cur:
                    row = await cur.fetchone()
                if row is None:
                    continue
                data = codec.unpack(row[0])
                if self.ref_versions.get(kind, 0) < version:
                    self.use_refdata(kind, version, data)
                if held.get(kind, 0) < version:
                    out[kind] = {"version": version, "data": data}
        return out

    # -- the sync exchange ----------------------------------------------------------------------

    async def ingest_from(self, node: Node, events: list[Event]) -> tuple[int, list[Rejection]]:
        """Durably apply a node's batch; return (contiguous ack, rejections). Commits first.
        A forged origin or a broken hash chain applies nothing and records a security alert.
        Shielded: a request cancelled half-way still finishes (or rolls back) its transaction."""
        return await asyncio.shield(self._ingest_alerting(node, events))

    async def _ingest_alerting(self, node: Node, events: list[Event]
                               ) -> tuple[int, list[Rejection]]:
        try:
            if isinstance(self.conn, PgConnection):
                return await self._ingest_alone(node, events)
            return await self._ingest_grouped(node, events)
        except _ChainAlert as exc:
            await self.alert(exc.kind, exc.message, node=node.node, origin=exc.origin,
                             seq=exc.seq)
            raise

    async def _ingest_alone(self, node: Node, events: list[Event]
                            ) -> tuple[int, list[Rejection]]:
        """One batch, one transaction: on PostgreSQL, which already flushes concurrent commits
        together in its WAL, grouping batches here only added savepoints and held the commune
        and log locks longer (ingest measured slower: docs/benchmarks.md)."""
        now = self.now_ms()
        async with self.lock:
            async with transaction(self.conn):
                # Hub processes sharing PostgreSQL: one ingest per commune at a time, so a batch
                # delivered twice to two processes applies once (service.db).
                await advisory_lock(self.conn, f"commune:{node.commune}")
                result = await self._ingest_one(node, events, now)
                crashpoints.hit("hub.ingest.before_commit")
            self.commit_clock()
        return result

    async def _ingest_grouped(self, node: Node, events: list[Event]
                              ) -> tuple[int, list[Rejection]]:
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
                now = self.now_ms()
                # SQLite only: BEGIN IMMEDIATE makes this the one writer, no advisory locks
                async with self.lock, transaction(self.conn):
                    for node, events, done in group:
                        await self.conn.execute("SAVEPOINT ingest")
                        clock = self._pending_clock
                        try:
                            result = await self._ingest_one(node, events, now)
                        except Exception as exc:
                            await self.conn.execute("ROLLBACK TO SAVEPOINT ingest")
                            await self.conn.execute("RELEASE SAVEPOINT ingest")
                            self._pending_clock = clock  # its clock advance is undone too
                            outcomes.append((done, None, exc))
                        else:
                            await self.conn.execute("RELEASE SAVEPOINT ingest")
                            outcomes.append((done, result, None))
                    crashpoints.hit("hub.ingest.before_commit")
                self.commit_clock()
                self.groups_committed += 1
            except BaseException as exc:  # the commit failed (or we are shut down): nothing held
                self._pending_clock = None
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

    async def _ingest_one(self, node: Node, events: list[Event], now: int
                          ) -> tuple[int, list[Rejection]]:
        """One node's batch, inside the caller's transaction (its own, or a group's)."""
        async with self.conn.execute(
            "SELECT last_seq, last_hash FROM origins WHERE origin=?", (node.node,)) as c:
            row = await c.fetchone()
        last_seq, last_hash = (int(row[0]), bytes(row[1])) if row else (0, b"")
        await self._check_replayed(node, [e for e in events if e.seq <= last_seq])
        fresh: list[Event] = []
        hashes: dict[int, bytes] = {}
        expect_seq, expect_prev = last_seq + 1, last_hash
        for event in sorted((e for e in events if e.seq > last_seq), key=lambda e: e.seq):
            if event.seq != expect_seq:
                break  # a gap: only the contiguous prefix counts
            if event.origin != node.node:
                raise _ChainAlert("forged_origin", event.origin, event.seq,
                                  "an event's origin is not the sending node")
            if event.prev != expect_prev:
                raise _ChainAlert(
                    "chain_broken", node.node, event.seq,
                    f"hash chain of {node.node} broken at seq {event.seq}: the event "
                    "does not follow the one the hub holds (fork or tampering)")
            fresh.append(event)
            hashes[event.seq] = expect_prev = codec.event_hash(event)
            expect_seq += 1
        if not fresh:
            return last_seq, []  # all replayed, or a gap: ack the prefix we hold
        accepted, rejections, states = await self._check_scope(node, fresh)
        _, ahead = await self.ingest(accepted, now, MAX_FORWARD_MS, hashes=hashes,
                                     states=states)
        for rej in rejections:
            event = next(e for e in fresh if e.seq == rej.seq)
            await self.conn.execute(
                "INSERT INTO quarantine VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                (node.node, event.seq, hashes[event.seq], codec.canonical(event),
                 rej.code, rej.reason, now))
        scope = [r for r in rejections if r.code == "scope"]
        if scope:  # in the same transaction: the quarantine and its alert go together
            await self.conn.execute(
                "INSERT INTO security_events(at, kind, node, origin, seq, detail) "
                "VALUES (?,?,?,?,?,?)",
                (now, "scope_violation", node.node, node.node, scope[0].seq,
                 f"{len(scope)} event(s) for another commune's dossiers quarantined "
                 f"(first: seq {scope[0].seq}: {scope[0].reason})"))
        top = fresh[-1]
        await self.conn.execute(
            "INSERT INTO origins VALUES (?,?,?) ON CONFLICT(origin) DO UPDATE SET "
            "last_seq=excluded.last_seq, last_hash=excluded.last_hash",
            (node.node, top.seq, hashes[top.seq]))
        if ahead:
            await self.conn.execute(
                "UPDATE nodes SET clock_ahead_events=clock_ahead_events+? WHERE node=?",
                (ahead, node.node))
        return top.seq, rejections

    async def _check_replayed(self, node: Node, replayed: list[Event]) -> None:
        """Events the hub already holds are skipped, but only if they are the ones it holds:
        the batch's chain is recomputed from its first `prev`, so the hash of its highest
        replayed event vouches for all before it. A different one is a fork."""
        if not replayed:
            return
        top = max(replayed, key=lambda e: e.seq)
        async with self.conn.execute(
                "SELECT hash FROM events WHERE origin=? AND seq=? UNION ALL "
                "SELECT hash FROM quarantine WHERE origin=? AND seq=?",
                (node.node, top.seq, node.node, top.seq)) as cur:
            row = await cur.fetchone()
        if row is not None and bytes(row[0]) != codec.event_hash(top):
            raise _ChainAlert(
                "fork", node.node, top.seq,
                f"{node.node} resent seq {top.seq} with other content than the hub holds "
                "(a fork: an event rewritten or rolled back after it was sent)")

    async def _check_scope(self, node: Node, events: list[Event]
                           ) -> tuple[list[Event], list[Rejection],
                                      dict[str, DossierState | None]]:
        """Which events this node may write; also the states loaded to tell (for the fold)."""
        states = await self._load_states(e.dossier for e in events)
        communes = {d: (s.header or {}).get("commune") for d, s in states.items() if s}
        accepted, rejections = [], []
        for event in events:
            known = communes.get(event.dossier)
            if event.kind == "create":
                if event.payload.get("commune") != node.commune:
                    rejections.append(Rejection(event.seq, "scope",
                                                "dossier created for another commune"))
                    continue
                if known is not None:
                    rejections.append(Rejection(event.seq, "duplicate_id",
                                                "a dossier with this id already exists"))
                    continue
                communes[event.dossier] = node.commune
            elif known is None:
                rejections.append(Rejection(event.seq, "unknown_dossier",
                                            "no such dossier at the hub"))
                continue
            elif known != node.commune:
                rejections.append(Rejection(event.seq, "scope",
                                            "dossier belongs to another commune"))
                continue
            accepted.append(event)
        return accepted, rejections, states

    async def read_scope(self, node: Node, cursor: int, want_bytes: int
                         ) -> tuple[list[Event], int, bool]:
        """Events of the node's commune after `cursor` (not its own), about `want_bytes` of
        them; return (events, new cursor, more)."""
        out: list[Event] = []
        size, new_cursor = 0, cursor
        # Committed rows only, through the reader (SQLite in WAL mode, or PostgreSQL's pool):
        # no wait on the writer's lock. On PostgreSQL a position only becomes visible after
        # every smaller one committed (the log lock), so the cursor never skips one.
        while True:
            async with self.reader.execute(
                    "SELECT pos, CASE WHEN origin=? THEN NULL ELSE body END FROM events "
                    "WHERE commune=? AND pos>? ORDER BY pos LIMIT 1000",
                    (node.node, node.commune, new_cursor)) as cur:
                rows = await cur.fetchall()
            if not rows:
                return out, new_cursor, False
            for pos, body in rows:
                if body is not None:
                    if out and size + len(body) > want_bytes:
                        return out, new_cursor, True
                    out.append(codec.decode_stored(body))
                    size += len(body)
                new_cursor = pos

    async def record_session(self, node: Node, *, app: str, protocol: int,
                             stats: dict[str, Any], ok: bool, error: str | None,
                             bytes_in: int, bytes_out: int, events_in: int = 0,
                             events_out: int = 0, duration_ms: int = 0) -> None:
        """Remember what a node reported and how its exchange went (also in its history).

        Recorded in batches: the record waits up to `SESSION_FLUSH_S` and goes to the database
        with the others in one transaction, so an exchange commits once (its ingest), not twice.
        Readers of these tables call `flush_sessions` first; a crash loses at most that window
        of exchange statistics, never an event."""
        self._sessions.append((node.node, self.now_ms(), ok, app, protocol, stats, error,
                               bytes_in, bytes_out, events_in, events_out, duration_ms))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(SESSION_FLUSH_S)
        try:
            await self.flush_sessions()
        except Exception:  # the next record or reader tries again; the rows are kept
            log.exception("cannot record exchange statistics")

    async def flush_sessions(self) -> None:
        """Write the exchanges recorded so far (one transaction)."""
        if not self._sessions:
            return
        batch, self._sessions = self._sessions, []
        try:
            await asyncio.shield(self._write_sessions(batch))
        except BaseException:
            self._sessions[:0] = batch
            raise

    async def _write_sessions(self, batch: list[tuple[Any, ...]]) -> None:
        async with self.lock, transaction(self.conn):
            await self.conn.executemany(
                "INSERT INTO node_sessions VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [(node, at, int(ok), error, b_in, b_out, e_in, e_out,
                  stats.get("pending_events"), stats.get("oldest_pending_age_s"),
                  stats.get("clock_offset_ms"), duration)
                 for (node, at, ok, _app, _protocol, stats, error, b_in, b_out, e_in, e_out,
                      duration) in batch])
            # a refused exchange carries no trustworthy report: keep the node's last one
            await self.conn.executemany(
                "UPDATE nodes SET last_seen_at=?, last_success_at=CASE WHEN ? THEN ? ELSE "
                "last_success_at END, app_version=CASE WHEN ? THEN ? ELSE app_version END, "
                "protocol=CASE WHEN ? THEN ? ELSE protocol END, "
                "stats=CASE WHEN ? THEN ? ELSE stats END, last_error=?, "
                "sessions_ok=sessions_ok+?, sessions_failed=sessions_failed+?, "
                "bytes_in=bytes_in+?, bytes_out=bytes_out+? WHERE node=?",
                [(at, ok, at, ok, app, ok, protocol, ok, json.dumps(stats), error, int(ok),
                  int(not ok), b_in, b_out, node)
                 for (node, at, ok, app, protocol, stats, error, b_in, b_out, _e_in, _e_out,
                      _duration) in batch])

    async def close(self) -> None:
        """Write the exchanges still waiting, then close."""
        if self._flusher is not None:
            self._flusher.cancel()
        try:
            await self.flush_sessions()
        finally:
            await super().close()

    async def nodes(self, node: str | None = None) -> list[dict[str, Any]]:
        """Every node (or one) with what it last reported and what its latest successful
        exchange delivered (`delivered`: the report was made before it). Conflicts are counted
        per commune in one pass over the partial index of conflicted dossiers."""
        await self.flush_sessions()
        where, args = ("WHERE n.node=?", (node,)) if node else ("", ())
        async with self.reader.execute(
            "SELECT n.node, n.commune, c.name, n.enrolled_at, n.revoked_at, n.last_seen_at, "
            "n.last_success_at, n.app_version, n.protocol, n.stats, n.last_error, "
            "n.sessions_ok, n.sessions_failed, n.bytes_in, n.bytes_out, n.clock_ahead_events, "
            "coalesce(q.n, 0), coalesce(k.n, 0), "
            # the stats are those of the last exchange that succeeded (a refused one keeps them)
            "(SELECT s.events_in FROM node_sessions s "
            " WHERE s.node=n.node AND s.ok<>0 ORDER BY s.at DESC LIMIT 1) "
            "FROM nodes n LEFT JOIN communes c ON c.code=n.commune "
            "LEFT JOIN (SELECT origin, count(*) n FROM quarantine GROUP BY origin) q "
            "  ON q.origin=n.node "
            f"LEFT JOIN (SELECT commune, count(*) n FROM dossiers "
            f"{index_hint(self.reader, 'dossiers_conflicts')} "
            "  WHERE conflicts>0 GROUP BY commune) k ON k.commune=n.commune "
            f"{where} ORDER BY n.node", args) as cur:
            rows = await cur.fetchall()
        out = []
        for row in rows:
            item = dict(zip(NODE_KEYS, row, strict=True))
            item["stats"] = json.loads(item["stats"] or "{}")
            out.append(item)
        return out

    async def log_size(self) -> int:
        """The highest position in the hub log."""
        async with self.reader.execute("SELECT coalesce(max(pos), 0) FROM events") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0
