"""The wire codec: msgpack with a canonical form for hashing, zstd framing, and hard limits.

Only this module touches msgpack and zstd (protocol/wire.py also reads the request's typed shape, with
msgspec, as a fast path in front of this one). Every decode checks the compressed size, the
decompressed size (bounded by the limit whatever the frame headers say), element counts and
nesting depth before anything is built from the data.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgpack
import zstandard

from protocol.errors import RemoteProtocolError, SyncError, TooLarge
from protocol.events import Event, uuid_bytes, uuid_str

log = logging.getLogger(__name__)

ZSTD_LEVEL = 6


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


# zstd framing (RFC 8878): frames of a 4-byte magic, a header, blocks of a 3-byte header each.
_ZSTD_MAGIC = 0xFD2FB528
_SKIPPABLE, _SKIPPABLE_MASK = 0x184D2A50, 0xFFFFFFF0
_UNKNOWN = (1 << 64) - 1  # ZSTD_CONTENTSIZE_UNKNOWN
_RLE, _COMPRESSED = 1, 2
_BLOCK_MAX = 128 * 1024
MAX_WINDOW = 8 * 1024 * 1024  # decoder memory for a frame that does not declare its size
MAX_BLOCKS = 65_536  # per body: bounds the header walk (a real body has one per 128 KiB)


def _truncated() -> RemoteProtocolError:
    return RemoteProtocolError("truncated zstd body")


def _ceiling(data: bytes, limit: int) -> int:
    """Walk the frame and block headers of a body, inflating nothing, and return how much it can
    inflate to at most. A truncated body is refused here, and one over `limit` by its headers:
    at the first frame header declaring too much, or once the sizes that raw and RLE blocks
    state exactly add up past the limit."""
    pos, end, total, blocks, most = 0, len(data), 0, 0, 0
    too_large = TooLarge(f"body decompresses beyond the limit of {limit} bytes")
    while pos < end:
        if pos + 8 > end:
            raise _truncated()  # no frame is shorter than a magic and 4 more bytes
        magic = int.from_bytes(data[pos:pos + 4], "little")
        if magic & _SKIPPABLE_MASK == _SKIPPABLE:
            pos += 8 + int.from_bytes(data[pos + 4:pos + 8], "little")
            blocks += 1
            continue
        if magic != _ZSTD_MAGIC:
            raise RemoteProtocolError("corrupt zstd body: unknown frame descriptor")
        try:
            head = zstandard.frame_header_size(data[pos:pos + 5])
            if pos + head > end:
                raise _truncated()
            params = zstandard.get_frame_parameters(data[pos:pos + head])
        except zstandard.ZstdError as exc:
            raise RemoteProtocolError(f"corrupt zstd body: {exc}") from exc
        pos += head
        declared = None if params.content_size == _UNKNOWN else params.content_size
        if declared is not None and total + declared > limit:
            raise too_large  # the honest header of a bomb: refused before any work
        if declared is None and params.window_size > MAX_WINDOW:
            raise TooLarge(f"zstd window of {params.window_size} bytes is over the limit of "
                           f"{MAX_WINDOW}")
        block_max = min(params.window_size, _BLOCK_MAX)
        exact = ceiling = 0
        last = False
        while not last:
            if pos + 3 > end:
                raise _truncated()
            header = int.from_bytes(data[pos:pos + 3], "little")
            last, kind, size = bool(header & 1), (header >> 1) & 3, header >> 3
            if kind > _COMPRESSED or size > block_max:
                raise RemoteProtocolError("corrupt zstd body: bad block header")
            pos += 3 + (1 if kind == _RLE else size)
            exact += 0 if kind == _COMPRESSED else size
            ceiling += block_max if kind == _COMPRESSED else size
            blocks += 1
            if pos > end:
                raise _truncated()
            if blocks > MAX_BLOCKS:
                raise TooLarge(f"zstd body has more than {MAX_BLOCKS} blocks")
            if total + exact > limit:
                raise too_large  # RLE and raw blocks state their sizes: nothing to inflate
        pos += 4 if params.has_checksum else 0
        if declared is not None and not exact <= declared <= ceiling:
            raise RemoteProtocolError("corrupt zstd body: the frame header's content size "
                                      "does not match its blocks")
        most += ceiling if declared is None else declared
        total += exact if declared is None else declared
    if pos > end:
        raise _truncated()
    return most


def inflate_bound(data: bytes, limits: Limits = DEFAULT_LIMITS) -> int:
    """How many bytes `decompress(data, limits)` allocates for its output, from the headers
    alone (0 when it refuses `data` before inflating): what a server holds against its memory
    budget before it decodes a body."""
    try:
        return min(limits.max_decompressed, _ceiling(data, limits.max_decompressed)) + 1
    except SyncError:
        return 0


def decompress(data: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """zstd-decompress under both size limits into one buffer of at most `max_decompressed + 1`
    bytes, whatever the frame headers say, returned without a copy.

    The frame and block headers are walked first (`_ceiling`): a body whose headers declare too
    much is refused before any work, a truncated one before any allocation. The buffer is then
    as large as the frames can inflate to (declared sizes, block ceilings), or the limit, plus
    one byte: inflating all frames into it fills it only if they are over the limit. A frame
    whose header lies about its size fails inside zstd, bounded by the buffer."""
    if len(data) > limits.max_body:
        raise TooLarge(f"body of {len(data)} bytes exceeds the limit of {limits.max_body}")
    if not data:
        raise RemoteProtocolError("empty body")
    limit = limits.max_decompressed
    size = min(limit, _ceiling(data, limit)) + 1
    out = io.BytesIO()
    try:
        out.seek(size - 1)
        out.write(b"\0")  # the whole buffer at once, filled in place below
        with out.getbuffer() as view:
            filled = _inflate(data, view)
        if filled == size:
            raise TooLarge(f"body decompresses beyond the limit of {limit} bytes")
        out.truncate(filled)
        return out.getvalue()  # BytesIO hands over its own buffer when it is exactly full
    finally:
        out.close()  # a refusal keeps no buffer alive through its traceback


def _inflate(data: bytes, view: memoryview) -> int:
    """Inflate every frame of `data` (walked: complete, nothing after) into `view`; return how
    many bytes were written, stopping when `view` is full."""
    filled = 0
    try:
        # a frame that declares its size is inflated in one pass straight into `view`; only one
        # that does not needs zstd's own window, kept to MAX_WINDOW
        decompressor = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW)
        with decompressor.stream_reader(data, read_across_frames=True) as reader:
            while filled < len(view) and (n := reader.readinto(view[filled:])):
                filled += n
    except zstandard.ZstdError as exc:
        raise RemoteProtocolError(f"corrupt zstd body: {exc}") from exc
    return filled


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


def stored_change(data: bytes) -> tuple[int, str, dict[str, Any]]:
    """The (hlc, kind, payload) of an event this node stored itself: what reports read of many
    events, without building each one."""
    _, _, hlc, _, _, kind, payload, _, _ = msgpack.unpackb(data)
    return hlc, kind, payload


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
