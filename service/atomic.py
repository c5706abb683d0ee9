"""Files replaced whole or not at all: written beside their target, flushed, renamed over it.

A reader (or a process restarted after a crash) finds the old content or the new, never a part:
the new bytes go to a temporary file on the same file system, reach the disk (fsync), and
`os.replace` swaps the name in one step on POSIX and on Windows alike. The rename itself is made
durable by an fsync of the directory where the system has one (POSIX; Windows cannot open a
directory as a file, and its file systems journal the rename).
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

PUBLIC = 0o644  # certificates; everything else stays owner-only (0o600, as mkstemp makes it)


def write(path: Path, data: bytes | str, *, private: bool = True,
          tmp_dir: Path | None = None) -> None:
    """Replace `path` with `data` (str as UTF-8) atomically and durably, owner-only unless
    `private` is False; a missing parent directory is made owner-only. The temporary file is
    made in `tmp_dir` (same file system) or beside `path`, under a name no other writer uses."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=tmp_dir or path.parent, prefix=f".{path.name}.",
                                suffix=".tmp")  # created owner-only
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        if not private:
            tmp.chmod(PUBLIC)
        _rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def move(tmp: Path, path: Path) -> None:
    """Put the finished file `tmp` (on the same file system) in the place of `path`, durably:
    its bytes reach the disk before the rename, the rename before this returns."""
    fd = os.open(tmp, os.O_RDWR | getattr(os, "O_BINARY", 0))  # Windows flushes writable ones only
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    _rename(tmp, path)


def _rename(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)
    sync_dir(path.parent)


def sync_dir(path: Path) -> None:
    """Make the entries of directory `path` (a rename into it) durable, where the system can."""
    if not hasattr(os, "O_DIRECTORY"):  # Windows
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:  # a file system that cannot flush a directory (some network mounts)
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)
