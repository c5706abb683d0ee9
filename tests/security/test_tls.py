"""Enrollment and certificates: the token, pinning the CA, the node's key, renewal, revocation from
the CLI, and plain HTTP kept to loopback."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509

from central_hub import tls
from central_hub.cli import main as hub_main
from central_hub.store import TOKEN_TTL_MS, HubStore
from edge_node.cli import main as edge_main
from edge_node.config import EdgeConfig
from edge_node.enroll import enroll
from edge_node.identity import Identity
from protocol.errors import AuthError, ValidationError
from service import pki
from service.dossier_store import wall_clock_ms
from tests.harness import birth
from tests.security.tlsnet import TlsNet, applied_digest, count


async def test_the_enrollment_token(tnet: TlsNet) -> None:
    assert tnet.store is not None and tnet.authority is not None
    token = await tnet.token("02245")
    secret, pin = pki.split_token(token)
    assert secret.startswith("enr_") and len(secret) - 4 >= 32  # 192 random bits (≥ 128)
    assert pin == tnet.authority.fingerprint[:32]
    assert not token.startswith("-")
    # stored hashed: neither the token nor its secret is anywhere in the database
    raw = (tnet.db).read_bytes() + (tnet.db.with_name("hub.db-wal")).read_bytes()
    assert secret.encode() not in raw and secret[4:].encode() not in raw
    # bound to one commune, single use
    edge = await tnet.add_edge("02246")
    assert edge.config.commune == "02246"
    config = await enroll(tnet.root / "first", tnet.url, token)
    assert config.commune == "02245"
    with pytest.raises(AuthError, match="unknown, used or expired"):
        await enroll(tnet.root / "second", tnet.url, token)
    assert not (tnet.root / "second").exists()
    # expires after 72 hours
    late = await tnet.token("02245")
    tnet.store.wall = lambda: wall_clock_ms() + TOKEN_TTL_MS + 1000
    try:
        with pytest.raises(AuthError, match="expired"):
            await enroll(tnet.root / "late", tnet.url, late)
    finally:
        tnet.store.wall = wall_clock_ms
    # a made-up token and a token without a certificate request are refused, the latter
    # without being used up
    with pytest.raises(AuthError):
        await enroll(tnet.root / "made-up", tnet.url,
                     "enr_madeup." + tnet.authority.fingerprint[:32])
    fresh = await tnet.token("02245")
    http = tnet.http()
    async with http.post(tnet.url + "/v1/enroll", json={"token": fresh}) as resp:
        assert resp.status == 422 and "csr" in (await resp.json())["message"]
    assert (await enroll(tnet.root / "fresh", tnet.url, fresh)).commune == "02245"


async def test_the_node_key_stays_home_and_the_certificate_names_the_node(tnet: TlsNet) -> None:
    edge = await tnet.add_edge("02245")
    pem = edge.identity.pem
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert stat.S_IMODE(edge.identity.dir.stat().st_mode) == 0o700
    cert = edge.identity.certificate()
    assert pki.node_of(cert) == edge.config.node
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [edge.config.node]
    cert.verify_directly_issued_by(edge.identity.ca())
    assert pki.fingerprint(edge.identity.ca()) == tnet.authority.fingerprint  # type: ignore[union-attr]
    # the private key is nowhere at the hub
    key = pki.key_pem(edge.identity.key())
    body = key.split(b"\n")[1]
    for path in tnet.data.rglob("*"):
        if path.is_file():
            assert body not in path.read_bytes(), path
    assert not edge.config.credential  # no bearer credential over HTTPS


async def test_a_mismatched_ca_is_refused_before_the_token_is_sent(tnet: TlsNet) -> None:
    assert tnet.store is not None
    token = await tnet.store.create_enroll_token("02245", None, "0" * 64)  # another CA's pin
    before = applied_digest(tnet.db)
    with pytest.raises(AuthError, match="does not match"):
        await enroll(tnet.root / "edge", tnet.url, token)
    assert applied_digest(tnet.db) == before  # the token was not used
    assert not (tnet.root / "edge").exists()
    # a token without a fingerprint needs --ca-cert for an https:// hub
    bare = await tnet.store.create_enroll_token("02245", None)
    with pytest.raises(ValidationError, match="fingerprint"):
        await enroll(tnet.root / "edge", tnet.url, bare)
    config = await enroll(tnet.root / "edge", tnet.url, bare,
                          ca_file=tls.tls_dir(tnet.data) / tls.CA_CERT)
    assert config.node


async def test_the_edge_trusts_only_the_pinned_ca(tnet: TlsNet, tmp_path: Path) -> None:
    """A server with a certificate from another CA (a system-trusted one would be no different:
    the pinned CA is the only trust anchor) is refused, and the token never leaves."""
    other = tmp_path / "other"
    other.mkdir()
    tls.init_tls(other, [], wall_clock_ms())
    from aiohttp import web
    seen: list[bytes] = []

    async def anything(request: web.Request) -> web.Response:
        seen.append(await request.read())
        return web.Response(text=(tls.tls_dir(other) / tls.CA_CERT).read_text())

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    from aiohttp.test_utils import TestServer
    impostor = TestServer(app, host="127.0.0.1")
    await impostor.start_server(ssl=tls.server_context(other))
    try:
        token = await tnet.token("02245")
        url = f"https://127.0.0.1:{impostor.port}"
        with pytest.raises(AuthError, match="does not match"):
            await enroll(tmp_path / "edge", url, token)
        with pytest.raises(AuthError, match="pinned CA"):
            await enroll(tmp_path / "edge", url, token,
                         ca_file=tls.tls_dir(tnet.data) / tls.CA_CERT)
        assert all(token.encode() not in body for body in seen)
    finally:
        await impostor.close()
    # and a node's sync client refuses it too
    edge = await tnet.add_edge("02245")
    edge.client.config = dataclasses.replace(edge.client.config, hub_url=url)
    await edge.client._reconnect()
    await edge.store.create(birth(), "clerk")
    with pytest.raises(Exception):  # noqa: B017 — refused one way or another
        await edge.client.session_once()


async def test_renewal_over_mtls_before_expiry(tmp_path: Path) -> None:
    # 12-hour certificates; two hours before expiry less than a third of the lifetime is left
    net = await TlsNet(tmp_path, node_cert_days=0.5).start()
    try:
        assert net.store is not None and net.authority is not None
        # issued ten hours ago (by the hub's clock, which dates certificates): two hours are
        # left now. The edge judges by the hub's time, so skewing the edge's own clock would
        # not make it renew.
        authority, issue = net.authority, net.authority.issue
        authority.issue = lambda csr, node, now: issue(csr, node, now - 10 * 3600 * 1000)  # type: ignore[method-assign]
        edge = await net.add_edge("02245")
        authority.issue = issue  # type: ignore[method-assign]
        old = edge.identity.certificate()
        assert edge.identity.due(wall_clock_ms() - 10 * 3600 * 1000) == "ok"
        assert edge.identity.due(wall_clock_ms()) == "renew"
        await edge.store.create(birth(), "clerk")
        result = await edge.client.session_once()
        assert result.pending_after == 0
        new = edge.identity.certificate()
        assert pki.serial_of(new) != pki.serial_of(old)
        assert not pki.same_key(new.public_key(), old.public_key())
        assert net.store is not None
        certs = await net.store.certificates(edge.config.node)
        assert [c["reason"] for c in certs] == ["superseded", None]  # the new one was used
        assert count(net.db, "SELECT count(*) FROM events") == 1
    finally:
        await net.close()


def _cli(main: object, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(args))  # type: ignore[operator]
    return code, out.getvalue()


def test_cli_init_imports_a_ca_and_names_the_hosts(tmp_path: Path) -> None:
    ca_key, ca = tls.create_ca("Sở TT&TT tỉnh", wall_clock_ms())
    (tmp_path / "ca.crt").write_bytes(pki.cert_pem(ca))
    (tmp_path / "ca.key").write_bytes(pki.key_pem(ca_key))
    code, out = _cli(hub_main, "init", "--data", str(tmp_path / "hub"), "--ca-cert",
                     str(tmp_path / "ca.crt"), "--ca-key", str(tmp_path / "ca.key"),
                     "--host", "hub.tinh.gov.vn", "--host", "10.8.0.1")
    assert code == 0 and pki.fingerprint(ca) in out
    d = tls.tls_dir(tmp_path / "hub")
    assert (d / tls.CA_CERT).read_bytes() == pki.cert_pem(ca)
    assert stat.S_IMODE((d / tls.CA_KEY).stat().st_mode) == 0o600
    assert stat.S_IMODE((d / tls.SERVER_KEY).stat().st_mode) == 0o600
    server = pki.load_cert((d / tls.SERVER_CERT).read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"hub.tinh.gov.vn", "localhost"} <= set(names.get_values_for_type(x509.DNSName))
    assert {str(a) for a in names.get_values_for_type(x509.IPAddress)} == {"10.8.0.1",
                                                                           "127.0.0.1"}
    # a key that is not the certificate's is refused, and nothing is left behind
    (tmp_path / "other.key").write_bytes(pki.key_pem(pki.new_key()))
    code, _ = _cli(hub_main, "init", "--data", str(tmp_path / "bad"), "--ca-cert",
                   str(tmp_path / "ca.crt"), "--ca-key", str(tmp_path / "other.key"))
    assert code != 0 and not (tmp_path / "bad").exists()


def test_plain_http_is_for_loopback_only(tmp_path: Path) -> None:
    code, _ = _cli(hub_main, "init", "--data", str(tmp_path / "hub"))
    assert code == 0
    for path in tls.tls_dir(tmp_path / "hub").iterdir():  # a hub without TLS material
        path.unlink()
    code, _ = _cli(hub_main, "serve", "--data", str(tmp_path / "hub"), "--host", "0.0.0.0",
                   "--port", "9")
    assert code != 0
    code, _ = _cli(edge_main, "init", "--data", str(tmp_path / "edge"), "--hub",
                   "http://10.0.0.1:8700", "--token", "enr_x")
    assert code != 0 and not (tmp_path / "edge").exists()
    fields = {"node": "02245.01", "commune": "02245", "commune_name": "x", "agency": "x",
              "credential": "c"}
    from service import config as cfg
    with pytest.raises(ValidationError, match="hub_url"):
        cfg.parse(EdgeConfig, {**fields, "hub_url": "http://hub.tinh.gov.vn:8700"})
    assert cfg.parse(EdgeConfig, {**fields, "hub_url": "http://hub.tinh.gov.vn:8700",
                                  "insecure_http": True}).insecure_http
    assert cfg.parse(EdgeConfig, {**fields, "hub_url": "http://127.0.0.1:8700"})


def test_cli_revoke_takes_effect_on_the_next_request(tmp_path: Path) -> None:
    async def scenario() -> None:
        net = await TlsNet(tmp_path).start()
        try:
            edge = await net.add_edge("02245")
            await edge.client.session_once()  # keeps its connection open
            code = await asyncio.to_thread(
                hub_main, ["node", "revoke", "--data", str(net.data), "--node", edge.config.node])
            assert code == 0
            async with edge.session() as http, http.get(
                    f"{net.url}/v1/blobs/{'0' * 64}") as resp:
                assert resp.status == 401
            with pytest.raises(AuthError, match="revoked"):
                await edge.client.session_once()
        finally:
            await net.close()

    asyncio.run(scenario())


async def test_operators_browsers_need_no_certificate(tnet: TlsNet) -> None:
    http = tnet.http()
    async with http.get(tnet.url + "/healthz") as resp:
        assert resp.status == 200
    async with http.post(tnet.url + "/api/login",
                         json={"username": "op", "password": "wrong-password"}) as resp:
        assert resp.status == 401
    assert tnet.server is not None and tnet.data.exists()
    ctx = tls.server_context(tnet.data)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_OPTIONAL


async def test_hubstore_enroll_keeps_its_signature(tmp_path: Path) -> None:
    """The simulation and the harness enroll with a bare token and get a bearer credential."""
    store = await HubStore.open(tmp_path / "hub.db")
    try:
        enrolled = await store.enroll(await store.create_enroll_token("02245", None))
        assert enrolled.credential and not enrolled.certificate
        assert (await store.authenticate(enrolled.credential)).node == enrolled.node
    finally:
        await store.close()
    assert Identity(tmp_path).exists() is False
