"""Store-and-forward bundles: the sync exchange carried on a USB stick, as a signed file.

Theory. A bundle is one half of a sync round trip written to a file: an edge's bundle carries
what a request would (its events after the hub's ack, its cursor, the reference data it holds)
plus the scans not yet confirmed; the hub's answer carries what a response would (its ack of
the node's events, the node's scope after the cursor it knows, newer reference data) plus which
of the scans it now holds. Each side applies a bundle through the very code a live exchange
goes through, so the exactly-once rules are the sync's own (`protocol/session.py`): the hub
takes only the events that continue the node's chain, the edge folds only the events it does
not hold, and an ack or cursor never goes back.

What is new here is the envelope, and who may be believed. The file is

    MAGIC · u16 format version · u32 header length · header · u16 signature length · signature
    · sections (each: u8 kind · u32 length · a codec body)

The header (canonical msgpack, `Header`) names the sender, the receiver, the hub (its CA's
fingerprint), the hub log epoch, the ranges carried, a per-sender `serial`, and the length and
SHA-256 of everything after the signature; the signature (by the sender's certificate, carried
in the header) covers the header, so a byte changed anywhere is found before anything is
applied. The receiver keeps the serial and digest of the last bundle it took from each sender
(`Seen`): the same bundle again is a no-op; an older one is refused (`order`) — a newer bundle
from the same sender carries everything an older one still could (an edge exports everything
after the last ack it has *received*, the hub everything after the last cursor it has
*received*), so refusing it loses nothing, and an old stick plugged in again cannot roll
anything back. A hub bundle of another log epoch (the hub was restored since) is refused too:
its cursor is of a log that no longer exists.
"""

from __future__ import annotations

import hashlib
import logging
import struct
from dataclasses import dataclass, field
from typing import Any

from protocol import PROTOCOL_VERSION, codec
from protocol.errors import RemoteProtocolError

log = logging.getLogger(__name__)

MAGIC = b"CSBUNDLE\r\n\x1a\n"  # a text-mode copy (CR/LF, ^Z) breaks it at once
FORMAT = "commune-sync-bundle"
VERSION = 1  # of the file format; a reader refuses any other
PRELUDE = struct.Struct(">HI")  # format version, header length
SIG_LEN = struct.Struct(">H")
SECTION = struct.Struct(">BI")  # kind, length
MAX_HEADER = 64 * 1024
MAX_SIGNATURE = 1024
MAX_SECTION = codec.DEFAULT_LIMITS.max_body  # each section is decoded under the codec's limits
MAX_SECTIONS = 1_000_000
BLOB_CHUNK = 512 * 1024  # bytes of a scan per section
SIGN_DOMAIN = b"commune-sync bundle v1\x00"

EDGE, HUB = "edge", "hub"  # the sender's role: edge -> hub, or the hub's answer
EVENTS, BLOB = 1, 2  # section kinds: a sync request or response body; a chunk of a scan
SECTION_KINDS = {EVENTS: "events", BLOB: "blob"}


class BundleRefused(RemoteProtocolError):
    """A bundle that is not imported here; nothing of it was applied."""


@dataclass(frozen=True, slots=True)
class Header:
    """What a bundle says of itself (signed). `ranges`: for an edge bundle {"first", "last"}
    (its own seqs carried), "ack" (the hub's ack it had received), "cursor"; for the hub's
    {"from", "to"} (the node's scope, as log positions) and "ack". `blobs`: the SHA-256 of
    the scans carried (edge) or held by the hub of those the node sent (hub)."""

    kind: str
    node: str
    origin: str
    hub: str  # the fingerprint of the province CA's certificate
    epoch: str
    serial: int
    created_ms: int
    ranges: dict[str, int]
    body_len: int
    body_sha256: bytes
    sections: int
    cert: str  # the signer's certificate, PEM
    blobs: list[str] = field(default_factory=list)
    protocol: int = PROTOCOL_VERSION

    def to_plain(self) -> dict[str, Any]:
        """The header as the file holds it."""
        return {"format": FORMAT, "v": VERSION, "kind": self.kind, "node": self.node,
                "origin": self.origin, "hub": self.hub, "epoch": self.epoch,
                "serial": self.serial, "created": self.created_ms, "ranges": self.ranges,
                "body": {"len": self.body_len, "sha256": self.body_sha256,
                         "sections": self.sections},
                "cert": self.cert, "blobs": self.blobs, "protocol": self.protocol}

    @classmethod
    def from_plain(cls, obj: Any) -> Header:
        """Validate a decoded header; BundleRefused naming what is wrong."""
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise BundleRefused("not a commune-sync bundle (its header names no bundle format)")
        body = obj.get("body")
        ranges = obj.get("ranges")
        blobs = obj.get("blobs")
        strings = ("kind", "node", "origin", "hub", "epoch", "cert")
        if (not all(isinstance(obj.get(k), str) for k in strings)
                or obj["kind"] not in (EDGE, HUB)
                or not all(type(obj.get(k)) is int for k in ("serial", "created", "protocol"))
                or not isinstance(body, dict) or not isinstance(body.get("sha256"), bytes)
                or type(body.get("len")) is not int or type(body.get("sections")) is not int
                or not isinstance(ranges, dict)
                or not all(isinstance(k, str) and type(v) is int for k, v in ranges.items())
                or not isinstance(blobs, list) or not all(isinstance(b, str) for b in blobs)):
            raise BundleRefused("bundle header is malformed")
        return cls(obj["kind"], obj["node"], obj["origin"], obj["hub"], obj["epoch"],
                   obj["serial"], obj["created"], dict(ranges), body["len"], body["sha256"],
                   body["sections"], obj["cert"], list(blobs), obj["protocol"])

    def encode(self) -> bytes:
        """The header's bytes (canonical: what the signature covers)."""
        return codec.pack_canonical(self.to_plain())

    def describe(self) -> str:
        """One line for people: who sent it, when, what it carries."""
        r = self.ranges
        what = (f"events {r.get('first', 0)}–{r.get('last', 0)}" if self.kind == EDGE
                else f"log positions {r.get('from', 0)}–{r.get('to', 0)}, ack {r.get('ack', 0)}")
        return f"{self.kind} bundle #{self.serial} for {self.node} ({what}, {len(self.blobs)} scan(s))"


def signed_data(header_bytes: bytes) -> bytes:
    """What the sender's key signs: the domain and the header's SHA-256."""
    return SIGN_DOMAIN + hashlib.sha256(header_bytes).digest()


def prelude(header_bytes: bytes, signature: bytes) -> bytes:
    """Everything before the sections."""
    if len(header_bytes) > MAX_HEADER or len(signature) > MAX_SIGNATURE:
        raise RemoteProtocolError("bundle header or signature too large")
    return (MAGIC + PRELUDE.pack(VERSION, len(header_bytes)) + header_bytes
            + SIG_LEN.pack(len(signature)) + signature)


def section(kind: int, body: bytes) -> bytes:
    """One section's bytes."""
    if kind not in SECTION_KINDS or len(body) > MAX_SECTION:
        raise RemoteProtocolError("a bundle section is of an unknown kind or too large")
    return SECTION.pack(kind, len(body)) + body


def read_prelude_start(head: bytes) -> int:
    """The header length, from the first `len(MAGIC) + PRELUDE.size` bytes of a file."""
    if not head.startswith(MAGIC[:min(len(head), len(MAGIC))]) or len(head) < len(MAGIC):
        raise BundleRefused("not a commune-sync bundle (wrong magic bytes)" if
                            len(head) >= len(MAGIC) else "bundle truncated: no header")
    if len(head) < len(MAGIC) + PRELUDE.size:
        raise BundleRefused("bundle truncated: no header")
    version, length = PRELUDE.unpack_from(head, len(MAGIC))
    if version != VERSION:
        raise BundleRefused(f"bundle format version {version}; this program reads version "
                            f"{VERSION}: upgrade the {'older' if version > VERSION else 'other'}"
                            " side")
    if length > MAX_HEADER:
        raise BundleRefused("bundle header too large")
    return int(length)


def read_section_head(head: bytes) -> tuple[int, int]:
    """(kind, length) of a section from its first `SECTION.size` bytes."""
    kind, length = SECTION.unpack(head)
    if kind not in SECTION_KINDS:
        raise BundleRefused(f"bundle corrupted: unknown section kind {kind}")
    if length > MAX_SECTION:
        raise BundleRefused("bundle corrupted: a section exceeds the size limit")
    return int(kind), int(length)


def decode_header(raw: bytes) -> Header:
    """The header from its bytes, under the codec's limits."""
    try:
        return Header.from_plain(codec.unpack(raw))
    except BundleRefused:
        raise
    except RemoteProtocolError as exc:
        raise BundleRefused(f"bundle header is corrupted: {exc.message}") from exc


def check_addressed(header: Header, *, kind: str, hub: str, node: str | None = None) -> None:
    """Refuse a bundle not meant for this receiver: of the wrong direction, for another hub's
    province, or (at an edge) for another node."""
    if header.kind != kind:
        where = ("at the hub: central-hub bundle import" if header.kind == EDGE
                 else "at the commune: edge-node bundle import")
        whose = "a commune's bundle" if header.kind == EDGE else "the hub's answer"
        raise BundleRefused(f"this is {whose} ({header.describe()}); import it {where}")
    if header.hub != hub:
        raise BundleRefused(f"bundle is for another hub (CA {header.hub[:16]}…, this one's is "
                            f"{hub[:16]}…): nothing applied")
    if node is not None and header.node != node:
        raise BundleRefused(f"bundle is for node {header.node}; this is node {node}: nothing "
                            "applied")
    if header.protocol > PROTOCOL_VERSION:
        raise BundleRefused(f"bundle speaks protocol {header.protocol}, this program "
                            f"{PROTOCOL_VERSION}: upgrade it first")


@dataclass(frozen=True, slots=True)
class Seen:
    """The last bundle a receiver took from one sender."""

    serial: int
    digest: bytes  # SHA-256 of the header
    at_ms: int

    def to_plain(self) -> dict[str, Any]:
        """As kept in the receiver's meta table (JSON)."""
        return {"serial": self.serial, "digest": self.digest.hex(), "at": self.at_ms}

    @classmethod
    def from_plain(cls, obj: Any) -> Seen | None:
        """From the meta table; None when nothing was kept."""
        if not isinstance(obj, dict):
            return None
        return cls(int(obj["serial"]), bytes.fromhex(str(obj["digest"])), int(obj["at"]))


def order(seen: Seen | None, header: Header, digest: bytes) -> bool:
    """Whether the bundle is new here (True) or the one already taken (False: a no-op).
    BundleRefused for an older bundle, or another bundle under the serial already taken."""
    if seen is None or header.serial > seen.serial:
        return True
    if header.serial == seen.serial and digest == seen.digest:
        return False
    if header.serial == seen.serial:
        raise BundleRefused(f"another bundle #{header.serial} from {header.node} was imported "
                            "already: this one is forged or damaged; nothing applied")
    raise BundleRefused(
        f"replayed old bundle: #{header.serial} is older than #{seen.serial}, already "
        "imported, which carried everything this one could; nothing applied")


def check_epoch(header: Header, held_epoch: str) -> None:
    """Refuse a hub bundle of an older log epoch than the one this edge reads."""
    if held_epoch and header.epoch and header.epoch != held_epoch and \
            not header.ranges.get("reset"):
        raise BundleRefused(
            f"replayed old bundle: it is of the hub's log epoch {header.epoch}, this node now "
            f"reads epoch {held_epoch} (the hub was restored since); ask for a new bundle; "
            "nothing applied")


def moves_cursor(header: Header, cursor: int, epoch: str) -> bool:
    """Whether a hub bundle may move this edge's cursor: only if it reads the scope from at most
    where the edge stands (or from the start of a new log); one that starts further on (the edge
    lost a later position: restored from a backup) still gives its events, not its cursor, so
    nothing between is skipped."""
    if header.ranges.get("reset") and header.epoch != epoch:
        return True
    return header.ranges.get("from", 0) <= cursor


def next_serial(last: int, now_ms: int) -> int:
    """A sender's next serial: its clock in ms, and always above the last one."""
    return max(now_ms, last + 1)
