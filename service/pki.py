"""X.509 helpers both sides share: node keys, certificate requests, fingerprints, renewal proofs.

The province's CA issues each node a certificate naming it (CN and SAN = node id). An enrollment
token carries a prefix of the CA certificate's SHA-256 after a dot (`enr_<secret>.<fingerprint>`),
so a new node can pin the CA on first contact without trusting anything else. A node proves it
still holds its key, when its certificate has expired, by signing the new request with the old key
(`renewal_proof`): a replayed proof only yields a certificate for a key the replayer does not hold.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from protocol.errors import AuthError, RemoteProtocolError

log = logging.getLogger(__name__)

FINGERPRINT_HEX = 32  # 128 bits of the CA certificate's SHA-256 travel in a token
PROOF_DOMAIN = b"commune-sync renew v1\x00"
MAX_PEM = 16 * 1024
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
T = TypeVar("T")


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: PrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM (the file holding it is owner-only)."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_key(pem: bytes) -> PrivateKey:
    """A private key from PEM (EC or RSA)."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise AuthError("only EC and RSA keys are supported")
    return key


def cert_pem(cert: x509.Certificate) -> bytes:
    """A certificate as PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


def _from_pem(pem: str | bytes, what: str, load: Callable[[bytes], T]) -> T:
    """`load` the PEM a peer sent, bounded in size; RemoteProtocolError naming `what` if it is
    not one."""
    raw = pem.encode() if isinstance(pem, str) else pem
    if len(raw) > MAX_PEM:
        raise RemoteProtocolError(f"{what} too large")
    try:
        return load(raw)
    except ValueError as exc:
        raise RemoteProtocolError(f"not a PEM {what}: {exc}") from exc


def load_cert(pem: str | bytes) -> x509.Certificate:
    """One certificate from PEM; RemoteProtocolError if it is not one."""
    return _from_pem(pem, "certificate", x509.load_pem_x509_certificate)


def make_csr(key: PrivateKey) -> bytes:
    """A certificate request for `key` (the hub ignores its subject and names the node itself)."""
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "commune-sync node")]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM)


def load_csr(pem: str | bytes) -> x509.CertificateSigningRequest:
    """A certificate request from PEM, its self-signature checked and its key type allowed."""
    csr = _from_pem(pem, "certificate request", x509.load_pem_x509_csr)
    if not csr.is_signature_valid:
        raise RemoteProtocolError("the certificate request's signature is invalid")
    check_public_key(csr.public_key())
    return csr


def check_public_key(key: object) -> None:
    """Allow P-256/P-384 and RSA ≥ 2048 keys only."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ("secp256r1", "secp384r1"):
            raise RemoteProtocolError("EC keys must be P-256 or P-384")
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise RemoteProtocolError("RSA keys must have at least 2048 bits")
    else:
        raise RemoteProtocolError("only EC (P-256/P-384) and RSA keys are accepted")


def csr_der(csr: x509.CertificateSigningRequest) -> bytes:
    """The DER bytes of a request (what a renewal proof covers)."""
    return csr.public_bytes(serialization.Encoding.DER)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, in hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


def split_token(token: str) -> tuple[str, str | None]:
    """(secret, CA fingerprint prefix or None) of an enrollment token."""
    secret, dot, pin = token.partition(".")
    return secret, (pin.lower() if dot and pin else None)


def same_key(a: object, b: object) -> bool:
    """True iff two public keys are the same key."""
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return bool(a.public_bytes(der, fmt) == b.public_bytes(der, fmt))  # type: ignore[attr-defined]


def node_of(cert: x509.Certificate) -> str:
    """The node id a certificate names (its common name)."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or not isinstance(names[0].value, str):
        raise AuthError("the certificate does not name one node")
    return names[0].value


def serial_of(cert: x509.Certificate) -> str:
    """The certificate's serial number in hex (x509 serials outgrow SQLite integers)."""
    return format(cert.serial_number, "x")


def expires_ms(cert: x509.Certificate) -> int:
    """When the certificate expires, in ms since the epoch."""
    return int(cert.not_valid_after_utc.timestamp() * 1000)


def starts_ms(cert: x509.Certificate) -> int:
    """When the certificate became valid, in ms since the epoch."""
    return int(cert.not_valid_before_utc.timestamp() * 1000)


def at_ms(ms: int) -> datetime:
    """A time in ms as an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def sign(key: PrivateKey, data: bytes) -> bytes:
    """`key`'s signature over `data` (ECDSA or PKCS#1 v1.5, SHA-256)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    from cryptography.hazmat.primitives.asymmetric import padding
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def verify(cert: x509.Certificate, data: bytes, signature: bytes, what: str) -> None:
    """Raise AuthError unless `signature` is the certificate's key signing `data`."""
    key = cert.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            from cryptography.hazmat.primitives.asymmetric import padding
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise AuthError("unsupported key type")
    except InvalidSignature as exc:
        raise AuthError(f"{what} is not signed by the certificate's key") from exc


def renewal_proof(old_key: PrivateKey, csr: x509.CertificateSigningRequest) -> bytes:
    """The old key's signature over a new request: proof of holding the old identity."""
    return sign(old_key, PROOF_DOMAIN + hashlib.sha256(csr_der(csr)).digest())


def check_renewal_proof(old: x509.Certificate, csr: x509.CertificateSigningRequest,
                        proof: bytes) -> None:
    """Raise AuthError unless `proof` is the old certificate's key signing `csr`."""
    verify(old, PROOF_DOMAIN + hashlib.sha256(csr_der(csr)).digest(), proof, "the renewal proof")


def client_context(ca_file: Path, identity_file: Path | None) -> ssl.SSLContext:
    """A client TLS context trusting only the pinned CA (no system CAs), presenting the node's
    certificate and key from one file when given."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if identity_file is not None:
        ctx.load_cert_chain(str(identity_file))
    return ctx


def unverified_context() -> ssl.SSLContext:
    """A client context that checks nothing: only for fetching the CA certificate, which is then
    compared with the fingerprint in the enrollment token before anything secret is sent."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx
