"""Certificate dates judged by the hub's clock, not this machine's.

Theory. OpenSSL checks a certificate's validity period against the machine's clock. An edge whose
clock is a day, a month or 27 years behind (a dead BIOS battery) then finds the hub's certificate
"not yet valid" and can never sync, though nothing is wrong with the certificate. So the edge's
TLS contexts let OpenSSL check everything but the dates (`X509_V_FLAG_NO_CHECK_TIME`: the chain up
to the pinned CA, signatures, host name, key usage), and this module checks the dates of the hub's
certificate and of the pinned CA itself, at the end of every handshake, before a byte of HTTP is
written, against the best time the edge knows (a `TimeView`):

* `now_ms` — the hub's time, when this process has learned it (a time probe or an exchange; then
  counted forward on the monotonic clock). Not valid at that time: refused.
* `floor_ms` — a time known to have passed: the hub's clock at the last successful exchange,
  kept in the database. A certificate that expired before it is refused whatever anyone says
  now, so a stolen, long-expired hub key cannot pass by also lying about the time.

Before the hub's time is known (`now_ms` None) only the floor applies; the caller then learns the
hub's time on a connection that sends nothing secret (`edge_node.hubtime`) and checks again. The
hub judges client certificates with its own clock, the reference, as before (`central_hub.tls`).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from service import pki

log = logging.getLogger(__name__)

NO_CHECK_TIME = 0x200000  # X509_V_FLAG_NO_CHECK_TIME (OpenSSL ≥ 1.1.0); the ssl module has no name
NOT_YET_VALID, EXPIRED, EXPIRED_BEFORE_FLOOR = "not_yet_valid", "expired", "expired_before_floor"


@dataclass(frozen=True, slots=True)
class TimeView:
    """What the edge knows of the time: the hub's time now (None: not learned in this process)
    and a time known to have passed (0: none)."""

    now_ms: int | None
    floor_ms: int = 0


TimeSource = Callable[[], TimeView]


class CertDateError(ssl.SSLCertVerificationError):
    """A certificate's validity period does not hold at the hub's time (or the floor)."""

    def __init__(self, reason: str, subject: str, not_before_ms: int, not_after_ms: int,
                 at_ms: int) -> None:
        self.reason = reason
        self.subject = subject
        self.not_before_ms, self.not_after_ms, self.at_ms = not_before_ms, not_after_ms, at_ms
        super().__init__(self.describe())

    def describe(self) -> str:
        """One English sentence: which certificate, which date, by which clock."""
        at, start, end = (pki.at_ms(v).strftime("%Y-%m-%d %H:%M UTC")
                          for v in (self.at_ms, self.not_before_ms, self.not_after_ms))
        if self.reason == NOT_YET_VALID:
            return f"{self.subject} is not valid before {start}; it is {at} by the hub's clock"
        if self.reason == EXPIRED:
            return f"{self.subject} expired on {end}; it is {at} by the hub's clock"
        return (f"{self.subject} expired on {end}, before {at}, the hub's time at this node's "
                "last successful sync")


def check_dates(cert: x509.Certificate, view: TimeView, subject: str) -> None:
    """Raise CertDateError unless `cert` is valid at `view.now_ms` and did not expire before
    `view.floor_ms`."""
    start, end = pki.starts_ms(cert), pki.expires_ms(cert)
    if view.floor_ms and end <= view.floor_ms:
        raise CertDateError(EXPIRED_BEFORE_FLOOR, subject, start, end, view.floor_ms)
    if view.now_ms is None:
        return
    if view.now_ms < start:
        raise CertDateError(NOT_YET_VALID, subject, start, end, view.now_ms)
    if view.now_ms >= end:
        raise CertDateError(EXPIRED, subject, start, end, view.now_ms)


class DatedContext(ssl.SSLContext):
    """A client context whose handshakes end with `check_dates` on the hub's certificate and
    the pinned CA (set `time_source` and `pinned` before use)."""

    time_source: TimeSource
    pinned: list[x509.Certificate]


class _DatedSSLObject(ssl.SSLObject):
    def do_handshake(self) -> None:
        super().do_handshake()  # raises until the handshake is done; OpenSSL checked the chain
        context = self.context
        if not isinstance(context, DatedContext):
            return
        der = self.getpeercert(binary_form=True)
        if not der:
            raise ssl.SSLCertVerificationError("the hub presented no certificate")
        view = context.time_source()
        check_dates(x509.load_der_x509_certificate(der), view, "the hub's certificate")
        for ca in context.pinned:
            check_dates(ca, view, "the province's CA certificate")


def dated_context(ca_pem: str, identity_file: Path | None, time_source: TimeSource
                  ) -> DatedContext:
    """A client context trusting only the pinned CA (no system CAs), host name checked,
    presenting the node's certificate and key from one file when given, and judging
    certificate dates by `time_source` instead of this machine's clock."""
    ctx = DatedContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cadata=ca_pem)
    ctx.verify_flags |= NO_CHECK_TIME
    ctx.sslobject_class = _DatedSSLObject
    ctx.time_source = time_source
    ctx.pinned = [x509.load_pem_x509_certificate(ca_pem.encode())]
    if identity_file is not None:
        ctx.load_cert_chain(str(identity_file))
    return ctx


def date_error(exc: BaseException) -> CertDateError | None:
    """The CertDateError behind a connection error (aiohttp wraps it), or None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, CertDateError):
            return current
        seen.add(id(current))
        inner = getattr(current, "certificate_error", None) or getattr(current, "os_error", None)
        current = inner if isinstance(inner, BaseException) else (
            current.__cause__ or current.__context__)
    return None


def openssl_date_failure(exc: BaseException) -> bool:
    """True iff OpenSSL refused a certificate for its dates (our context never asks it to;
    another context, or the peer's alert about ours, may)."""
    text = str(exc).lower()
    return any(s in text for s in ("not yet valid", "certificate has expired",
                                   "certificate expired", "certificate_expired"))
