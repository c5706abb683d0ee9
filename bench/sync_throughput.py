"""Sync throughput: N birth registrations taken in offline at an edge, then one sync to a real hub.

The hub is a real `central-hub serve` process; the edge side (its store and sync client) runs in this
process, talking to the hub through a `LinkProxy` with no toxics, so the bytes on the wire are counted
at the socket both ways (TCP payload: HTTP headers and bodies; not IP/TCP headers). Prints dossiers/s,
wire bytes per dossier, HTTP requests per 100 dossiers, peak RSS of both processes, and what one-field
edits cost on the wire. Targets (DESIGN issue): for N = 10,000, ≥ 10,000 dossiers/s and ≤ 150 bytes
per dossier; an edit of one field ≤ 100 bytes.

    python bench/sync_throughput.py --dossiers 10000 [--edits 1000] [--seed 1] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import psutil  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/…` from anywhere
    sys.path.insert(0, str(ROOT))

from bench.dossier_faker import DossierFaker  # noqa: E402
from bench.processes import (  # noqa: E402
    Processes,
    cli,
    free_port,
    machine,
    run_main,
    vm_hwm,
    wait_ready,
    work_dir,
)
from edge_node import config as edge_config  # noqa: E402
from edge_node.store import EdgeStore  # noqa: E402
from edge_node.sync import SyncClient  # noqa: E402
from protocol.errors import SyncError  # noqa: E402
from tests.faults.linkproxy import LinkProxy  # noqa: E402

log = logging.getLogger(__name__)

T = TypeVar("T")
TARGET_RATE = 10_000.0
TARGET_BYTES = 150.0
TARGET_EDIT = 100.0

# -- the benchmark --------------------------------------------------------------------------------

class PeakRss:
    """Samples another process's RSS while running."""

    def __init__(self, pid: int, every_s: float = 0.02) -> None:
        self.proc = psutil.Process(pid)
        self.every_s = every_s
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self.proc.memory_info().rss)
            await asyncio.sleep(self.every_s)

    def __enter__(self) -> PeakRss:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(psutil.Error):
            self.peak = max(self.peak, self.proc.memory_info().rss)
        if self._task is not None:
            self._task.cancel()


def cpu_s(proc: psutil.Process) -> float:
    """User + system CPU seconds a process has used."""
    times = proc.cpu_times()
    return float(times.user + times.system)


async def timed_sync(client: SyncClient, proxy: LinkProxy, hub_pid: int) -> dict[str, Any]:
    """One sync session; its result, the socket-level byte counts, wall time and CPU time of
    the hub and of this (edge) process."""
    hub, me = psutil.Process(hub_pid), psutil.Process()
    proxy.reset_counters()
    hub_cpu, my_cpu = cpu_s(hub), cpu_s(me)
    started = time.perf_counter()
    result = await client.session_once()
    elapsed = time.perf_counter() - started
    return {"result": result, "s": elapsed, "up": proxy.bytes_up, "down": proxy.bytes_down,
            "connections": proxy.connections, "hub_cpu_s": cpu_s(hub) - hub_cpu,
            "edge_cpu_s": cpu_s(me) - my_cpu}


async def bench(args: argparse.Namespace, root: Path, procs: Processes) -> dict[str, Any]:
    n, m = args.dossiers, min(args.edits, args.dossiers)
    hub_dir, edge_dir = root / "hub", root / "edge"
    cli("central_hub", "init", "--data", str(hub_dir))
    token = cli("central_hub", "enroll", "--data", str(hub_dir), "--commune", "02245",
                "--name", "Xã Côn Lôn")
    port = free_port()
    hub_log = root / "hub.log"
    # plain HTTP on loopback: the figures are the protocol's bytes, not TLS's (mutual TLS adds a
    # handshake per connection and ~30 B per record; docs/security.md)
    hub = procs.start("hub", ["central_hub", "serve", "--data", str(hub_dir), "--port", str(port),
                              "--insecure-http"], hub_log)
    hub_url = f"http://127.0.0.1:{port}"
    await wait_ready(hub_url + "/healthz", hub, hub_log)
    cli("edge_node", "init", "--data", str(edge_dir), "--hub", hub_url, "--token", token)

    async with LinkProxy("127.0.0.1", port, seed=args.seed) as proxy:
        config = dataclasses.replace(edge_config.load(edge_dir), hub_url=proxy.url,
                                     auto_sync=False)
        edge_config.save(edge_dir, config)
        store = await EdgeStore.open(edge_dir / edge_config.DB_FILE, config.node, config.commune,
                                     config.agency)
        client = SyncClient(store, config)
        client.data_dir = str(edge_dir)
        try:
            print(f"generating {n} birth registrations (Faker vi_VN, seed {args.seed})…", flush=True)
            faker = DossierFaker(args.seed)
            bodies = [faker.birth() for _ in range(n)]
            print(f"intake: {n} dossiers through EdgeStore.create (one fsync each), offline…",
                  flush=True)
            started = time.perf_counter()
            versions: dict[str, str] = {}
            for body in bodies:
                view = await store.dossiers.create(body, "clerk")
                versions[view["id"]] = view["version"]
            intake_s = time.perf_counter() - started
            pending, _ = await store.sync.pending_stats()

            print("sync: one session through the proxy…", flush=True)
            with PeakRss(hub.pid) as hub_rss:
                first = await timed_sync(client, proxy, hub.pid)
            res = first["result"]
            if res.sent != n or res.pending_after != 0:
                raise RuntimeError(f"sync incomplete: sent {res.sent} of {n}, "
                                   f"{res.pending_after} still pending")
            async with aiohttp.ClientSession() as http, http.get(hub_url + "/healthz") as resp:
                hub_log_size = (await resp.json())["log"]

            print(f"edits: one field on {m} dossiers, then one sync…", flush=True)
            chosen = faker.rng.sample(sorted(versions), m)
            for dossier_id in chosen:
                await store.dossiers.edit(dossier_id, {"set": {"applicant.phone": faker.phone()},
                                              "base": versions[dossier_id]}, "clerk")
            with PeakRss(hub.pid) as hub_rss_edits:
                edits = await timed_sync(client, proxy, hub.pid)
            last = (await store.dossiers.view(chosen[0]))["version"]
            await store.dossiers.edit(chosen[0], {"set": {"applicant.phone": faker.phone()},
                                         "base": last}, "clerk")
            single = await timed_sync(client, proxy, hub.pid)
        finally:
            await client.close()
            await store.close()

    wire = first["up"] + first["down"]
    edit_wire = edits["up"] + edits["down"]
    return {
        "dossiers": n,
        "pending_before_sync": pending,
        "intake_s": round(intake_s, 3),
        "intake_per_s": round(n / intake_s, 1),
        "sync_s": round(first["s"], 3),
        "sync_dossiers_per_s": round(n / first["s"], 1),
        "sync_hub_cpu_s": round(first["hub_cpu_s"], 3),
        "sync_edge_cpu_s": round(first["edge_cpu_s"], 3),
        "round_trips": res.round_trips,
        "http_requests_per_100": round(100 * res.round_trips / n, 3),
        "tcp_connections": first["connections"],
        "wire_bytes_up": first["up"],
        "wire_bytes_down": first["down"],
        "wire_bytes_per_dossier": round(wire / n, 1),
        "body_bytes_up": res.bytes_up,
        "body_bytes_down": res.bytes_down,
        "hub_log_events": hub_log_size,
        "hub_peak_rss_mb": round(max(hub_rss.peak, hub_rss_edits.peak) / 2**20, 1),
        "hub_vm_hwm_mb": round(vm_hwm(hub.pid) / 2**20, 1),
        "edge_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "edits": m,
        "edit_sync_s": round(edits["s"], 3),
        "edit_round_trips": edits["result"].round_trips,
        "edit_wire_bytes": edit_wire,
        "edit_bytes_marginal": round(edit_wire / m, 1) if m else None,
        "single_edit_wire_bytes": single["up"] + single["down"],
        "single_edit_up_down": [single["up"], single["down"]],
        "single_edit_round_trips": single["result"].round_trips,
    }


def report(r: dict[str, Any]) -> None:
    """The table and the one-line JSON summary."""
    def ok(good: bool) -> str:
        return "met" if good else "MISSED"

    n = r["dossiers"]
    r["target_rate_met"] = r["sync_dossiers_per_s"] >= TARGET_RATE
    r["target_bytes_met"] = r["wire_bytes_per_dossier"] <= TARGET_BYTES
    r["target_edit_met"] = r["edit_bytes_marginal"] is not None and \
        r["edit_bytes_marginal"] <= TARGET_EDIT
    rows = [
        ("dossiers taken in offline", f"{n:,}", ""),
        ("intake (EdgeStore.create, fsync each)",
         f"{r['intake_per_s']:,.0f} dossiers/s", f"{r['intake_s']:.1f} s"),
        ("sync of all of them (one session)", f"{r['sync_dossiers_per_s']:,.0f} dossiers/s",
         f"{r['sync_s']:.3f} s; target ≥ {TARGET_RATE:,.0f}/s: {ok(r['target_rate_met'])}"),
        ("  CPU during that sync", f"hub {r['sync_hub_cpu_s']:.2f} s",
         f"edge (this process, incl. the proxy) {r['sync_edge_cpu_s']:.2f} s"),
        ("bytes on the wire per dossier", f"{r['wire_bytes_per_dossier']:.1f} B",
         f"up {r['wire_bytes_up']:,} + down {r['wire_bytes_down']:,}; target ≤ "
         f"{TARGET_BYTES:.0f}: {ok(r['target_bytes_met'])}"),
        ("HTTP requests per 100 dossiers", f"{r['http_requests_per_100']:.3f}",
         f"{r['round_trips']} round trips, {r['tcp_connections']} TCP connection(s)"),
        ("hub log after sync", f"{r['hub_log_events']:,} events", ""),
        ("peak RSS, hub process", f"{r['hub_peak_rss_mb']:.1f} MiB",
         f"sampled during sync; lifetime VmHWM {r['hub_vm_hwm_mb']:.1f} MiB"),
        ("peak RSS, edge (bench process)", f"{r['edge_peak_rss_mb']:.1f} MiB",
         "ru_maxrss; includes Faker and the generated bodies"),
        (f"{r['edits']:,} one-field edits, one sync", f"{r['edit_bytes_marginal']} B/edit",
         f"{r['edit_wire_bytes']:,} B in {r['edit_round_trips']} round trip(s), "
         f"{r['edit_sync_s']:.3f} s; target ≤ {TARGET_EDIT:.0f}: {ok(r['target_edit_met'])}"),
        ("one edit synced alone", f"{r['single_edit_wire_bytes']:,} B",
         f"up {r['single_edit_up_down'][0]} + down {r['single_edit_up_down'][1]}, "
         "HTTP headers included"),
    ]
    width = max(len(a) for a, _, _ in rows)
    vwidth = max(len(b) for _, b, _ in rows)
    print()
    for a, b, c in rows:
        print(f"  {a:<{width}}  {b:>{vwidth}}  {c}")
    print()
    print(json.dumps(r, ensure_ascii=False))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when it ran (targets are reported, not enforced)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dossiers", type=int, default=10_000, help="N dossiers (default 10000)")
    p.add_argument("--edits", type=int, default=1000, help="M one-field edits (default 1000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data", type=Path, default=None, help="work here instead of a temp dir")
    p.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = p.parse_args(argv)
    if args.dossiers < 1 or args.edits < 1:
        p.error("--dossiers and --edits must be ≥ 1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(f"sync throughput — {machine()}; load average {os.getloadavg()[0]:.2f}")
    procs = Processes()
    try:
        with work_dir(args.data, args.keep) as root:
            try:
                result = run_main(bench(args, root, procs))
            finally:
                procs.stop()
    except KeyboardInterrupt:
        print("\ninterrupted; processes stopped")
        return 130
    except RuntimeError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    except SyncError as exc:
        print(f"bench failed: sync refused: {exc.message}", file=sys.stderr)
        return 1
    report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
