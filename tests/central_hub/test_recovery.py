"""`GET /v1/own` over HTTP (central_hub/recovery.py): a node's own events back, after a seq, for
the node itself only; bad input a 4xx with a reason, a revoked node refused."""

from __future__ import annotations

import pytest

from protocol.errors import AuthError, RemoteProtocolError
from protocol.recovery import OWN_PATH, decode_own
from tests.harness import Net, birth


async def test_a_node_gets_its_own_events_back_and_nothing_else(net: Net) -> None:
    edge = await net.add_edge("02245")
    other = await net.add_edge("02245")
    for i in range(3):
        await edge.api.post("/api/dossiers", birth(f"Người {i}", f"0080900{i:05d}",
                                                   child_full_name=f"Bé {i}"))
    await other.api.post("/api/dossiers", birth("Khác", "008090099999", child_full_name="Bé"))
    await edge.sync()
    await other.sync()
    _, body = await edge.client.request("GET", OWN_PATH, None, {"after": 1})
    events, more = decode_own(body, edge.config.node)
    assert [e.seq for e in events] == [2, 3] and not more
    _, body = await other.client.request("GET", OWN_PATH, None, {"after": 0})
    assert [e.origin for e in decode_own(body, other.config.node)[0]] == [other.config.node]
    with pytest.raises(RemoteProtocolError, match=r"422 invalid.*after must be 0 or more"):
        await edge.client.request("GET", OWN_PATH, None, {"after": -1})
    assert net.hub is not None
    await net.hub.store.trust.revoke(edge.config.node)
    with pytest.raises(AuthError):
        await edge.client.request("GET", OWN_PATH, None, {"after": 0})
