"""Every forbidden thing a node (or an operator) can try, tried: each is refused and the hub's
applied data (log, dossiers, chain heads, quarantine, nodes) is unchanged — or, for events a node
may send but not apply (another commune's dossiers), only quarantined and alerted."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from central_hub import tls
from central_hub.store import Node
from edge_node import identity as node_identity
from edge_node.identity import Identity
from protocol import codec
from protocol.errors import AuthError, RemoteProtocolError, TransportError
from protocol.events import Event, uuid7
from protocol.messages import SyncRequest, decode_error, decode_response, encode_request
from service import atomic, pki
from service.hubtime import wall_clock_ms
from tests.harness import Net, birth
from tests.security.tlsnet import TlsEdge, TlsNet, applied_digest, count

SYNC_TYPE = "application/vnd.commune-sync+zstd"


def body_for(edge: TlsEdge, events: list[Event], node: str | None = None) -> bytes:
    return encode_request(SyncRequest(node=node or edge.config.node, events=events, cursor=0,
                                      want_bytes=1 << 20, clock_ms=wall_clock_ms()))


async def post_sync(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, Any]:
    async with session.post(url + "/v1/sync", data=body,
                            headers={"Content-Type": SYNC_TYPE}) as resp:
        payload = await resp.read()
        if resp.status == 200:
            return 200, decode_response(payload)
        return resp.status, decode_error(payload)


def own_event(edge: TlsEdge, kind: str, dossier: str, payload: dict[str, Any],
              deps: dict[str, int] | None = None, seq_offset: int = 1,
              prev: bytes | None = None) -> Event:
    """An event as `edge` would stamp it next (correct seq and chain)."""
    store = edge.store
    return Event(edge.config.node, store.log.own_seq + seq_offset, (wall_clock_ms() << 16) + 1,
                 dossier, "mallory", kind, codec.sorted_value(payload), deps or {},
                 store.log.own_hash if prev is None else prev)


async def created(edge: TlsEdge) -> dict[str, Any]:
    """A dossier created at `edge` and synced to the hub."""
    view = await edge.store.dossiers.create(birth(), "clerk")
    result = await edge.client.session_once()
    assert result.pending_after == 0
    return view


async def create_payload(edge: TlsEdge, dossier: str) -> dict[str, Any]:
    [first] = [e for e in await edge.store.dossiers.history(dossier) if e.kind == "create"]
    return dict(first.payload)


async def test_a_forged_origin_is_refused_alerted_and_applies_nothing(tnet: TlsNet) -> None:
    a, b = await tnet.add_edge("02245"), await tnet.add_edge("02245")
    first = await created(a)
    before = applied_digest(tnet.db)
    # on the wire the origin is implied by the request's node id: naming another node is refused
    view = await a.store.dossiers.create(birth(), "clerk")
    batch, _, _ = await a.store.sync.pending_batch(await a.store.sync.ack(), 1 << 20)
    forged = encode_request(SyncRequest(node=b.config.node, events=[], batch=batch, cursor=0,
                                        want_bytes=1024, clock_ms=wall_clock_ms()))
    async with a.session() as http:
        status, (_, message) = await post_sync(http, tnet.url, forged)
    assert status == 401 and "credential" in message, message
    assert applied_digest(tnet.db) == before
    # and in the store, an event whose origin is not the authenticated node breaks nothing
    assert tnet.store is not None
    assert view["id"]
    event = await a.store.dossiers.history(first["id"])  # A's seq 1, offered as B's
    with pytest.raises(RemoteProtocolError, match="origin"):
        await tnet.store.ingest.accept(Node(b.config.node, "02245"), event)
    assert applied_digest(tnet.db) == before
    kinds = [e["kind"] for e in await tnet.store.trust.security_events()]
    assert "node_mismatch" in kinds and "forged_origin" in kinds


async def test_another_communes_dossier_cannot_be_created_or_edited(tnet: TlsNet) -> None:
    a, b = await tnet.add_edge("02245"), await tnet.add_edge("02246")
    await created(a)
    theirs = await created(b)
    assert tnet.store is not None
    state_before = await tnet.store.dossiers.load_state(theirs["id"], committed=True)
    tables = ("events", "dossiers", "blob_refs", "nodes")
    before = applied_digest(tnet.db, tables)
    # a create for a new dossier that names the other commune, and an edit of their dossier
    payload = await create_payload(b, theirs["id"])
    new_id = uuid7(wall_clock_ms(), bytes(range(10)))
    create = own_event(a, "create", new_id, payload)
    edit = own_event(a, "set", theirs["id"], {"set": {"applicant.address": "Chỗ khác"}},
                     deps={b.config.node: 1}, seq_offset=2, prev=codec.event_hash(create))
    async with a.session() as http:
        status, answer = await post_sync(http, tnet.url, body_for(a, [create, edit]))
    assert status == 200
    assert sorted(r.code for r in answer.rejections) == ["scope", "scope"]
    assert applied_digest(tnet.db, tables) == before  # nothing applied
    assert await tnet.store.dossiers.load_state(theirs["id"], committed=True) == state_before
    assert count(tnet.db, "SELECT count(*) FROM quarantine WHERE code='scope'") == 2
    assert any(e["kind"] == "scope_violation" for e in await tnet.store.trust.security_events())
    # and nothing of commune 02246 is ever sent to a node of 02245
    async with a.session() as http:
        status, answer = await post_sync(http, tnet.url, body_for(a, []))
    assert status == 200 and all(e.dossier != theirs["id"] for e in answer.events)


async def test_replaying_another_nodes_events_applies_nothing(tnet: TlsNet) -> None:
    a, b = await tnet.add_edge("02245"), await tnet.add_edge("02246")
    await created(a)
    view = await b.store.dossiers.create(birth(), "clerk")
    batch, _, _ = await b.store.sync.pending_batch(0, 1 << 20)
    captured = encode_request(SyncRequest(node=b.config.node, events=[], batch=batch, cursor=0,
                                          want_bytes=1024, clock_ms=wall_clock_ms()))
    before = applied_digest(tnet.db)
    async with a.session() as http:  # A replays B's request before B has sent it
        status, _ = await post_sync(http, tnet.url, captured)
    assert status == 401
    assert applied_digest(tnet.db) == before
    await b.client.session_once()
    after_b = applied_digest(tnet.db)
    async with a.session() as http:  # … and after
        status, _ = await post_sync(http, tnet.url, captured)
    assert status == 401
    # A re-sends B's event contents as its own: another commune's dossier, quarantined only
    theirs = await b.store.dossiers.history(view["id"])
    mine = own_event(a, theirs[0].kind, theirs[0].dossier, dict(theirs[0].payload))
    async with a.session() as http:
        status, answer = await post_sync(http, tnet.url, body_for(a, [mine]))
    assert status == 200 and [r.code for r in answer.rejections] in (["scope"], ["duplicate_id"])
    tables = ("events", "dossiers")
    assert applied_digest(tnet.db, tables) == {k: after_b[k] for k in tables}
    # B replaying its own request is harmless: acked, nothing new
    async with b.session() as http:
        status, answer = await post_sync(http, tnet.url, captured)
    assert status == 200 and answer.ack == 1
    assert applied_digest(tnet.db, tables) == {k: after_b[k] for k in tables}


async def test_a_revoked_certificate_is_refused_on_the_next_request(tnet: TlsNet) -> None:
    a = await tnet.add_edge("02245")
    await created(a)  # the client keeps its TLS connection open
    assert tnet.store is not None
    await tnet.store.trust.revoke(a.config.node)
    await a.store.dossiers.create(birth(), "clerk")
    before = applied_digest(tnet.db)
    with pytest.raises(AuthError, match="revoked"):
        await a.client.session_once()
    assert applied_digest(tnet.db) == before
    # a revoked node cannot renew its way back either
    with pytest.raises(AuthError):
        await node_identity.recover(tnet.url, a.identity, a.config.node, 10)
    assert applied_digest(tnet.db) == before


async def test_an_expired_certificate_is_refused_then_recovered_with_the_old_key(
        tmp_path: Path) -> None:
    net = await TlsNet(tmp_path, node_cert_days=1.5 / 86400).start()  # 1.5-second certificates
    try:
        a = await net.add_edge("02245")
        await a.store.dossiers.create(birth(), "clerk")
        old = a.identity.certificate()
        await asyncio.sleep(max(0.0, pki.expires_ms(old) - wall_clock_ms()) / 1000 + 0.5)
        assert pki.expires_ms(a.identity.certificate()) < wall_clock_ms()  # expired now
        before = applied_digest(net.db)
        batch, _, _ = await a.store.sync.pending_batch(0, 1 << 20)
        body = encode_request(SyncRequest(node=a.config.node, events=[], batch=batch, cursor=0,
                                          want_bytes=1024, clock_ms=wall_clock_ms()))
        async with a.session() as http:
            with pytest.raises(aiohttp.ClientError):  # refused at the TLS handshake
                await post_sync(http, net.url, body)
        assert applied_digest(net.db) == before
        stale = Identity(a.data / "stale")  # a copy of the old key and certificate
        stale.dir.mkdir(parents=True)
        shutil.copy(a.identity.pem, stale.pem)
        shutil.copy(a.identity.ca_file, stale.ca_file)
        # the next session notices the expiry and renews with a proof from the old key
        assert net.authority is not None
        net.authority.node_cert_days = 365
        result = await a.client.session_once()
        assert result.pending_after == 0
        new = a.identity.certificate()
        assert pki.expires_ms(new) > wall_clock_ms() + 300 * 86_400_000
        assert not pki.same_key(new.public_key(), old.public_key())  # a fresh key
        assert pki.node_of(new) == a.config.node
        assert net.store is not None
        certs = await net.store.trust.certificates(a.config.node)
        assert [c["reason"] for c in certs] == ["superseded", None]
        # the old key cannot renew again once the new certificate is in use
        with pytest.raises(AuthError, match="superseded"):
            await node_identity.recover(net.url, stale, a.config.node, 10)
    finally:
        await net.close()


async def test_a_certificate_from_another_ca_is_refused(tnet: TlsNet) -> None:
    a = await tnet.add_edge("02245")
    await created(a)
    before = applied_digest(tnet.db)
    # an impostor CA issues a certificate naming the same node
    ca_key, ca = tls.create_ca("impostor", wall_clock_ms())
    impostor = tls.Authority(ca, ca_key, 30, 30)
    key = pki.new_key()
    issued = impostor.issue(pki.load_csr(pki.make_csr(key)), a.config.node, wall_clock_ms())
    pem = a.data / "impostor.pem"
    atomic.write(pem, pki.key_pem(key) + issued.pem.encode())
    ctx = pki.client_context(a.identity.ca_file, pem)
    await a.store.dossiers.create(birth(), "clerk")
    batch, _, _ = await a.store.sync.pending_batch(await a.store.sync.ack(), 1 << 20)
    body = encode_request(SyncRequest(node=a.config.node, events=[], batch=batch, cursor=0,
                                      want_bytes=1024, clock_ms=wall_clock_ms()))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as http:
        with pytest.raises(aiohttp.ClientError):
            await post_sync(http, tnet.url, body)
    # nor can it be passed off as an expired certificate of ours to renew
    (a.data / "tls" / "node.pem").write_bytes(pem.read_bytes())
    with pytest.raises(AuthError, match="CA"):
        await node_identity.recover(tnet.url, a.identity, a.config.node, 10)
    assert applied_digest(tnet.db) == before


async def test_no_certificate_and_operator_tokens_are_refused_on_v1(tnet: TlsNet) -> None:
    a = await tnet.add_edge("02245")
    await created(a)
    before = applied_digest(tnet.db)
    body = body_for(a, [])
    http = tnet.http()  # the CA only, no client certificate: an operator's browser
    for headers in ({}, {"Authorization": f"Bearer {tnet.op_token}"}):
        async with http.post(tnet.url + "/v1/sync", data=body,
                             headers={"Content-Type": SYNC_TYPE, **headers}) as resp:
            assert resp.status == 401
        async with http.get(tnet.url + "/v1/blobs/" + "0" * 64, headers=headers) as resp:
            assert resp.status == 401
        async with http.post(tnet.url + "/v1/renew", json={"csr": ""}, headers=headers) as resp:
            assert resp.status == 401
    # operators log in without a certificate (CERT_OPTIONAL) and use /api
    async with http.get(tnet.url + "/api/nodes",
                        headers={"Authorization": f"Bearer {tnet.op_token}"}) as resp:
        assert resp.status == 200
    # a node's certificate is not an operator login
    async with a.session() as node_http, node_http.get(tnet.url + "/api/nodes") as resp:
        assert resp.status == 401
    assert applied_digest(tnet.db) == before


async def test_a_node_reads_and_moves_only_its_communes_blobs(tnet: TlsNet) -> None:
    a, b = await tnet.add_edge("02245"), await tnet.add_edge("02246")
    await created(a)
    theirs = await created(b)
    sha = "ab" * 32
    attach = own_event(b, "attach", theirs["id"], {"sha256": sha, "name": "scan.pdf",
                                                   "mime": "application/pdf", "size": 4},
                       deps={b.config.node: 1})
    async with b.session() as http:
        status, answer = await post_sync(http, tnet.url, body_for(b, [attach]))
    assert status == 200 and not answer.rejections
    before = applied_digest(tnet.db)
    async with a.session() as http:
        async with http.get(f"{tnet.url}/v1/blobs/{sha}") as resp:
            assert resp.status == 404
        async with http.put(f"{tnet.url}/v1/blobs/{sha}?offset=0&size=4", data=b"%PDF") as resp:
            assert resp.status == 404
        async with http.get(f"{tnet.url}/v1/blobs/{sha}/data?offset=0&limit=4") as resp:
            assert resp.status == 404
    assert applied_digest(tnet.db) == before
    assert not (tnet.data / "blobs").exists() or not any((tnet.data / "blobs").rglob(sha + "*"))


async def test_node_and_operator_credentials_are_different_principals(net: Net) -> None:
    """The plain-HTTP development hub: a node's bearer credential is no operator token, and an
    operator's token is no node credential."""
    assert net.hub is not None
    token = await net.hub.store.trust.create_enroll_token("02245", None)
    status, enrolled = await net.hub.api.post("/v1/enroll", {"token": token}, token="")
    assert status == 200
    credential = enrolled["credential"]
    for path in ("/api/nodes", "/api/dossiers", "/api/security", "/api/me"):
        status, _ = await net.hub.api.get(path, token=credential)
        assert status == 401, path
    assert net.http is not None
    body = encode_request(SyncRequest(node=enrolled["node"], events=[], cursor=0, want_bytes=1024,
                                      clock_ms=wall_clock_ms()))
    async with net.http.post(net.hub.url + "/v1/sync", data=body, headers={
            "Authorization": f"Bearer {net.hub.api.token}", "Content-Type": SYNC_TYPE}) as resp:
        assert resp.status == 401
    async with net.http.post(net.hub.url + "/v1/sync", data=body, headers={
            "Authorization": f"Bearer {credential}", "Content-Type": SYNC_TYPE}) as resp:
        assert resp.status == 200


async def test_transport_errors_stay_transient(tnet: TlsNet) -> None:
    """An unreachable HTTPS hub is a transport error (retried), not an auth failure."""
    a = await tnet.add_edge("02245")
    a.client.config = dataclasses.replace(a.client.config, hub_url="https://127.0.0.1:9")
    await a.client._reconnect()
    with pytest.raises(TransportError):
        await a.client.session_once()
