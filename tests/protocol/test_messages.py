"""The sync exchange's request and response: round trips, versions, stats, hostile bodies."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from protocol import APP_VERSION, PROTOCOL_VERSION
from protocol.codec import Limits, encode_body, encode_own_batch, event_hash, event_to_list
from protocol.errors import ProtocolError, RemoteProtocolError, TooLarge, VersionMismatch
from protocol.events import Event
from protocol.hlc import pack as hlc_pack
from protocol.messages import (
    Rejection,
    SyncRequest,
    SyncResponse,
    decode_error,
    decode_request,
    decode_response,
    encode_error,
    encode_request,
    encode_response,
)

NODE = "e08-02245"
DOSSIER = "01943a2b-7c00-7abc-8def-0123456789ab"
T = 1_767_600_000_000


def own_events(n: int, start: int = 1, origin: str = NODE) -> list[Event]:
    """A correctly chained run of an origin's events."""
    events: list[Event] = []
    prev = b"" if start == 1 else b"\x42" * 32
    for seq in range(start, start + n):
        event = Event(origin, seq, hlc_pack(T + seq, seq % 3), DOSSIER, "canbo.hoa", "set",
                      {"set": {"applicant.address": f"Thôn {seq}, xã Côn Lôn"}},
                      {origin: seq - 1} if seq > 1 else {}, prev)
        events.append(event)
        prev = event_hash(event)
    return events


GOOD_STATS: dict[str, Any] = {
    "pending_events": 12,
    "pending_blobs": 3,
    "oldest_pending_age_s": 3600,
    "disk_free": 10 * 2**30,
    "clock_offset_ms": -2500,
    "conflicts_open": 1,
    "dossiers": 420,
    "last_error": "ReadTimeout: hub did not answer in 30 s",
    "app_version": "0.1.0",
}


def request(**changes: Any) -> SyncRequest:
    fields: dict[str, Any] = {
        "node": NODE, "events": own_events(3), "cursor": 17, "want_bytes": 256 * 1024,
        "clock_ms": T, "stats": dict(GOOD_STATS),
    }
    fields.update(changes)
    return SyncRequest(**fields)


def raw_request(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"v": PROTOCOL_VERSION, "app": APP_VERSION, "node": NODE,
                            "ev": encode_own_batch(own_events(2)), "cursor": 0, "want": 1000,
                            "clock": T, "stats": {}}
    body.update(changes)
    return body


def response(**changes: Any) -> SyncResponse:
    hub_event = Event("hub", 7, hlc_pack(T + 100, 0), DOSSIER, "op.minh", "transition",
                      {"to": "processing", "from": "accepted", "note": "Chuyển xử lý"},
                      {NODE: 3, "hub": 6}, b"\x01" * 32)
    other = Event("e08-02227", 1, hlc_pack(T + 50, 2), DOSSIER, "canbo.lan", "comment",
                  {"text": "Đã nhận bản sao"}, {NODE: 1}, b"")
    fields: dict[str, Any] = {
        "ack": 3, "events": [hub_event, other], "cursor": 912, "more": True,
        "hub_time_ms": T + 200,
        "rejections": [Rejection(4, "invalid", "bad path fields.X")],
    }
    fields.update(changes)
    return SyncResponse(**fields)


def raw_response(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"v": PROTOCOL_VERSION, "ack": 0, "ev": [], "cursor": 0,
                            "more": False, "time": T, "rej": []}
    body.update(changes)
    return body


# -- round trips --------------------------------------------------------------------------------


def test_request_round_trip() -> None:
    req = request()
    decoded = decode_request(encode_request(req))
    assert decoded.node == NODE
    assert decoded.events == req.events
    assert decoded.cursor == 17
    assert decoded.want_bytes == 256 * 1024
    assert decoded.clock_ms == T
    assert decoded.stats == GOOD_STATS
    assert decoded.protocol == PROTOCOL_VERSION
    assert decoded.app == APP_VERSION
    assert decoded == req


def test_request_events_keep_their_hash_chain() -> None:
    events = own_events(4, start=40)
    decoded = decode_request(encode_request(request(events=events))).events
    assert [e.seq for e in decoded] == [40, 41, 42, 43]
    assert decoded[0].prev == b"\x42" * 32
    assert all(b.prev == event_hash(a) for a, b in itertools.pairwise(decoded))
    assert decoded == events


def test_request_events_take_the_node_as_origin() -> None:
    events = own_events(2, origin="e08-02227")
    decoded = decode_request(encode_request(request(events=events))).events
    assert {e.origin for e in decoded} == {NODE}


def test_request_with_a_precomputed_batch() -> None:
    events = own_events(3)
    req = request(events=[], batch=encode_own_batch(events))
    assert decode_request(encode_request(req)).events == events


def test_empty_request_round_trip() -> None:
    req = request(events=[], stats={}, cursor=0)
    decoded = decode_request(encode_request(req))
    assert decoded.events == []
    assert decoded.stats == {}
    assert decoded == req


def test_response_round_trip() -> None:
    resp = response()
    decoded = decode_response(encode_response(resp))
    assert decoded.ack == 3
    assert decoded.events == resp.events
    assert decoded.cursor == 912
    assert decoded.more is True
    assert decoded.hub_time_ms == T + 200
    assert decoded.rejections == [Rejection(4, "invalid", "bad path fields.X")]
    assert decoded == resp


def test_empty_response_round_trip() -> None:
    resp = response(events=[], rejections=[], more=False, ack=0)
    assert decode_response(encode_response(resp)) == resp


def test_a_missing_more_flag_means_no_more() -> None:
    body = raw_response()
    del body["more"]
    assert decode_response(encode_body(body)).more is False


def test_log_epoch_and_reset_round_trip() -> None:
    req = request(epoch="9f2c4e1a0b3d5e7f")
    assert decode_request(encode_request(req)) == req
    resp = response(epoch="0a1b2c3d4e5f6071", reset=True)
    assert decode_response(encode_response(resp)) == resp


def test_peers_that_predate_log_epochs_still_decode() -> None:
    """Epoch and reset are optional, so the protocol version did not change for them."""
    assert decode_request(encode_body(raw_request())).epoch == ""
    decoded = decode_response(encode_body(raw_response()))
    assert (decoded.epoch, decoded.reset) == ("", False)


@pytest.mark.parametrize("epoch", [7, None, b"ab", "x" * 65], ids=repr)
def test_a_malformed_epoch_is_a_remote_error(epoch: Any) -> None:
    with pytest.raises(RemoteProtocolError, match="epoch"):
        decode_request(encode_body(raw_request(epoch=epoch)))
    with pytest.raises(RemoteProtocolError, match="epoch"):
        decode_response(encode_body(raw_response(epoch=epoch)))


# -- versions -----------------------------------------------------------------------------------


def test_request_from_a_newer_edge_says_upgrade_the_hub() -> None:
    with pytest.raises(VersionMismatch) as info:
        decode_request(encode_request(request(protocol=PROTOCOL_VERSION + 1)))
    assert "upgrade" in info.value.message
    assert "hub" in info.value.message
    assert isinstance(info.value, ProtocolError)


def test_request_from_an_older_edge_says_upgrade_the_edge() -> None:
    with pytest.raises(VersionMismatch) as info:
        decode_request(encode_body(raw_request(v=0)))
    assert "upgrade the edge" in info.value.message


def test_response_with_a_newer_version_says_upgrade() -> None:
    with pytest.raises(VersionMismatch) as info:
        decode_response(encode_response(response(protocol=PROTOCOL_VERSION + 1)))
    assert "upgrade" in info.value.message


def test_response_from_a_newer_hub_tells_the_edge_to_upgrade() -> None:
    # The edge reads this; it is the edge that is behind, so it must be told to upgrade itself.
    with pytest.raises(VersionMismatch) as info:
        decode_response(encode_response(response(protocol=PROTOCOL_VERSION + 1)))
    assert "upgrade the edge" in info.value.message


@pytest.mark.parametrize("version", [None, "1", 1.0, [1]])
def test_missing_or_malformed_version_is_a_remote_error(version: Any) -> None:
    body = raw_request()
    if version is None:
        del body["v"]
    else:
        body["v"] = version
    with pytest.raises(RemoteProtocolError):
        decode_request(encode_body(body))


# -- stats --------------------------------------------------------------------------------------


def test_stats_with_wrong_types_are_dropped() -> None:
    stats = {
        "pending_events": "12",
        "pending_blobs": 3.5,
        "disk_free": None,
        "last_error": 5,
        "app_version": "0.1.0",
        "oldest_pending_age_s": 30,
        "clock_offset_ms": [1],
        "favourite_colour": "blue",
    }
    decoded = decode_request(encode_request(request(stats=stats)))
    assert decoded.stats == {"app_version": "0.1.0", "oldest_pending_age_s": 30}


def test_boolean_stats_are_not_counts() -> None:
    decoded = decode_request(encode_request(request(stats={"pending_events": True,
                                                           "conflicts_open": False,
                                                           "dossiers": 5})))
    assert decoded.stats == {"dossiers": 5}


def test_stats_must_be_a_map() -> None:
    with pytest.raises(RemoteProtocolError):
        decode_request(encode_body(raw_request(stats=[1, 2])))


# -- refusing to build or accept a bad message --------------------------------------------------


def test_an_own_batch_with_a_gap_cannot_be_encoded() -> None:
    events = own_events(4)
    with pytest.raises(ValueError):
        encode_request(request(events=[events[0], events[1], events[3]]))


def test_an_own_batch_of_two_origins_cannot_be_encoded() -> None:
    with pytest.raises(ValueError):
        encode_request(request(events=[*own_events(1), *own_events(1, start=2, origin="e2")]))


@pytest.mark.parametrize("changes", [
    {"node": "bad node!"},
    {"node": None},
    {"node": ["e1"]},
    {"cursor": -1},
    {"cursor": "0"},
    {"want": True},
    {"clock": None},
    {"ev": [1, 2]},
    {"ev": {"start": 1, "prev": b"", "ev": [[1, 2]]}},
], ids=lambda v: repr(v)[:30])
def test_bad_request_fields_are_remote_errors(changes: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_request(encode_body(raw_request(**changes)))


def test_raw_request_template_is_valid() -> None:
    assert len(decode_request(encode_body(raw_request())).events) == 2
    assert decode_response(encode_body(raw_response())).events == []


@pytest.mark.parametrize("body", [b"", b"garbage", encode_body([1, 2, 3]), encode_body("x")],
                         ids=["empty", "garbage", "list", "str"])
def test_garbage_request_and_response_are_remote_errors(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_request(body)
    with pytest.raises(RemoteProtocolError):
        decode_response(body)


@pytest.mark.parametrize("changes", [
    {"ack": -1},
    {"ack": None},
    {"time": "now"},
    {"cursor": 1.5},
    {"ev": {"a": 1}},
    {"ev": [[1, 2, 3]]},
    {"ev": [event_to_list(own_events(1)[0])[:8]]},
    {"rej": [[1, "x"]]},
    {"rej": [["1", "x", "y"]]},
    {"rej": "x"},
], ids=lambda v: repr(v)[:30])
def test_bad_response_fields_are_remote_errors(changes: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_response(encode_body(raw_response(**changes)))


def test_request_limits_apply() -> None:
    body = encode_request(request(events=own_events(50)))
    with pytest.raises(TooLarge):
        decode_request(body, Limits(max_body=len(body) - 1))
    with pytest.raises(TooLarge):
        decode_request(body, Limits(max_elements=20))
    assert len(decode_request(body, Limits(max_body=len(body))).events) == 50


def test_response_limits_apply() -> None:
    body = encode_response(response())
    with pytest.raises(TooLarge):
        decode_response(body, Limits(max_decompressed=100))


# -- error bodies -------------------------------------------------------------------------------


def test_error_body_round_trip() -> None:
    body = encode_error("version", "protocol 2 is not supported; upgrade the hub")
    assert decode_error(body) == ("version", "protocol 2 is not supported; upgrade the hub")


def test_an_unreadable_error_body_still_gives_a_message() -> None:
    code, message = decode_error(b"502 Bad Gateway")
    assert code == "error"
    assert message == "502 Bad Gateway"
    assert decode_error(encode_body([1]))[0] == "error"
