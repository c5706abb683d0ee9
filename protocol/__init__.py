"""Sans-I/O core shared by the edge node and the central hub: clocks, events, fold, codec, errors."""

from __future__ import annotations

PROTOCOL_VERSION = 1
APP_VERSION = "0.1.0"
HUB_ORIGIN = "hub"


def is_hub_origin(origin: str) -> bool:
    """The hub's own events: `hub`, or `hub.<epoch>` once it was restored from a backup (a
    restored hub writes under a new origin, so it never reuses the ids of events it lost but
    the edges hold). Node ids are `<commune code>.<nn>`, so they never look like this."""
    return origin == HUB_ORIGIN or origin.startswith(HUB_ORIGIN + ".")
