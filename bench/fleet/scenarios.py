"""The scenarios: a morning burst, raw ingest, a working day (see the package docstring)."""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections import Counter
from typing import Any

import aiohttp

from bench.demo import HOME_TOWNS
from bench.dossier_faker import DossierFaker
from bench.fleet.common import DAY_MS, WORKDAY_S, say
from bench.fleet.commune import Commune, Enrolled
from bench.fleet.driver import Fleet
from bench.fleet.hubproc import OPERATOR, OPERATOR_PASSWORD, HubMeter
from bench.fleet.measure import Profiler, bounded, finish, measure


def fleet_of(nodes: list[Enrolled], seed: int) -> list[Commune]:
    return [Commune(e, random.Random(f"{seed}:{e.node}")) for e in nodes]


async def scenario_burst(args: argparse.Namespace, fleet: Fleet, meter: HubMeter,
                         communes: list[Commune], faker: DossierFaker,
                         profiler: Profiler) -> list[dict[str, Any]]:
    results = []
    say(f"  yesterday: {args.yesterday} dossiers per commune, filed and synced…")
    started = time.perf_counter()
    now = int(time.time() * 1000) - DAY_MS
    for c in communes:
        for _ in range(args.yesterday):
            c.create(faker, now)
    gen_s = time.perf_counter() - started
    await fleet.open()
    results.append(await measure("yesterday", fleet, meter, lambda: bounded(
        communes, 64, lambda c: fleet.session(c, "yesterday"), args.phase_limit)))
    results[-1]["generate_s"] = round(gen_s, 2)

    say("  morning: generating each commune's new dossiers and edits…")
    started = time.perf_counter()
    now = int(time.time() * 1000)
    for c in communes:
        old = list(c.tracked)  # yesterday's: processed first, before new ones push them out
        for _ in range(c.rng.randint(3, 8)):
            c.edit(faker, now, c.rng.choice(old) if old else None)
        for _ in range(c.rng.randint(20, 40)):
            c.create(faker, now)
        await fleet.prepare(c)
    gen_s = time.perf_counter() - started
    events = sum(len(c.pending) for c in communes)
    say(f"  morning: {events:,} events ({gen_s:.1f} s to generate); "
        f"{len(communes):,} communes sync at once" +
        (f" (spread over {args.spread:g} s)" if args.spread else "") + "…")
    await fleet.open()

    async def one(c: Commune, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        await fleet.session(c, "burst")

    async def run() -> int:
        return await finish([one(c, c.rng.uniform(0, args.spread) if args.spread else 0)
                             for c in communes], args.phase_limit)

    results.append(await measure("burst", fleet, meter, run, profiler))
    results[-1]["generate_s"] = round(gen_s, 2)
    results[-1]["events_generated"] = events
    return results


async def scenario_ingest(args: argparse.Namespace, fleet: Fleet, meter: HubMeter,
                          communes: list[Commune], faker: DossierFaker,
                          profiler: Profiler) -> list[dict[str, Any]]:
    say(f"  generating {args.ingest_events:,} events for each of {len(communes)} communes…")
    started = time.perf_counter()
    now = int(time.time() * 1000)
    for c in communes:
        fleet.start_batch(c, args.batch_bytes)
        while c.seq < args.ingest_events:
            roll = c.rng.random()
            if roll < 0.7 or not c.tracked or not c.edit(faker, now):
                c.create(faker, now)
        await fleet.prepare(c)
    gen_s = time.perf_counter() - started
    events = sum(len(c.pending) for c in communes)
    say(f"  {events:,} events ({gen_s:.1f} s to generate); pushing them all at once…")
    await fleet.open()

    async def run() -> int:
        return await finish([fleet.session(c, "ingest") for c in communes], args.phase_limit)

    result = await measure("ingest", fleet, meter, run, profiler)
    result["generate_s"] = round(gen_s, 2)
    result["events_generated"] = events
    return [result]


async def operator_edits(url: str, per_s: float, communes: list[Commune], rng: random.Random,
                         done: asyncio.Event, counts: Counter[str]) -> None:
    """The province edits dossiers of the communes through the operator API."""
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/api/login", json={"username": OPERATOR,
                                                       "password": OPERATOR_PASSWORD}) as resp:
            token = (await resp.json())["token"]
        headers = {"Authorization": f"Bearer {token}"}
        while not done.is_set():
            await asyncio.sleep(rng.expovariate(per_s))
            c = rng.choice(communes)
            synced = [d for d in c.tracked if c.ack >= c.seq]  # dossiers the hub surely holds
            if not synced:
                continue
            target = f"{url}/api/dossiers/{rng.choice(synced)}"
            try:
                async with http.get(target, headers=headers) as resp:
                    if resp.status != 200:
                        counts[f"get {resp.status}"] += 1
                        continue
                    view = await resp.json()
                async with http.patch(target, headers=headers, json={
                        "set": {"fields.child_home_town": rng.choice(HOME_TOWNS)},
                        "base": view["version"]}) as resp:
                    counts["ok" if resp.status == 200 else f"patch {resp.status}"] += 1
            except (aiohttp.ClientError, OSError):
                counts["transport"] += 1


async def scenario_day(args: argparse.Namespace, fleet: Fleet, meter: HubMeter,
                       communes: list[Commune], faker: DossierFaker,
                       profiler: Profiler) -> list[dict[str, Any]]:
    length = args.day_seconds
    scale = WORKDAY_S / length
    rng = random.Random(args.seed)
    offline = set(rng.sample(range(len(communes)), round(len(communes) * args.offline_share)))
    say(f"  a working day in {length:g} s (×{scale:,.0f}); {len(offline)} communes offline for "
        "days come back during it; generating their backlog…")
    started = time.perf_counter()
    plans: dict[str, list[tuple[float, str]]] = {}
    backlog = 0
    now = int(time.time() * 1000)
    for i, c in enumerate(communes):
        plan = []
        for _ in range(c.rng.randint(15, 45)):
            at = c.rng.uniform(0, 0.32) if c.rng.random() < 0.6 else c.rng.uniform(0, 1)
            plan.append((at * length, "create"))
            if c.rng.random() < 0.5:
                plan.append((min(1.0, at + c.rng.uniform(0.01, 0.5)) * length, "edit"))
        plans[c.node] = sorted(plan)
        if i in offline:
            days = c.rng.randint(2, 7)
            count = c.rng.randint(200, 400)
            since = now - days * DAY_MS
            while c.seq < count:
                t = since + c.seq * days * DAY_MS // count
                if c.rng.random() < 0.6 or not c.tracked or not c.edit(faker, t):
                    c.create(faker, t)
            backlog += c.seq
            c.online_at = c.rng.uniform(0.2, 0.8) * length
            c.caught_up = False
    gen_s = time.perf_counter() - started
    say(f"  backlog {backlog:,} events ({gen_s:.1f} s); the day starts…")
    await fleet.open()
    hub_counts: Counter[str] = Counter()
    done = asyncio.Event()

    async def commune_day(c: Commune, t0: float) -> None:
        plan = plans[c.node]
        next_poll = c.rng.uniform(0, args.interval)
        i = 0
        while True:
            t = time.perf_counter() - t0
            wrote = False
            while i < len(plan) and plan[i][0] <= t:
                stamp = int(time.time() * 1000)
                if plan[i][1] == "create" or not c.edit(faker, stamp):
                    c.create(faker, stamp)
                wrote, i = True, i + 1
            online = t >= c.online_at
            if online and (wrote or t >= next_poll or c.pending):
                phase = "day" if c.caught_up else "catchup"
                session = await fleet.session(c, phase)
                c.caught_up = c.caught_up or session.ok
                next_poll = time.perf_counter() - t0 + args.interval
                continue
            if i >= len(plan) and t >= length and not c.pending:
                return
            wake = [next_poll if online else c.online_at]
            if i < len(plan):
                wake.append(plan[i][0])
            if t < length:
                wake.append(length)
            await asyncio.sleep(max(0.0, min(wake) - t))

    async def run() -> int:
        t0 = time.perf_counter()
        edits = asyncio.create_task(operator_edits(
            fleet.url, args.hub_edits_per_s, communes, rng, done, hub_counts)) \
            if args.hub_edits_per_s > 0 else None
        try:
            return await finish([commune_day(c, t0) for c in communes],
                                length + args.phase_limit)
        finally:
            done.set()
            if edits is not None:
                await edits

    result = await measure("day", fleet, meter, run, profiler, phases=("day", "catchup"))
    result["generate_s"] = round(gen_s, 2)
    result["offline_communes"] = len(offline)
    result["backlog_events"] = backlog
    result["hub_edits"] = dict(hub_counts)
    return [result]


SCENARIOS = {"burst": scenario_burst, "ingest": scenario_ingest, "day": scenario_day}
