"""A restored edge's own events, back from the hub (`GET /v1/own?after=SEQ`).

Theory. An edge put back from an older backup of its own database holds its chain only up to the
backup, while the hub holds (and acknowledged) more of it. Writing on from the backup's head would
fork the chain: the hub would refuse it whole. So before it writes, the restored edge asks the hub
for its own events after its head, checks that they continue its chain (`protocol.session.accept`:
the same rule the hub applies to a batch), appends them, and only then writes on, at the hub's head.
Nothing is sent twice (its ack becomes the hub's head) and nothing the hub acknowledged is lost.
The answer is a body like the sync's: zstd(msgpack({"v", "ev": [event arrays], "more"})).
"""

from __future__ import annotations

import logging

from protocol import PROTOCOL_VERSION
from protocol.codec import decode_body, encode_body, event_from_list, event_to_list
from protocol.errors import RemoteProtocolError
from protocol.events import Event
from protocol.messages import check_version

log = logging.getLogger(__name__)

OWN_PATH = "/v1/own"
OWN_BYTES = 1024 * 1024  # of events per answer, about


def encode_own(events: list[Event], more: bool) -> bytes:
    """The hub's answer: a node's own events, in seq order, and whether more follow."""
    return encode_body({"v": PROTOCOL_VERSION, "ev": [event_to_list(e) for e in events],
                        "more": more})


def decode_own(body: bytes, node: str) -> tuple[list[Event], bool]:
    """The events of `node` in the hub's answer, and whether more follow; RemoteProtocolError
    for anything else (an event of another origin included)."""
    obj = decode_body(body)
    if not isinstance(obj, dict) or not isinstance(obj.get("ev"), list):
        raise RemoteProtocolError("the hub's answer to /v1/own is not a list of events")
    check_version(obj.get("v"), "hub")
    events = [event_from_list(item) for item in obj["ev"]]
    if any(e.origin != node for e in events):
        raise RemoteProtocolError(f"the hub answered /v1/own with events not of {node}")
    return events, bool(obj.get("more"))
