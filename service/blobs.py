"""Content-addressed blob files (scans and photos): written once, resumable, verified by SHA-256.

A blob lives at `root/ab/abcdef…` once verified; while it is being received it grows at
`root/partial/abcdef…`, one confirmed chunk after another, so a cut or a restart resumes from the
last byte on disk. Nothing counts until the whole file hashes to its name.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
from pathlib import Path

from protocol.errors import Conflict, StoreError, ValidationError
from service import atomic, filelock

log = logging.getLogger(__name__)

SHA_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_BLOB = 25 * 1024 * 1024
MAGIC = {
    b"%PDF-": "application/pdf",
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG\r\n\x1a\n": "image/png",
}


def check_sha(sha: str) -> str:
    """A lowercase hex SHA-256, or ValidationError."""
    if not isinstance(sha, str) or not SHA_RE.fullmatch(sha):
        raise ValidationError("not a SHA-256 (64 lowercase hex digits)", field="sha256")
    return sha


def sniff(head: bytes) -> str | None:
    """The MIME type of a PDF, JPEG or PNG from its first bytes; None for anything else."""
    for magic, mime in MAGIC.items():
        if head.startswith(magic):
            return mime
    return None


class BlobStore:
    """Blob files under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}  # sha -> lock, users
        (root / "partial").mkdir(parents=True, exist_ok=True, mode=0o700)
        root.chmod(0o700)  # scans of identity papers: owner only

    def path(self, sha: str) -> Path:
        """Where a verified blob lives."""
        return self.root / sha[:2] / sha

    def partial(self, sha: str) -> Path:
        """Where a blob being received grows."""
        return self.root / "partial" / sha

    def has(self, sha: str) -> bool:
        """True iff the verified blob is here."""
        return self.path(check_sha(sha)).is_file()

    def have(self, sha: str) -> int:
        """Bytes held: the full size if verified, else the partial length."""
        check_sha(sha)
        # without a lock: an upload finishing meanwhile renames the partial file to the final
        # name, so look at the final one again after a partial that has just gone
        for path in (self.path(sha), self.partial(sha), self.path(sha)):
            try:
                return path.stat().st_size
            except FileNotFoundError:
                continue
        return 0

    async def put(self, data: bytes) -> str:
        """Store whole bytes; return their SHA-256 (stored once however often put)."""
        sha = hashlib.sha256(data).hexdigest()
        if not self.has(sha):
            await asyncio.to_thread(self._write_final, sha, data)
        return sha

    def _write_final(self, sha: str, data: bytes) -> None:
        # written in partial/, so the blob directories hold whole, verified files only
        atomic.write(self.path(sha), data, tmp_dir=self.root / "partial")

    async def append(self, sha: str, offset: int, chunk: bytes, size: int) -> int:
        """Append a chunk at `offset` (which must be what is held); verify and finish the blob
        when it reaches `size`. Return the bytes now held."""
        check_sha(sha)
        if not 0 < size <= MAX_BLOB:
            raise ValidationError(f"blob size must be 1–{MAX_BLOB} bytes", field="size")
        # Two PCs uploading the same scan: one append at a time per blob. The entry lives while
        # anyone holds or awaits its lock (dropping it when the holder leaves would let a newcomer
        # make a second lock while a waiter is about to take the first: two appends at once).
        entry = self._locks.setdefault(sha, (asyncio.Lock(), [0]))
        entry[1][0] += 1
        try:
            async with entry[0]:
                return await asyncio.to_thread(self._append_locked, sha, offset, chunk, size)
        finally:
            entry[1][0] -= 1
            if entry[1][0] == 0 and self._locks.get(sha) is entry:
                del self._locks[sha]

    def _append_locked(self, sha: str, offset: int, chunk: bytes, size: int) -> int:
        """`_append` under a file lock: hub processes sharing this directory (`serve --workers`)
        append one at a time too."""
        lock = self.root / "partial" / f"{sha}.lock"
        with filelock.exclusive(lock):
            held = self._append(sha, offset, chunk, size)
            if held == size:
                # done: whoever waits on this file, or opens a new one, finds the blob complete
                # (Windows keeps the file while it is open: left behind, it is harmless)
                filelock.remove_lock_file(lock)
            return held

    def _append(self, sha: str, offset: int, chunk: bytes, size: int) -> int:
        if self.path(sha).is_file():
            return size
        part = self.partial(sha)
        held = part.stat().st_size if part.is_file() else 0
        if offset != held:
            raise Conflict(f"offset {offset} but {held} bytes held; resume from {held}")
        if held + len(chunk) > size:
            raise ValidationError("chunk goes past the declared size", field="size")
        with open(part, "ab") as fh:
            fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        held += len(chunk)
        if held == size:
            digest = hashlib.sha256()
            with open(part, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
            if digest.hexdigest() != sha:
                part.unlink()
                raise ValidationError("blob content does not match its SHA-256; discarded")
            final = self.path(sha)
            final.parent.mkdir(parents=True, exist_ok=True)
            atomic.move(part, final)
        return held

    async def read(self, sha: str, offset: int, limit: int) -> bytes:
        """Up to `limit` bytes of a verified blob from `offset`."""
        path = self.path(check_sha(sha))
        if not path.is_file():
            raise StoreError("blob not here")

        def _read() -> bytes:
            with open(path, "rb") as fh:
                fh.seek(offset)
                return fh.read(limit)

        return await asyncio.to_thread(_read)
