"""The sync exchange's messages (DESIGN §4): one request and one response per round trip.

Request: own events after the hub's last ack, the cursor of the hub log applied here, how many bytes
it wants back, and the node's health. Response: the contiguous ack, events in scope after the cursor,
the new cursor, whether more is waiting, the hub's time, and per-event rejections.

A cursor is a position in one incarnation of the hub's log, named by its epoch: a hub restored from
an older backup rotates the epoch, and answers a cursor of another epoch (or past its log's end) from
the start, saying so (`reset`). Both fields are optional on the wire, so peers that predate them still
decode (docs/protocol.md: Log epochs and restores).

A node's scope follows commune mergers: the request says which units the edge reads (`units`),
and when the hub's record differs (its commune was merged, or others merged into it) the answer
reads from 0 and names the node's unit (`unit`: code, name, units) — a calm re-scope, not a
restore (docs/reorganisation.md). Optional too: an older peer neither sends nor reads them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from protocol import APP_VERSION, PROTOCOL_VERSION, wire
from protocol.codec import (
    DEFAULT_LIMITS,
    Limits,
    decode_body,
    decode_own_batch,
    decompress,
    encode_body,
    encode_own_batch,
    event_from_list,
    event_to_list,
    unpack,
)
from protocol.errors import RemoteProtocolError, VersionMismatch
from protocol.events import ORIGIN_RE, Event, check_origin

log = logging.getLogger(__name__)

STAT_KEYS = {
    "pending_events": int,
    "pending_blobs": int,
    "oldest_pending_age_s": int,
    "disk_free": int,
    "disk_floor": int,  # below it the node refuses new intake
    "clock_offset_ms": int,
    "conflicts_open": int,
    "dossiers": int,
    "last_error": str,
    "app_version": str,
    "contact_every_s": int,  # the edge's sync interval: how often the hub should hear from it
}
MIN_PROTOCOL = 1
MAX_EPOCH_CHARS = 64
MAX_UNITS = 200  # commune codes in one node's scope (a merger of a whole district's is ~20)
CONTENT_TYPE = "application/vnd.commune-sync+zstd"  # of every body below, both ways


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """What an edge sends: its own events and where it is in the hub's log."""

    node: str
    events: list[Event]
    cursor: int
    want_bytes: int
    clock_ms: int
    stats: dict[str, Any] = field(default_factory=dict)
    protocol: int = PROTOCOL_VERSION
    app: str = APP_VERSION
    batch: dict[str, Any] | None = None  # `events` already in compact form (edge fast path)
    ref: dict[str, int] = field(default_factory=dict)  # reference-data versions held
    epoch: str = ""  # the hub log epoch `cursor` belongs to ("": not known yet)
    units: tuple[str, ...] = ()  # the commune codes the edge reads (its unit first; (): unsaid)


@dataclass(frozen=True, slots=True)
class Unit:
    """The unit the hub holds a node for, sent when it differs from what the node read: its
    code and name, and every code whose dossiers are the unit's (its own first)."""

    code: str
    name: str
    units: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Rejection:
    """One event the hub refused, and why; the edge keeps it and shows it."""

    seq: int
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class SyncResponse:
    """What the hub answers: the ack, events in scope, the new cursor."""

    ack: int
    events: list[Event]
    cursor: int
    more: bool
    hub_time_ms: int
    rejections: list[Rejection] = field(default_factory=list)
    protocol: int = PROTOCOL_VERSION
    refdata: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind -> {version, data}
    epoch: str = ""  # the hub log's epoch ("": a hub that predates epochs)
    reset: bool = False  # the request's cursor was of another epoch or past the log: read from 0
    unit: Unit | None = None  # the node was re-scoped (a merger): read from 0, use this unit


def encode_request(req: SyncRequest) -> bytes:
    """The request body: zstd(msgpack)."""
    return encode_body({
        "v": req.protocol,
        "app": req.app,
        "node": req.node,
        "ev": req.batch if req.batch is not None else encode_own_batch(req.events),
        "cursor": req.cursor,
        "want": req.want_bytes,
        "clock": req.clock_ms,
        "stats": req.stats,
        "ref": req.ref,
        "epoch": req.epoch,
        **({"units": list(req.units)} if req.units else {}),
    })


def _units(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not (isinstance(raw, list) and len(raw) <= MAX_UNITS and all(
            isinstance(u, str) and len(u) == 5 and u.isdigit() for u in raw)):
        raise RemoteProtocolError(f"units must be at most {MAX_UNITS} commune codes")
    return tuple(raw)


def _unit(raw: Any) -> Unit | None:
    if raw is None:
        return None
    if not (isinstance(raw, dict) and isinstance(raw.get("code"), str)
            and isinstance(raw.get("name"), str) and len(raw["name"]) <= 200):
        raise RemoteProtocolError("unit must be {code, name, units}")
    units = _units(raw.get("units"))
    if raw["code"] not in units[:1]:
        raise RemoteProtocolError("unit's units must start with its code")
    return Unit(raw["code"], raw["name"], units)


def _int(obj: dict[str, Any], key: str, low: int = 0) -> int:
    value = obj.get(key)
    if type(value) is not int or value < low:
        raise RemoteProtocolError(f"{key} must be an integer ≥ {low}")
    return value


def _epoch(obj: dict[str, Any]) -> str:
    value = obj.get("epoch", "")
    if type(value) is not str or len(value) > MAX_EPOCH_CHARS:
        raise RemoteProtocolError(f"epoch must be a string of at most {MAX_EPOCH_CHARS} characters")
    return value


def check_version(version: Any, peer: str) -> int:
    """Accept the protocol version `peer` ("edge" or "hub") speaks, or raise VersionMismatch
    saying which side to upgrade."""
    if type(version) is not int:
        raise RemoteProtocolError("protocol version missing")
    if not MIN_PROTOCOL <= version <= PROTOCOL_VERSION:
        us = "hub" if peer == "edge" else "edge"
        older = version < MIN_PROTOCOL
        raise VersionMismatch(
            f"the {peer} speaks protocol {version}, this {us} speaks {MIN_PROTOCOL}–"
            f"{PROTOCOL_VERSION}; upgrade the {peer if older else us}")
    return version


def decode_request(body: bytes, limits: Limits = DEFAULT_LIMITS) -> SyncRequest:
    """Decode and validate a request body; raise RemoteProtocolError on anything wrong. The typed
    fast path (protocol/wire.py) takes what an honest edge sends; anything else, and every refusal
    with its message, is the general path's."""
    data = decompress(body, limits)
    fast = wire.decode_request(data, limits)
    if fast is not None:
        obj, batch = fast
        node = obj.get("node")
        events = None
        if isinstance(node, str) and ORIGIN_RE.fullmatch(node):  # else: the slow path's message
            events = [] if batch is None else wire.events(node, batch)
        if events is not None:
            taken = events
            return _request(obj, lambda _: taken)
    obj = unpack(data, limits)
    if not isinstance(obj, dict):
        raise RemoteProtocolError("request must be a map")
    return _request(obj, lambda node: decode_own_batch(
        node, obj.get("ev") or {"start": 0, "prev": b"", "ev": []}))


def _request(obj: dict[str, Any], events_of: Callable[[str], list[Event]]) -> SyncRequest:
    """The checks of a decoded request's fields, in the order that picks the error reported."""
    version = check_version(obj.get("v"), "edge")
    node = check_origin(obj.get("node"))
    stats_raw = obj.get("stats") or {}
    if not isinstance(stats_raw, dict):
        raise RemoteProtocolError("stats must be a map")
    stats = {k: v for k, v in stats_raw.items()
             if k in STAT_KEYS and isinstance(v, STAT_KEYS[k]) and not isinstance(v, bool)}
    app = obj.get("app")
    ref_raw = obj.get("ref") or {}
    if not isinstance(ref_raw, dict):
        raise RemoteProtocolError("ref must be a map")
    ref = {k: v for k, v in ref_raw.items() if isinstance(k, str) and type(v) is int}
    return SyncRequest(
        node=node,
        events=events_of(node),
        cursor=_int(obj, "cursor"),
        want_bytes=_int(obj, "want"),
        clock_ms=_int(obj, "clock"),
        stats=stats,
        protocol=version,
        app=app if isinstance(app, str) else "?",
        ref=ref,
        epoch=_epoch(obj),
        units=_units(obj.get("units")),
    )


def encode_response(resp: SyncResponse) -> bytes:
    """The response body: zstd(msgpack)."""
    return encode_body({
        "v": resp.protocol,
        "ack": resp.ack,
        "ev": [event_to_list(e) for e in resp.events],
        "cursor": resp.cursor,
        "more": resp.more,
        "time": resp.hub_time_ms,
        "rej": [[r.seq, r.code, r.reason] for r in resp.rejections],
        "ref": resp.refdata,
        "epoch": resp.epoch,
        "reset": resp.reset,
        **({"unit": {"code": resp.unit.code, "name": resp.unit.name,
                     "units": list(resp.unit.units)}} if resp.unit else {}),
    })


def decode_response(body: bytes, limits: Limits = DEFAULT_LIMITS) -> SyncResponse:
    """Decode and validate a response body."""
    obj = decode_body(body, limits)
    if not isinstance(obj, dict):
        raise RemoteProtocolError("response must be a map")
    version = check_version(obj.get("v"), "hub")
    events_raw = obj.get("ev")
    rej_raw = obj.get("rej") or []
    if not isinstance(events_raw, list) or not isinstance(rej_raw, list):
        raise RemoteProtocolError("ev and rej must be arrays")
    refdata = obj.get("ref") or {}
    if not isinstance(refdata, dict) or not all(
            isinstance(v, dict) and type(v.get("version")) is int and isinstance(v.get("data"), dict)
            for v in refdata.values()):
        raise RemoteProtocolError("ref must map a kind to {version, data}")
    rejections = []
    for r in rej_raw:
        if not (isinstance(r, list) and len(r) == 3 and type(r[0]) is int):
            raise RemoteProtocolError("a rejection is [seq, code, reason]")
        rejections.append(Rejection(r[0], str(r[1]), str(r[2])))
    return SyncResponse(
        ack=_int(obj, "ack"),
        events=[event_from_list(e) for e in events_raw],
        cursor=_int(obj, "cursor"),
        more=bool(obj.get("more")),
        hub_time_ms=_int(obj, "time"),
        rejections=rejections,
        protocol=version,
        refdata=refdata,
        epoch=_epoch(obj),
        reset=obj.get("reset") is True,
        unit=_unit(obj.get("unit")),
    )


def encode_error(code: str, message: str) -> bytes:
    """An error body for a refused sync request (sent with a 4xx status)."""
    return encode_body({"v": PROTOCOL_VERSION, "error": code, "message": message})


def decode_error(body: bytes) -> tuple[str, str]:
    """Read an error body; tolerate anything, since it only feeds a message to people."""
    try:
        obj = decode_body(body)
        return str(obj.get("error", "error")), str(obj.get("message", ""))
    except Exception:  # not ours in msgpack: maybe the JSON of an /api-style error
        pass
    try:
        obj = json.loads(body)
        return str(obj.get("error", "error")), str(obj.get("message", ""))
    except Exception:  # an error about an error: keep the first one
        return "error", body[:200].decode("utf-8", "replace")
