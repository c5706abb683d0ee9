"""The sync request's wire shape as declared types: msgspec decodes and checks it in compiled code.

Theory. `messages.decode_request` has two paths over the same decompressed bytes. The slow path is
the general one: msgpack under the limits (`codec.unpack`: string, container and extension limits,
then a walk for depth and element count), then a check of every field and every event in Python.
This module is the fast path: one msgspec decode into the structs below, whose types say what an
honest edge sends, and events built without checking again what the types already guarantee.

The fast path only ever *accepts*. Anything it does not take as plainly valid — a type it does not
declare, a key of the request or batch maps it does not know (msgspec would skip it unread, bad
UTF-8 and all), a map key that is not text, bytes inside a payload, a value nested deeper than its bound,
a body larger than the sizes that make the limits hold by themselves, an event the cheap checks
doubt — answers None, and the caller runs the slow path, which refuses with its own message or
accepts. So the bytes on the wire, the limits and every error message are the slow path's; the fast
path must only never accept what the slow path refuses, and build the same events when both accept:
msgspec and msgpack decode str, int, float, bool, nil, arrays and maps to the same Python values.

Why the limits hold without a walk: every msgpack object takes at least one byte, so a body of at
most `max_elements` bytes has no container of more elements nor more elements in all than the slow
path's budget, and a body of at most `max_str` bytes no longer string; extensions (timestamps too)
are outside the declared types; and the nesting of `_Value` stops at `VALUE_DEPTH` levels, so the
deepest container (a payload's, under the request map, the batch, the rows, the row) stays under
`Limits.max_depth`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, Any, Union

import msgspec

from protocol.codec import Limits, event_hash
from protocol.errors import RemoteProtocolError
from protocol.events import (
    HASH_LEN,
    KINDS,
    MAX_HLC,
    MAX_SEQ,
    Event,
    check_origin,
    check_payload,
    uuid_str,
)

log = logging.getLogger(__name__)

VALUE_DEPTH = 8  # container levels a payload value may nest in the fast path
ROW_DEPTH = 5  # the depth of a row's payload map: request map, batch, rows, row, payload


def _nested(levels: int) -> Any:
    """The plain values (no bytes: msgspec unions take one str-like type) with containers nested
    at most `levels` deep."""
    value: Any = Union[None, bool, int, float, str]  # noqa: UP007 (built at run time)
    for _ in range(levels):
        value = Union[None, bool, int, float, str, list[value], dict[str, value]]  # noqa: UP007
    return value


if TYPE_CHECKING:  # a type built at run time, for msgspec; to mypy any value
    _Value = Any
else:
    _Value = _nested(VALUE_DEPTH)
_Dossier = Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
_Actor = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class _Batch(msgspec.Struct, forbid_unknown_fields=True):
    """`codec.encode_own_batch`'s compact form."""

    start: int
    prev: bytes
    ev: list[tuple[int, _Dossier, _Actor, str, dict[str, _Value], dict[str, int]]]


class _Request(msgspec.Struct, forbid_unknown_fields=True):
    """`messages.encode_request`'s map; what it checks beyond types stays in messages.py."""

    v: _Value = None
    app: _Value = None
    node: _Value = None
    ev: _Batch | None = None
    cursor: _Value = None
    want: _Value = None
    clock: _Value = None
    stats: _Value = None
    ref: _Value = None
    epoch: _Value = ""
    units: _Value = None


_DECODER = msgspec.msgpack.Decoder(_Request)
assert ROW_DEPTH + VALUE_DEPTH <= Limits().max_depth


def decode_request(data: bytes, limits: Limits) -> tuple[dict[str, Any], _Batch | None] | None:
    """The request map (without `ev`) and its batch, or None: take the slow path."""
    if len(data) > min(limits.max_str, limits.max_elements) or \
            ROW_DEPTH + VALUE_DEPTH > limits.max_depth:
        return None
    try:
        req = _DECODER.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    obj = {f: getattr(req, f) for f in req.__struct_fields__ if f != "ev"}
    return obj, req.ev


def events(origin: str, batch: _Batch) -> list[Event] | None:
    """The events of a typed batch from `origin` (already checked), its hash chain recomputed;
    None if any event needs the slow path's checks (and message)."""
    rows, start, prev = batch.ev, batch.start, batch.prev
    if not rows:
        return []
    if not 1 <= start or start + len(rows) - 1 > MAX_SEQ or \
            (start == 1 and prev) or (start > 1 and len(prev) != HASH_LEN):
        return None
    out: list[Event] = []
    hlc = 0
    try:
        for seq, (delta, dossier, actor, kind, payload, deps) in enumerate(rows, start=start):
            hlc += delta
            if not 0 <= hlc <= MAX_HLC or kind not in KINDS:
                return None
            for key, value in deps.items():
                check_origin(key)
                if not 1 <= value <= MAX_SEQ:
                    return None
            check_payload(kind, payload)
            # what Event.__post_init__ checks, the types and the lines above have checked
            event = Event.trusted(origin, seq, hlc, uuid_str(dossier), actor, kind, payload, deps,
                                  prev)
            out.append(event)
            prev = event_hash(event)
    except RemoteProtocolError:
        return None
    return out
