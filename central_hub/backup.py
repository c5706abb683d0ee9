"""Backup of the hub, while it may be serving.

`central-hub backup --data DIR DEST` copies:
- the SQLite database through SQLite's online backup API (one read transaction, so a consistent
  snapshot while writers go on), checked with `PRAGMA integrity_check`;
- the verified blobs (`blobs/ab/…`; blobs still being received are left out: senders resume them);
- the configuration (`hub.toml`) and the TLS material (`tls/`, the province CA's key included);
- last, a manifest (`backup.json`): when, what, the log's end and epoch, the database's SHA-256. A
  directory without it is an unfinished backup and is refused by restore (`central_hub.restore`).
On PostgreSQL the database is dumped with pg_dump instead (docs/backup.md); the rest is the same.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

from central_hub import config as hub_config
from central_hub.epoch import EPOCH_KEY
from central_hub.tls import TLS_DIR
from protocol import APP_VERSION
from protocol.errors import ValidationError
from service import atomic, snapshot
from service.hubtime import wall_clock_ms
from service.snapshot import copy_blobs as copy_blobs
from service.snapshot import copy_files
from service.snapshot import private_dir as private_dir
from service.snapshot import sha256_of as sha256_of

log = logging.getLogger(__name__)

MANIFEST = "backup.json"
FORMAT = 1
DB_FILE = "hub.db"
DUMP_FILE = "hub.dump"  # PostgreSQL: pg_dump -Fc writes it into DEST just before the backup
BLOBS = "blobs"


def _describe_db(conn: sqlite3.Connection) -> dict[str, Any]:
    """Log end and epoch of a checked copy of the hub database."""
    end = conn.execute("SELECT coalesce(max(pos), 0) FROM events").fetchone()[0]
    epoch = conn.execute("SELECT value FROM meta WHERE key=?", (EPOCH_KEY,)).fetchone()
    return {"log_end": int(end), "log_epoch": str(epoch[0]) if epoch else ""}


def copy_database(src: Path, dst: Path) -> dict[str, Any]:
    """Copy the hub's SQLite database `src` (live or not) to the new file `dst`, consistently;
    check the copy and return its log end and epoch."""
    return snapshot.copy_database(src, dst, _describe_db)


def _settings(data: Path) -> list[Path]:
    """The configuration and TLS files of a data dir, relative to it."""
    found = [Path(hub_config.CONFIG_FILE)] if (data / hub_config.CONFIG_FILE).is_file() else []
    tls_dir = data / TLS_DIR
    if tls_dir.is_dir():
        found += sorted(p.relative_to(data) for p in tls_dir.iterdir() if p.is_file())
    return found


def copy_settings(src: Path, dst: Path, only_missing: bool) -> tuple[list[str], list[str]]:
    """Copy config and TLS files; return (copied, kept because `dst` has them)."""
    return copy_files(src, dst, _settings(src), only_missing)


def backup(data: Path, dest: Path, now_ms: int) -> dict[str, Any]:
    """Back up the hub in `data` to the new (or empty) directory `dest`; return the manifest."""
    config = hub_config.load(data)
    allowed = {DUMP_FILE} if config.db != "sqlite" else set()
    if dest.exists() and (not dest.is_dir() or {p.name for p in dest.iterdir()} - allowed):
        raise ValidationError(f"{dest} exists and is not an empty directory: back up into a new "
                              "one (e.g. named by the date)")
    private_dir(dest)
    manifest: dict[str, Any] = {
        "format": FORMAT, "created_at": now_ms, "app_version": APP_VERSION,
        "store": "sqlite" if config.db == "sqlite" else "postgresql", "database": None}
    if config.db == "sqlite":
        manifest.update(copy_database(data / DB_FILE, dest / DB_FILE))
        manifest.update(database=DB_FILE, sha256=sha256_of(dest / DB_FILE))
    elif (dest / DUMP_FILE).is_file():
        manifest.update(dump=DUMP_FILE, dump_sha256=sha256_of(dest / DUMP_FILE))
    # After the database: a blob it names that is not complete yet is re-sent by its edge.
    manifest["blobs"], manifest["blob_bytes"] = copy_blobs(data / BLOBS, dest / BLOBS, False)
    manifest["settings"] = copy_settings(data, dest, False)[0]
    atomic.write(dest / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


async def cmd_backup(data: Path, dest: Path) -> int:
    """`central-hub backup --data DIR DEST`."""
    manifest = await asyncio.to_thread(backup, data, dest, wall_clock_ms())
    if manifest["database"] is not None:
        print(f"database copied to {dest / DB_FILE} (log end {manifest['log_end']}, "
              f"integrity ok)")
    elif "dump" in manifest:
        print(f"PostgreSQL dump {dest / DUMP_FILE} recorded in the manifest")
    else:
        print(f"the database is in PostgreSQL and {dest / DUMP_FILE} is missing: dump it first "
              "(pg_dump -Fc; docs/backup.md)")
    print(f"{manifest['blobs']} blobs ({manifest['blob_bytes']} bytes), "
          f"{len(manifest['settings'])} config/TLS files; backup complete in {dest}")
    return 0
