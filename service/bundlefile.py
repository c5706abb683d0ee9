"""Bundle files on disk (`protocol/bundle.py`): written whole or not at all, read in two passes.

Writing streams the sections to a temporary file beside the target while hashing them, then
writes the signed header and the sections to a second temporary file moved over the target
(`service/atomic.py`): a stick pulled out mid-write leaves no half bundle under the name.

Reading checks everything before anything is applied: the first pass walks the whole file —
its length against the header (truncation), the SHA-256 of everything after the signature
(corruption), every section decoded under the codec's limits by the caller's `check` — and the
signature against the certificate the header carries (the caller then decides whether that
certificate may speak: `verify_issued`). The second pass (`sections`) hands the sections to the
caller to apply. Each section is held against the process's memory budget for bodies
(`service/budget.py`) while it is decoded, as a sync body is.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography import x509

from protocol import bundle
from protocol.bundle import BundleRefused, Header
from protocol.codec import inflate_bound
from protocol.errors import AuthError, RemoteProtocolError
from service import atomic, pki
from service.budget import BODIES

log = logging.getLogger(__name__)

COPY = 1 << 20
Check = Callable[[Header, int, bytes], Awaitable[None]]  # (header, kind, body): raise if invalid


class Writer:
    """Sections first (streamed to a temporary file), then the signed header: `finish`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".body")
        self._body_path = Path(name)
        self._body: BinaryIO = os.fdopen(fd, "w+b")
        self._sha = hashlib.sha256()
        self.length = 0
        self.count = 0

    def add(self, kind: int, body: bytes) -> None:
        """Append one section."""
        raw = bundle.section(kind, body)
        self._body.write(raw)
        self._sha.update(raw)
        self.length += len(raw)
        self.count += 1

    def finish(self, header: Callable[[int, bytes, int], Header], key: pki.PrivateKey
               ) -> Header:
        """Write the file: `header(body length, body SHA-256, sections)`, signed by `key`."""
        try:
            made = header(self.length, self._sha.digest(), self.count)
            raw = made.encode()
            fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.",
                                        suffix=".tmp")
            tmp = Path(name)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(bundle.prelude(raw, pki.sign(key, bundle.signed_data(raw))))
                    self._body.seek(0)
                    while block := self._body.read(COPY):
                        out.write(block)
                atomic.move(tmp, self.path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            return made
        finally:
            self.discard()

    def discard(self) -> None:
        """Drop the sections written so far (nothing is left behind)."""
        self._body.close()
        self._body_path.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class Imported:
    """What an import did, at either end: `again` (the same bundle was imported before:
    nothing done), the events new here, the ack now held; at the hub the events refused and
    the scans stored or not taken, at the edge whether its cursor moved."""

    header: Header
    again: bool = False
    new_events: int = 0
    ack: int = 0
    rejected: int = 0
    scans: int = 0
    scans_refused: int = 0
    cursor_moved: bool = True


@dataclass(frozen=True, slots=True)
class Opened:
    """A bundle whose every byte has been checked: its header, the header's SHA-256 (what the
    receiver remembers it by), the certificate that signed it, where its sections start."""

    path: Path
    header: Header
    digest: bytes
    signer: x509.Certificate
    start: int


def _read(fh: BinaryIO, n: int, what: str) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise BundleRefused(f"bundle truncated: {what} cut short")
    return data


async def open_bundle(path: Path, addressed: Callable[[Header], None], check: Check) -> Opened:
    """Check the whole file at `path` (see the module's docstring); BundleRefused with one line
    saying what is wrong. `addressed` refuses a header not meant for this receiver, before the
    sections are read. The signer's certificate is only checked to have made the signature."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(len(bundle.MAGIC) + bundle.PRELUDE.size)
            header_raw = _read(fh, bundle.read_prelude_start(head), "header")
            header = bundle.decode_header(header_raw)
            (sig_len,) = bundle.SIG_LEN.unpack(_read(fh, bundle.SIG_LEN.size, "signature"))
            signer = _signer(header, header_raw, _read(fh, sig_len, "signature"))
            addressed(header)
            start = fh.tell()
            if size < start + header.body_len:
                raise BundleRefused(f"bundle truncated: {size} of {start + header.body_len} "
                                    "bytes (copied before it was complete?); nothing applied")
            if size > start + header.body_len:
                raise BundleRefused("bundle corrupted: bytes after its end; nothing applied")
            await _walk(fh, header, check)
    except OSError as exc:
        raise BundleRefused(f"cannot read the bundle {path}: {exc.strerror or exc}") from exc
    return Opened(path, header, hashlib.sha256(header_raw).digest(), signer, start)


def _signer(header: Header, header_raw: bytes, signature: bytes) -> x509.Certificate:
    """The certificate the header carries, once it is shown to have signed the header."""
    try:
        signer = pki.load_cert(header.cert)
    except RemoteProtocolError as exc:
        raise BundleRefused("bundle corrupted: the signer's certificate in its header is "
                            "damaged; nothing applied") from exc
    try:
        pki.verify(signer, bundle.signed_data(header_raw), signature, "the bundle")
    except AuthError as exc:
        raise BundleRefused(f"bundle signature invalid ({exc.message}): altered after it was "
                            "written; nothing applied") from exc
    return signer


async def _walk(fh: BinaryIO, header: Header, check: Check) -> None:
    """Hash the sections, then (the digest matching) decode each with `check`."""
    begin = fh.tell()
    sha = hashlib.sha256()
    count, left = 0, header.body_len
    while left > 0:
        head = _read(fh, bundle.SECTION.size, "section")
        _, length = bundle.read_section_head(head)
        if bundle.SECTION.size + length > left:
            raise BundleRefused("bundle corrupted: a section runs past the end")
        sha.update(head)
        sha.update(_read(fh, length, "section"))
        left -= bundle.SECTION.size + length
        count += 1
        if count > bundle.MAX_SECTIONS:
            raise BundleRefused("bundle has too many sections")
    if sha.digest() != header.body_sha256:
        raise BundleRefused("bundle corrupted: its content does not match the digest in its "
                            "signed header; nothing applied")
    if count != header.sections:
        raise BundleRefused("bundle corrupted: section count differs from its header")
    fh.seek(begin)
    for _ in range(count):
        kind, length = bundle.read_section_head(_read(fh, bundle.SECTION.size, "section"))
        body = _read(fh, length, "section")
        async with BODIES.hold() as hold:
            await hold.grow(len(body) + inflate_bound(body))
            try:
                await check(header, kind, body)
            except BundleRefused:
                raise
            except RemoteProtocolError as exc:
                raise BundleRefused(f"bundle content is invalid: {exc.message}; nothing "
                                    "applied") from exc


async def sections(opened: Opened) -> AsyncIterator[tuple[int, bytes]]:
    """The sections of a checked bundle, in order (a bundle changed since it was checked stops
    with BundleRefused; what was applied before stays, as after any interrupted import)."""
    with opened.path.open("rb") as fh:
        fh.seek(opened.start)
        left = opened.header.body_len
        while left > 0:
            kind, length = bundle.read_section_head(_read(fh, bundle.SECTION.size, "section"))
            body = _read(fh, length, "section")
            left -= bundle.SECTION.size + length
            async with BODIES.hold() as hold:
                await hold.grow(len(body) + inflate_bound(body))
                yield kind, body


def verify_issued(cert: x509.Certificate, ca: x509.Certificate, who: str) -> None:
    """Refuse a signer whose certificate the province CA `ca` did not issue."""
    try:
        cert.verify_directly_issued_by(ca)
    except Exception as exc:  # any failure here means: not from this CA
        raise BundleRefused(f"bundle signed by a certificate this {who}'s CA did not issue "
                            "(another province's hub, or forged): nothing applied") from exc
