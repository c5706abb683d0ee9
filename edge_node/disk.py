"""The free-space floors of an edge's data disk: refuse new intake before SQLite runs out of room.

Two floors (node.toml): below `disk_floor_mb` the desk and the API refuse new dossiers and
attachments with a clear message (API 507) and no scan is fetched from the hub, while the edge
keeps syncing both ways, since a received hub event is a few hundred bytes and the commune must
still see the province's decisions; below `disk_hard_floor_mb` it still sends its own events
(they are already on disk) but stops pulling the hub's. Edits of existing dossiers stay allowed
above the hard floor: they are small, and refusing them would stop work for nothing.
"""

from __future__ import annotations

import errno
import logging
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from protocol.errors import DiskFull

log = logging.getLogger(__name__)

MB = 1024 * 1024
SQLITE_FULL = 13


def is_disk_full(exc: BaseException) -> bool:
    """True iff `exc` (or what caused it) is the disk running out of room: SQLite's
    SQLITE_FULL, or ENOSPC from a file write (a scan)."""
    while exc is not None:
        if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == \
                SQLITE_FULL:
            return True
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return True
        exc = exc.__cause__  # type: ignore[assignment]
    return False


def free_bytes(path: Path) -> int:
    """Free bytes on the disk holding `path` (for an unprivileged user); -1 if unknown."""
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return -1


@dataclass(frozen=True, slots=True)
class DiskGuard:
    """The floors of one data dir."""

    path: Path
    floor_mb: int
    hard_floor_mb: int

    def free(self) -> int:
        """Free bytes now (-1: unknown, treated as enough)."""
        return free_bytes(self.path)

    def low(self) -> bool:
        """Below the intake floor."""
        free = self.free()
        return 0 <= free < self.floor_mb * MB

    def very_low(self) -> bool:
        """Below the hard floor: stop applying what the hub sends."""
        free = self.free()
        return 0 <= free < self.hard_floor_mb * MB

    def check_intake(self) -> None:
        """Raise DiskFull when a new dossier or attachment must be refused."""
        free = self.free()
        if 0 <= free < self.floor_mb * MB:
            log.warning("intake refused: %d MB free, floor %d MB", free // MB, self.floor_mb)
            raise DiskFull(f"only {free // MB} MB free on this PC's disk (at least "
                           f"{self.floor_mb} MB are needed): no new dossier or attachment can "
                           "be taken until space is freed; syncing goes on",
                           free_mb=free // MB, floor_mb=self.floor_mb)
