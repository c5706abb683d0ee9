"""HTTPS for the office LAN: the names an edge's desks reach it by, and its LAN server certificate.

Several desks in one office reach the edge PC over the LAN. At enrollment (and at every renewal of
its node certificate) the edge asks the province's CA for a second, server certificate naming this
PC's host name and LAN addresses (`lan.pem` in DATA/tls, key made here); office PCs trust the
province's CA once and then see a valid https:// page. `edge-node serve` uses it whenever it
listens beyond loopback.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import ssl
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509

from protocol.errors import AuthError, ValidationError
from service import atomic, pki

log = logging.getLogger(__name__)

LAN_PEM = "lan.pem"
LOOPBACK = ("localhost", "127.0.0.1")


def local_addresses(hub_url: str) -> list[str]:
    """This PC's addresses: the one it reaches the hub from (no packet is sent to find it) and
    those its host name resolves to, loopback left out."""
    found: list[str] = []
    host = urlsplit(hub_url).hostname or "192.0.2.1"
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, 9))  # UDP connect: picks the outgoing interface, sends nothing
        found.append(s.getsockname()[0])
    with contextlib.suppress(OSError):
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            found.append(str(info[4][0]))
    return [a for a in dict.fromkeys(found) if not ipaddress.ip_address(a).is_loopback]


def lan_names(hub_url: str, extra: str = "") -> list[str]:
    """The names for the LAN certificate: loopback, this PC's host name and addresses, and the
    `extra` ones (comma-separated, from `--lan-name` / node.toml `lan_names`)."""
    names = [*LOOPBACK]
    hostname = socket.gethostname().strip().lower()
    if hostname and hostname.replace("-", "").replace(".", "").isalnum():
        names.append(hostname)
    names += local_addresses(hub_url)
    names += [n.strip().lower() for n in extra.split(",") if n.strip()]
    return list(dict.fromkeys(names))[:16]


def lan_file(data: Path) -> Path:
    """Where the LAN key and certificate live."""
    return data / "tls" / LAN_PEM


def certificate_names(cert: x509.Certificate) -> list[str]:
    """The host names and addresses a certificate names."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n.value) for n in sans]


def request_body(hub_url: str, extra: str) -> tuple[pki.PrivateKey, dict[str, object]]:
    """A new LAN key and the fields asking the hub to certify it (`lan_csr`, `lan_names`)."""
    key = pki.new_key()
    return key, {"lan_csr": pki.make_csr(key).decode(), "lan_names": lan_names(hub_url, extra)}


def accept(data: Path, ca: x509.Certificate, key: pki.PrivateKey, pem: object) -> None:
    """Keep the LAN certificate the hub answered with (nothing if it sent none)."""
    if isinstance(pem, str) and pem:
        atomic.write(lan_file(data), check_lan_certificate(ca, key, pem))
        log.info("LAN certificate for %s", ", ".join(certificate_names(pki.load_cert(pem))))


def check_lan_certificate(ca: x509.Certificate, key: pki.PrivateKey, pem: str) -> bytes:
    """The key and certificate as one PEM file, once checked: issued by our CA, for our key."""
    cert = pki.load_cert(pem)
    try:
        cert.verify_directly_issued_by(ca)
    except Exception as exc:  # any failure here means: not from our CA
        raise AuthError("the hub answered with a LAN certificate not issued by the pinned CA") \
            from exc
    if not pki.same_key(cert.public_key(), key.public_key()):
        raise AuthError("the hub answered with a LAN certificate for another key")
    return pki.key_pem(key) + pki.cert_pem(cert) + pki.cert_pem(ca)


def server_context(data: Path) -> ssl.SSLContext:
    """TLS for `edge-node serve` on the LAN; a clear error if the node has no LAN certificate."""
    path = lan_file(data)
    if not path.is_file():
        raise ValidationError(
            "this node has no LAN certificate (it enrolled over plain HTTP, or before LAN "
            "certificates existed: it gets one at its next certificate renewal): serve on "
            "127.0.0.1, or pass --tls off to serve the LAN in clear text")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(path))
    return ctx
