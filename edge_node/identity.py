"""The node's certificate identity: its key (made here, never sent), its certificate, the pinned CA,
and renewal before expiry — or recovery after it.

Files in `DATA/tls/`: `node.pem` holds the key and the certificate together (owner-only, replaced
atomically, so a crash mid-renewal leaves the old pair intact), `ca.crt` the province's CA pinned
at enrollment: the hub's server certificate is verified against it alone, never the system's CAs.
A certificate is renewed when less than a third of its lifetime is left (`POST /v1/renew` over
mTLS); one that has already expired is renewed by signing the new request with the old key
(`POST /v1/recover`, server-authenticated TLS only).
"""

from __future__ import annotations

import base64
import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from cryptography import x509

from protocol.errors import AuthError, NetworkError, RemoteProtocolError
from service import atomic, certclock, pki

log = logging.getLogger(__name__)

TLS_DIR = "tls"
NODE_PEM = "node.pem"
CA_CERT = "ca.crt"
RENEW_FRACTION = 1 / 3  # renew when less than this share of the lifetime is left
MARGIN_MS = 60_000  # treat a certificate this close to expiry as expired already


class Identity:
    """The TLS identity files of one node's data dir."""

    def __init__(self, data: Path) -> None:
        self.dir = data / TLS_DIR
        self.pem = self.dir / NODE_PEM
        self.ca_file = self.dir / CA_CERT

    def exists(self) -> bool:
        """True iff the node holds a certificate and a pinned CA."""
        return self.pem.is_file() and self.ca_file.is_file()

    def ca(self) -> x509.Certificate:
        """The pinned CA."""
        return pki.load_cert(self.ca_file.read_bytes())

    def certificate(self) -> x509.Certificate:
        """The node's current certificate."""
        return pki.load_cert(self.pem.read_bytes())

    def key(self) -> pki.PrivateKey:
        """The node's current private key."""
        return pki.load_key(self.pem.read_bytes())

    def context(self, with_certificate: bool = True,
                time_source: certclock.TimeSource | None = None) -> ssl.SSLContext:
        """A client context trusting only the pinned CA, presenting our certificate; with
        `time_source`, certificate dates are judged by the hub's time it gives, not by this
        machine's clock (`service.certclock`)."""
        identity = self.pem if with_certificate else None
        if time_source is None:
            return pki.client_context(self.ca_file, identity)
        return certclock.dated_context(self.ca_file.read_text(encoding="ascii"), identity,
                                       time_source)

    def pin(self, ca_pem: str) -> None:
        """Keep the CA certificate checked at enrollment."""
        atomic.write(self.ca_file, ca_pem)

    def accept(self, key: pki.PrivateKey, cert_pem: str, node: str) -> x509.Certificate:
        """Check a certificate the hub issued for `key` and make it the node's identity."""
        cert = pki.load_cert(cert_pem)
        try:
            cert.verify_directly_issued_by(self.ca())
        except Exception as exc:  # any failure here means: not from our CA
            raise AuthError("the hub answered with a certificate not issued by the pinned CA") \
                from exc
        if not pki.same_key(cert.public_key(), key.public_key()):
            raise AuthError("the hub answered with a certificate for another key")
        if pki.node_of(cert) != node:
            raise AuthError(f"the certificate names {pki.node_of(cert)}, not {node}")
        atomic.write(self.pem, pki.key_pem(key) + pki.cert_pem(cert))
        return cert

    def due(self, now_ms: int) -> str:
        """"ok", "renew" (less than a third of its lifetime left) or "expired" at `now_ms`
        (corrected time: the hub's certificate dates are in the hub's time)."""
        cert = self.certificate()
        start, end = pki.starts_ms(cert), pki.expires_ms(cert)
        if now_ms >= end - MARGIN_MS:
            return "expired"
        if end - now_ms < (end - start) * RENEW_FRACTION:
            return "renew"
        return "ok"


async def post_json(http: aiohttp.ClientSession, url: str, body: dict[str, Any],
                    timeout_s: float) -> dict[str, Any]:
    """POST JSON, return the JSON answer; errors mapped to ours."""
    try:
        async with http.post(url, json=body,
                             timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            status = resp.status
            answer = await resp.json(content_type=None)
    except aiohttp.ClientConnectorCertificateError as exc:
        dated = certclock.date_error(exc)
        raise AuthError(f"refusing the hub: {dated.describe()}" if dated else
                        f"the hub's certificate is not from the pinned CA: {exc}") from exc
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise NetworkError(f"cannot reach the hub: {exc or exc.__class__.__name__}") from exc
    except ValueError as exc:
        raise NetworkError("the hub's answer is not JSON") from exc
    if not isinstance(answer, dict):
        raise RemoteProtocolError("the hub's answer is not a JSON object")
    if status >= 500 or status == 429:
        raise NetworkError(f"hub answered {status}: {answer.get('message')}")
    if status != 200:
        raise AuthError(f"hub refused ({status}): {answer.get('message')}")
    return answer


async def renew(http: aiohttp.ClientSession, hub: str, identity: Identity, node: str,
                timeout_s: float, extra: dict[str, Any] | None = None,
                on_answer: Callable[[dict[str, Any]], None] | None = None) -> x509.Certificate:
    """Renew over the current mTLS session with a new key; `extra` fields go with the request
    (the LAN certificate's, edge_node/lan.py) and `on_answer` sees the hub's answer."""
    key = pki.new_key()
    answer = await post_json(http, f"{hub}/v1/renew",
                             {"csr": pki.make_csr(key).decode(), **(extra or {})}, timeout_s)
    cert = identity.accept(key, str(answer.get("certificate", "")), node)
    if on_answer is not None:
        on_answer(answer)
    log.info("node certificate renewed; valid until %s", cert.not_valid_after_utc.isoformat())
    return cert


async def recover(hub: str, identity: Identity, node: str, timeout_s: float,
                  time_source: certclock.TimeSource | None = None) -> x509.Certificate:
    """Renew an expired certificate: the old key signs the new request."""
    old_key, old = identity.key(), identity.certificate()
    key = pki.new_key()
    csr_pem = pki.make_csr(key)
    proof = pki.renewal_proof(old_key, pki.load_csr(csr_pem))
    connector = aiohttp.TCPConnector(ssl=identity.context(False, time_source))
    async with aiohttp.ClientSession(connector=connector) as http:
        answer = await post_json(http, f"{hub}/v1/recover", {
            "certificate": pki.cert_pem(old).decode(), "csr": csr_pem.decode(),
            "proof": base64.b64encode(proof).decode()}, timeout_s)
    cert = identity.accept(key, str(answer.get("certificate", "")), node)
    log.info("expired node certificate recovered; valid until %s",
             cert.not_valid_after_utc.isoformat())
    return cert
