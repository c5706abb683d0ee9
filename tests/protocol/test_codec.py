"""The wire codec: canonical bytes (golden), the own-batch hash chain, and every hard limit; the
bounded decompressor at its exact limit, across frames, and against lying, truncated, corrupt
and bomb-shaped bodies, with its allocations measured (tracemalloc)."""

from __future__ import annotations

import itertools
import time
import tracemalloc
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import msgpack
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.codec import (
    MAX_BLOCKS,
    MAX_WINDOW,
    Limits,
    canonical,
    compress,
    decode_body,
    decode_own_batch,
    decode_stored,
    decompress,
    encode_body,
    encode_own_batch,
    event_from_list,
    event_hash,
    event_to_list,
    inflate_bound,
    pack,
    pack_canonical,
    sorted_value,
    unpack,
)
from protocol.errors import RemoteProtocolError, TooLarge
from protocol.events import Event
from protocol.hlc import pack as hlc_pack
from tests.security.bombs import (
    GiB,
    MiB,
    behind_a_valid_frame,
    honest_bomb,
    lying_header,
    pattern_bomb,
    zeros_bomb,
)

DOSSIER = "01943a2b-7c00-7abc-8def-0123456789ab"
T = 1_767_600_000_000

GOLDEN = Event(
    origin="e08-02245",
    seq=2,
    hlc=hlc_pack(T, 3),
    dossier=DOSSIER,
    actor="canbo.hoa",
    kind="set",
    payload={"set": {
        "applicant.full_name": "Nguyễn Thị Hoa",
        "fields.child_birth_place": "Trạm y tế xã Côn Lôn",
    }},
    deps={"e08-02245": 1, "hub": 4},
    prev=bytes(range(32)),
)
# msgpack array of 9, map keys sorted, strings UTF-8 (NFC), dossier as 16 raw bytes. Computed once.
GOLDEN_HEX = (
    "99a96530382d303232343502cf019b8d2b8c000003c41001943a2b7c007abc8def0123456789aba963616e62"
    "6f2e686f61a373657481a373657482b36170706c6963616e742e66756c6c5f6e616d65b24e677579e1bb856e"
    "205468e1bb8b20486f61b86669656c64732e6368696c645f62697274685f706c616365bb5472e1baa16d2079"
    "2074e1babf2078c3a32043c3b46e204cc3b46e82a96530382d303232343501a368756204c420000102030405"
    "060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
)
GOLDEN_HASH = "8e5630e2d8ef1fbd80cf196b4682601731b8d0a6811cf5a1b921efa947a10b24"


def make_event(seq: int, *, origin: str = "e1", prev: bytes = b"", hlc: int | None = None,
               payload: dict[str, Any] | None = None, deps: dict[str, int] | None = None,
               kind: str = "set", dossier: str = DOSSIER) -> Event:
    if seq > 1 and not prev:
        prev = b"\x00" * 32
    return Event(origin, seq, hlc if hlc is not None else hlc_pack(T + seq, 0), dossier, "clerk",
                 kind, payload if payload is not None else {"set": {"fields.x": f"v{seq}"}},
                 deps if deps is not None else {origin: seq - 1} if seq > 1 else {}, prev)


def chain(n: int, origin: str = "e1", start: int = 1) -> list[Event]:
    """n contiguous events of one origin with a correct hash chain."""
    events: list[Event] = []
    prev = b"" if start == 1 else b"\x11" * 32
    for seq in range(start, start + n):
        event = make_event(seq, origin=origin, prev=prev,
                           payload={"set": {"applicant.address": f"Thôn {seq}, xã Côn Lôn"}})
        events.append(event)
        prev = event_hash(event)
    return events


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


# -- golden bytes -------------------------------------------------------------------------------


def test_canonical_bytes_are_golden() -> None:
    assert canonical(GOLDEN).hex() == GOLDEN_HEX


def test_golden_bytes_decode_to_the_event() -> None:
    event = decode_stored(bytes.fromhex(GOLDEN_HEX))
    assert event == GOLDEN
    assert event.payload["set"]["applicant.full_name"] == "Nguyễn Thị Hoa"


def test_event_hash_is_golden() -> None:
    assert event_hash(GOLDEN).hex() == GOLDEN_HASH


def test_canonical_form_is_the_origins_order_and_survives_every_hop() -> None:
    """Writers sort keys once when they stamp an event (DossierStore._stamp uses sorted_value);
    after that every replica derives the same bytes: decode and re-encode keep map order."""
    reordered = Event(
        GOLDEN.origin, GOLDEN.seq, GOLDEN.hlc, GOLDEN.dossier, GOLDEN.actor, GOLDEN.kind,
        {"set": dict(reversed(list(GOLDEN.payload["set"].items())))},
        dict(reversed(list(GOLDEN.deps.items()))),
        GOLDEN.prev,
    )
    assert list(reordered.deps) != list(GOLDEN.deps)
    # a different order is a different event as far as the hash chain goes …
    assert canonical(reordered) != canonical(GOLDEN)
    # … and sorting, as a writer does, gives the canonical bytes back
    resorted = Event(reordered.origin, reordered.seq, reordered.hlc, reordered.dossier,
                     reordered.actor, reordered.kind, sorted_value(reordered.payload),
                     sorted_value(reordered.deps), reordered.prev)
    assert canonical(resorted) == canonical(GOLDEN)
    # every hop preserves the bytes: stored form, wire form, own-batch form
    assert canonical(event_from_list(unpack(canonical(reordered)))) == canonical(reordered)
    [via_batch] = decode_own_batch(reordered.origin, unpack(pack(encode_own_batch([reordered]))))
    assert canonical(via_batch) == canonical(reordered)


def test_pack_canonical_sorts_nested_maps() -> None:
    a = {"b": {"y": 1, "x": [{"q": 1, "p": 2}]}, "a": 0}
    b = {"a": 0, "b": {"x": [{"p": 2, "q": 1}], "y": 1}}
    assert pack_canonical(a) == pack_canonical(b)
    assert pack_canonical(a) != pack_canonical({"a": 0, "b": {"x": [{"p": 2, "q": 2}], "y": 1}})


GOLDEN_FIELDS: dict[str, Any] = {
    "origin": GOLDEN.origin, "seq": GOLDEN.seq, "hlc": GOLDEN.hlc, "dossier": GOLDEN.dossier,
    "actor": GOLDEN.actor, "kind": GOLDEN.kind, "payload": GOLDEN.payload, "deps": GOLDEN.deps,
    "prev": GOLDEN.prev,
}


def golden_with(**changes: Any) -> Event:
    """A fresh event equal to GOLDEN except for `changes` (built from scratch, nothing cached)."""
    return Event(**{**GOLDEN_FIELDS, **changes})


def test_any_field_changes_the_hash() -> None:
    variants = [
        golden_with(origin="e08-02227"),
        golden_with(seq=3),
        golden_with(hlc=GOLDEN.hlc + 1),
        golden_with(dossier="01943a2b-7c00-7abc-8def-0123456789ac"),
        golden_with(actor="canbo.lan"),
        golden_with(kind="resolve",
                    payload={"field": "applicant.full_name", "value": "Nguyễn Thị Hoa"}),
        golden_with(payload={"set": {"applicant.full_name": "Nguyễn Thị Hòa"}}),
        golden_with(deps={"e08-02245": 1, "hub": 5}),
        golden_with(prev=b"\x01" * 32),
    ]
    hashes = {event_hash(v) for v in variants} | {event_hash(golden_with())}
    assert len(hashes) == len(variants) + 1


def test_a_replaced_event_does_not_keep_a_stale_canonical_form() -> None:
    # dataclasses.replace is the idiomatic way to derive an event; it must not carry over
    # bytes computed for the original.
    original = golden_with()
    before = canonical(original)
    derived = replace(original, seq=3)
    assert derived.seq == 3
    assert canonical(derived) != before
    assert decode_stored(canonical(derived)).seq == 3
    assert event_hash(derived) == event_hash(golden_with(seq=3))


_values = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                    st.floats(allow_nan=False), st.text(max_size=40))
_paths = st.sampled_from(["applicant.full_name", "applicant.address", "applicant.phone",
                          "fields.child_full_name", "fields.x", "fields.note_2"])


@settings(max_examples=100, deadline=None)
@given(
    origin=st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,31}\Z"),
    seq=st.integers(1, 2**63 - 1),
    hlc=st.integers(0, 2**64 - 1),
    dossier=st.uuids(),
    values=st.dictionaries(_paths, _values, min_size=1),
    deps=st.dictionaries(st.sampled_from(["e1", "e2", "hub"]), st.integers(1, 2**63 - 1)),
)
def test_stored_form_round_trips(origin: str, seq: int, hlc: int, dossier: uuid.UUID,
                                 values: dict[str, Any], deps: dict[str, int]) -> None:
    event = Event(origin, seq, hlc, str(dossier), "clerk", "set", {"set": values}, deps,
                  b"" if seq == 1 else b"\xab" * 32)
    data = canonical(event)
    assert decode_stored(data) == event
    assert canonical(decode_stored(data)) == data


# -- own batches --------------------------------------------------------------------------------


def test_own_batch_round_trip() -> None:
    events = chain(5)
    batch = encode_own_batch(events)
    assert batch["start"] == 1
    assert batch["prev"] == b""
    assert decode_own_batch("e1", batch) == events


def test_own_batch_survives_the_wire() -> None:
    events = chain(4, start=7)
    wire = unpack(pack(encode_own_batch(events)))
    assert decode_own_batch("e1", wire) == events


def test_own_batch_recomputes_the_hash_chain() -> None:
    # Events whose prev fields are wrong: the compact form carries only the first prev, so the
    # receiver's chain must come from the hashes of the events it rebuilt.
    events = [make_event(1), make_event(2, prev=b"\x22" * 32), make_event(3, prev=b"\x33" * 32)]
    decoded = decode_own_batch("e1", encode_own_batch(events))
    assert [e.seq for e in decoded] == [1, 2, 3]
    assert decoded[0].prev == b""
    for before, after in itertools.pairwise(decoded):
        assert after.prev == event_hash(before)
    assert decoded[1].prev != b"\x22" * 32


def test_own_batch_keeps_the_first_prev() -> None:
    first_prev = b"\x5a" * 32
    events = [make_event(9, prev=first_prev), make_event(10)]
    decoded = decode_own_batch("e1", encode_own_batch(events))
    assert decoded[0].prev == first_prev
    assert decoded[1].prev == event_hash(decoded[0])


def test_own_batch_hlcs_travel_as_deltas() -> None:
    events = [make_event(1, hlc=hlc_pack(T, 0)), make_event(2, hlc=hlc_pack(T, 5)),
              make_event(3, hlc=hlc_pack(T + 1, 0))]
    batch = encode_own_batch(events)
    assert [row[0] for row in batch["ev"]] == [hlc_pack(T, 0), 5, hlc_pack(1, 0) - 5]
    assert [e.hlc for e in decode_own_batch("e1", batch)] == [e.hlc for e in events]


def test_empty_own_batch() -> None:
    assert decode_own_batch("e1", encode_own_batch([])) == []


@pytest.mark.parametrize("events", [
    [make_event(1), make_event(3)],
    [make_event(2), make_event(1)],
    [make_event(1), make_event(2, origin="e2")],
], ids=["gap", "backwards", "two-origins"])
def test_own_batch_must_be_contiguous_and_one_origin(events: list[Event]) -> None:
    with pytest.raises(ValueError):
        encode_own_batch(events)


@pytest.mark.parametrize("batch", [
    [],
    {"start": 1, "prev": b""},
    {"start": "1", "prev": b"", "ev": []},
    {"start": 1, "prev": b"", "ev": [[1, 2, 3]]},
    {"start": 1, "prev": b"", "ev": [["x", uuid.UUID(DOSSIER).bytes, "a", "set",
                                      {"set": {"fields.x": "1"}}, {}]]},
    {"start": 1, "prev": b"", "ev": [[1, b"short", "a", "set", {"set": {"fields.x": "1"}}, {}]]},
    {"start": 0, "prev": b"", "ev": [[1, uuid.UUID(DOSSIER).bytes, "a", "set",
                                      {"set": {"fields.x": "1"}}, {}]]},
    {"start": 1, "prev": b"", "ev": [[-1, uuid.UUID(DOSSIER).bytes, "a", "set",
                                      {"set": {"fields.x": "1"}}, {}]]},
], ids=["not-a-map", "no-ev", "start-text", "short-row", "delta-text", "dossier-short", "seq-0",
        "negative-hlc"])
def test_bad_own_batch_is_a_remote_error(batch: Any) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_own_batch("e1", batch)


# -- hostile events from a peer ----------------------------------------------------------------------


def _row(**changes: Any) -> list[Any]:
    base = {"origin": "e1", "seq": 1, "hlc": 5, "dossier": uuid.UUID(DOSSIER).bytes,
            "actor": "clerk", "kind": "set", "payload": {"set": {"fields.x": "1"}}, "deps": {},
            "prev": b""}
    base.update(changes)
    return list(base.values())


def test_the_hostile_row_template_is_valid() -> None:
    assert event_from_list(_row()).payload == {"set": {"fields.x": "1"}}


@pytest.mark.parametrize("item", [
    {"origin": "e1"},
    _row()[:8],
    _row(origin="bad origin!"),
    _row(origin="e1\n"),
    _row(origin=7),
    _row(origin=["e1"]),
    _row(seq=0),
    _row(seq=True),
    _row(hlc=-1),
    _row(hlc=5.0),
    _row(dossier=b"\x00" * 15),
    _row(dossier=DOSSIER),
    _row(actor=""),
    _row(kind="explode"),
    _row(kind=["set"]),
    _row(kind="transition", payload={"to": ["processing"]}),
    _row(kind="transition", payload={"to": "flying"}),
    _row(payload={"set": {"status": "returned"}}),
    _row(payload=[1]),
    _row(deps={"e2": 0}),
    _row(deps={"e2": "3"}),
    _row(prev=b"\x00" * 32),
    _row(seq=2, prev=b"\x00" * 31),
], ids=["map", "eight-elements", "origin-space", "origin-newline", "origin-int", "origin-list", "seq-0",
        "seq-bool", "hlc-negative", "hlc-float", "dossier-15-bytes", "dossier-text",
        "actor-empty", "kind-unknown", "kind-list", "transition-to-list", "transition-to-unknown",
        "set-status", "payload-list", "deps-zero", "deps-text", "prev-on-seq-1", "prev-31-bytes"])
def test_hostile_events_are_remote_errors(item: Any) -> None:
    with pytest.raises(RemoteProtocolError):
        event_from_list(unpack(pack(item)))


# -- framing and limits -------------------------------------------------------------------------


def test_body_round_trip() -> None:
    value = {"v": 1, "ev": [event_to_list(GOLDEN)], "text": "Hồ sơ đã tiếp nhận"}
    assert decode_body(encode_body(value)) == value


def test_body_over_max_body_is_too_large() -> None:
    body = encode_body({"blob": b"\x07" * 5000})
    assert len(body) < 5000
    with pytest.raises(TooLarge):
        decompress(body, Limits(max_body=len(body) - 1))
    assert decompress(body, Limits(max_body=len(body))) == pack({"blob": b"\x07" * 5000})


def _zeros_bomb(megabytes: int) -> bytes:
    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    chunk = bytes(1 << 20)
    return b"".join(compressor.compress(chunk) for _ in range(megabytes)) + compressor.flush()


def test_zstd_bomb_is_too_large_and_fast() -> None:
    bomb = _zeros_bomb(100)
    assert len(bomb) < 64 * 1024
    started = time.perf_counter()
    with pytest.raises(TooLarge):
        decode_body(bomb)
    assert time.perf_counter() - started < 5.0


def test_zstd_bomb_with_a_small_limit() -> None:
    bomb = _zeros_bomb(8)
    with pytest.raises(TooLarge):
        decompress(bomb, Limits(max_decompressed=1 << 20))


def test_decompressed_size_limit_is_exact() -> None:
    data = b"a" * 1000
    assert decompress(compress(data), Limits(max_decompressed=1000)) == data
    with pytest.raises(TooLarge):
        decompress(compress(data), Limits(max_decompressed=999))


def test_a_truncated_streaming_frame_is_refused() -> None:
    data = _zeros_bomb(1)
    with pytest.raises(RemoteProtocolError):
        decompress(data[: len(data) // 2])


def test_limit_counts_every_frame() -> None:
    body = compress(b"\x00" * 600_000) + compress(b"\x00" * 600_000)
    with pytest.raises(TooLarge):
        decompress(body, Limits(max_decompressed=1_000_000))


def test_a_body_split_across_frames_decodes() -> None:
    data = pack({"ev": list(range(500)), "note": "nhiều khung"})
    half = len(data) // 2
    assert decode_body(compress(data[:half]) + compress(data[half:])) == unpack(data)


def test_deep_nesting_is_too_large() -> None:
    data = b"\x91" * 100_000 + b"\xc0"
    with pytest.raises(TooLarge):
        unpack(data)
    with pytest.raises(TooLarge):
        decode_body(compress(data))


def test_nesting_limit_is_exact() -> None:
    assert unpack(pack(nested(16))) == nested(16)
    with pytest.raises(TooLarge):
        unpack(pack(nested(17)))
    with pytest.raises(TooLarge):
        unpack(pack(nested(5)), Limits(max_depth=4))
    nested_maps: Any = {"k": 1}
    for _ in range(20):
        nested_maps = {"k": nested_maps}
    with pytest.raises(TooLarge):
        unpack(pack(nested_maps))


def test_one_container_with_too_many_elements_is_too_large() -> None:
    limits = Limits(max_elements=10)
    assert unpack(pack(list(range(10))), limits) == list(range(10))
    with pytest.raises(TooLarge):
        unpack(pack(list(range(11))), limits)
    with pytest.raises(TooLarge):
        unpack(pack({str(i): i for i in range(11)}), limits)


def test_too_many_elements_in_total_is_too_large() -> None:
    limits = Limits(max_elements=10)
    value = [list(range(10)) for _ in range(5)]  # no container over 10, 56 elements in all
    with pytest.raises(TooLarge):
        unpack(pack(value), limits)


def test_default_element_limit_applies_to_a_large_list() -> None:
    with pytest.raises(TooLarge):
        decode_body(encode_body([0] * 200_001))


def test_long_string_is_too_large() -> None:
    with pytest.raises(TooLarge):
        unpack(pack("x" * 11), Limits(max_str=10))
    assert unpack(pack("x" * 10), Limits(max_str=10)) == "x" * 10


@pytest.mark.parametrize("data", [
    b"definitely not zstd",
    b"\x28\xb5\x2f\xfd" + b"\xff" * 20,
], ids=["no-magic", "bad-frame"])
def test_garbage_body_is_a_remote_error(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_body(data)
    assert not isinstance(info.value, TooLarge)


@pytest.mark.parametrize("data", [
    b"\xc1",
    b"\x92\x01",
    b"\x01\x02",
    b"\x81\x01\x02",
    b"\xa5abc",
    b"",
], ids=["never-used", "incomplete", "extra-data", "int-key", "short-str", "empty"])
def test_garbage_msgpack_is_a_remote_error(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        unpack(data)
    with pytest.raises(RemoteProtocolError):
        decode_body(compress(data))


@pytest.mark.parametrize("data", [
    b"\xd4\x05\x00",
    b"\xc7\x00\x05",
    b"\xd6\xff\x00\x00\x00\x00",
], ids=["fixext1", "ext8-empty", "timestamp"])
def test_extension_types_are_refused(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        unpack(data)


def test_truncated_zstd_is_a_remote_error() -> None:
    body = encode_body({"ev": [event_to_list(GOLDEN)] * 50})
    for cut in (1, 4, len(body) // 2):
        with pytest.raises(RemoteProtocolError):
            decode_body(body[:-cut])


def test_decompress_refuses_a_truncated_frame() -> None:
    data = b"".join(msgpack.packb(i) for i in range(100_000))
    body = compress(data)
    for cut in (1, 4, len(body) // 2):
        with pytest.raises(RemoteProtocolError):
            decompress(body[:-cut])


# -- the bounded decompressor ------------------------------------------------------------------

SMALL = Limits(max_decompressed=MiB)


def streamed(data: bytes) -> bytes:
    """A frame without a content size in its header, as a streaming compressor writes it."""
    compressor = zstandard.ZstdCompressor().compressobj()
    return compressor.compress(data) + compressor.flush()


def with_checksum(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(write_checksum=True).compress(data)


def traced(call: Callable[[], object]) -> tuple[object, int]:
    """(what `call` returned or raised, the peak of Python allocations during it)."""
    tracemalloc.start()
    try:
        try:
            result: object = call()
        except (RemoteProtocolError, TooLarge) as exc:
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("frame", [compress, streamed, with_checksum],
                         ids=["declared", "streamed", "checksum"])
def test_the_limit_is_exact_for_every_kind_of_frame(frame: Callable[[bytes], bytes]) -> None:
    data = bytes(range(256)) * (MiB // 256)
    assert decompress(frame(data), SMALL) == data
    with pytest.raises(TooLarge, match="decompresses beyond the limit"):
        decompress(frame(data + b"!"), SMALL)


def test_the_limit_is_exact_across_frames() -> None:
    half = b"x" * (MiB // 2)
    for first, second in itertools.product([compress, streamed], repeat=2):
        assert decompress(first(half) + second(half), SMALL) == half + half
        with pytest.raises(TooLarge):
            decompress(first(half) + second(half + b"!"), SMALL)


def test_many_frames_of_both_kinds_and_skippable_frames_decode() -> None:
    skippable = (0x184D2A53).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"notes"
    parts = [bytes([i]) * (1000 + i) for i in range(20)]
    body = skippable + b"".join((compress if i % 2 else streamed)(p) + skippable
                                for i, p in enumerate(parts))
    assert decompress(body) == b"".join(parts)
    assert decompress(compress(b"") + compress(b"a")) == b"a"


def test_output_allocation_is_bounded_by_the_limit_whatever_the_bomb() -> None:
    for bomb in (pattern_bomb(64 * MiB), behind_a_valid_frame(pattern_bomb(64 * MiB)),
                 streamed(b"a" * 4 * MiB) + pattern_bomb(64 * MiB)):
        result, peak = traced(lambda bomb=bomb: decompress(bomb, SMALL))
        assert isinstance(result, TooLarge), result
        assert peak < MiB + 64 * 1024, peak  # the limit + 1 byte, and bookkeeping


def test_a_refusal_keeps_nothing_inflated_alive() -> None:
    tracemalloc.start()
    try:
        with pytest.raises(TooLarge) as info:
            decompress(pattern_bomb(64 * MiB))
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert info.value.__traceback__ is not None  # kept, as a server keeps it while answering
    assert held < 256 * 1024, held


def test_a_header_that_honestly_declares_too_much_is_refused_before_any_work() -> None:
    bomb = honest_bomb(GiB)
    result, peak = traced(lambda: decompress(bomb))
    assert isinstance(result, TooLarge) and peak < 16 * 1024, (result, peak)
    # the header alone decides: what follows it is never looked at
    header = bomb[:zstandard.frame_header_size(bomb[:5])]
    with pytest.raises(TooLarge):
        decompress(header + b"\xff" * 100)
    started = time.perf_counter()
    for _ in range(1000):
        with pytest.raises(TooLarge):
            decompress(bomb)
    assert time.perf_counter() - started < 0.5  # well under a millisecond each
    assert inflate_bound(bomb) == 0


def test_rle_blocks_past_the_limit_are_refused_from_their_headers() -> None:
    bomb = zeros_bomb(GiB)
    result, peak = traced(lambda: decompress(bomb))
    assert isinstance(result, TooLarge) and peak < 16 * 1024, (result, peak)


@pytest.mark.parametrize("declared", [1000, MiB // 2, 0])
def test_a_lying_header_is_bounded_by_what_it_declares(declared: int) -> None:
    bomb = lying_header(pattern_bomb(64 * MiB), declared)
    assert zstandard.frame_content_size(bomb) == declared
    result, peak = traced(lambda: decompress(bomb, SMALL))
    assert isinstance(result, RemoteProtocolError), result  # TooLarge is one too
    assert peak < declared + 64 * 1024, peak


def test_a_header_declaring_more_than_its_blocks_hold_is_corrupt() -> None:
    body = lying_header(streamed(b"a" * 100), 10 * MiB)  # one small block cannot hold 10 MiB
    with pytest.raises(RemoteProtocolError, match="does not match its blocks"):
        decompress(body)


@pytest.mark.parametrize("frame", [compress, streamed, with_checksum],
                         ids=["declared", "streamed", "checksum"])
def test_every_truncation_is_refused_as_truncated_or_corrupt(
        frame: Callable[[bytes], bytes]) -> None:
    first = frame(b"".join(msgpack.packb(i) for i in range(300)))
    body = first + frame(b"second frame")
    for cut in range(1, len(body)):
        if cut == len(first):
            continue  # a whole first frame is a valid body
        with pytest.raises(RemoteProtocolError) as info:
            decompress(body[:cut])
        assert not isinstance(info.value, TooLarge), cut
        assert "truncated" in info.value.message or "corrupt" in info.value.message, cut


def test_a_truncated_bomb_is_refused_before_inflating() -> None:
    bomb = pattern_bomb(64 * MiB)
    result, peak = traced(lambda: decompress(bomb[:-1]))
    assert isinstance(result, RemoteProtocolError) and "truncated" in str(result), result
    assert peak < 64 * 1024, peak


@pytest.mark.parametrize("body", [
    compress(b"valid") + b"trailing garbage",
    compress(b"valid") + b"\x28\xb5\x2f\xfd" + b"\xff" * 20,
    b"\x28\xb5\x2f\xfd\x20\x05" + (7 << 0).to_bytes(3, "little") + b"xxxxx",  # block type 3
    b"\x28\xb5\x2f\xfd\x20\x05" + ((5 << 3) | 1).to_bytes(3, "little") + b"xxx",  # short
], ids=["trailing-garbage", "bad-second-frame", "reserved-block-type", "short-raw-block"])
def test_corrupt_framing_is_a_remote_error(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decompress(body)
    assert not isinstance(info.value, TooLarge)


def test_corrupt_compressed_content_is_a_remote_error() -> None:
    body = bytearray(with_checksum(bytes(range(256)) * 4000))
    body[len(body) // 2] ^= 0x55
    with pytest.raises(RemoteProtocolError) as info:
        decompress(bytes(body))
    assert not isinstance(info.value, TooLarge)


def test_a_frame_needing_a_large_window_is_refused() -> None:
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=24)
    compressor = zstandard.ZstdCompressor(compression_params=params).compressobj()
    body = compressor.compress(b"a" * 1000) + compressor.flush()
    assert zstandard.get_frame_parameters(body).window_size > MAX_WINDOW
    with pytest.raises(TooLarge, match="window"):
        decompress(body)


def test_too_many_blocks_are_refused_quickly() -> None:
    empty_raw = (0).to_bytes(3, "little")
    head = streamed(b"a")[:6]  # magic, descriptor, window: a frame without a content size
    body = head + empty_raw * (MAX_BLOCKS + 1) + (1).to_bytes(3, "little")
    started = time.perf_counter()
    with pytest.raises(TooLarge, match="blocks"):
        decompress(body)
    assert time.perf_counter() - started < 1.0


def test_inflate_bound_is_what_decompress_allocates() -> None:
    data = bytes(range(256)) * 4000
    assert inflate_bound(compress(data)) == len(data) + 1
    assert len(data) < inflate_bound(streamed(data)) <= len(data) + 128 * 1024 + 1
    assert inflate_bound(compress(data) + compress(data)) == 2 * len(data) + 1
    assert inflate_bound(pattern_bomb(64 * MiB)) == Limits().max_decompressed + 1
    assert inflate_bound(b"not zstd") == 0
