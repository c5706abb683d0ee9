"""Hub ingest in one process, without HTTP: where a hub's CPU per event goes.

    .venv/bin/python bench/hub_ingest.py [--db sqlite | --db postgresql:///DB] [--http-body]
                                         [--nodes 4] [--dossiers 500] [--events 5000]
                                         [--batch 500] [--profile 25]
                                         [--gc default|tuned] [--general-decode]

Each node writes `--dossiers` creates and then edits spread over them (`--events` in all per
node), hash-chained as an edge writes them; the hub's `HubStore.ingest.accept` takes them in
batches of `--batch` (with `--http-body`: the whole `exchange.serve`, i.e. decoding a real request body,
checking it, ingesting, reading the scope, recording the session). Prints events/s (wall), this
process's CPU µs per event (PostgreSQL's own CPU is in its server processes, not counted), and with
`--profile N` the N costliest functions by own time. `--gc tuned` applies the server's GC settings
(service/gctune.py, what `central-hub serve` does); `--general-decode` turns off the typed fast path
of request decoding (protocol/wire.py): both there to measure before and after in one sitting.
`bench/fleet` measures the same hub over HTTP with a thousand communes; this isolates the per-event
work.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from central_hub import exchange
from central_hub.store import HubStore, Node
from protocol import codec, hlc, wire
from protocol.events import Event, uuid7
from protocol.messages import SyncRequest, encode_request
from service import gctune


def chain(node: Node, now_ms: int, dossiers: int, events: int) -> list[Event]:
    """One node's events: creates, then one-field edits round-robin over its dossiers."""
    out: list[Event] = []

    def add(kind: str, dossier: str, payload: dict[str, object], deps: dict[str, int]) -> str:
        seq = len(out) + 1
        prev = codec.event_hash(out[-1]) if out else b""
        out.append(Event(node.node, seq, hlc.pack(now_ms, seq), dossier, "clerk", kind, payload,
                         deps, prev))
        return dossier

    ids = [add("create", uuid7(now_ms, os.urandom(10)), {
        "procedure": "1.001193", "commune": node.commune,
        "code": f"{node.node}-261127-{i + 1:04d}", "received_at": now_ms, "channel": "counter",
        "status": "accepted", "due_at": now_ms + 3600_000,
        "set": {"applicant.full_name": f"Nguyễn Văn {i}"}}, {}) for i in range(dossiers)]
    for i in range(events - dossiers):
        add("set", ids[i % dossiers], {"set": {"applicant.address": f"Thôn {i}"}},
            {node.node: len(out)})
    return out


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", default="sqlite")
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--dossiers", type=int, default=500)
    p.add_argument("--events", type=int, default=5000, help="events per node")
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--http-body", action="store_true",
                   help="go through exchange.serve with encoded request bodies")
    p.add_argument("--profile", type=int, default=0, metavar="N")
    p.add_argument("--gc", choices=("default", "tuned"), default="tuned")
    p.add_argument("--general-decode", action="store_true",
                   help="decode requests by the general path only (protocol/wire.py off)")
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hub-ingest-"))
    hub = await HubStore.open(root / "hub.db", args.db)
    try:
        work: list[tuple[Node, list[Event]]] = []
        for i in range(args.nodes):
            commune = f"{2200 + i:05d}"
            enrollment = await hub.trust.enroll(await hub.trust.create_enroll_token(commune, None))
            node = Node(enrollment.node, enrollment.commune)
            work.append((node, chain(node, hub.now_ms(), args.dossiers, args.events)))
        total = sum(len(events) for _, events in work)
        batches = [(node, events[at:at + args.batch]) for node, events in work
                   for at in range(0, len(events), args.batch)]
        bodies = [encode_request(SyncRequest(n.node, b, 0, 1 << 20, hub.now_ms()))
                  for n, b in batches] if args.http_body else []
        if args.general_decode:
            wire.decode_request = lambda data, limits: None  # type: ignore[assignment]
        if args.gc == "tuned":
            gctune.tune_for_server()
        profile = cProfile.Profile() if args.profile else None
        wall, cpu = time.perf_counter(), time.process_time()
        if profile:
            profile.enable()
        for i, (node, batch) in enumerate(batches):
            if args.http_body:
                outcome = await exchange.serve(hub, node, bodies[i], 4 << 20)
                assert outcome.error is None, outcome.error
            else:
                await hub.ingest.accept(node, batch)
        await hub.sessions.flush()
        if profile:
            profile.disable()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        path = "exchange.serve (request bodies)" if args.http_body else "HubStore.ingest.accept"
        store = "SQLite" if args.db == "sqlite" else "PostgreSQL"
        print(f"{store}, {path}: {total:,} events from {args.nodes} nodes in batches of "
              f"{args.batch}: {wall:.2f} s wall, {total / wall:,.0f} events/s; this process "
              f"{cpu:.2f} s CPU, {cpu / total * 1e6:.0f} µs per event (gc {args.gc}"
              f"{', general decode' if args.general_decode else ''})")
        print(f"load average: {os.getloadavg()[0]:.2f}")
        if profile:
            pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile)
    finally:
        await hub.close()


if __name__ == "__main__":
    asyncio.run(main())
