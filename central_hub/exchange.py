"""One sync exchange at the hub, independent of HTTP: decode, ingest, read the scope, answer.

The HTTP handler (`central_hub/app.py`) authenticates and calls `serve`; tests and simulations call
it directly through an in-memory transport.

After a restore from an older backup (`central_hub/restore.py`) two things differ. A cursor of the
old log (another epoch, or past the log's end) is answered from the start, saying so. And the edges
send again what the hub lost, each on its own schedule, so an edit can arrive before the creation
of its dossier by another node: such an event is held back (not acked, the node resends it later)
while that node may still send it, instead of being quarantined as an unknown dossier for good.

After a commune merger (`central_hub/mergers.py`) the node's unit is resolved first (`rescoped`):
its batch is checked against the new unit, and when the units the request says it reads differ
from the unit's, the answer names the unit and reads its scope from 0 (`SyncResponse.unit`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

from central_hub.epoch import RESTORED_KEY, committed_meta, log_epoch
from central_hub.mergers import load_mergers
from central_hub.store import HubStore, Node
from protocol import is_hub_origin
from protocol.errors import AuthError, SyncError
from protocol.events import Event
from protocol.messages import (
    Rejection,
    SyncRequest,
    SyncResponse,
    Unit,
    decode_request,
    encode_error,
    encode_response,
)
from protocol.session import read_from, want_bytes
from service import crashpoints

log = logging.getLogger(__name__)

MAX_WANT_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an exchange produced: the answer body and what to count."""

    body: bytes
    error: SyncError | None = None
    events_in: int = 0
    events_out: int = 0


async def serve(store: HubStore, node: Node, body: bytes,
                max_want: int = MAX_WANT_BYTES) -> Outcome:
    """Serve one request from an authenticated node; the hub commits before it answers."""
    started = time.monotonic()
    try:
        req = decode_request(body)
        node, units, rescope = await rescoped(store, node, req)
        ack, rejections = await take(store, node, req)
        crashpoints.hit("hub.after_commit")
        epoch = await log_epoch(store)
        start, reset = read_from(req.cursor, req.epoch, epoch,
                                 await store.feed.end() if req.cursor else 0)
        if reset:
            log.warning("%s: cursor %d is of another log (epoch %r, this log's %r): answering "
                        "from the start", node.node, req.cursor, req.epoch, epoch)
        if rescope:
            log.info("%s re-scoped to %s (reads %s): answering from the start", node.node,
                     node.commune, ", ".join(units))
            start = 0
        events, cursor, more = await store.read_scope(node, start,
                                                      want_bytes(req.want_bytes, max_want), units)
        refdata = await store.refdata_newer(req.ref)
        unit = Unit(node.commune, store.dossiers.communes.name_of(node.commune), units) \
            if rescope else None
        payload = encode_response(SyncResponse(
            ack, events, cursor, more, store.now_ms(), rejections,
            refdata=refdata, epoch=epoch, reset=reset, unit=unit))
    except SyncError as exc:
        log.warning("sync refused for %s: %s", node.node, exc.message)
        await store.sessions.record(node, app="?", protocol=0, stats={}, ok=False,
                                    error=exc.message, bytes_in=len(body), bytes_out=0,
                                    duration_ms=int((time.monotonic() - started) * 1000))
        return Outcome(encode_error(exc.code, exc.message), exc)
    await store.sessions.record(node, app=req.app, protocol=req.protocol, stats=req.stats,
                                ok=True, error=None, bytes_in=len(body),
                                bytes_out=len(payload), events_in=len(req.events),
                                events_out=len(events),
                                duration_ms=int((time.monotonic() - started) * 1000))
    return Outcome(payload, None, len(req.events), len(events))


async def rescoped(store: HubStore, node: Node, req: SyncRequest
                   ) -> tuple[Node, tuple[str, ...], bool]:
    """The unit-resolution step: the node as its unit holds it now (its commune's successor,
    should a merger have committed since it authenticated), every code of that unit
    (`Mergers.units_of`), and whether the node must be told (it said it reads other units)."""
    store.log.mergers = mergers = await load_mergers(store.reader)
    unit = mergers.unit_of(node.commune)
    if unit != node.commune:
        node = replace(node, commune=unit)
    units = mergers.units_of(unit)
    return node, units, bool(req.units) and set(req.units) != set(units)


async def take(store: HubStore, node: Node, req: SyncRequest) -> tuple[int, list[Rejection]]:
    """Ingest the events of a decoded request from `node` (authenticated by the caller: a
    live request's credential, or a bundle's signature): the request must name that node; after
    a restore some events wait (`_hold_back`); the chain and scope rules apply and commit
    (`Ingest.accept`). Return (ack, rejections)."""
    if req.node != node.node:
        await store.trust.alert("node_mismatch", f"request names node {req.node!r}",
                                node=node.node)
        raise AuthError("node id in the request does not match the credential")
    return await store.ingest.accept(node, await _hold_back(store, node, req.events))


async def _hold_back(store: HubStore, node: Node, events: list[Event]) -> list[Event]:
    """The events up to the first one that must wait (all of them, normally). Only on a hub that
    was restored: an event for a dossier the hub does not know, which its writer saw another
    live node write to (its `deps`), waits for that node to send the dossier again."""
    if not events or not await committed_meta(store, RESTORED_KEY):
        return events
    created: set[str] = set()
    unknown: dict[str, bool] = {}  # dossier -> not at the hub
    live: set[str] | None = None
    for i, event in enumerate(events):
        if event.kind == "create":
            created.add(event.dossier)
            continue
        others = [o for o in event.deps if o != node.node and not is_hub_origin(o)]
        if not others or event.dossier in created:
            continue
        if event.dossier not in unknown:
            state = await store.dossiers.load_state(event.dossier, committed=True)
            unknown[event.dossier] = state is None
        if not unknown[event.dossier]:
            continue
        if live is None:
            live = {n["node"] for n in await store.sessions.nodes() if not n["revoked_at"]}
        if any(o in live for o in others):
            log.warning("%s seq %d held back: its dossier was written by %s, who has not sent "
                        "it again since the restore", node.node, event.seq,
                        ", ".join(o for o in others if o in live))
            return events[:i]
    return events
