"""PCs of one commune upload the same scan at the same time (a blob is stored once however many
dossiers share it): the hub must end up with the verified file and every upload must finish.

The uploads race chunk for chunk at the same offsets; `PCS` desks and `ROUNDS` scans make a lost
race likely enough to see while the hub's appends can race (one round of two desks alone fails
about one time in five).
"""

from __future__ import annotations

import asyncio
import hashlib
import random

from edge_node.blobsync import BlobMover
from tests.faults.checker import Acked, Replica, check
from tests.faults.workload import Clerk, scan
from tests.harness import PASSWORD, Net

ROUNDS = 10
PCS = 4


async def never() -> bool:
    return False


async def test_nodes_upload_the_same_scan_at_once(net: Net) -> None:
    assert net.hub is not None
    acked = Acked()
    edges = [await net.add_edge("02245") for _ in range(PCS)]
    clerks = []
    for i, edge in enumerate(edges):
        clerk = Clerk(edge.api.http, edge.api.base, "clerk", PASSWORD, acked, i)
        clerk.token = edge.api.token or ""
        clerks.append(clerk)
    rng = random.Random(3)
    for round_ in range(ROUNDS):
        data = scan(300_000, rng)
        for clerk, edge in zip(clerks, edges, strict=True):  # the same file at every desk
            view = await clerk.create()
            assert view and await clerk.upload(view["id"], data)
            await edge.sync()
        for edge in edges:  # each learns of the other's dossier
            await edge.sync()
        results = await asyncio.gather(*(BlobMover(e.client).run(never) for e in edges),
                                       return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert not errors, f"round {round_}: an upload failed: {errors!r}"
        assert net.hub.store.blobs.has(hashlib.sha256(data).hexdigest())
        sent = sum(r.bytes_up for r in results if not isinstance(r, BaseException))
        assert sent <= PCS * len(data)
    assert check(Replica.hub(net.hub.data), [Replica.edge(e.data) for e in edges], acked,
                 blobs=True) == []
