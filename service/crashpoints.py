"""Named points where a test can make this process die by SIGKILL, to prove crash safety.

Set `COMMUNE_SYNC_CRASH=name` (or `name:N` to die at the N-th hit) in a process's environment;
`hit(name)` then kills the process at that point. Unset (always, in production), `hit` is a
dictionary lookup and nothing else.
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)

ENV = "COMMUNE_SYNC_CRASH"
POINTS = frozenset({
    "store.write.before_commit",      # a local write (e.g. a new dossier) appended, not committed
    "edge.apply.before_commit",       # the hub's answer applied locally, not committed
    "edge.after_request",             # the hub committed and answered; nothing applied here
    "edge.blob.after_chunk",          # a blob chunk confirmed by the hub
    "hub.ingest.before_commit",       # a batch applied at the hub, not committed
    "hub.after_commit",               # committed at the hub, the answer not sent
})


def _parse(raw: str | None) -> tuple[str, int] | None:
    if not raw:
        return None
    name, _, count = raw.partition(":")
    if name not in POINTS:
        raise ValueError(f"{ENV}: unknown crash point {name!r}")
    return name, int(count or 1)


_TARGET = _parse(os.environ.get(ENV))
_hits: dict[str, int] = {}


def hit(name: str) -> None:
    """Die here by SIGKILL if the environment asks for it."""
    if _TARGET is None or _TARGET[0] != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= _TARGET[1]:
        log.warning("crash point %s reached: SIGKILL", name)
        # Windows has no SIGKILL; SIGTERM there is TerminateProcess, just as abrupt
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
