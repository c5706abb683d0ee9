"""Simulate days of work in many communes, in simulated time, under a seeded fault schedule.

Every commune takes in a few dozen birth registrations a day at the counter during office hours
(07:30–11:30, 13:30–17:00 Monday–Friday, Saturday morning), staff move them along the lifecycle,
correct fields (sometimes from a screen loaded long ago: a stale base), resolve the conflicts they
see; the district (the hub) processes some dossiers too. Meanwhile the schedule, drawn from the
seed, cuts communes' links for hours or days, makes links lossy (requests and replies lost,
duplicated, held and replayed late), cuts the power of nodes (idle, inside the transaction that
applies the hub's answer, inside a create), restarts the hub (idle or inside an ingest) and makes
nodes' clocks jump. The real stores and sync client run over `tests.sim.transport.SimLink`, on
SQLite files, through `tests.sim.world.World`, which checks the sync promises after every sync.

At the end every link heals, every node syncs to quiescence, and the World checks convergence
(same digest everywhere in scope, nothing lost or duplicated, integrity, rebuild == incremental).
The run prints a trace hash: sha256 over every operation and its outcome and the final digests.
Time, dossier ids and faults all come from the seed, so the same seed prints the same hash; a run
that breaks an invariant exits 1 and names the seed.

    python bench/simulate.py --seed S [--runs N] [--communes 20] [--days 7] [--quick]
                             [--keep DIR] [--trace FILE] [--known-bugs]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/…` from anywhere
    sys.path.insert(0, str(ROOT))

from bench.simplan import (  # noqa: E402
    MINUTE_MS,
    Happening,
    layout,
    office_hours,
    poisson,
    schedule,
)
from tests.harness import birth  # noqa: E402
from tests.sim.faults import Odds  # noqa: E402
from tests.sim.world import DAY_MS, HOUR_MS, Edge, SimClock, World, deterministic  # noqa: E402

log = logging.getLogger(__name__)

TICK_MS = 10 * MINUTE_MS
PUSH_MS = 30 * MINUTE_MS  # local writes are pushed within this (in life: seconds; here: a batch)
POLL_OFFICE_MS = 60 * MINUTE_MS
POLL_NIGHT_MS = 3 * HOUR_MS
FAMILY = ("Nguyễn", "Hoàng", "Lý", "Đặng", "Nông", "Triệu", "Ma", "Hà", "Bàn", "Lục")
MIDDLE = ("Văn", "Thị", "Đức", "Ngọc", "Minh", "Thu")
GIVEN = ("An", "Bình", "Cúc", "Dũng", "Hoa", "Khánh", "Lan", "Mai", "Nam", "Tú", "Vân", "Yến")
VILLAGES = ("Nà Khá", "Khuổi Phầy", "Bản Tát", "Nà Mỏ", "Khuôn Khiển", "Phiêng Mơ", "Bản Va")
# where staff usually move a dossier next: the first of these the lifecycle allows from where it
# is (accepted -> processing -> resolved -> returned; back from a supplement request)
PREFER = ("processing", "resolved", "returned")
FINAL = frozenset({"refused", "withdrawn", "stopped", "returned"})
CLEAN = Odds(drop_request=0.01, drop_reply=0.01, duplicate=0.005, hold=0.005)
LOSSY = Odds(drop_request=0.12, drop_reply=0.10, duplicate=0.04, hold=0.04)


@dataclass(frozen=True, slots=True)
class SimConfig:
    """How big a simulation."""

    seed: int
    communes: int = 20
    days: int = 7
    intake_per_day: int = 30  # dossiers per commune per working day
    known_bugs: bool = False  # also schedule faults that hit reported, unfixed bugs of the core


@dataclass
class SimResult:
    """What a run produced."""

    seed: int
    trace_hash: str = ""
    ok: bool = False
    failure: str = ""
    stats: dict[str, Any] = field(default_factory=dict)


class Simulation:
    """One seeded run over a World."""

    def __init__(self, cfg: SimConfig, world: World, rng: random.Random) -> None:
        self.cfg = cfg
        self.world = world
        self.rng = rng
        self.open: dict[str, list[str]] = {}  # commune -> dossiers not known to be final
        self.last_sync: dict[str, int] = {}
        self.retry_at: dict[str, int] = {}
        self.failures: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        by_commune: dict[str, list[Edge]] = {}
        for edge in world.edges:
            by_commune.setdefault(edge.commune, []).append(edge)
        self.by_commune = by_commune
        self.by_name = {e.name: e for e in world.edges}

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def body(self) -> dict[str, Any]:
        rng = self.rng
        name = f"{rng.choice(FAMILY)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"
        citizen = f"0080{rng.randrange(60, 100)}{rng.randrange(10**6):06d}"
        child = f"{rng.choice(FAMILY)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"
        body = birth(name, citizen, child_full_name=child,
                     child_birth_date=f"2027-0{rng.randrange(1, 3)}-{rng.randrange(1, 29):02d}")
        body["applicant"]["address"] = f"Thôn {rng.choice(VILLAGES)}"
        return body

    async def happen(self, h: Happening) -> None:
        world = self.world
        self.count(h.what)
        if h.what in ("cut", "heal"):
            for edge in self.by_commune[h.target]:
                world.partition(edge, h.what == "cut")
        elif h.what == "crash":
            edge = self.by_name[h.target]
            if h.arg == 0:
                await world.crash(edge)
            elif h.arg == 1:
                await world.crash_mid_sync(edge, "edge.apply.before_commit")
            elif h.arg == 2:
                await world.crash_mid_sync(edge, "edge.after_request")
            else:
                await world.crash_mid_write(edge, self.body())
        elif h.what == "skew":
            world.skew(self.by_name[h.target], h.arg)
        elif h.what == "publish":
            day = (world.clock.ms - world.clock.start_ms) // DAY_MS + h.arg
            await world.publish_holidays(f"2027-03-{1 + day:02d}")
        elif h.what == "disk_full":
            await world.create_while_syncing(self.by_name[h.target], self.body(), fail=True)
        elif h.what == "hub":
            if h.arg == 0:
                await world.restart_hub()
            else:  # fires in the next exchange that gets there
                world.arm_hub_crash(("hub.ingest.before_commit", "hub.after_commit")[h.arg - 1])

    async def work(self, edge: Edge) -> None:
        """What the staff at one node do in one tick of office hours."""
        rng, world = self.rng, self.world
        lam = self.cfg.intake_per_day / (7.5 * 6) / len(self.by_commune[edge.commune])
        for _ in range(poisson(rng, lam)):
            if rng.random() < 0.1:  # the sync loop runs while the dossier is being saved
                saved = await world.create_while_syncing(edge, self.body(), fail=False)
                assert saved is not None
                dossier = saved
            else:
                dossier = await world.create(edge, self.body())
            self.open.setdefault(edge.commune, []).append(dossier)
            self.count("created")
        work = self.open.get(edge.commune, [])
        for _ in range(poisson(rng, 0.8)):
            if not work:
                break
            dossier = work[rng.randrange(min(len(work), 40))]  # mostly the older ones
            await self.handle(edge, dossier)

    async def handle(self, who: Any, dossier: str) -> None:
        rng, world = self.rng, self.world
        x = rng.random()
        if x < 0.12:
            path, value = rng.choice((
                ("applicant.phone", f"09{rng.randrange(10**8):08d}"),
                ("applicant.address", f"Thôn {rng.choice(VILLAGES)}"),
                ("fields.child_home_town", rng.choice(VILLAGES)),
            ))
            stale = rng.choice((0, 0, 0, 1, 2))
            outcome = await world.edit(who, dossier, {path: value}, stale)
            self.count("edit")
        elif x < 0.17:
            outcome = await world.comment(who, dossier, "Đã gọi điện cho công dân")
            self.count("comment")
        else:
            prefer = PREFER if rng.random() < 0.85 else ()  # else any step the lifecycle allows
            outcome = await world.process(who, dossier, rng.randrange(64),
                                          rng.choice((0, 0, 0, 0, 1)), prefer)
            self.count("process")
        if outcome.startswith("409"):
            self.count("409")
        if (outcome.startswith("ok") and outcome.split()[2] in FINAL) or outcome == "final":
            for commune_work in self.open.values():
                if dossier in commune_work:
                    commune_work.remove(dossier)

    async def district(self) -> None:
        """The district's staff at the hub process a few dossiers of any commune."""
        rng = self.rng
        communes = sorted(self.open)
        for _ in range(poisson(rng, 0.4 * max(1, len(communes) // 4))):
            if not communes:
                return
            work = self.open[rng.choice(communes)]
            if work:
                await self.handle(self.world.hub_replica, rng.choice(work[:60]))
                self.count("district")

    async def maybe_sync(self, edge: Edge, now: int, office: bool) -> None:
        """Sync soon after local writes and every poll interval; after failures, back off
        exponentially (one tick, two, four … up to the poll interval), like the sync loop."""
        assert edge.store is not None
        if now < self.retry_at.get(edge.name, 0):
            return
        last = self.last_sync.get(edge.name, -DAY_MS)
        pending = edge.store.log.own_seq > edge.ack_seen and now - last >= PUSH_MS
        due = now - last >= (POLL_OFFICE_MS if office else POLL_NIGHT_MS)
        if not (pending or due):
            return
        outcome = await self.world.sync(edge)
        self.count("sync")
        if outcome.startswith("ok"):
            self.count("sync_ok")
            self.last_sync[edge.name] = now
            self.failures[edge.name] = 0
        else:
            self.count("sync_failed")
            failures = self.failures.get(edge.name, 0) + 1
            self.failures[edge.name] = failures
            self.retry_at[edge.name] = now + min(TICK_MS << (failures - 1), POLL_NIGHT_MS)

    async def held(self) -> None:
        for edge in self.world.edges:
            assert edge.link is not None
            if edge.link.held and not edge.link.partitioned and self.rng.random() < 0.3:
                await self.world.deliver_held(edge, self.rng.randrange(64))
                self.count("stale_replay")

    async def run(self) -> dict[str, str]:
        world, clock = self.world, self.world.clock
        plan = schedule(random.Random(self.rng.getrandbits(64)), world, self.cfg.days,
                        self.cfg.known_bugs)
        for edge in world.edges:
            world.set_odds(edge, LOSSY if self.rng.random() < 0.3 else CLEAN)
        end = clock.start_ms + self.cfg.days * DAY_MS
        step = 0
        while clock.ms < end:
            now = clock.ms
            while plan and plan[0].at + clock.start_ms <= now:
                await self.happen(plan.pop(0))
            office = office_hours(now, clock.start_ms)
            if office:
                for edge in world.edges:
                    await self.work(edge)
                await self.district()
            for edge in world.edges:
                await self.maybe_sync(edge, now, office)
            await self.held()
            step += 1
            if step % (DAY_MS // TICK_MS) == 0:
                await world.check_step(deep=False)
            clock.advance(TICK_MS)
        rounds = await world.quiesce()
        self.count("quiesce_rounds", rounds)
        digests = await world.check_converged()
        for dossier, value in digests.items():
            world.record(f"digest {dossier} {value}")
        return digests


async def simulate(cfg: SimConfig, root: Path, clock: SimClock) -> SimResult:
    """Run one simulation in `root`; never raises for a broken invariant (see SimResult)."""
    rng = random.Random(cfg.seed)
    result = SimResult(cfg.seed)
    world = await World.open(root, clock, random.Random(rng.getrandbits(64)), layout(cfg.communes),
                             small_batches=0.3)
    sim = Simulation(cfg, world, rng)
    started = time.perf_counter()
    try:
        digests = await sim.run()
        result.ok = True
        result.stats["dossiers"] = len(digests)
    except Exception as exc:  # report the seed with what broke, and the steps leading there
        result.failure = "".join(traceback.format_exception_only(exc)).strip()
        result.stats["traceback"] = traceback.format_exc()
    finally:
        result.trace_hash = world.trace_hash()
        result.stats.update(sim.counts)
        result.stats["nodes"] = len(world.edges)
        result.stats["hub_events"] = (world._one(world.hub_replica, "SELECT count(*) FROM events")
                                      if world.hub_replica.store is not None else 0)
        result.stats["seconds"] = round(time.perf_counter() - started, 1)
        result.stats["trace"] = world.trace
        await world.close()
    return result


def run(cfg: SimConfig, keep: Path | None = None) -> SimResult:
    """Run one simulation in a fresh directory (RAM-backed when possible) and its own loop."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    base = "/dev/shm" if Path("/dev/shm").is_dir() else None
    root = keep or Path(tempfile.mkdtemp(prefix=f"simulate-{cfg.seed}-", dir=base))
    clock = SimClock()
    try:
        with deterministic(clock, random.Random(f"uuid-{cfg.seed}")):
            return asyncio.run(simulate(cfg, root, clock))
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)


def report(result: SimResult, cfg: SimConfig, trace_file: Path | None) -> bool:
    """Print one run's summary and trace hash (and what broke, if anything); True if it held."""
    trace = result.stats.pop("trace", [])
    tb = result.stats.pop("traceback", "")
    if trace_file is not None:
        trace_file.write_text("\n".join(trace) + "\n", encoding="utf-8")
    summary = " ".join(f"{k}={v}" for k, v in sorted(result.stats.items()))
    print(f"seed={cfg.seed} communes={cfg.communes} days={cfg.days} {summary}")
    if not result.ok:
        print(tb, file=sys.stderr)
        print("last steps:\n  " + "\n  ".join(trace[-15:]), file=sys.stderr)
        print(f"FAILED seed={cfg.seed}: {result.failure}", file=sys.stderr)
    print(f"trace {result.trace_hash}", flush=True)
    return result.ok


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print the summary and the trace hash; 1 if an invariant broke."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=1, help="run seeds SEED … SEED+RUNS-1")
    parser.add_argument("--communes", type=int, default=20)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--intake", type=int, default=30, help="dossiers per commune per day")
    parser.add_argument("--quick", action="store_true", help="3 communes, 1 day (CI)")
    parser.add_argument("--keep", type=Path, help="keep the databases in this (new) directory")
    parser.add_argument("--trace", type=Path, help="write the operation trace to this file")
    parser.add_argument("--known-bugs", action="store_true",
                        help="also schedule faults that hit reported, unfixed bugs of the core")
    args = parser.parse_args(argv)
    if args.communes < 1 or args.days < 1 or args.runs < 1:
        parser.error("--communes, --days and --runs must be at least 1")
    if args.keep is not None and (args.runs > 1 or (args.keep.exists() and any(args.keep.iterdir()))):
        parser.error("--keep needs a new or empty directory and a single run")
    if args.trace is not None and args.runs > 1:
        parser.error("--trace needs a single run")
    communes, days = (3, 1) if args.quick else (args.communes, args.days)
    failed = []
    for seed in range(args.seed, args.seed + args.runs):
        cfg = SimConfig(seed, communes, days, args.intake, args.known_bugs)
        if not report(run(cfg, args.keep), cfg, args.trace):
            failed.append(seed)
    if failed:
        print(f"FAILED seeds: {' '.join(map(str, failed))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
