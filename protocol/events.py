"""The event: one immutable, globally identified change to one dossier.

`(origin, seq)` names an event everywhere, so every delivery is idempotent. `deps` is the dossier's
version vector as the writer saw it: `a` happened before `b` iff `b.deps[a.origin] >= a.seq`.
`prev` is the hash of the same origin's previous event (empty for seq 1): a per-origin hash chain.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from protocol.errors import RemoteProtocolError

log = logging.getLogger(__name__)

KINDS = frozenset({"create", "set", "transition", "resolve", "attach", "detach", "comment",
                   "transfer"})
UNIT_RE = re.compile(r"^\d{5}$")  # a commune's GSO code (protocol/communes.py: CODE_RE)
STATUS_NAMES = frozenset({
    "submitted", "accepted", "refused", "processing", "supplement_requested", "fee_requested",
    "withdrawn", "stopped", "resolved", "returned",
})
# `check.clock`: staff should check the dossier's legal times, stamped while the writer's clock was
# detectably wrong (the estimated error in ms; None once checked) — service.clock_flags.
CLOCK_CHECK = "check.clock"
PATH_RE = re.compile(
    r"^(applicant\.(full_name|citizen_id|phone|address)|fields\.[a-z][a-z0-9_]{0,47}|check\.clock)$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
TRACK_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{10}$")  # protocol.tracking: Crockford base32
MAX_TEXT = 4000
MAX_LABEL = 255
MAX_DOC_COUNT = 99
ORIGIN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
HASH_LEN = 32
MAX_SEQ = (1 << 63) - 1
MAX_HLC = (1 << 64) - 1

EventId = tuple[str, int]


_GOOD_ORIGINS: set[str] = set()


def check_origin(origin: object) -> str:
    """Return `origin` if it is a valid node id, else raise."""
    if isinstance(origin, str) and origin in _GOOD_ORIGINS:
        return origin
    if not isinstance(origin, str) or not ORIGIN_RE.fullmatch(origin):
        raise RemoteProtocolError(f"bad origin {origin!r}")
    if len(_GOOD_ORIGINS) < 100_000:
        _GOOD_ORIGINS.add(origin)
    return origin


def check_dossier_id(value: object) -> str:
    """Return the canonical text of a dossier UUID, else raise."""
    if not isinstance(value, str):
        raise RemoteProtocolError("dossier id must be a UUID string")
    try:
        parsed = uuid.UUID(value)
    except ValueError as exc:
        raise RemoteProtocolError(f"bad dossier id {value!r}") from exc
    return str(parsed)


def uuid_str(raw: bytes) -> str:
    """16 bytes as the canonical UUID text (fast path of `str(uuid.UUID(bytes=raw))`)."""
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def uuid_bytes(text: str) -> bytes:
    """The 16 bytes of a canonical UUID text; ValueError if it is not one."""
    if len(text) != 36 or text[8] != "-" or text[13] != "-" or text[18] != "-" or text[23] != "-":
        raise ValueError(f"not a canonical UUID: {text!r}")
    return bytes.fromhex(text[:8] + text[9:13] + text[14:18] + text[19:23] + text[24:])


def uuid7(now_ms: int, rand: bytes) -> str:
    """Make a UUIDv7 from a time in ms and 10 random bytes (both passed in: no I/O here)."""
    if len(rand) < 10:
        raise ValueError("uuid7 needs 10 random bytes")
    value = (now_ms & ((1 << 48) - 1)) << 80
    tail = int.from_bytes(rand[:10], "big")
    rand_a = (tail >> 68) & 0xFFF
    rand_b = tail & ((1 << 62) - 1)
    value |= 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))


@dataclass(frozen=True, slots=True)
class Event:
    """One change to one dossier; validated at construction, never mutated (dicts included)."""

    origin: str
    seq: int
    hlc: int
    dossier: str
    actor: str
    kind: str
    payload: dict[str, Any]
    deps: dict[str, int]
    prev: bytes
    canon: bytes | None = field(default=None, init=False, compare=False, repr=False)

    @classmethod
    def trusted(cls, origin: str, seq: int, hlc: int, dossier: str, actor: str, kind: str,
                payload: dict[str, Any], deps: dict[str, int], prev: bytes,
                canon: bytes | None = None) -> Event:
        """Build an event read back from our own database, skipping validation (it was validated
        before it was stored)."""
        event = object.__new__(cls)
        for name, value in (("origin", origin), ("seq", seq), ("hlc", hlc), ("dossier", dossier),
                            ("actor", actor), ("kind", kind), ("payload", payload),
                            ("deps", deps), ("prev", prev), ("canon", canon)):
            object.__setattr__(event, name, value)
        return event

    def __post_init__(self) -> None:
        check_origin(self.origin)
        if type(self.seq) is not int or not 1 <= self.seq <= MAX_SEQ:
            raise RemoteProtocolError(f"bad seq {self.seq!r}")
        if type(self.hlc) is not int or not 0 <= self.hlc <= MAX_HLC:
            raise RemoteProtocolError(f"bad hlc {self.hlc!r}")
        try:
            if uuid_str(uuid_bytes(self.dossier)) != self.dossier:
                raise ValueError("not canonical")
        except (ValueError, TypeError) as exc:
            raise RemoteProtocolError(f"bad dossier id {self.dossier!r}") from exc
        if not isinstance(self.actor, str) or not 0 < len(self.actor) <= 64:
            raise RemoteProtocolError("actor must be a non-empty string of at most 64 characters")
        if not isinstance(self.kind, str) or self.kind not in KINDS:
            raise RemoteProtocolError(f"unknown event kind {self.kind!r}")
        check_payload(self.kind, self.payload)
        if not isinstance(self.deps, dict):
            raise RemoteProtocolError("deps must be a map")
        for key, value in self.deps.items():
            check_origin(key)
            if type(value) is not int or not 1 <= value <= MAX_SEQ:
                raise RemoteProtocolError(f"bad deps entry {key}={value!r}")
        if not isinstance(self.prev, bytes):
            raise RemoteProtocolError("prev must be bytes")
        if self.seq == 1 and self.prev:
            raise RemoteProtocolError("the first event of an origin has no prev")
        if self.seq > 1 and len(self.prev) != HASH_LEN:
            raise RemoteProtocolError("prev must be a 32-byte hash")

    @property
    def id(self) -> EventId:
        """The global id `(origin, seq)`."""
        return (self.origin, self.seq)

    def happened_before(self, other: Event) -> bool:
        """True iff `other` was written having seen this event."""
        return other.deps.get(self.origin, 0) >= self.seq


def seen_by(event_id: EventId, deps: dict[str, int]) -> bool:
    """True iff a writer whose context was `deps` had seen the event `event_id`."""
    return deps.get(event_id[0], 0) >= event_id[1]


_SCALARS = (type(None), bool, int, float)


def _is_value(value: Any) -> bool:
    kind = type(value)
    return (kind is str and len(value) <= MAX_TEXT) or kind in _SCALARS


def _status(value: Any) -> bool:
    return isinstance(value, str) and value in STATUS_NAMES


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise RemoteProtocolError(message)


_GOOD_PATHS: set[str] = set()


def _check_set(values: Any) -> None:
    _need(isinstance(values, dict), "set must be a map")
    for path, value in values.items():
        if path not in _GOOD_PATHS:
            _need(isinstance(path, str) and bool(PATH_RE.fullmatch(path)), f"bad path {path!r}")
            if len(_GOOD_PATHS) < 10_000:
                _GOOD_PATHS.add(path)
        _need(_is_value(value), f"bad value for {path}")


def _is_text(value: Any, limit: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit


def _check_attach(payload: Any) -> None:
    """An attachment is a labelled entry: a scan referencing a blob (sha256, size, name, mime — the
    only shape peers before paper entries accept), or a paper document listed without one (no
    sha256: a label, and optionally its kind and count). docs/protocol.md: Attachments."""
    get = payload.get
    if "sha256" in payload or "size" in payload:
        _need(isinstance(get("sha256"), str) and bool(SHA256_RE.fullmatch(get("sha256"))),
              "attach needs a sha256")
        _need(type(get("size")) is int and get("size") >= 0, "attach needs a size")
        for key in ("name", "mime"):
            _need(isinstance(get(key), str) and len(get(key)) <= 255, f"attach needs {key}")
    else:
        _need(_is_text(get("label"), MAX_LABEL), "a paper document needs its label")
        for key in ("name", "mime"):
            _need(get(key) is None or (isinstance(get(key), str) and len(get(key)) <= 255),
                  f"bad {key}")
    _need(get("doc_kind") is None or _is_text(get("doc_kind"), 64), "bad doc_kind")
    count = get("count")
    _need(count is None or (type(count) is int and 1 <= count <= MAX_DOC_COUNT), "bad count")


def _check_forms(kind: str, payload: dict[str, Any]) -> None:
    """The optional keys the one-stop forms add (protocol.forms): a refusal's reasons and the
    duplicates a clerk went past on a create, a hand-over and form 02's deadline on a move, an
    apology's new date on a comment. Older peers ignore them."""
    get = payload.get
    if kind == "create":
        _need(get("reasons") is None or _is_text(get("reasons"), MAX_TEXT), "bad reasons")
        dups = get("duplicates")
        _need(dups is None or (isinstance(dups, list) and len(dups) <= 20
                               and all(_is_text(d, 64) for d in dups)), "bad duplicates")
    elif kind == "transition":
        handover = get("handover")
        _need(handover is None or (isinstance(handover, dict) and len(handover) <= 8 and all(
            _is_text(k, 32) and _is_text(v, MAX_LABEL) for k, v in handover.items())),
            "bad handover")
        _need(get("supplement_by") is None or _is_text(get("supplement_by"), 10),
              "bad supplement_by")
    elif kind == "comment":
        apology = get("apology")
        _need(apology is None or (isinstance(apology, dict)
                                  and type(apology.get("new_due")) is int), "bad apology")


def check_payload(kind: str, payload: Any) -> None:
    """Validate a payload's shape for its kind, so the fold can trust every event it sees."""
    _need(isinstance(payload, dict), "payload must be a map")
    get = payload.get
    if kind == "create":
        for key in ("procedure", "commune", "code", "channel"):
            _need(isinstance(get(key), str) and 0 < len(get(key)) <= 64, f"create needs {key}")
        _need(type(get("received_at")) is int, "create needs received_at")
        _need(get("due_at") is None or type(get("due_at")) is int, "bad due_at")
        _need(_status(get("status", "accepted")), "bad initial status")
        _check_set(get("set", {}))
        # optional, older peers ignore them: the tracking secret (protocol/tracking.py) and the
        # unit that received the dossier (a commune, or `online` for the hub's intake)
        _need(get("track") is None or (isinstance(get("track"), str) and
                                       bool(TRACK_RE.fullmatch(get("track")))), "bad track")
        _need(get("received_by") is None or _is_text(get("received_by"), 64), "bad received_by")
        _check_forms(kind, payload)
    elif kind == "set":
        _check_set(get("set"))
        _need(bool(get("set")), "set must not be empty")
        _need(get("reason") is None or _is_text(get("reason"), MAX_TEXT), "bad reason")
    elif kind == "transition":
        _need(_status(get("to")), "transition needs a known status")
        _need(get("from") is None or _status(get("from")), "bad from status")
        _need(get("note") is None or (isinstance(get("note"), str) and len(get("note")) <= MAX_TEXT),
              "bad note")
        _need(get("due_at") is None or type(get("due_at")) is int, "bad due_at")
        _check_forms(kind, payload)
    elif kind == "resolve":
        field = get("field")
        _need(isinstance(field, str) and (field in ("status", "due_at", "commune")
                                          or bool(PATH_RE.fullmatch(field))),
              "resolve needs a field path")
        _need("value" in payload and _is_value(get("value")), "resolve needs a value")
        if field == "status":
            _need(_status(get("value")), "resolve of status needs a known status")
        if field == "commune":
            _need(isinstance(get("value"), str) and bool(UNIT_RE.fullmatch(get("value"))),
                  "resolve of commune needs a commune code")
    elif kind == "attach":
        _check_attach(payload)
    elif kind == "detach":
        tags = get("tags")
        _need(isinstance(tags, list) and all(isinstance(t, str) for t in tags), "detach needs tags")
    elif kind == "comment":
        _need(isinstance(get("text"), str) and 0 < len(get("text")) <= MAX_TEXT, "bad comment")
        _check_forms(kind, payload)
    elif kind == "transfer":  # competence moves to another commune (protocol/scope.py)
        _need(isinstance(get("to"), str) and bool(UNIT_RE.fullmatch(get("to"))),
              "transfer needs a commune code")
        _need(_is_text(get("reason"), MAX_TEXT), "transfer needs a reason")
