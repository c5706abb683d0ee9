"""`GET /v1/own?after=SEQ`: a node's own events the hub holds, for an edge restored from an older
backup of its database to take back before it writes on (protocol/recovery.py says why).

Logged and quarantined events both: the node's chain runs through the ones the hub refused to
apply, and the edge holds those too. Only the authenticated node's own events, never another's.
"""

from __future__ import annotations

import logging

from aiohttp import web

from central_hub.nodeauth import NodeGuard
from central_hub.store import HubStore
from protocol import codec
from protocol.errors import ValidationError
from protocol.events import Event
from protocol.messages import CONTENT_TYPE
from protocol.recovery import OWN_BYTES, OWN_PATH, encode_own

log = logging.getLogger(__name__)

MAX_ROWS = 2000


async def own_events(store: HubStore, node: str, after: int, max_bytes: int = OWN_BYTES
                     ) -> tuple[list[Event], bool]:
    """The events of `node` after seq `after`, about `max_bytes` of them (at least one), in seq
    order, logged or quarantined; and whether more follow."""
    async with store.reader.execute(
            "SELECT seq, body FROM events WHERE origin=? AND seq>? UNION ALL "
            "SELECT seq, body FROM quarantine WHERE origin=? AND seq>? ORDER BY 1 LIMIT ?",
            (node, after, node, after, MAX_ROWS + 1)) as cur:
        rows = await cur.fetchall()
    out: list[Event] = []
    size = 0
    for _, body in rows[:MAX_ROWS]:
        if out and size + len(body) > max_bytes:
            return out, True
        out.append(codec.decode_stored(bytes(body)))
        size += len(body)
    return out, len(rows) > MAX_ROWS


def routes(guard: NodeGuard, store: HubStore) -> list[web.RouteDef]:
    """The route, for the authenticated node only."""

    async def own(request: web.Request) -> web.Response:
        node = await guard.node(request)
        try:
            after = int(request.query.get("after", ""))
        except ValueError as exc:
            raise ValidationError("after must be a whole number", field="after") from exc
        if after < 0:
            raise ValidationError("after must be 0 or more", field="after")
        events, more = await own_events(store, node.node, after)
        log.info("%s takes back %d of its own events after seq %d (restored from a backup)",
                 node.node, len(events), after)
        return web.Response(body=encode_own(events, more), content_type=CONTENT_TYPE)

    return [web.get(OWN_PATH, own)]
