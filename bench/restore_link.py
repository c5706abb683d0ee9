"""Restore a dead PC over a slow link: a new edge, enrolled with the token of `central-hub node
replace`, pulls the commune's N dossiers (20,000) over a 256 kbit/s link between two network
namespaces. Needs root, `ip`, `tc` and `nft` (see tests/faults/netns.py).

The hub serves inside one namespace; the old edge (in the other) takes the N birth registrations in
offline and syncs them up over the link unshaped; the hub replaces it; the new edge enrolls over
the link; then the link is shaped (`tc tbf` on both ends) and one `edge-node sync` of the new edge
runs inside its namespace. Printed: wall time on the link (first to last byte, sampled from the
veth's counters), the process's own wall time, bytes each way as the veth counts them (headers and
retransmissions included), bytes per dossier, and the ratio of the time on the link to the bound
(bytes of the busier direction ÷ rate). Target: ≤ 1.3×.

    sudo python bench/restore_link.py [--dossiers 20000] [--rate-kbit 256] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/…` from anywhere
    sys.path.insert(0, str(ROOT))

from bench.dossier_faker import DossierFaker  # noqa: E402
from bench.processes import acli, machine, run_in_tmp  # noqa: E402
from bench.slow_link import LinkWatch  # noqa: E402
from edge_node import config as edge_config  # noqa: E402
from tests.faults.netns import Link, LinkUnavailable, unavailable  # noqa: E402
from tests.faults.procs import Procs, intake_offline, netns_nodes  # noqa: E402

log = logging.getLogger(__name__)

TARGET = 1.3
HUB_PORT = 8700


async def in_edge_ns(procs: Procs, link: Link, root: Path, name: str, *args: str) -> None:
    """`python -m <args>` inside the edge's namespace; RuntimeError unless it exits 0."""
    proc = procs.start(name, list(args), root / "edge.log", prefix=link.prefix(link.edge_ns))
    code = await proc.wait(1200)
    if code != 0:
        proc.kill()
        raise RuntimeError(f"{name} failed ({code}):\n{proc.tail()}")


async def one(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Fill the hub through the old edge, replace it, time the new edge's first sync."""
    procs = Procs()
    with Link() as link:
        try:
            hub_dir, old_dir, hub = await netns_nodes(link, root, procs, auto_sync=False)
            faker = DossierFaker(args.seed)
            print(f"taking in {args.dossiers} dossiers at the old edge and syncing them up "
                  "(unshaped)…", flush=True)
            await intake_offline(old_dir, [faker.birth() for _ in range(args.dossiers)])
            await in_edge_ns(procs, link, root, "old sync", "edge_node", "sync", "--data",
                             str(old_dir))
            old = edge_config.load(old_dir)
            token = await acli("central_hub", "node", "replace", "--data", str(hub_dir),
                               "--node", old.node)
            new_dir = root / "new"
            await in_edge_ns(procs, link, root, "new init", "edge_node", "init", "--data",
                             str(new_dir), "--hub", f"http://{link.hub_ip}:{HUB_PORT}",
                             "--token", token, "--insecure-http")
            link.shape(args.rate_kbit)
            print(f"the new edge pulls the commune at {args.rate_kbit} kbit/s…", flush=True)
            before = link.counters()
            with LinkWatch(hub.pid, link.hub_if) as watch:
                started = time.monotonic()
                await in_edge_ns(procs, link, root, "new sync", "edge_node", "sync", "--data",
                                 str(new_dir))
                process_s = time.monotonic() - started
                await asyncio.sleep(0.3)  # the last ACKs and FINs
            moved = link.counters() - before
            await hub.stop()
        finally:
            await procs.stop_all()
    conn = sqlite3.connect(new_dir / "edge.db")
    try:
        held = conn.execute("SELECT count(*) FROM dossiers").fetchone()[0]
    finally:
        conn.close()
    if held != args.dossiers:
        raise RuntimeError(f"the new edge holds {held} dossiers, not {args.dossiers}")
    busier = max(moved.up_bytes, moved.down_bytes)
    bound = busier * 8 / (args.rate_kbit * 1000)
    return {
        "dossiers": args.dossiers,
        "rate_kbit": args.rate_kbit,
        "link_s": round(watch.busy_s, 2),
        "process_s": round(process_s, 2),
        "bytes_up": moved.up_bytes,
        "bytes_down": moved.down_bytes,
        "bytes_per_dossier": round((moved.up_bytes + moved.down_bytes) / args.dossiers, 1),
        "bound_s": round(bound, 2),
        "ratio": round(watch.busy_s / bound, 2) if bound else None,
        "target": TARGET,
    }


def report(r: dict[str, Any]) -> None:
    met = r["ratio"] is not None and r["ratio"] <= TARGET
    print()
    print(f"  {r['dossiers']} dossiers restored at {r['rate_kbit']} kbit/s: {r['link_s']:.2f} s on "
          f"the link ({r['process_s']:.2f} s for the process), {r['bytes_down']:,} bytes down, "
          f"{r['bytes_up']:,} up, {r['bytes_per_dossier']:.1f} B/dossier; bound "
          f"{r['bound_s']:.2f} s; ratio {r['ratio']} (≤ {TARGET}×: {'met' if met else 'MISSED'})")
    print()
    print(json.dumps(r))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when it ran (the target is reported, not enforced)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dossiers", type=int, default=20_000)
    p.add_argument("--rate-kbit", type=int, default=256)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", action="store_true", help="keep the data dir")
    args = p.parse_args(argv)
    if args.dossiers < 1 or args.rate_kbit < 8:
        p.error("--dossiers ≥ 1, --rate-kbit ≥ 8")
    why = unavailable()
    if why:
        print(f"restore link bench cannot run: {why}", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(f"restore over a slow link — {machine()}; load average {os.getloadavg()[0]:.2f}")
    result = run_in_tmp("commune-sync-restore-", lambda root: one(args, root), args.keep,
                        (RuntimeError, LinkUnavailable))
    if isinstance(result, int):
        return result
    report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
