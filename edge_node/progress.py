"""What the sync attempt under way is doing, for the desk's indicator: connecting, sending N changes,
asking for news; and how the last attempt ended (when, and why it failed: refused, no answer in
time, another network fault).

The sync client marks the steps it knows (an attempt begins, a batch is sent, it ends); the moment
the connection is up comes from aiohttp's tracing hooks on the client's own session.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

PHASES = ("", "connecting", "sending", "receiving")  # "": no attempt under way
PROBLEMS = ("refused", "timeout", "network")


@dataclass(slots=True)
class Progress:
    """The current attempt's step and the last one's outcome (mutable: one per sync client)."""

    phase: str = ""
    events: int = 0  # in the batch being sent
    started_ms: int | None = None
    ended_ms: int | None = None  # the last attempt's end
    problem: str = ""  # how the last attempt failed, if we know ("" if it did not, or not known)

    def begin(self, now_ms: int) -> None:
        """An attempt starts: it connects first."""
        self.phase, self.events, self.started_ms, self.problem = "connecting", 0, now_ms, ""

    def sending(self, events: int) -> None:
        """A round trip carries `events` of ours (0: it only asks for the hub's news)."""
        self.events = events
        if self.phase != "connecting":  # still connecting: connected() moves it on
            self.phase = "sending" if events else "receiving"

    def connected(self) -> None:
        """The connection to the hub is up."""
        if self.phase == "connecting":
            self.phase = "sending" if self.events else "receiving"

    def failed(self, problem: str) -> None:
        """Say how the attempt failed (one of PROBLEMS)."""
        self.problem = problem if problem in PROBLEMS else "network"

    def lost(self, os_error: object) -> None:
        """The connection could not be made (`os_error`: why, from the operating system)."""
        self.failed("refused" if isinstance(os_error, ConnectionRefusedError) else "network")

    def end(self, now_ms: int) -> None:
        """The attempt is over (its problem, if any, was said before)."""
        self.phase, self.ended_ms = "", now_ms

    def plain(self) -> dict[str, Any]:
        """The JSON shape in `GET /api/sync`."""
        return {"phase": self.phase, "events": self.events, "started_ms": self.started_ms,
                "ended_ms": self.ended_ms, "problem": self.problem}

    def trace(self) -> aiohttp.TraceConfig:
        """Hooks for the client's session that tell when a connection is up."""
        config = aiohttp.TraceConfig()

        async def up(_session: aiohttp.ClientSession, _context: SimpleNamespace,
                     _params: Any) -> None:
            self.connected()

        config.on_connection_create_end.append(up)
        config.on_connection_reuseconn.append(up)
        return config
