"""Web hardening on both servers: security headers, cookie flags, login throttling, and no
personal data in the logs."""

from __future__ import annotations

import logging

import pytest

from tests.harness import PASSWORD, Net, birth
from tests.security.tlsnet import TlsNet

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def assert_hardened(headers: object, where: str) -> None:
    for name, value in HEADERS.items():
        assert headers.get(name) == value, (where, name)  # type: ignore[attr-defined]
    csp = headers.get("Content-Security-Policy", "")  # type: ignore[attr-defined]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, (where, csp)


async def test_every_answer_carries_the_security_headers(net: Net) -> None:
    assert net.hub is not None and net.http is not None
    edge = await net.add_edge("02245")
    for base, token in ((net.hub.url, net.hub.api.token), (edge.api.base, edge.api.token)):
        for method, path, auth in (("GET", "/healthz", False), ("GET", "/api/dossiers", True),
                                   ("GET", "/api/dossiers", False), ("GET", "/nowhere", False),
                                   ("GET", "/api/dossiers/not-an-id", True),
                                   ("POST", "/api/login", False)):
            headers = {"Authorization": f"Bearer {token}"} if auth else {}
            async with net.http.request(method, base + path, headers=headers,
                                        allow_redirects=False) as resp:
                assert_hardened(resp.headers, f"{base}{path} {resp.status}")
                if path.startswith("/api/"):
                    assert resp.headers.get("Cache-Control") == "no-store", path


async def test_session_cookies_are_httponly_strict_and_secure_over_https(
        net: Net, tnet: TlsNet) -> None:
    assert net.hub is not None and net.http is not None
    async with net.http.post(net.hub.url + "/api/login",
                             json={"username": "op", "password": PASSWORD}) as resp:
        cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback: a Secure cookie would never return
    http = tnet.http()
    async with http.post(tnet.url + "/api/login",
                         json={"username": "op", "password": PASSWORD}) as resp:
        assert resp.status == 200
        cookie = resp.headers["Set-Cookie"]
        assert resp.headers.get("Strict-Transport-Security")
        assert_hardened(resp.headers, "https login")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" in cookie


async def test_logins_are_throttled(net: Net) -> None:
    assert net.hub is not None
    for _ in range(5):
        status, _ = await net.hub.api.post("/api/login", {"username": "op",
                                                          "password": "not-the-password"})
        assert status == 401
    status, body = await net.hub.api.post("/api/login", {"username": "op",
                                                         "password": PASSWORD})
    assert status == 401 and "wait" in body["message"]


async def test_no_personal_data_in_the_logs(net: Net, caplog: pytest.LogCaptureFixture) -> None:
    """At the level the servers run (INFO; `serve` turns the access log off, since search URLs
    carry names), nothing logged names a citizen — refused input included."""
    caplog.set_level(logging.INFO)
    edge = await net.add_edge("02245")
    name, citizen = "Lò Thị Hoa", "008190012345"
    status, view = await edge.api.post("/api/dossiers", birth(name=name, citizen_id=citizen))
    assert status == 201
    await edge.api.get(f"/api/dossiers?q={citizen}")
    await edge.api.get("/api/dossiers?q=Hoa")
    status, _ = await edge.api.patch(f"/api/dossiers/{view['id']}", {
        "base": view["version"], "set": {"applicant.citizen_id": "12"}})  # refused: logged?
    assert status in (400, 422)
    await edge.sync()
    assert net.hub is not None
    await net.hub.api.get(f"/api/dossiers?q={citizen}")
    text = "\n".join(r.getMessage() for r in caplog.records if r.name != "aiohttp.access")
    assert caplog.records  # something was logged, and none of it names the citizen
    for secret in (name, citizen, "Hoàng Thị Cúc", "0912345678", "Nà Khá"):
        assert secret not in text, secret
