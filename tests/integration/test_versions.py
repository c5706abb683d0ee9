"""Version handshake: a peer that cannot be served is told why, and the edge keeps its queue."""

from __future__ import annotations

import functools

import pytest

import edge_node.sync
import protocol.messages
from protocol.errors import VersionMismatch
from protocol.messages import SyncRequest
from tests.harness import Net, birth


async def _refused_then_upgraded(net: Net, monkeypatch: pytest.MonkeyPatch, expect: str) -> None:
    edge = await net.add_edge("02245")
    for i in range(3):
        await edge.api.post("/api/dossiers", birth(f"Người {i}"))
    with pytest.raises(VersionMismatch) as refused:
        await edge.sync()
    assert expect in str(refused.value)
    # staff see it, the queue is intact, nothing reached the hub
    _, sync = await edge.api.get("/api/sync")
    assert sync["state"] == "error" and expect in sync["last_error"]
    assert sync["pending_events"] == 3
    _, listing = await net.hub.api.get("/api/dossiers?commune=02245")
    assert listing["items"] == []
    # operators see it
    _, nodes = await net.hub.api.get("/api/nodes")
    assert expect in nodes["items"][0]["last_error"]
    assert nodes["items"][0]["health"] != "ok"
    # after the upgrade, everything flows
    monkeypatch.undo()
    result = await edge.sync()
    assert result.sent == 3 and result.pending_after == 0
    _, listing = await net.hub.api.get("/api/dossiers?commune=02245")
    assert len(listing["items"]) == 3


async def test_newer_edge_is_told_to_wait_for_a_hub_upgrade(
        net: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(edge_node.sync, "SyncRequest",
                        functools.partial(SyncRequest, protocol=2, app="9.0.0"))
    await _refused_then_upgraded(net, monkeypatch, "upgrade the hub")


async def test_older_edge_is_told_to_upgrade(net: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    # the hub has moved on: it no longer accepts protocol 1
    monkeypatch.setattr(protocol.messages, "MIN_PROTOCOL", 2)
    monkeypatch.setattr(protocol.messages, "PROTOCOL_VERSION", 2)
    await _refused_then_upgraded(net, monkeypatch, "upgrade the edge")


async def test_a_refused_exchange_keeps_the_nodes_last_report(net: Net) -> None:
    edge = await net.add_edge("02245")
    await edge.api.post("/api/dossiers", birth())
    await edge.sync()
    [before] = await net.hub.store.sessions.nodes()
    assert before["stats"]["dossiers"] == 1 and before["app_version"]
    with pytest.raises(Exception, match="hub refused"):
        await edge.client.request("POST", "/v1/sync", b"not a sync body")
    [after] = await net.hub.store.sessions.nodes()
    assert after["last_error"] and after["sessions_failed"] == before["sessions_failed"] + 1
    # … but the node's last real report is kept, not wiped by the refused one
    assert after["stats"] == before["stats"]
    assert (after["app_version"], after["protocol"]) == (before["app_version"], before["protocol"])
