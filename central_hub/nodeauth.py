"""Who a node request comes from, and the certificate endpoints: enroll, renew, recover.

Identity comes from the credential, never from the payload. Over HTTPS the credential is the
client certificate the TLS handshake verified against the province's CA; the hub then checks, on
every request, that neither the node nor that certificate (by serial) is revoked. Over plain HTTP
(loopback development, the in-process test harness) it is the bearer token from enrollment. Every
node is held to a request rate (a token bucket per node; 429 with Retry-After past it).

Renewal: `POST /v1/renew` over mTLS with a new certificate request. A node whose certificate has
expired (a commune offline for months) cannot pass the handshake with it, so it connects without a
client certificate and calls `POST /v1/recover` with the old certificate, a new request, and a
signature of that request by the old key. The hub checks the old certificate was issued by its CA
and is neither revoked nor superseded, ignoring only its expiry.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from typing import Any

from aiohttp import web

from central_hub.config import HubConfig
from central_hub.ratelimit import TokenBuckets
from central_hub.store import HubStore, Node
from central_hub.tls import Authority, check_lan_names, peer_certificate
from protocol import APP_VERSION
from protocol.errors import AuthError, NotFound, RateLimited, RemoteProtocolError, ValidationError
from service import pki
from service.web import json_body, json_response, token_of

log = logging.getLogger(__name__)

ANON_RATE, ANON_BURST = 1.0, 20.0  # enrollment and recovery, per client address


class NodeGuard:
    """Authenticates node requests and serves the certificate endpoints."""

    def __init__(self, store: HubStore, authority: Authority | None, config: HubConfig) -> None:
        self.store = store
        self.authority = authority
        self.buckets = TokenBuckets(config.node_rate_per_s, config.node_burst)
        self.anon = TokenBuckets(ANON_RATE, ANON_BURST)

    def _limit(self, buckets: TokenBuckets, key: str) -> None:
        wait = buckets.take(key, time.monotonic())
        if wait > 0:
            raise RateLimited(f"too many requests; retry in {wait:.1f} s", wait)

    async def node(self, request: web.Request) -> Node:
        """The node a /v1 request comes from (AuthError if none; RateLimited if too fast)."""
        if self.authority is not None:
            cert = peer_certificate(request)
            if cert is None:
                raise AuthError("a node certificate is required (mutual TLS)")
            node_id = pki.node_of(cert)
            commune = await self.store.trust.certificate_node(node_id, pki.serial_of(cert))
            node = Node(node_id, commune)
        else:
            token = token_of(request)
            if not token:
                raise AuthError("node credential required")
            node = await self.store.trust.authenticate(token)
        self._limit(self.buckets, node.node)
        return node

    def _need_tls(self) -> Authority:
        if self.authority is None:
            raise NotFound("this hub serves plain HTTP (development): it issues no certificates")
        return self.authority

    async def ca(self, request: web.Request) -> web.Response:
        """GET /v1/ca: the CA certificate (public; a new node checks it against its token)."""
        authority = self._need_tls()
        return web.Response(text=authority.ca_pem, content_type="application/x-pem-file")

    async def enroll(self, request: web.Request) -> web.Response:
        """POST /v1/enroll {"token"[, "csr"]}: a certificate over HTTPS, a bearer credential
        over plain HTTP."""
        self._limit(self.anon, f"ip:{request.remote}")
        body = await json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("token"), str):
            raise ValidationError("token is required", field="token")
        if self.authority is None:
            if body.get("csr") is not None:
                raise ValidationError("this hub serves plain HTTP and issues no certificates; "
                                      "enroll over https://", field="csr")
            result = await self.store.trust.enroll(body["token"])
            extra: dict[str, Any] = {"credential": result.credential}
        else:
            if not isinstance(body.get("csr"), str):
                raise ValidationError("a certificate request (csr, PEM) is required: this hub "
                                      "authenticates nodes by certificate", field="csr")
            csr = pki.load_csr(body["csr"])
            authority, now = self.authority, self.store.now_ms()

            def issue(node: str) -> tuple[str, str, int]:
                issued = authority.issue(csr, node, now)
                return issued.pem, issued.serial, issued.not_after_ms

            lan_csr = self._lan_request(body)  # checked before the token is spent
            result = await self.store.trust.enroll_certificate(body["token"], issue)
            extra = {"certificate": result.certificate, "ca": authority.ca_pem,
                     **self._lan_certificate(authority, lan_csr, body, result.node)}
        log.info("node %s enrolled for commune %s%s", result.node, result.commune,
                 f" replacing {result.replaces}" if result.replaces else "")
        return json_response({"node": result.node, "commune": result.commune,
                              "commune_name": result.commune_name, "agency": result.agency,
                              "replaces": result.replaces, **extra, "hub_version": APP_VERSION,
                              "hub_time": self.store.now_ms()})

    async def renew(self, request: web.Request) -> web.Response:
        """POST /v1/renew {"csr"} over mTLS: a new certificate for the authenticated node."""
        authority = self._need_tls()
        node = await self.node(request)
        body = await json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("csr"), str):
            raise ValidationError("csr is required", field="csr")
        csr = pki.load_csr(body["csr"])
        lan_csr = self._lan_request(body)
        response = await self._issue(authority, node.node, csr, "renewed")
        if lan_csr is None:
            return response
        answer = json.loads(response.text or "{}")
        answer.update(self._lan_certificate(authority, lan_csr, body, node.node))
        return json_response(answer)

    def _lan_request(self, body: dict[str, Any]) -> Any:
        """The optional request for an edge's LAN server certificate (`lan_csr`)."""
        if body.get("lan_csr") is None:
            return None
        if not isinstance(body["lan_csr"], str):
            raise ValidationError("lan_csr must be a PEM certificate request", field="lan_csr")
        csr = pki.load_csr(body["lan_csr"])
        hub_names = self.authority.hub_names if self.authority else frozenset()
        check_lan_names(body.get("lan_names"), hub_names)  # before the token is spent
        return csr

    def _lan_certificate(self, authority: Authority, csr: Any, body: dict[str, Any],
                         node: str) -> dict[str, Any]:
        if csr is None:
            return {}
        issued = authority.issue_lan(csr, node, body.get("lan_names"), self.store.now_ms())
        log.info("node %s: LAN certificate for %s (serial %s)", node,
                 ", ".join(body.get("lan_names") or ()), issued.serial)
        return {"lan_certificate": issued.pem}

    async def recover(self, request: web.Request) -> web.Response:
        """POST /v1/recover {"certificate", "csr", "proof"}: renew with an expired certificate."""
        authority = self._need_tls()
        self._limit(self.anon, f"ip:{request.remote}")
        body = await json_body(request)
        if not isinstance(body, dict) or not all(
                isinstance(body.get(k), str) for k in ("certificate", "csr", "proof")):
            raise ValidationError("certificate, csr and proof are required", field="certificate")
        old = pki.load_cert(body["certificate"])
        csr = pki.load_csr(body["csr"])
        try:
            proof = base64.b64decode(body["proof"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise RemoteProtocolError("proof must be base64") from exc
        authority.check_issued(old, self.store.now_ms())
        node_id = pki.node_of(old)
        try:
            await self.store.trust.recoverable_node(node_id, pki.serial_of(old))
            pki.check_renewal_proof(old, csr, proof)
        except AuthError as exc:
            await self.store.trust.alert("recovery_refused", exc.message, node=node_id)
            raise
        self._limit(self.buckets, node_id)
        return await self._issue(authority, node_id, csr, "recovered")

    async def _issue(self, authority: Authority, node: str, csr: Any, how: str) -> web.Response:
        issued = authority.issue(csr, node, self.store.now_ms())
        await self.store.trust.record_certificate(node, issued.serial, issued.not_after_ms)
        log.info("node %s %s its certificate (serial %s)", node, how, issued.serial)
        return json_response({"node": node, "certificate": issued.pem, "ca": authority.ca_pem,
                              "hub_time": self.store.now_ms()})

    async def time(self, request: web.Request) -> web.Response:
        """GET /v1/time: the hub's clock (public, like every answer's Date header): an edge
        learns it before judging certificate dates (edge_node.hubtime)."""
        return json_response({"time": self.store.now_ms()})

    def routes(self) -> list[web.RouteDef]:
        """The certificate endpoints."""
        return [web.get("/v1/ca", self.ca), web.get("/v1/time", self.time),
                web.post("/v1/enroll", self.enroll),
                web.post("/v1/renew", self.renew), web.post("/v1/recover", self.recover)]
