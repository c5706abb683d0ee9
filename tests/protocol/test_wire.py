"""The typed fast path of `decode_request` (protocol/wire.py) against the general one: it takes an
honest request, and on any body — honest, mutated in its structure or in its msgpack bytes — the
answer (the request built, or the error and its message) is the general path's."""

from __future__ import annotations

import os
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import codec, hlc, messages, wire
from protocol.errors import SyncError
from protocol.events import Event, uuid7
from protocol.messages import SyncRequest, decode_request, encode_request

NODE = "n-wire"


def _chain(n: int) -> list[Event]:
    out: list[Event] = []
    dossier = uuid7(1_700_000_000_000, os.urandom(10))
    for seq in range(1, n + 1):
        payload: dict[str, Any] = {"set": {"applicant.address": f"Thôn {seq}"}}
        kind = "set"
        if seq == 1:
            kind, payload = "create", {
                "procedure": "1.001193", "commune": "00001", "code": "X-1", "channel": "counter",
                "received_at": 1, "status": "accepted", "set": {"applicant.full_name": "An"}}
        prev = codec.event_hash(out[-1]) if out else b""
        out.append(Event(NODE, seq, hlc.pack(1_700_000_000_000, seq), dossier, "clerk", kind,
                         payload, {NODE: seq - 1} if seq > 1 else {}, prev))
    return out


EVENTS = _chain(6)
PLAIN = codec.unpack(codec.decompress(encode_request(
    SyncRequest(NODE, EVENTS, 3, 1 << 20, 5, stats={"pending_events": 2}, ref={"communes": 1},
                units=("02245", "02227")))))


def _slow(body: bytes) -> Any:
    original = wire.decode_request
    wire.decode_request = lambda data, limits: None  # type: ignore[assignment]
    try:
        return _outcome(body)
    finally:
        wire.decode_request = original


def _outcome(body: bytes) -> Any:
    try:
        return decode_request(body)
    except SyncError as exc:
        return type(exc).__name__, exc.message


def test_an_honest_request_takes_the_fast_path_and_builds_the_same_events() -> None:
    body = codec.compress(codec.pack(PLAIN))
    fast = wire.decode_request(codec.decompress(body), codec.DEFAULT_LIMITS)
    assert fast is not None and fast[1] is not None
    assert wire.events(NODE, fast[1]) == EVENTS
    req = decode_request(body)
    assert req == _slow(body) and req.events == EVENTS and req.units == ("02245", "02227")
    assert [codec.event_hash(e) for e in req.events] == [codec.event_hash(e) for e in EVENTS]


@pytest.mark.parametrize("change", [
    {"v": 99}, {"node": "bad node!"}, {"node": 7}, {"stats": [1]}, {"ref": "x"}, {"cursor": -1},
    {"want": True}, {"epoch": "e" * 65}, {"epoch": None}, {"ev": {"start": 0}},
    {"units": "02245"}, {"units": ["2245"]}, {"units": [2245]},
])
def test_a_bad_field_is_refused_with_the_general_paths_message(change: dict[str, Any]) -> None:
    body = codec.compress(codec.pack({**PLAIN, **change}))
    assert _outcome(body) == _slow(body)
    assert isinstance(_outcome(body), tuple)


def _rows(mutate: Any) -> bytes:
    plain = {**PLAIN, "ev": {**PLAIN["ev"], "ev": [list(r) for r in PLAIN["ev"]["ev"]]}}
    mutate(plain["ev"]["ev"])
    return codec.compress(codec.pack(plain))


@pytest.mark.parametrize("mutate", [
    lambda rows: rows[2].__setitem__(2, ""),  # empty actor
    lambda rows: rows[2].__setitem__(3, "explode"),  # unknown kind
    lambda rows: rows[2].__setitem__(4, {"set": {}}),  # empty set
    lambda rows: rows[2].__setitem__(4, {"set": {"a": b"bytes"}}),  # bytes in a payload
    lambda rows: rows[2].__setitem__(5, {"bad origin!": 1}),
    lambda rows: rows[2].__setitem__(5, {NODE: 0}),
    lambda rows: rows[2].__setitem__(1, b"short"),
    lambda rows: rows[2].__setitem__(0, -(1 << 62)),  # an hlc below zero
    lambda rows: rows[2].append(1),  # seven elements
    lambda rows: rows[2].__setitem__(4, {"set": {"a": 1}, "deep": [[[[[[[[[[[[1]]]]]]]]]]]]}),
])
def test_a_bad_event_is_refused_with_the_general_paths_message(mutate: Any) -> None:
    body = _rows(mutate)
    assert _outcome(body) == _slow(body)
    assert isinstance(_outcome(body), tuple)


def test_an_extension_or_a_bytes_key_goes_the_general_way() -> None:
    for extra in (msgpack.ExtType(5, b"x"), {b"k": 1}, {1: 2}):
        body = codec.compress(msgpack.packb({**PLAIN, "stats": extra}, use_bin_type=True))
        assert _outcome(body) == _slow(body)


_scalars = st.none() | st.booleans() | st.integers(-(1 << 63), (1 << 64) - 1) | \
    st.floats(allow_nan=False) | st.text(max_size=8) | st.binary(max_size=4)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=4) | st.binary(max_size=2), inner, max_size=3), max_leaves=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["v", "node", "cursor", "stats", "ref", "epoch", "ev", "row", "payload",
                        "deps", "actor"]), _values)
def test_any_structural_mutation_answers_as_the_general_path(where: str, value: Any) -> None:
    plain = {**PLAIN, "ev": {**PLAIN["ev"], "ev": [list(r) for r in PLAIN["ev"]["ev"]]}}
    row = plain["ev"]["ev"][1]
    if where in ("row", "payload", "deps", "actor"):
        row[{"row": 0, "payload": 4, "deps": 5, "actor": 2}[where]] = value
    else:
        plain[where] = value
    body = codec.compress(msgpack.packb(plain, use_bin_type=True))
    assert _outcome(body) == _slow(body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.integers(0, 255))
def test_any_byte_flip_answers_as_the_general_path(at: int, byte: int) -> None:
    raw = bytearray(codec.pack(PLAIN))
    raw[at % len(raw)] = byte
    body = codec.compress(bytes(raw))
    assert _outcome(body) == _slow(body)


def test_messages_uses_the_wire_module() -> None:
    assert messages.wire is wire
