"""A commune merger at a hub on SQLite: 3 communes holding 30,000 dossiers become one.

Fills a hub with `--dossiers` dossiers spread over three communes (one node each, through the
real ingest), then times `central_hub.mergers.merge` (the whole `central-hub commune merge`
transaction), a repeat of it (idempotent), the merged unit's list query, and a re-scoped node's
re-read of its new scope from 0 (what its next sessions download, in 1 MiB answers).

    .venv/bin/python bench/merger.py [--dossiers 30000]

Prints figures; asserts nothing (tests/central_hub/test_mergers.py and
tests/integration/test_mergers.py check the behaviour).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from central_hub.mergers import merge
from central_hub.store import HubStore, Node
from tests.central_hub.test_store import Chain

COMMUNES = ("02245", "02227", "02221")


async def main(dossiers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        hub = await HubStore.open(Path(tmp) / "hub.db")
        try:
            nodes = []
            for commune in COMMUNES:
                token = await hub.trust.create_enroll_token(commune, None)
                nodes.append(Node((await hub.trust.enroll(token)).node, commune))
            started = time.perf_counter()
            for node in nodes:
                chain = Chain(node.node, hub.now_ms())
                for _ in range(0, dossiers // len(COMMUNES), 1000):
                    first = len(chain.events)
                    for _ in range(1000):
                        chain.create(node.commune)
                    await hub.ingest.accept(node, chain.events[first:])
            print(f"filled {dossiers} dossiers in {time.perf_counter() - started:.1f} s")

            started = time.perf_counter()
            done = await merge(hub, "02245", "Xã Côn Lôn", ["02227", "02221"], date(2025, 7, 1))
            merged_s = time.perf_counter() - started
            print(f"merge of 3 communes: {merged_s * 1000:.0f} ms ({done.dossiers} dossiers moved "
                  f"under 02245, {done.nodes} nodes re-scoped)")
            started = time.perf_counter()
            await merge(hub, "02245", "Xã Côn Lôn", ["02227", "02221"])
            print(f"again (nothing to do): {(time.perf_counter() - started) * 1000:.0f} ms")
            started = time.perf_counter()
            page = await hub.dossiers.search(commune="02245", limit=50)
            total = await hub.dossiers.count(commune="02245")
            print(f"list of the merged unit: {len(page.items)} of {total} in "
                  f"{(time.perf_counter() - started) * 1000:.0f} ms")
            reader = Node("e08-02245-new", "02245")
            units = hub.log.mergers.units_of("02245")
            started, cursor, more, events, answers = time.perf_counter(), 0, True, 0, 0
            while more:
                got, cursor, more = await hub.read_scope(reader, cursor, 1 << 20, units)
                events += len(got)
                answers += 1
            print(f"re-read of the new scope from 0: {events} events in {answers} answers, "
                  f"{time.perf_counter() - started:.2f} s")
        finally:
            await hub.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dossiers", type=int, default=30_000)
    asyncio.run(main(parser.parse_args().dossiers))
