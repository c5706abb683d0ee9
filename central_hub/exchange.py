"""One sync exchange at the hub, independent of HTTP: decode, ingest, read the scope, answer.

The HTTP handler (`central_hub/app.py`) authenticates and calls `serve`; tests and simulations call
it directly through an in-memory transport.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from central_hub.store import HubStore, Node
from protocol.errors import AuthError, SyncError
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
        ack, rejections = await store.ingest_from(node, req.events)
        crashpoints.hit("hub.after_commit")
        want = min(max(req.want_bytes, 1024), max_want)
        events, cursor, more = await store.read_scope(node, req.cursor, want)
        payload = encode_response(SyncResponse(
            ack, events, cursor, more, store.now_ms(), rejections,
            refdata=await store.refdata_newer(req.ref)))
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
