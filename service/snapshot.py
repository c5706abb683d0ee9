"""Copies of a data directory for backups (the hub's and the edge's): a consistent copy of a live
SQLite database through its online backup API, the verified blobs, a few settings files, and the
SHA-256 a manifest records of what was copied.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import sqlite3
from collections.abc import Callable, Iterable
from contextlib import closing
from pathlib import Path
from typing import Any

from protocol.errors import StoreError, ValidationError
from service import atomic
from service.blobs import SHA_RE

log = logging.getLogger(__name__)

Describe = Callable[[sqlite3.Connection], dict[str, Any]]


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def private_dir(path: Path) -> None:
    """Make `path` (and its parents) owner-only: citizens' personal data, keys."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)


def check_integrity(conn: sqlite3.Connection) -> None:
    """StoreError unless `PRAGMA integrity_check` says ok."""
    row = conn.execute("PRAGMA integrity_check").fetchone()
    if row is None or row[0] != "ok":
        raise StoreError(f"the database copy fails its integrity check: {row[0] if row else '?'}")


def copy_database(src: Path, dst: Path, describe: Describe) -> dict[str, Any]:
    """Copy the SQLite database `src` (live or not) to the new file `dst`, consistently: all
    pages in one step of the online backup API, so one read snapshot while writers go on. The
    copy is checked (`check_integrity`) and `describe(copy)` says what the manifest records."""
    if not src.is_file():
        raise ValidationError(f"no database at {src}")
    tmp = dst.with_name(dst.name + ".partial")
    tmp.unlink(missing_ok=True)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        with closing(sqlite3.connect(src, timeout=30)) as source, \
                closing(sqlite3.connect(tmp)) as target:
            source.execute("PRAGMA busy_timeout=30000")
            source.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            check_integrity(target)
            facts = describe(target)
        atomic.move(tmp, dst)
    except sqlite3.Error as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot copy the database {src}: {exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return facts


def copy_blobs(src: Path, dst: Path, only_missing: bool) -> tuple[int, int]:
    """Copy verified blobs (`ab/<sha256>`, never `partial/`); return (files, bytes) copied."""
    files = size = 0
    if not src.is_dir():
        return 0, 0
    for sub in sorted(src.iterdir()):
        if not sub.is_dir() or len(sub.name) != 2 or sub.name == "partial":
            continue
        for blob in sorted(sub.iterdir()):
            if not SHA_RE.fullmatch(blob.name) or not blob.is_file():
                continue
            target = dst / sub.name / blob.name
            if only_missing and target.is_file():
                continue
            private_dir(target.parent)
            shutil.copy2(blob, target)
            files += 1
            size += blob.stat().st_size
    return files, size


def copy_files(src: Path, dst: Path, rels: Iterable[Path], only_missing: bool
               ) -> tuple[list[str], list[str]]:
    """Copy the files `rels` (relative to `src`) owner-only; return (copied, kept because `dst`
    has them and `only_missing`)."""
    copied, kept = [], []
    for rel in rels:
        target = dst / rel
        if only_missing and target.exists():
            kept.append(str(rel))
            continue
        private_dir(target.parent)
        shutil.copy2(src / rel, target)
        target.chmod(0o600)
        copied.append(str(rel))
    return copied, kept


def load_manifest(src: Path, name: str, what: str) -> dict[str, Any]:
    """The JSON manifest `name` of the backup directory `src` (`what`: "hub", "edge"), as a
    mapping; ValidationError if it is absent (an unfinished backup) or unreadable."""
    try:
        manifest = json.loads((src / name).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ValidationError(f"{src} is not a finished {what} backup (no {name})") from exc
    except (OSError, ValueError) as exc:
        raise ValidationError(f"cannot read {src / name}: {exc}") from exc
    if not isinstance(manifest, dict):
        raise ValidationError(f"{src / name}: not a backup this version can restore")
    return manifest


def answering(host: str, port: int) -> str | None:
    """`host:port` if a server answers there (a wildcard host: on loopback), else None — a
    restore's check that the server it replaces the database of is stopped (best effort)."""
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return f"{host}:{port}"
    except OSError:
        return None
