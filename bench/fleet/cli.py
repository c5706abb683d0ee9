"""The fleet's command line: options, one fresh hub per scenario, the report."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

import bench.fleet as fleet_package
from bench.dossier_faker import DossierFaker
from bench.fleet.common import Output, say
from bench.fleet.driver import Fleet
from bench.fleet.hubproc import HubMeter, db_size, hub_log, start_hub
from bench.fleet.measure import Profiler
from bench.fleet.report import report
from bench.fleet.scenarios import SCENARIOS, fleet_of
from bench.processes import Processes, machine, run_main, vm_hwm, work_dir

log = logging.getLogger(__name__)


async def run_scenario(args: argparse.Namespace, name: str, root: Path) -> dict[str, Any]:
    count = args.ingest_communes if name == "ingest" else args.communes
    say(f"[{name}] {count:,} communes, --db {args.db}"
        + (f", {args.workers} hub workers" if args.workers > 1 else "") + f"; data in {root}")
    procs = Processes()
    try:
        url, hub, nodes, setup = await start_hub(args, root, procs, count)
        say(f"  hub up: init {setup['init_s']:.1f} s, enrollment of {len(nodes):,} nodes "
            f"{setup['enroll_s']:.1f} s (setup, not measured), serve ready "
            f"{setup['serve_ready_s']:.1f} s")
        meter = HubMeter(hub.pid)
        meter.start()
        fleet = Fleet(url, args.timeout, args.backoff_cap)
        communes = fleet_of(nodes, args.seed)
        faker = DossierFaker(args.seed)
        profile = args.profile.with_name(f"{args.profile.stem}-{name}{args.profile.suffix}") \
            if args.profile and len(args.scenarios) > 1 else args.profile
        try:
            phases = await SCENARIOS[name](args, fleet, meter, communes, faker,
                                           Profiler(profile, hub.pid))
        finally:
            await fleet.close()
            await meter.stop()
        meter.sample()
        size = await db_size(root / "hub", args.db)
        log_size = await hub_log(url)
        result = {
            "scenario": name, "communes": count, "db": args.db, "workers": args.workers,
            "timeout_s": args.timeout, "spread_s": args.spread,
            "setup": {k: round(v, 2) for k, v in setup.items()}, "phases": phases,
            "hub_log_events": log_size, "hub_peak_rss_mb": round(meter.peak_rss / 2**20, 1),
            "hub_vm_hwm_mb": round(vm_hwm(hub.pid) / 2**20, 1),
            "hub_processes": meter.peak_procs,
            "client_peak_rss_mb": round(psutil.Process().memory_info().rss / 2**20, 1),
            "db_bytes": size, "errors": dict(fleet.errors),
            "rejections": dict(sum((c.sync.rejections for c in communes), Counter())),
        }
    finally:
        procs.stop()
    return result


async def run_all(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    started = time.perf_counter()
    out: dict[str, Any] = {"machine": machine(), "nproc": os.cpu_count(),
           "loadavg_start": Path("/proc/loadavg").read_text().split()[:3], "runs": []}
    for name in args.scenarios:
        sub = root / name
        sub.mkdir()
        out["runs"].append(await run_scenario(args, name, sub))
    out["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    out["total_s"] = round(time.perf_counter() - started, 1)
    return out



def main(argv: list[str] | None = None) -> int:
    """Run the scenarios; 0 unless the hub refused requests (targets are reported, not
    enforced; sessions cut by the phase limit are reported)."""
    p = argparse.ArgumentParser(description=(fleet_package.__doc__ or "").splitlines()[0])
    p.add_argument("--scenario", default="burst",
                   help="burst, day, ingest, or several comma-separated (default burst)")
    p.add_argument("--communes", type=int, default=1000, help="communes for burst/day (1000)")
    p.add_argument("--db", default="sqlite", help="passed to `central-hub init --db` (sqlite)")
    p.add_argument("--workers", type=int, default=1, help="hub processes (`serve --workers N`)")
    p.add_argument("--spread", type=float, default=0.0,
                   help="burst: spread the communes' start over S seconds (0: all at once)")
    p.add_argument("--yesterday", type=int, default=8, help="burst: dossiers filed yesterday")
    p.add_argument("--day-seconds", type=float, default=120.0, help="day: its length (120 s)")
    p.add_argument("--interval", type=float, default=15.0,
                   help="day: idle sync interval, wall seconds (15)")
    p.add_argument("--offline-share", type=float, default=0.05, help="day: offline communes")
    p.add_argument("--hub-edits-per-s", type=float, default=1.0,
                   help="day: province edits through the operator API per second (1)")
    p.add_argument("--ingest-communes", type=int, default=50)
    p.add_argument("--ingest-events", type=int, default=2000)
    p.add_argument("--batch-bytes", type=int, default=1024 * 1024,
                   help="ingest: first batch size (the edge starts at 64 KiB)")
    p.add_argument("--timeout", type=float, default=60.0, help="request timeout (edge: 60 s)")
    p.add_argument("--backoff-cap", type=float, default=300.0,
                   help="retry backoff cap (edge: 300 s)")
    p.add_argument("--phase-limit", type=float, default=300.0,
                   help="stop a measured phase after S seconds; unfinished sessions are counted")
    p.add_argument("--first-code", type=int, default=10001, help="first commune code")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--hub-set", action="append", default=[], metavar="KEY=VALUE",
                   help="a hub.toml setting for the served hub, e.g. sync_max_wait_s=0.3")
    p.add_argument("--profile", type=Path, default=None,
                   help="record the hub with py-spy during the measured phase (collapsed stacks)")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.add_argument("--data", type=Path, default=None, help="work here instead of a temp dir")
    p.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = p.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenario.split(",") if s.strip()]
    bad = [s for s in args.scenarios if s not in SCENARIOS]
    if bad or not args.scenarios:
        p.error(f"--scenario: choose from {', '.join(SCENARIOS)}")
    if args.communes < 1 or args.ingest_communes < 1 or args.workers < 1:
        p.error("--communes, --ingest-communes and --workers must be ≥ 1")
    if args.first_code + max(args.communes, args.ingest_communes) > 99_999:
        p.error("commune codes are 5 digits: lower --first-code or --communes")
    if args.data is not None and args.data.exists() and any(args.data.iterdir()):
        p.error(f"--data {args.data} is not empty")
    if args.json:
        Output.stream = sys.stderr
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    say(f"fleet — {machine()}; load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    try:
        with work_dir(args.data, args.keep) as root:
            result = run_main(run_all(args, root))
    except KeyboardInterrupt:
        say("\ninterrupted; processes stopped")
        return 130
    except RuntimeError as exc:
        print(f"fleet failed: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        report(result)
    refused = sum(ph["sessions_failed"] for run in result["runs"] for ph in run["phases"])
    return 1 if refused else 0
