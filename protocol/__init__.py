"""Sans-I/O core shared by the edge node and the central hub: clocks, events, fold, codec, errors."""

from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "commune-sync"
UNKNOWN_VERSION = "0+unknown"  # a source tree on sys.path that was never installed


def installed_version(distribution: str = DISTRIBUTION) -> str:
    """The version pip installed (pyproject.toml holds the one number), or `UNKNOWN_VERSION`:
    the hub shows every node's version, so a guess would mislead more than an honest unknown."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return UNKNOWN_VERSION


PROTOCOL_VERSION = 1
APP_VERSION = installed_version()
HUB_ORIGIN = "hub"


def is_hub_origin(origin: str) -> bool:
    """The hub's own events: `hub`, or `hub.<epoch>` once it was restored from a backup (a
    restored hub writes under a new origin, so it never reuses the ids of events it lost but
    the edges hold). Node ids are `<commune code>.<nn>`, so they never look like this."""
    return origin == HUB_ORIGIN or origin.startswith(HUB_ORIGIN + ".")
