"""The province's CA at the hub: create or import it, issue the hub's server certificate and the
nodes' certificates, and build the server's TLS context.

Files live in `DATA/tls/`: `ca.crt`, `ca.key`, `server.crt`, `server.key` (keys owner-only). The
server asks for a client certificate but does not require one at the handshake (operators'
browsers have none); the sync endpoints refuse requests without one. A certificate that is
presented is verified by OpenSSL against the CA, validity period included, before any HTTP is read.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
import ssl
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from protocol.errors import AuthError, ValidationError
from service import atomic, pki

log = logging.getLogger(__name__)

TLS_DIR = "tls"
CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY = "ca.crt", "ca.key", "server.crt", "server.key"
CA_DAYS = 20 * 365
SERVER_DAYS = 825
BACKDATE = timedelta(hours=1)  # tolerate a little clock skew on the other side
DEFAULT_HOSTS = ("127.0.0.1", "localhost")
MAX_LAN_NAMES = 16
LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
LAN_NAME_RE = re.compile(rf"^(?=.{{1,253}}$){LABEL}(\.{LABEL})*$")


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate the CA just signed."""

    pem: str
    serial: str
    not_after_ms: int


def tls_dir(data: Path) -> Path:
    """Where the hub's TLS material lives."""
    return data / TLS_DIR


def has_tls(data: Path) -> bool:
    """True iff the data dir holds a CA and a server certificate."""
    d = tls_dir(data)
    return all((d / f).is_file() for f in (CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY))


def _serial() -> int:
    return secrets.randbits(127) | 1 << 126  # positive, 16 bytes, unpredictable


def create_ca(name: str, now_ms: int) -> tuple[pki.PrivateKey, x509.Certificate]:
    """A new self-signed CA for the province."""
    key = pki.new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "commune-sync"),
                         x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = pki.at_ms(now_ms)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(_serial())
            .not_valid_before(now - BACKDATE).not_valid_after(now + timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _leaf(ca_key: pki.PrivateKey, ca: x509.Certificate, subject: x509.Name, public_key: object,
          sans: list[x509.GeneralName], usage: x509.ObjectIdentifier, now_ms: int,
          lifetime: timedelta) -> x509.Certificate:
    now = pki.at_ms(now_ms)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject)
            .public_key(public_key).serial_number(_serial())  # type: ignore[arg-type]
            .not_valid_before(now - BACKDATE).not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca.public_key()), critical=False)  # type: ignore[arg-type]
            .sign(ca_key, hashes.SHA256()))


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def init_tls(data: Path, hosts: list[str], now_ms: int, ca_cert: Path | None = None,
             ca_key: Path | None = None, province: str = "") -> str:
    """Create (or import) the CA and issue the hub's server certificate; return the CA's
    fingerprint."""
    d = tls_dir(data)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    if ca_cert is not None or ca_key is not None:
        if ca_cert is None or ca_key is None:
            raise ValidationError("give both --ca-cert and --ca-key to import a CA")
        try:
            ca = pki.load_cert(ca_cert.read_bytes())
            key = pki.load_key(ca_key.read_bytes())
        except (OSError, ValueError) as exc:
            raise ValidationError(f"cannot read the CA: {exc}") from exc
        except Exception as exc:  # our RemoteProtocolError: the file is not a certificate
            raise ValidationError(f"cannot read the CA: {exc}") from exc
        if not pki.same_key(ca.public_key(), key.public_key()):
            raise ValidationError("--ca-key is not the key of --ca-cert")
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value \
            if _has(ca, x509.BasicConstraints) else None
        if constraints is None or not constraints.ca:
            raise ValidationError("--ca-cert is not a CA certificate (basicConstraints CA:TRUE)")
    else:
        key, ca = create_ca(f"commune-sync CA {province}".strip(), now_ms)
    server_key = pki.new_key()
    names = list(dict.fromkeys([*hosts, *DEFAULT_HOSTS]))
    server = _leaf(key, ca, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]),
                   server_key.public_key(), [_san(h) for h in names],
                   ExtendedKeyUsageOID.SERVER_AUTH, now_ms, timedelta(days=SERVER_DAYS))
    atomic.write(d / CA_KEY, pki.key_pem(key))
    atomic.write(d / CA_CERT, pki.cert_pem(ca), private=False)
    atomic.write(d / SERVER_KEY, pki.key_pem(server_key))
    atomic.write(d / SERVER_CERT, pki.cert_pem(server) + pki.cert_pem(ca), private=False)
    return pki.fingerprint(ca)


def _has(cert: x509.Certificate, ext: type[x509.ExtensionType]) -> bool:
    try:
        cert.extensions.get_extension_for_class(ext)
    except x509.ExtensionNotFound:
        return False
    return True


def server_context(data: Path) -> ssl.SSLContext:
    """TLS for `central-hub serve`: the server certificate, client certificates optional at the
    handshake but verified against the CA whenever presented."""
    d = tls_dir(data)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(d / SERVER_CERT), str(d / SERVER_KEY))
    ctx.load_verify_locations(cafile=str(d / CA_CERT))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


class Authority:
    """The CA's signing key, used to issue and check node certificates."""

    def __init__(self, ca: x509.Certificate, key: pki.PrivateKey, node_cert_days: float,
                 recover_max_days: float, hub_names: frozenset[str] = frozenset()) -> None:
        self.ca = ca
        self.hub_names = hub_names  # an edge's LAN certificate may never name the hub
        self.key = key
        self.node_cert_days = node_cert_days
        self.recover_max_days = recover_max_days
        self.ca_pem = pki.cert_pem(ca).decode()
        self.fingerprint = pki.fingerprint(ca)

    @classmethod
    def load(cls, data: Path, node_cert_days: float, recover_max_days: float) -> Authority:
        """The CA of a hub data dir."""
        d = tls_dir(data)
        server = pki.load_cert((d / SERVER_CERT).read_bytes())
        try:
            sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names = frozenset(str(n.value).lower() for n in sans)
        except x509.ExtensionNotFound:
            names = frozenset()
        return cls(pki.load_cert((d / CA_CERT).read_bytes()), pki.load_key((d / CA_KEY).read_bytes()),
                   node_cert_days, recover_max_days, names - set(DEFAULT_HOSTS))

    def issue(self, csr: x509.CertificateSigningRequest, node: str, now_ms: int) -> Issued:
        """A client certificate naming `node` for the request's key (its subject is ignored)."""
        cert = _leaf(self.key, self.ca, x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "commune-sync"),
            x509.NameAttribute(NameOID.COMMON_NAME, node)]), csr.public_key(),
            [x509.DNSName(node)], ExtendedKeyUsageOID.CLIENT_AUTH, now_ms,
            timedelta(days=self.node_cert_days))
        return Issued(pki.cert_pem(cert).decode(), pki.serial_of(cert), pki.expires_ms(cert))

    def issue_lan(self, csr: x509.CertificateSigningRequest, node: str, names: object,
                  now_ms: int) -> Issued:
        """A server certificate for an edge's desks on the office LAN, naming `names` (its host
        names and addresses there). Refused: wildcards, malformed names, more than
        MAX_LAN_NAMES, and any name of the hub itself (or the holder could pose as the hub to
        other nodes, which trust this CA)."""
        checked = check_lan_names(names, self.hub_names)
        cert = _leaf(self.key, self.ca, x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "commune-sync"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "edge LAN"),
            x509.NameAttribute(NameOID.COMMON_NAME, node)]), csr.public_key(),
            [_san(n) for n in checked], ExtendedKeyUsageOID.SERVER_AUTH, now_ms,
            timedelta(days=self.node_cert_days))
        return Issued(pki.cert_pem(cert).decode(), pki.serial_of(cert), pki.expires_ms(cert))

    def check_issued(self, cert: x509.Certificate, now_ms: int) -> None:
        """Raise AuthError unless this CA signed `cert` (its expiry is not checked here, only
        that it expired less than `recover_max_days` ago)."""
        try:
            cert.verify_directly_issued_by(self.ca)
        except (ValueError, TypeError, Exception) as exc:
            raise AuthError("the certificate was not issued by this hub's CA") from exc
        if pki.expires_ms(cert) + self.recover_max_days * 86_400_000 < now_ms:
            raise AuthError("the certificate expired too long ago to be renewed; enroll again")


def check_lan_names(names: object, hub_names: frozenset[str]) -> list[str]:
    """The names an edge asks its LAN certificate for, normalized; ValidationError otherwise."""
    if not isinstance(names, list) or not names or len(names) > MAX_LAN_NAMES:
        raise ValidationError(f"lan_names: 1–{MAX_LAN_NAMES} host names or IP addresses",
                              field="lan_names")
    out: list[str] = []
    for raw in names:
        name = raw.strip().lower() if isinstance(raw, str) else ""
        try:
            name = str(ipaddress.ip_address(name))
        except ValueError:
            if not LAN_NAME_RE.fullmatch(name):
                raise ValidationError(f"lan_names: {raw!r} is not a host name or IP address",
                                      field="lan_names") from None
        if name in hub_names:
            raise ValidationError(f"lan_names: {name} is a name of the hub", field="lan_names")
        if name not in out:
            out.append(name)
    return out


def peer_certificate(request: web.Request) -> x509.Certificate | None:
    """The client certificate of the request's TLS connection (already verified by OpenSSL
    against the CA), or None."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der) if der else None
