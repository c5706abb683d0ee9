"""Exclusive locks on a file between processes, on POSIX (`fcntl.flock`) and Windows
(`msvcrt.locking`) alike.

Both kinds are released by the operating system when the holder closes the file or dies, so a
crashed process never leaves a lock held. The one difference callers must respect: Windows cannot
delete a file that is open, so `remove_lock_file` after `release` is best effort there (a leftover
empty lock file is harmless). This is the only module of the edge's import path that may import a
platform-specific locking module (tests/edge_node/test_portable_imports.py enforces it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

log = logging.getLogger(__name__)

POLL_S = 0.01  # Windows has no blocking whole-file lock that waits forever: poll this often


def _backend() -> tuple[str, ModuleType]:
    try:
        import fcntl
    except ImportError:
        import msvcrt  # Windows

        return "msvcrt", msvcrt
    return "fcntl", fcntl


KIND, _OS = _backend()


def _lock(fd: int, blocking: bool) -> bool:
    if KIND == "fcntl":
        try:
            _OS.flock(fd, _OS.LOCK_EX | (0 if blocking else _OS.LOCK_NB))
        except BlockingIOError:
            return False
        return True
    # msvcrt.locking locks bytes from the current position: always byte 0, one byte (a lock
    # may cover bytes past the end of the file, so an empty lock file works)
    while True:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            _OS.locking(fd, _OS.LK_NBLCK, 1)
        except OSError:
            if not blocking:
                return False
            time.sleep(POLL_S)
        else:
            return True


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


def try_lock(path: Path) -> int | None:
    """Take the lock on `path` (created if missing) without waiting: the open file descriptor
    that holds it, or None if another holder has it. `release` it when done."""
    fd = _open(path)
    try:
        if _lock(fd, blocking=False):
            return fd
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None


def release(fd: int) -> None:
    """Give the lock up (closing the descriptor releases it on both systems)."""
    if KIND == "msvcrt":
        with contextlib.suppress(OSError):
            os.lseek(fd, 0, os.SEEK_SET)
            _OS.locking(fd, _OS.LK_UNLCK, 1)
    os.close(fd)


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[int]:
    """Hold the lock on `path` (created if missing) for the `with` block, waiting for it."""
    fd = _open(path)
    try:
        _lock(fd, blocking=True)
        yield fd
    finally:
        release(fd)


def remove_lock_file(path: Path) -> None:
    """Delete a lock file if the system lets us (Windows refuses while anyone has it open)."""
    with contextlib.suppress(FileNotFoundError, PermissionError):
        path.unlink()
