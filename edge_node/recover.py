"""An edge restored from an older backup takes back from the hub the own events it lost.

The rule is protocol/recovery.py's: before it writes, the restored database asks the hub for this
node's events after its own head (`GET /v1/own`), keeps those that continue its chain
(`protocol.session.accept`: another content under a seq it holds is a fork, refused), appends and
folds them in one transaction per answer, and moves its ack to the new head, so none of them is
sent again. Scans those events attach that are not on this disk are fetched from the hub later
(queued down); the day's dossier-code counter is moved past the codes they issued, so no receipt
code is given twice.
"""

from __future__ import annotations

import logging
import re
from typing import Protocol

from edge_node.store import EdgeStore
from protocol.events import Event
from protocol.recovery import OWN_PATH, decode_own
from protocol.session import ChainHead, accept
from service.sqlite import transaction

log = logging.getLogger(__name__)

CODE_RE = re.compile(r"^(?P<agency>.+)-(?P<day>\d{6})-(?P<n>\d{4,})$")


class HubLink(Protocol):
    """What recovery needs of the sync client (`edge_node.sync.SyncClient.request`)."""

    async def request(self, method: str, path: str, body: bytes | None = None,
                      params: dict[str, int] | None = None) -> tuple[int, bytes]:
        """One request to the hub; 2xx answers returned, anything else raised."""


async def take_back(store: EdgeStore, link: HubLink) -> int:
    """Append this node's events the hub holds past this database's head; return how many.
    Errors are the link's (a refusal, a fault): nothing of the answer that failed is appended."""
    elog = store.log
    total = 0
    while True:
        _, body = await link.request("GET", OWN_PATH, None, {"after": elog.own_seq})
        events, more = decode_own(body, elog.origin)
        taken = accept(elog.origin, ChainHead(elog.own_seq, elog.own_hash), events)
        if taken.fresh:
            await _append(store, taken.fresh, taken.hashes, taken.head)
            total += len(taken.fresh)
        if not more or not taken.fresh:
            break
    if total:
        log.warning("took back %d of this node's events from the hub (restored from a backup); "
                    "its chain goes on at seq %d", total, elog.own_seq)
    return total


async def _append(store: EdgeStore, events: list[Event], hashes: dict[int, bytes],
                  head: ChainHead) -> None:
    elog = store.log
    async with elog.lock:
        try:
            async with transaction(elog.conn):
                await elog.receive(events, elog.time.now_ms(), hashes=hashes)
                missing = [e.payload["sha256"] for e in events if e.kind == "attach"
                           and e.payload.get("sha256") and not store.blobs.has(e.payload["sha256"])]
                await elog.conn.executemany(  # lost with the disk: the hub's copy comes down
                    "UPDATE blobs SET direction='down', done=0 WHERE sha256=?",
                    [(sha,) for sha in missing])
                await _count_codes(store, events)
                if head.seq > int(await elog.get_meta("ack", 0)):
                    await elog.set_meta("ack", head.seq)  # the hub holds them: never sent again
        except BaseException:
            elog.forget_clock()
            raise
        elog.commit_clock()
        elog.own_seq, elog.own_hash = head.seq, head.hash


async def _count_codes(store: EdgeStore, events: list[Event]) -> None:
    """Move each day's code counter past the codes `events` issued (inside the transaction)."""
    top: dict[str, int] = {}
    for event in events:
        code = event.payload.get("code") if event.kind == "create" else None
        match = CODE_RE.match(code) if isinstance(code, str) else None
        if match and match["agency"] == store.dossiers.agency:
            day, n = match["day"], int(match["n"])
            top[day] = max(top.get(day, 0), n)
    await store.log.conn.executemany(
        "INSERT INTO code_counter(day, n) VALUES (?, ?) ON CONFLICT(day) DO UPDATE SET "
        "n=max(n, excluded.n)", list(top.items()))
