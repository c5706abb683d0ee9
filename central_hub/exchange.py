"""One sync exchange at the hub, independent of HTTP: decode, ingest, read the scope, answer.

The HTTP handler (`central_hub/app.py`) authenticates and calls `serve`; tests and simulations call
it directly through an in-memory transport.

After a restore from an older backup (`central_hub/restore.py`) two things differ. A cursor of the
old log (another epoch, or past the log's end) is answered from the start, saying so. And the edges
send again what the hub lost, each on its own schedule, so an edit can arrive before the creation
of its dossier by another node: such an event is held back (not acked, the node resends it later)
while that node may still send it, instead of being quarantined as an unknown dossier for good.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from central_hub.epoch import RESTORED_KEY, committed_meta, log_epoch
from central_hub.store import HubStore, Node
from protocol import is_hub_origin
from protocol.errors import AuthError, SyncError
from protocol.events import Event
from protocol.messages import SyncResponse, decode_request, encode_error, encode_response
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
        if req.node != node.node:
            await store.alert("node_mismatch", f"request names node {req.node!r}",
                              node=node.node)
            raise AuthError("node id in the request does not match the credential")
        ack, rejections = await store.ingest_from(node, await _hold_back(store, node, req.events))
        crashpoints.hit("hub.after_commit")
        want = min(max(req.want_bytes, 1024), max_want)
        epoch = await log_epoch(store)
        start, reset = req.cursor, False
        if (req.epoch and req.epoch != epoch) or (req.cursor and req.cursor > await store.log_size()):
            log.warning("%s: cursor %d is of another log (epoch %r, this log's %r): answering "
                        "from the start", node.node, req.cursor, req.epoch, epoch)
            start, reset = 0, True
        events, cursor, more = await store.read_scope(node, start, want)
        payload = encode_response(SyncResponse(
            ack, events, cursor, more, store.now_ms(), rejections,
            refdata=await store.refdata_newer(req.ref), epoch=epoch, reset=reset))
    except SyncError as exc:
        log.warning("sync refused for %s: %s", node.node, exc.message)
        await store.record_session(node, app="?", protocol=0, stats={}, ok=False,
                                   error=exc.message, bytes_in=len(body), bytes_out=0,
                                   duration_ms=int((time.monotonic() - started) * 1000))
        return Outcome(encode_error(exc.code, exc.message), exc)
    await store.record_session(node, app=req.app, protocol=req.protocol, stats=req.stats,
                               ok=True, error=None, bytes_in=len(body), bytes_out=len(payload),
                               events_in=len(req.events), events_out=len(events),
                               duration_ms=int((time.monotonic() - started) * 1000))
    return Outcome(payload, None, len(req.events), len(events))


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
            unknown[event.dossier] = await store.load_state(event.dossier, committed=True) is None
        if not unknown[event.dossier]:
            continue
        if live is None:
            live = {n["node"] for n in await store.nodes() if not n["revoked_at"]}
        if any(o in live for o in others):
            log.warning("%s seq %d held back: its dossier was written by %s, who has not sent "
                        "it again since the restore", node.node, event.seq,
                        ", ".join(o for o in others if o in live))
            return events[:i]
    return events
