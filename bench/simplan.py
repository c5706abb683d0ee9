"""The seeded schedule of a simulation (bench/simulate.py): who is cut off, crashed, skewed, and when.

Everything is drawn from one `random.Random`, in a fixed order, so a seed gives the same schedule.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field

from tests.sim.world import DAY_MS, HOUR_MS, World

log = logging.getLogger(__name__)

MINUTE_MS = 60_000
OFFICE = ((7 * 60 + 30, 11 * 60 + 30), (13 * 60 + 30, 17 * 60))  # minutes of the day, VN time
SATURDAY = ((7 * 60 + 30, 11 * 60 + 30),)
FIRST_COMMUNES = ("02245", "02227")  # Côn Lôn and a neighbour, as in the tests


@dataclass(order=True)
class Happening:
    """One scheduled fault: at `at` ms of simulated time, `what` happens to `target`."""

    at: int
    order: int
    what: str = field(compare=False)
    target: str = field(compare=False)
    arg: int = field(compare=False, default=0)


def layout(n: int) -> tuple[tuple[str, int], ...]:
    """n communes (GSO-like codes); every third one runs a second PC."""
    codes = list(FIRST_COMMUNES[:n]) + [f"{2300 + 7 * i:05d}" for i in range(max(0, n - 2))]
    return tuple((code, 2 if i % 3 == 0 else 1) for i, code in enumerate(codes))


def schedule(rng: random.Random, world: World, days: int, known_bugs: bool = False
             ) -> list[Happening]:
    """The seeded fault schedule: cuts, crashes, clock jumps, hub restarts (and, with
    `known_bugs`, faults that hit reported bugs of the core not fixed yet)."""
    out: list[Happening] = []
    communes = sorted({e.commune for e in world.edges})
    span = days * DAY_MS

    def add(at: int, what: str, target: str, arg: int = 0) -> None:
        if 0 <= at < span:
            out.append(Happening(at, len(out), what, target, arg))

    for commune in communes:
        for day in range(days):
            if rng.random() < 0.35:
                start = day * DAY_MS + rng.randrange(DAY_MS)
                add(start, "cut", commune)
                add(start + rng.randrange(HOUR_MS, 12 * HOUR_MS), "heal", commune)
        if rng.random() < 0.1:  # the line is down for days
            start = rng.randrange(span)
            add(start, "cut", commune)
            add(start + rng.randrange(DAY_MS, 3 * DAY_MS), "heal", commune)
    for edge in world.edges:
        for day in range(days):
            if rng.random() < 0.5:  # power cuts are common in the mountains
                # 0 idle; inside a sync: 1 before the answer's commit, 2 before applying it;
                # 3 inside a create
                add(day * DAY_MS + rng.randrange(DAY_MS), "crash", edge.name,
                    rng.choice((0, 0, 1, 1, 2, 3)))
        if rng.random() < 0.3:
            start = rng.randrange(span)
            add(start, "skew", edge.name,
                rng.choice((2 * MINUTE_MS, -2 * MINUTE_MS, HOUR_MS, -3 * HOUR_MS, DAY_MS, -DAY_MS)))
            if rng.random() < 0.6:  # NTP comes back
                add(start + rng.randrange(HOUR_MS, 2 * DAY_MS), "skew", edge.name, 0)
    for day in range(days):
        if rng.random() < 0.5:
            # 0 restart between requests; 1 inside an ingest; 2 after a commit, before answering
            add(day * DAY_MS + rng.randrange(DAY_MS), "hub", "hub", rng.choice((0, 1, 2)))
    if days > 1:  # the province adds a local holiday a few days ahead
        add(DAY_MS + 9 * HOUR_MS, "publish", "hub", 3)
    if known_bugs:  # a disk fills up while a dossier is saved and the sync loop runs
        for edge in world.edges:
            if rng.random() < 0.2:
                add(rng.randrange(span), "disk_full", edge.name)
    out.sort()
    return out


def office_hours(ms: int, start_ms: int) -> bool:
    """True during the one-stop office's opening hours (simulated time starts on a Monday 00:00)."""
    elapsed = ms - start_ms
    weekday = (elapsed // DAY_MS) % 7
    minute = (elapsed % DAY_MS) // MINUTE_MS
    hours = OFFICE if weekday < 5 else SATURDAY if weekday == 5 else ()
    return any(a <= minute < b for a, b in hours)


def poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw (Knuth), fine for small λ."""
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k
