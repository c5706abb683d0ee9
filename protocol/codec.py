"""The wire codec: msgpack with a canonical form for hashing, zstd framing, and hard limits.

Only this module touches msgpack and zstd. Every decode checks the compressed size, the
decompressed size (read incrementally, never trusted from the frame header), element counts and
nesting depth before anything is built from the data.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgpack
import zstandard

from protocol.errors import RemoteProtocolError, TooLarge
from protocol.events import Event, uuid_bytes, uuid_str

log = logging.getLogger(__name__)

ZSTD_LEVEL = 6
_SLICE = 128


@dataclass(frozen=True, slots=True)
class Limits:
    """Hard limits applied to every message before it is trusted."""

    max_body: int = 8 * 1024 * 1024
    max_decompressed: int = 32 * 1024 * 1024
    max_elements: int = 200_000
    max_str: int = 1024 * 1024
    max_depth: int = 16


DEFAULT_LIMITS = Limits()


_CONTAINERS = (dict, list, tuple)


def sorted_value(value: Any) -> Any:
    """Return `value` with every map's keys sorted, so equal values pack to equal bytes."""
    if isinstance(value, dict):
        return {k: (sorted_value(value[k]) if isinstance(value[k], _CONTAINERS) else value[k])
                for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [sorted_value(v) if isinstance(v, _CONTAINERS) else v for v in value]
    return value


def pack(value: Any) -> bytes:
    """Pack a plain structure (maps, lists, scalars, bytes) to msgpack."""
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


def pack_canonical(value: Any) -> bytes:
    """Pack with sorted map keys: the form that is hashed and compared."""
    data: bytes = msgpack.packb(sorted_value(value), use_bin_type=True)
    return data


def _no_ext(code: int, data: bytes) -> Any:
    raise RemoteProtocolError(f"msgpack extension type {code} is not allowed")


def unpack(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Unpack msgpack bytes under `limits`; raise RemoteProtocolError on anything malformed."""
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_str_len=limits.max_str,
            max_bin_len=limits.max_decompressed,
            max_array_len=limits.max_elements,
            max_map_len=limits.max_elements,
            max_ext_len=0,
            ext_hook=_no_ext,
        )
    except msgpack.StackError as exc:
        raise TooLarge("message nested too deeply") from exc
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, TypeError) as exc:
        if "exceeds max" in str(exc):
            raise TooLarge(f"message element too large: {exc}") from exc
        raise RemoteProtocolError(f"malformed msgpack: {exc}") from exc
    if type(value) is dict or type(value) is list:
        _check_shape(value, limits)
    return value


def _check_shape(value: Any, limits: Limits) -> None:
    """Walk the containers of `value` iteratively; refuse too many elements in total or too
    deep a nesting."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    count = 0
    budget = limits.max_elements * 4
    while stack:
        item, depth = stack.pop()
        if depth > limits.max_depth:
            raise TooLarge("message nested too deeply")
        children = item.values() if type(item) is dict else item
        count += len(children)
        if count > budget:
            raise TooLarge("message has too many elements")
        stack.extend((c, depth + 1) for c in children if type(c) is dict or type(c) is list)


def compress(data: bytes, level: int = ZSTD_LEVEL) -> bytes:
    """zstd-compress `data`."""
    return zstandard.ZstdCompressor(level=level).compress(data)


def decompress(data: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """zstd-decompress under both size limits, reading at most one byte past the limit."""
    if len(data) > limits.max_body:
        raise TooLarge(f"body of {len(data)} bytes exceeds the limit of {limits.max_body}")
    # Feed the input in small slices: one slice can expand to at most ~32,768× its size, so
    # memory stays bounded by the limit plus one slice's worth, whatever the frames declare.
    out = bytearray()
    pos, end = 0, len(data)
    if end == 0:
        raise RemoteProtocolError("empty body")
    try:
        while pos < end:
            frame = zstandard.ZstdDecompressor().decompressobj()
            while not frame.eof:
                if pos >= end:
                    raise RemoteProtocolError("truncated zstd body")
                piece = data[pos:pos + _SLICE]
                pos += len(piece)
                out += frame.decompress(piece)
                if len(out) > limits.max_decompressed:
                    raise TooLarge("body decompresses beyond the limit of "
                                   f"{limits.max_decompressed} bytes")
            pos -= len(frame.unused_data)  # the start of the next frame
    except zstandard.ZstdError as exc:
        raise RemoteProtocolError(f"corrupt zstd body: {exc}") from exc
    return bytes(out)


def encode_body(value: Any) -> bytes:
    """A message body: zstd(msgpack(value))."""
    return compress(pack(value))


def decode_body(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Decode a message body under `limits`."""
    return unpack(decompress(data, limits), limits)


# -- events -------------------------------------------------------------------------------------


def event_to_list(event: Event) -> list[Any]:
    """The full array form of an event, as stored and as sent downstream."""
    return [
        event.origin,
        event.seq,
        event.hlc,
        uuid_bytes(event.dossier),
        event.actor,
        event.kind,
        event.payload,
        event.deps,
        event.prev,
    ]


def event_from_list(item: Any) -> Event:
    """Build and validate an event from its array form."""
    if not isinstance(item, list) or len(item) != 9:
        raise RemoteProtocolError("an event is an array of 9 elements")
    origin, seq, hlc, dossier, actor, kind, payload, deps, prev = item
    if not isinstance(dossier, bytes) or len(dossier) != 16:
        raise RemoteProtocolError("dossier id must be 16 bytes")
    return Event(origin, seq, hlc, uuid_str(dossier), actor, kind, payload, deps, prev)


def canonical(event: Event) -> bytes:
    """The canonical bytes of an event: what is hashed, chained and stored (computed once).

    Maps are packed in the order the origin wrote them (writers sort keys when they stamp an
    event: `stamp_payload`). msgpack decoding and re-encoding preserve map order and the minimal
    encodings of ints and strings, so every replica derives the same bytes without sorting again.
    """
    if event.canon is None:
        object.__setattr__(event, "canon", pack(event_to_list(event)))
    assert event.canon is not None
    return event.canon


def event_hash(event: Event) -> bytes:
    """SHA-256 of the canonical bytes."""
    return hashlib.sha256(canonical(event)).digest()


def unpack_stored(data: bytes) -> Any:
    """Unpack a value this node packed and stored itself (a dossier's folded state): no limits
    walk, which costs more than the unpacking and guards against peers, not against our own
    database."""
    return msgpack.unpackb(data, raw=False)


def decode_stored(data: bytes) -> Event:
    """Decode an event from canonical bytes this node stored itself (validated on the way in)."""
    origin, seq, hlc, dossier, actor, kind, payload, deps, prev = msgpack.unpackb(data)
    return Event.trusted(origin, seq, hlc, uuid_str(dossier), actor, kind, payload,
                         deps, prev, bytes(data))


def encode_own_batch(events: list[Event]) -> dict[str, Any]:
    """Compact form of one origin's contiguous events: origin, seq and prev are implied.

    Only the first event's prev travels; the receiver recomputes the rest of the chain, so a
    32-byte hash is not paid per event. HLCs are sent as deltas.
    """
    if not events:
        return {"start": 0, "prev": b"", "ev": []}
    first = events[0]
    rows: list[list[Any]] = []
    last_hlc = 0
    for expected, event in enumerate(events, start=first.seq):
        if event.seq != expected or event.origin != first.origin:
            raise ValueError("own batch must be one origin's contiguous events")
        rows.append([event.hlc - last_hlc, uuid_bytes(event.dossier), event.actor,
                     event.kind, event.payload, event.deps])
        last_hlc = event.hlc
    return {"start": first.seq, "prev": first.prev, "ev": rows}


def own_batch_from_stored(bodies: Iterable[bytes], max_bytes: int | None = None
                          ) -> tuple[dict[str, Any], int, int]:
    """The compact own batch built straight from stored canonical rows (no Event objects), of
    the first rows up to `max_bytes` of them (at least one); return (batch, first seq, last seq).
    The rows must be one origin's contiguous events."""
    rows: list[list[Any]] = []
    first = last = 0
    prev0 = b""
    last_hlc = 0
    size = 0
    for body in bodies:
        size += len(body)
        if rows and max_bytes is not None and size > max_bytes:
            break
        _, seq, hlc, dossier, actor, kind, payload, deps, prev = msgpack.unpackb(body)
        if not rows:
            first, prev0 = seq, prev
        elif seq != last + 1:
            raise ValueError("own batch must be one origin's contiguous events")
        last = seq
        rows.append([hlc - last_hlc, dossier, actor, kind, payload, deps])
        last_hlc = hlc
    return {"start": first, "prev": prev0, "ev": rows}, first, last


def decode_own_batch(origin: str, batch: Any) -> list[Event]:
    """Rebuild the events of a compact own batch, recomputing the hash chain."""
    if not isinstance(batch, dict):
        raise RemoteProtocolError("events must be a map")
    start, prev, rows = batch.get("start"), batch.get("prev"), batch.get("ev")
    if not isinstance(rows, list) or type(start) is not int or not isinstance(prev, bytes):
        raise RemoteProtocolError("events need start, prev and ev")
    if not rows:
        return []
    events: list[Event] = []
    hlc = 0
    for offset, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != 6:
            raise RemoteProtocolError("an own event is an array of 6 elements")
        delta, dossier, actor, kind, payload, deps = row
        if type(delta) is not int:
            raise RemoteProtocolError("hlc delta must be an integer")
        hlc += delta
        if not isinstance(dossier, bytes) or len(dossier) != 16:
            raise RemoteProtocolError("dossier id must be 16 bytes")
        event = Event(origin, start + offset, hlc, uuid_str(dossier), actor, kind,
                      payload, deps, prev)
        events.append(event)
        prev = event_hash(event)
    return events
