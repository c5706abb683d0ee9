"""One checker for every fault test: what DESIGN §5 promises, read straight from the SQLite files.

It opens each replica's database with plain `sqlite3` (so it works on in-process stores, on real
processes' files and after a SIGKILL alike) and reports every broken promise as a sentence:

- `PRAGMA integrity_check` is ok on every database;
- every dossier row equals the fold of its events in that store's log (rebuilt == incremental);
- every acknowledged dossier (its POST answered 201) is at its edge and at the hub, and every
  acknowledged write (answered 200) is a live value there; nothing is at the hub twice (one create
  event per dossier; no dossier code, and no citizen ID among the acknowledged ones, twice);
- each edge's own events are at the hub contiguously from seq 1 with the same hashes, and the hub
  has acknowledged all of them (nothing pending);
- replicas are equal: the edge and the hub hold the same dossiers of the edge's commune with the
  same `protocol.merge.digest`;
- with `blobs`: every live attachment's file is present at each replica and hashes to its name, and
  no edge still has blobs queued.

`converge` polls `check` until it passes or a deadline passes: "after the link heals everything
converges within two sync cycles plus the backoff cap" is `converge(..., within_s=bound)`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_node import config as edge_config
from protocol import codec
from protocol.merge import DossierState, digest, fold, from_plain

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Replica:
    """One node's data directory: the hub's (`node` None) or an edge's."""

    data: Path
    node: str | None = None
    commune: str | None = None

    @property
    def db(self) -> Path:
        return self.data / ("hub.db" if self.node is None else edge_config.DB_FILE)

    @property
    def blobs(self) -> Path:
        return self.data / "blobs"

    @property
    def name(self) -> str:
        return "hub" if self.node is None else f"edge {self.node}"

    @classmethod
    def hub(cls, data: Path) -> Replica:
        return cls(data)

    @classmethod
    def edge(cls, data: Path) -> Replica:
        """An edge replica, its node id and commune read from its `node.toml`."""
        config = edge_config.load(data)
        return cls(data, config.node, config.commune)


@dataclass
class Acked:
    """What clients were told is saved: dossiers answered 201, writes answered 200."""

    dossiers: dict[str, str] = field(default_factory=dict)  # id → commune
    citizen_ids: dict[str, str] = field(default_factory=dict)  # id → citizen ID
    writes: dict[tuple[str, str], Any] = field(default_factory=dict)  # (id, path) → value
    # writes sent but never answered (the node died, the client gave up): they may or may not
    # have been applied, and one that was may supersede the last acknowledged write of its path
    unsure: dict[tuple[str, str], list[Any]] = field(default_factory=dict)

    def dossier(self, view: dict[str, Any]) -> None:
        """Record a dossier view answered with 201."""
        self.dossiers[view["id"]] = view["commune"]
        self.citizen_ids[view["id"]] = view["applicant"]["citizen_id"]

    def write(self, dossier_id: str, path: str, value: Any) -> None:
        """Record a write answered with 200 (the last one per path wins: one writer per path)."""
        self.writes[(dossier_id, path)] = value
        self.unsure.pop((dossier_id, path), None)

    def maybe(self, dossier_id: str, path: str, value: Any) -> None:
        """Record a write sent without an answer."""
        self.unsure.setdefault((dossier_id, path), []).append(value)


@dataclass
class Snapshot:
    """What one database holds, read in one go."""

    integrity: str
    states: dict[str, DossierState]  # materialized rows
    folded: dict[str, DossierState]  # fold of the log
    commune_of: dict[str, str]
    codes: dict[str, str | None]
    citizen: dict[str, str | None]
    events: dict[tuple[str, int], bytes]  # (origin, seq) → hash
    creates: Counter[str]
    meta: dict[str, Any]
    blobs_queued: int


def read(replica: Replica) -> Snapshot:
    """Read a replica's database (read-only use of a normal connection), in one read
    transaction: a hub shared with other campaigns keeps committing meanwhile, and rows read
    before a commit compared with a log read after it would differ for no fault of the store."""
    conn = sqlite3.connect(replica.db, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN")
        integrity = "; ".join(str(r[0]) for r in conn.execute("PRAGMA integrity_check"))
        states: dict[str, DossierState] = {}
        commune_of: dict[str, str] = {}
        codes: dict[str, str | None] = {}
        citizen: dict[str, str | None] = {}
        for did, commune, code, cid, blob in conn.execute(
                "SELECT id, commune, code, citizen_id, state FROM dossiers"):
            states[did] = from_plain(codec.unpack(blob))
            commune_of[did], codes[did], citizen[did] = commune, code, cid
        by_dossier: dict[str, list[Any]] = defaultdict(list)
        events: dict[tuple[str, int], bytes] = {}
        creates: Counter[str] = Counter()
        for origin, seq, did, kind, ehash, body in conn.execute(
                "SELECT origin, seq, dossier, kind, hash, body FROM events ORDER BY pos"):
            events[(origin, seq)] = bytes(ehash)
            by_dossier[did].append(codec.decode_stored(body))
            creates[did] += kind == "create"
        folded = {did: s for did, evs in by_dossier.items() if (s := fold(evs)) is not None}
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        queued = 0
        if replica.node is not None:
            queued = conn.execute("SELECT count(*) FROM blobs WHERE done=0").fetchone()[0]
        conn.execute("COMMIT")
    finally:
        conn.close()
    return Snapshot(integrity, states, folded, commune_of, codes, citizen, events, creates, meta,
                    queued)


def _blob_ok(root: Path, sha: str) -> str | None:
    path = root / sha[:2] / sha
    if not path.is_file():
        return "missing"
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return None if h.hexdigest() == sha else "does not hash to its name"


def _dups(values: Iterable[str | None]) -> list[str]:
    return sorted(v for v, n in Counter(v for v in values if v).items() if n > 1)


def check(hub: Replica, edges: list[Replica], acked: Acked | None = None, *,
          blobs: bool = False, pending_ok: bool = False) -> list[str]:
    """Every broken promise, as sentences; [] when all hold. `pending_ok`: do not require the
    edges to be fully synced (for a check in the middle of faults)."""
    acked = acked or Acked()
    problems: list[str] = []
    snaps = {r: read(r) for r in (hub, *edges)}
    for r, s in snaps.items():
        if s.integrity != "ok":
            problems.append(f"{r.name}: integrity_check: {s.integrity[:300]}")
        if set(s.states) != set(s.folded):
            problems.append(f"{r.name}: dossier rows and the event log disagree on which "
                            f"dossiers exist ({len(set(s.states) ^ set(s.folded))} differ)")
        wrong = [d for d in s.states if d in s.folded and digest(s.states[d]) != digest(s.folded[d])]
        if wrong:
            problems.append(f"{r.name}: {len(wrong)} dossier rows differ from the fold of their "
                            f"events, e.g. {wrong[0]}")
        for code in _dups(s.codes.values())[:3]:
            problems.append(f"{r.name}: dossier code {code} used twice")
        twice = [d for d, n in s.creates.items() if n > 1]
        if twice:
            problems.append(f"{r.name}: {len(twice)} dossiers created twice, e.g. {twice[0]}")
    h = snaps[hub]
    for edge in edges:
        e = snaps[edge]
        assert edge.node is not None
        own = sorted(seq for origin, seq in e.events if origin == edge.node)
        at_hub = sorted(seq for origin, seq in h.events if origin == edge.node)
        if own != list(range(1, len(own) + 1)):
            problems.append(f"{edge.name}: its own events are not seq 1…{len(own)}")
        if at_hub != list(range(1, len(at_hub) + 1)):
            problems.append(f"hub: events of {edge.node} are not contiguous from seq 1")
        if len(at_hub) > len(own):
            problems.append(f"hub: holds {len(at_hub)} events of {edge.node}, which has written "
                            f"only {len(own)}")
        forked = [k for k in e.events if k in h.events and e.events[k] != h.events[k]]
        if forked:
            problems.append(f"{edge.name}: {len(forked)} events differ from the hub's copy, "
                            f"e.g. {forked[0]}")
        if not pending_ok:
            if len(at_hub) < len(own):
                problems.append(f"{edge.name}: {len(own) - len(at_hub)} events not at the hub")
            if int(e.meta.get("ack", 0)) != len(own):
                problems.append(f"{edge.name}: ack {e.meta.get('ack', 0)} but {len(own)} events "
                                "written (pending)")
            mine = {d for d, c in h.commune_of.items() if c == edge.commune}
            if set(e.states) != mine:
                problems.append(f"{edge.name}: holds {len(e.states)} dossiers, the hub "
                                f"{len(mine)} of commune {edge.commune} "
                                f"({len(set(e.states) ^ mine)} differ)")
            differ = [d for d in set(e.states) & mine
                      if digest(e.states[d]) != digest(h.states[d])]
            if differ:
                problems.append(f"{edge.name}: {len(differ)} dossiers differ from the hub's "
                                f"replica (digest), e.g. {differ[0]}")
            if blobs and e.blobs_queued:
                problems.append(f"{edge.name}: {e.blobs_queued} blobs still queued")
    by_commune = {edge.commune: snaps[edge] for edge in edges}
    lost_edge, lost_hub = [], []
    for did, commune in acked.dossiers.items():
        e_snap = by_commune.get(commune)
        if e_snap is not None and did not in e_snap.states:
            lost_edge.append(did)
        if did not in h.states and not pending_ok:
            lost_hub.append(did)
    if lost_edge:
        problems.append(f"{len(lost_edge)} acknowledged dossiers lost at their edge, "
                        f"e.g. {lost_edge[0]}")
    if lost_hub:
        problems.append(f"{len(lost_hub)} acknowledged dossiers not at the hub, "
                        f"e.g. {lost_hub[0]}")
    wanted = set(acked.citizen_ids.values())
    for r in (hub, *edges):
        cids = [c for c in snaps[r].citizen.values() if c in wanted]
        for cid in _dups(cids)[:3]:
            problems.append(f"{r.name}: citizen ID {cid} of an acknowledged dossier is in two "
                            "dossiers (duplicated)")
    for (did, path), value in acked.writes.items():
        for r, s in ((hub, h), *((e, snaps[e]) for e in edges
                                 if e.commune == acked.dossiers.get(did))):
            if r is hub and pending_ok:
                continue
            state = s.states.get(did)
            live = [w.value for w in state.registers.get(path, ())] if state else []
            if not {value, *acked.unsure.get((did, path), ())} & set(live):
                problems.append(f"{r.name}: acknowledged write {path}={value!r} of {did} is "
                                f"not live (live: {live!r})")
    if blobs and not pending_ok:
        # at the hub, only the checked edges' communes: a hub shared with other campaigns may be
        # receiving their scans right now
        ours = {e.commune for e in edges}
        for r in (hub, *edges):
            for did, state in snaps[r].states.items():
                if r is hub and snaps[r].commune_of.get(did) not in ours:
                    continue
                for att in state.live_attachments():
                    why = _blob_ok(r.blobs, att["sha256"])
                    if why:
                        problems.append(f"{r.name}: blob {att['sha256'][:12]} of {did} {why}")
    return problems


async def converge(hub: Replica, edges: list[Replica], acked: Acked | None = None, *,
                   within_s: float, blobs: bool = False, every_s: float = 0.1) -> float:
    """Wait until `check` passes; return how long it took. AssertionError naming what still
    fails if it does not pass within `within_s`."""
    started = time.monotonic()
    while True:
        problems = await asyncio.to_thread(check, hub, edges, acked, blobs=blobs)
        took = time.monotonic() - started
        if not problems:
            return took
        if took > within_s:
            raise AssertionError(f"not converged within {within_s:.1f} s:\n  "
                                 + "\n  ".join(problems[:20]))
        await asyncio.sleep(every_s)
