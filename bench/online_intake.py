"""Online intake on loopback, in one process with real HTTP servers and SQLite files: filings per
second at the hub, one edge's first session after being offline while they were filed (round trips,
time), the session that takes its acceptances back, and tracking lookups (a found pair, a wrong
check, an unknown code).

    .venv/bin/python bench/online_intake.py [--filings 200] [--lookups 500]

Prints figures; asserts nothing (tests/integration/test_online.py checks the behaviour).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from central_hub.portal import Portals
from tests.harness import Net, birth


def citizen(i: int) -> str:
    return f"0080900{i:05d}"


async def lookups(net: Net, code: str, check: str, n: int) -> float:
    """Median ms of `n` GET /api/track with this pair."""
    assert net.hub is not None and net.http is not None
    times = []
    for _ in range(n):
        started = time.perf_counter()
        async with net.http.get(net.hub.url + "/api/track",
                                params={"code": code, "check": check}) as resp:
            await resp.read()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def run(filings: int, n_lookups: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        net = Net(Path(tmp))
        try:
            await net.start_hub()
            hub = net.hub
            assert hub is not None
            edge = await net.add_edge("02245", "Xã Côn Lôn")
            key = await Portals(hub.store.conn, hub.store.reader, hub.store.lock,
                                hub.store.now_ms).add("bench")
            edge.cut()
            made = []
            started = time.perf_counter()
            for i in range(filings):
                status, answer = await hub.api.post(
                    "/api/submissions", {**birth(citizen_id=citizen(i)), "commune": "02245"},
                    token=key)
                assert status == 201, answer
                made.append(answer)
            filed_s = time.perf_counter() - started
            print(f"filings: {filings} in {filed_s:.2f} s = {filings / filed_s:.0f}/s "
                  f"({filed_s / filings * 1000:.1f} ms each, through HTTP)")
            edge.heal()
            started = time.perf_counter()
            result = await edge.sync()
            print(f"edge back online: {result.received} filings in {result.round_trips} round "
                  f"trip(s), {time.perf_counter() - started:.2f} s, {result.bytes_down} bytes down")
            for answer in made:
                status, view = await edge.api.get(f"/api/dossiers/{answer['id']}")
                await edge.api.post(f"/api/dossiers/{answer['id']}/transition",
                                    {"to": "accepted", "base": view["version"]})
            started = time.perf_counter()
            result = await edge.sync()
            print(f"acceptances back: {result.sent} in {result.round_trips} round trip(s), "
                  f"{time.perf_counter() - started:.2f} s")
            first = made[0]
            found = await lookups(net, first["code"], first["tracking"], n_lookups)
            wrong = await lookups(net, first["code"], "ZZZZZ-ZZZZZ", 15)  # under the budget
            unknown = await lookups(net, first["code"][:-4] + "9999", "ZZZZZ-ZZZZZ", 4)
            print(f"GET /api/track median: found {found:.2f} ms, wrong check {wrong:.2f} ms, "
                  f"unknown code {unknown:.2f} ms")
        finally:
            await net.close()


def main() -> None:
    """Parse the options and run."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--filings", type=int, default=200)
    p.add_argument("--lookups", type=int, default=500)
    args = p.parse_args()
    asyncio.run(run(args.filings, args.lookups))


if __name__ == "__main__":
    main()
