"""Tamper evidence: a broken chain on ingest is refused and alerted; `central-hub verify` audits the
stored log and names the first altered event."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from central_hub.cli import main as hub_main
from central_hub.store import HubStore
from central_hub.verify import audit
from protocol import codec
from protocol.events import Event
from tests.harness import birth
from tests.security.test_forbidden import body_for, own_event, post_sync
from tests.security.tlsnet import TlsNet, applied_digest


async def test_a_broken_chain_on_ingest_is_refused_and_alerted(tnet: TlsNet) -> None:
    a = await tnet.add_edge("02245")
    view = await a.store.dossiers.create(birth(), "clerk")
    await a.client.session_once()
    before = applied_digest(tnet.db)
    forked = own_event(a, "comment", view["id"], {"text": "sửa lại lịch sử"},
                       deps={a.config.node: 1}, prev=b"\x01" * 32)
    async with a.session() as http:
        status, (code, message) = await post_sync(http, tnet.url, body_for(a, [forked]))
    assert status == 400 and code == "protocol" and "chain" in message
    assert applied_digest(tnet.db) == before
    assert tnet.store is not None
    [alert] = [e for e in await tnet.store.trust.security_events() if e["kind"] == "chain_broken"]
    assert alert["node"] == a.config.node and alert["seq"] == 2
    # operators see it
    http = tnet.http()
    async with http.get(tnet.url + "/api/security",
                        headers={"Authorization": f"Bearer {tnet.op_token}"}) as resp:
        assert resp.status == 200
        assert any(e["kind"] == "chain_broken" for e in (await resp.json())["items"])


async def test_a_rewritten_event_resent_is_a_fork_refused_and_alerted(tnet: TlsNet) -> None:
    """Replays are harmless only when they are replays: the same seq with other content is
    refused, not silently skipped."""
    a = await tnet.add_edge("02245")
    view = await a.store.dossiers.create(birth(), "clerk")
    await a.store.dossiers.comment(view["id"], {"text": "bản gốc"}, "clerk")
    await a.client.session_once()
    before = applied_digest(tnet.db)
    [create, comment] = await a.store.dossiers.history(view["id"])
    rewritten = Event(comment.origin, comment.seq, comment.hlc, comment.dossier, comment.actor,
                      "comment", {"text": "bản đã sửa"}, comment.deps, comment.prev)
    async with a.session() as http:
        status, (_, message) = await post_sync(http, tnet.url, body_for(a, [create, rewritten]))
        assert status == 400 and "fork" in message
        status, answer = await post_sync(http, tnet.url, body_for(a, [create, comment]))
        assert status == 200 and answer.ack == 2  # the true replay is still fine
    assert applied_digest(tnet.db) == before
    assert tnet.store is not None
    [alert] = [e for e in await tnet.store.trust.security_events() if e["kind"] == "fork"]
    assert alert["seq"] == 2


async def _hub_with_log(root: Path) -> Path:
    net = await TlsNet(root).start()
    try:
        for commune in ("02245", "02246"):
            edge = await net.add_edge(commune)
            for i in range(4):
                view = await edge.store.dossiers.create(birth(name=f"Nguyễn Văn {i}"), "clerk")
                await edge.store.dossiers.comment(view["id"], {"text": "đã nhận"}, "clerk")
            await edge.client.session_once()
        assert net.store is not None
        report = await audit(net.store)
        assert report.ok and report.events == 16 and report.origins == 2
    finally:
        await net.close()
    return net.data


def _events(db: Path) -> list[tuple[int, str, int, bytes, bytes]]:
    with sqlite3.connect(db) as conn:
        return [(r[0], r[1], r[2], bytes(r[3]), bytes(r[4])) for r in conn.execute(
            "SELECT pos, origin, seq, hash, body FROM events ORDER BY pos")]


def test_verify_names_an_old_event_with_one_flipped_byte(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = asyncio.run(_hub_with_log(tmp_path))
    assert hub_main(["verify", "--data", str(data)]) == 0
    assert "intact" in capsys.readouterr().out
    # flip one byte in the middle of an old event (the third event of the first origin)
    pos, origin, seq, _, body = _events(data / "hub.db")[2]
    flipped = bytearray(body)
    flipped[len(body) // 2] ^= 0x01
    with sqlite3.connect(data / "hub.db") as conn:
        conn.execute("UPDATE events SET body=? WHERE pos=?", (bytes(flipped), pos))
    assert hub_main(["verify", "--data", str(data)]) == 1
    _, err = capsys.readouterr()
    assert f"origin {origin} seq {seq} (log position {pos})" in err, err
    assert "altered" in err
    # the audit also left an alert for the dashboard
    async def alerts() -> list[str]:
        store = await HubStore.open(data / "hub.db")
        try:
            return [e["kind"] for e in await store.trust.security_events()]
        finally:
            await store.close()
    assert "audit_failed" in asyncio.run(alerts())


def test_verify_catches_an_edit_that_rehashed_the_event(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An editor who also rewrites the stored hash is caught by the next event's `prev`."""
    data = asyncio.run(_hub_with_log(tmp_path))
    rows = _events(data / "hub.db")
    pos, origin, seq, _, body = rows[1]
    event = codec.decode_stored(body)
    altered = codec.event_from_list([*codec.unpack(body)[:4], "someone-else",
                                     *codec.unpack(body)[5:]])
    assert altered.actor != event.actor
    with sqlite3.connect(data / "hub.db") as conn:
        conn.execute("UPDATE events SET body=?, hash=? WHERE pos=?",
                     (codec.canonical(altered), codec.event_hash(altered), pos))
    assert hub_main(["verify", "--data", str(data)]) == 1
    err = capsys.readouterr().err
    assert f"origin {origin} seq {seq + 1}" in err and "chain" in err, err
    assert f"seq {seq}" in err  # the message names the altered predecessor too


def test_verify_catches_a_deleted_event_and_a_moved_head(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = asyncio.run(_hub_with_log(tmp_path))
    rows = _events(data / "hub.db")
    pos, origin, _, _, _ = rows[-1]  # the last event of the last origin
    with sqlite3.connect(data / "hub.db") as conn:
        conn.execute("DELETE FROM events WHERE pos=?", (pos,))
    assert hub_main(["verify", "--data", str(data)]) == 1
    err = capsys.readouterr().err
    assert f"origin {origin}" in err and "head" in err, err
