"""The bundle envelope's pure rules: the header round trip, the prelude, who is taken in which
order, the epoch, and when a hub bundle may move the edge's cursor."""

from __future__ import annotations

import pytest

from protocol import bundle
from protocol.bundle import BundleRefused, Header, Seen


def header(kind: str = bundle.HUB, serial: int = 10, epoch: str = "e1",
           **ranges: int) -> Header:
    return Header(kind, "02245.01", "hub", "ab" * 32, epoch, serial, 5, ranges or {"from": 0},
                  0, b"\0" * 32, 0, "PEM")


def test_the_header_round_trips_and_is_canonical() -> None:
    h = header(**{"from": 3, "to": 9, "ack": 4})
    assert bundle.decode_header(h.encode()) == h
    assert h.encode() == bundle.decode_header(h.encode()).encode()


def test_the_prelude_names_the_format_version() -> None:
    raw = bundle.prelude(header().encode(), b"sig")
    assert bundle.read_prelude_start(raw[:18]) == len(header().encode())
    with pytest.raises(BundleRefused, match="format version 2"):
        bundle.read_prelude_start(raw[:12] + b"\0\2" + raw[14:18])
    with pytest.raises(BundleRefused, match="wrong magic"):
        bundle.read_prelude_start(b"PK\3\4" + raw[4:18])
    with pytest.raises(BundleRefused, match="truncated"):
        bundle.read_prelude_start(raw[:5])
    with pytest.raises(BundleRefused, match="names no bundle format"):
        bundle.decode_header(b"\x80")
    with pytest.raises(BundleRefused, match="malformed"):
        bundle.decode_header(header().encode().replace(b"\xa802245.01", b"\xcd\x00\x01"
                                                       + b"\xc0" * 6))


def test_order_takes_newer_ignores_the_same_refuses_older_or_another() -> None:
    seen = Seen(10, b"d" * 32, 1)
    assert bundle.order(None, header(serial=1), b"x")
    assert bundle.order(seen, header(serial=11), b"x")
    assert not bundle.order(seen, header(serial=10), b"d" * 32)
    with pytest.raises(BundleRefused, match="replayed old bundle"):
        bundle.order(seen, header(serial=9), b"x")
    with pytest.raises(BundleRefused, match="forged or damaged"):
        bundle.order(seen, header(serial=10), b"x")
    assert Seen.from_plain(seen.to_plain()) == seen


def test_a_hub_bundle_of_another_epoch_is_refused_unless_it_reads_from_the_start() -> None:
    bundle.check_epoch(header(epoch="e1"), "e1")
    bundle.check_epoch(header(epoch="e1"), "")
    bundle.check_epoch(header(epoch="e2", reset=1), "e1")
    with pytest.raises(BundleRefused, match="epoch e2"):
        bundle.check_epoch(header(epoch="e2", **{"from": 40}), "e1")


def test_the_cursor_moves_only_from_where_the_edge_stands() -> None:
    assert bundle.moves_cursor(header(**{"from": 30}), 30, "e1")
    assert bundle.moves_cursor(header(**{"from": 10}), 30, "e1")
    assert not bundle.moves_cursor(header(**{"from": 31}), 30, "e1")
    assert bundle.moves_cursor(header(epoch="e2", reset=1), 30, "e1")  # a new log from 0


def test_addressing() -> None:
    bundle.check_addressed(header(), kind=bundle.HUB, hub="ab" * 32, node="02245.01")
    with pytest.raises(BundleRefused, match=r"for node 02245\.01; this is node 02245\.02"):
        bundle.check_addressed(header(), kind=bundle.HUB, hub="ab" * 32, node="02245.02")
    with pytest.raises(BundleRefused, match="another hub"):
        bundle.check_addressed(header(), kind=bundle.HUB, hub="cd" * 32)
    with pytest.raises(BundleRefused, match="the hub's answer"):
        bundle.check_addressed(header(), kind=bundle.EDGE, hub="ab" * 32)


def test_serials_always_rise() -> None:
    assert bundle.next_serial(100, 50) == 101
    assert bundle.next_serial(100, 500) == 500
