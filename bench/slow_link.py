"""Slow link: N dossiers (1,000) synced over a 256 kbit/s link between two network namespaces, at 0 %
and 5 % packet loss. Needs root, `ip`, `tc` and `nft` (see tests/faults/netns.py).

For each loss rate a fresh link (veth pair, `tc tbf` at the rate on both ends, nftables dropping
that share of the packets arriving on each end), a hub serving inside one namespace, an edge
enrolled over the link from the other; the N birth registrations are taken in offline at the edge,
then one `edge-node sync` runs inside the edge namespace. Printed per loss rate:

- wall time on the link: from the first to the last byte crossing it (sampled every 5 ms from the
  veth's counters), and the `edge-node sync` process's own wall time (which adds Python's start);
- bytes each way as the veth counts them (Ethernet, IP and TCP headers, HTTP, retransmissions);
- the bound: bytes of the busier direction ÷ link rate (each direction has its own shaper), and the
  ratio of the wall time on the link to it. Targets: ≤ 1.3× at 0 % loss, ≤ 2× at 5 %.

    sudo python bench/slow_link.py [--dossiers 1000] [--rate-kbit 256] [--loss 0 5] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/…` from anywhere
    sys.path.insert(0, str(ROOT))

from bench.dossier_faker import DossierFaker  # noqa: E402
from bench.processes import machine, run_in_tmp  # noqa: E402
from tests.faults.netns import Link, LinkUnavailable, unavailable  # noqa: E402
from tests.faults.procs import Procs, intake_offline, netns_nodes  # noqa: E402

log = logging.getLogger(__name__)

TARGETS = {0: 1.3, 5: 2.0}
SAMPLE_S = 0.005


class LinkWatch:
    """First and last moment bytes crossed the link, read from /proc/<pid>/net/dev of a process
    inside the hub namespace (cheap enough to read every few milliseconds)."""

    def __init__(self, pid: int, dev: str) -> None:
        self.path = Path(f"/proc/{pid}/net/dev")
        self.dev = dev
        self.first: float | None = None
        self.last: float | None = None
        self._task: asyncio.Task[None] | None = None

    def total(self) -> int:
        for line in self.path.read_text().splitlines():
            name, _, rest = line.partition(":")
            if name.strip() == self.dev:
                fields = rest.split()
                return int(fields[0]) + int(fields[8])  # rx bytes + tx bytes
        raise RuntimeError(f"{self.dev} not in {self.path}")

    async def _run(self) -> None:
        seen = self.total()
        while True:
            await asyncio.sleep(SAMPLE_S)
            now, total = time.monotonic(), self.total()
            if total != seen:
                seen = total
                self.first = self.first if self.first is not None else now
                self.last = now

    def __enter__(self) -> LinkWatch:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()

    @property
    def busy_s(self) -> float:
        return (self.last - self.first) if self.first is not None and self.last is not None \
            else 0.0


async def one(args: argparse.Namespace, loss: int, root: Path) -> dict[str, Any]:
    """Sync N dossiers over a fresh link with `loss` % loss; the figures."""
    procs = Procs()
    with Link() as link:
        try:
            link.shape(args.rate_kbit)
            _, edge_dir, hub = await netns_nodes(link, root, procs, auto_sync=False)
            faker = DossierFaker(args.seed)
            bodies = [faker.birth() for _ in range(args.dossiers)]
            await intake_offline(edge_dir, bodies)
            link.loss(loss)
            before = link.counters()
            with LinkWatch(hub.pid, link.hub_if) as watch:
                started = time.monotonic()
                sync = procs.start("edge sync", ["edge_node", "sync", "--data", str(edge_dir)],
                                   root / "edge.log", prefix=link.prefix(link.edge_ns))
                code = await sync.wait(600)
                process_s = time.monotonic() - started
                await asyncio.sleep(0.3)  # the last ACKs and FINs
            if code != 0:
                sync.kill()
                raise RuntimeError(f"edge-node sync failed ({code}):\n{sync.tail()}")
            moved = link.counters() - before
            dropped = link.dropped()
            await hub.stop()
        finally:
            await procs.stop_all()
    busier = max(moved.up_bytes, moved.down_bytes)
    bound = busier * 8 / (args.rate_kbit * 1000)
    return {
        "loss_percent": loss,
        "dossiers": args.dossiers,
        "rate_kbit": args.rate_kbit,
        "link_s": round(watch.busy_s, 2),
        "process_s": round(process_s, 2),
        "bytes_up": moved.up_bytes,
        "bytes_down": moved.down_bytes,
        "packets_up": moved.up_packets,
        "packets_down": moved.down_packets,
        "packets_dropped": dropped,
        "bytes_per_dossier": round((moved.up_bytes + moved.down_bytes) / args.dossiers, 1),
        "bound_s": round(bound, 2),
        "ratio": round(watch.busy_s / bound, 2) if bound else None,
        "target": TARGETS.get(loss),
    }


async def bench(args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    results = []
    for loss in args.loss:
        work = root / f"loss-{loss}"
        work.mkdir()
        print(f"{args.dossiers} dossiers at {args.rate_kbit} kbit/s, {loss} % loss…", flush=True)
        results.append(await one(args, loss, work))
    return results


def report(results: list[dict[str, Any]]) -> None:
    print()
    print(f"  {'loss':>4}  {'on the link':>11}  {'process':>8}  {'bytes up':>9}  "
          f"{'bytes down':>10}  {'B/dossier':>9}  {'bound':>7}  {'ratio':>5}  target")
    for r in results:
        target = r["target"]
        verdict = "" if target is None else \
            f"≤ {target}×: {'met' if r['ratio'] is not None and r['ratio'] <= target else 'MISSED'}"
        print(f"  {r['loss_percent']:>3}%  {r['link_s']:>9.2f} s  {r['process_s']:>6.2f} s  "
              f"{r['bytes_up']:>9,}  {r['bytes_down']:>10,}  {r['bytes_per_dossier']:>9.1f}  "
              f"{r['bound_s']:>5.2f} s  {r['ratio'] or 0:>5.2f}  {verdict}")
    print()
    for r in results:
        print(json.dumps(r))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when it ran (targets are reported, not enforced)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dossiers", type=int, default=1000)
    p.add_argument("--rate-kbit", type=int, default=256)
    p.add_argument("--loss", type=int, nargs="+", default=[0, 5], help="loss rates in %%")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", action="store_true", help="keep the data dir")
    args = p.parse_args(argv)
    if args.dossiers < 1 or args.rate_kbit < 8 or not all(0 <= x < 100 for x in args.loss):
        p.error("--dossiers ≥ 1, --rate-kbit ≥ 8, --loss 0–99")
    why = unavailable()
    if why:
        print(f"slow link bench cannot run: {why}", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(f"slow link — {machine()}; load average {os.getloadavg()[0]:.2f}")
    results = run_in_tmp("commune-sync-slow-", lambda root: bench(args, root), args.keep,
                         (RuntimeError, LinkUnavailable))
    if isinstance(results, int):
        return results
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
