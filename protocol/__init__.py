"""Sans-I/O core shared by the edge node and the central hub: clocks, events, fold, codec, errors."""

from __future__ import annotations

PROTOCOL_VERSION = 1
APP_VERSION = "0.1.0"
HUB_ORIGIN = "hub"
